"""The Wallet protocol on PyOTA 3.1 and the legacy IOTA node API.

Only this module imports ``iota``, and only when a wallet first talks to the
node: importing PyOTA costs ~0.4 s and prints pkg_resources warnings.

PyOTA 3.x runs every API call as a coroutine. Its synchronous ``Iota`` calls
``asyncio.get_event_loop()``, which fails in a worker thread; this wallet uses
``AsyncIota`` on an event loop of its own instead, so it works from any one
thread at a time (a lock serialises callers).

Every failure becomes a one-line ``WalletError`` (``retryable`` says whether
waiting can help, ``node_message`` holds what the node said). No message ever
contains the seed: the seed is given only to the key generator, never to the
API object, and every message passes through ``_one_line`` which redacts it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ..config import WalletConfig
from ..errors import InsufficientBalance, WalletError
from .base import SignedBundle

log = logging.getLogger(__name__)

T = TypeVar("T")
_MAX_MESSAGE = 300
_KEEP_SIGNED = 64  # bundles remembered for reattach(); ~11 kB each
_STATUS = re.compile(r"^(?:Non-JSON |Empty |Malformed )?(\d{3}) response from node:?\s*(.*)$",
                     re.DOTALL)


def import_iota() -> Any:
    """Import PyOTA without its pkg_resources DeprecationWarning/UserWarning noise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import iota
    return iota


class PyotaWallet:
    """Pays ``config.receiver`` from addresses of ``config.seed`` through one node.

    Addresses are derived on demand and cached (~0.2-0.3 s each, ~10x that on
    a Raspberry Pi). Nothing is imported or contacted before the first call.
    """

    def __init__(self, config: WalletConfig) -> None:
        if not config.seed:
            raise WalletError("no wallet seed configured (wallet.seed or wallet.seed_file)",
                              retryable=False)
        if len(config.receiver) not in (81, 90):
            raise WalletError("wallet.receiver must be an 81- or 90-tryte IOTA address",
                              retryable=False)
        self.node_url = config.node_url
        self.receiver = config.receiver
        self.tag = config.tag
        self.depth = config.depth
        self.min_weight_magnitude = config.min_weight_magnitude
        self.security_level = config.security_level
        self.timeout_s = config.timeout_s
        self.local_pow = config.local_pow
        self._seed = config.seed
        self._addresses: dict[int, Any] = {}
        # tail -> signed trytes, for reattach(); only the newest few are kept.
        self._signed_by_tail: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._iota: Any = None
        self._api_obj: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    # -- the Wallet protocol

    def prepare(self, value_iota: int, input_index: int, change_index: int) -> SignedBundle:
        """Build and sign a bundle paying ``value_iota`` (IOTA) from ``input_index``.

        Asks the node whether the input was spent from (``wereAddressesSpentFrom``:
        a spent key is never used again) and for its balance (``getBalances``); the
        rest, if any, goes to the address at ``change_index``. Never scans the seed.

        Raises:
            ValueError: ``value_iota`` is not positive, or the indexes are equal or negative.
            InsufficientBalance: the input address holds less than ``value_iota``.
            WalletError: the node could not be asked.
        """
        if isinstance(value_iota, bool) or not isinstance(value_iota, int) or value_iota <= 0:
            raise ValueError(f"refusing a transfer of {value_iota!r} IOTA: must be positive")
        if input_index < 0 or change_index < 0 or input_index == change_index:
            raise ValueError(f"input index {input_index} and change index {change_index} "
                             "must be different and not negative")
        iota = self._import()
        source = self._address(input_index)
        receiver = self._receiver_address()
        if self._spent_from(source):
            # The ledger thinks this address is fresh, the node says a bundle spent
            # from it: signing again would reveal more of its one-time key.
            raise WalletError(
                f"address #{input_index} ({str(source)[:12]}...) was already spent from; "
                "refusing to sign with its key again: fund a fresh address and set "
                "wallet.start_index to its key index", retryable=False, kind="spent input")
        balance = self._balances([str(source)])[0]
        if balance < value_iota:
            raise InsufficientBalance(
                f"address #{input_index} ({str(source)[:12]}...) holds {balance} i, "
                f"the payment needs {value_iota} i", retryable=True)
        source.balance = balance
        bundle = iota.ProposedBundle([iota.ProposedTransaction(
            address=receiver, value=value_iota, tag=iota.Tag(self.tag))])
        bundle.add_inputs([source])
        if balance > value_iota:
            bundle.send_unspent_inputs_to(self._address(change_index))
        bundle.finalize()
        from iota.crypto.signing import KeyGenerator
        bundle.sign_inputs(KeyGenerator(self._seed))
        trytes = tuple(str(t) for t in bundle.as_tryte_strings())  # head first
        log.debug("signed bundle %s: %d i from #%d, change to #%d, %d transactions",
                  bundle.hash, value_iota, input_index, change_index, len(trytes))
        return SignedBundle(str(bundle.hash), trytes, value_iota, input_index, change_index)

    def broadcast(self, bundle: SignedBundle) -> str:
        """Attach (proof of work), broadcast and store ``bundle``; return the new tail hash.

        Each call makes a new attachment of the same signed bundle (a reattachment
        when called again), which never re-signs anything.

        Raises:
            WalletError: a node call failed; ``retryable`` False when the node refused the bundle.
        """
        tail = self._attach_and_send(list(bundle.trytes))
        self._remember(tail, bundle.trytes)
        return tail

    def is_confirmed(self, tails: list[str]) -> bool:
        """True if the node reports any of ``tails`` as included (confirmed).

        Raises:
            WalletError: the node could not be asked.
        """
        if not tails:
            return False
        iota = self._import()
        hashes = [iota.TransactionHash(t) for t in tails]
        answer = self._call("getInclusionStates",
                            lambda api: api.get_inclusion_states(transactions=hashes))
        return any(bool(s) for s in answer.get("states") or [])

    def promote(self, tail: str) -> None:
        """Attach a zero-value transaction approving ``tail``, to speed its confirmation.

        Raises:
            WalletError: the node failed, or ``tail`` is not promotable
                (``retryable`` False: reattach instead).
        """
        iota = self._import()
        tx = iota.TransactionHash(tail)
        try:
            self._call("promote", lambda api: api.promote_transaction(
                transaction=tx, depth=self.depth, min_weight_magnitude=self.min_weight_magnitude))
        except WalletError as err:
            if "not promotable" in str(err):
                raise WalletError(f"tail {tail[:12]}... is not promotable: reattach it",
                                  retryable=False, node_message=err.node_message) from err
            raise

    def reattach(self, tail: str) -> str:
        """Attach the bundle of ``tail`` again (same signatures, new tail); return the new tail.

        Uses the signed trytes this wallet broadcast when it has them, so it works
        even if the node lost the bundle; otherwise asks the node (``replay_bundle``).

        Raises:
            WalletError: a node call failed, or the node does not know ``tail``.
        """
        signed = self._signed_by_tail.get(tail)
        if signed is not None:
            new_tail = self._attach_and_send(list(signed))
            self._remember(new_tail, signed)
            return new_tail
        iota = self._import()
        tx = iota.TransactionHash(tail)
        answer = self._call("reattach", lambda api: api.replay_bundle(
            transaction=tx, depth=self.depth, min_weight_magnitude=self.min_weight_magnitude))
        return self._tail_of([str(t) for t in answer["trytes"]])

    def describe(self) -> str:
        """One line naming the node and the receiver (never the seed)."""
        pow_where = "local" if self.local_pow else "node"
        return (f"PyOTA wallet: node {self.node_url}, receiver {self.receiver[:81]}, "
                f"security {self.security_level}, mwm {self.min_weight_magnitude}, "
                f"{pow_where} PoW, timeout {self.timeout_s:g} s")

    def close(self) -> None:
        """Close the HTTP client and the event loop."""
        with self._lock:
            if self._loop is None:
                return
            try:
                if self._api_obj is not None:
                    self._loop.run_until_complete(self._api_obj.adapter.client.aclose())
            finally:
                self._loop.close()
                self._loop = None
                self._api_obj = None

    # -- helpers for the ``check`` command

    def balance(self, index: int) -> int:
        """Confirmed balance (IOTA) of the address at ``index``.

        Raises:
            WalletError: the node could not be asked.
        """
        return self._balances([str(self._address(index))])[0]

    def address(self, index: int) -> str:
        """The address at ``index``, 90 trytes with checksum (public, safe to show)."""
        return str(self._address(index).with_valid_checksum())

    def node_info(self) -> dict[str, Any]:
        """The node's name, version and milestone indexes (``getNodeInfo``).

        Raises:
            WalletError: the node could not be asked.
        """
        info = self._call("getNodeInfo", lambda api: api.get_node_info())
        keys = ("appName", "appVersion", "latestMilestoneIndex",
                "latestSolidSubtangleMilestoneIndex", "neighbors", "time")
        return {k: info[k] for k in keys if k in info}

    # -- internals

    def _remember(self, tail: str, trytes: tuple[str, ...]) -> None:
        self._signed_by_tail[tail] = trytes
        while len(self._signed_by_tail) > _KEEP_SIGNED:
            self._signed_by_tail.popitem(last=False)

    def _import(self) -> Any:
        if self._iota is None:
            self._iota = import_iota()
        return self._iota

    def _api(self) -> Any:
        if self._api_obj is None:
            iota = self._import()
            if self.local_pow:
                _import_pow()
            adapter = iota.HttpAdapter(self.node_url, timeout=self.timeout_s)
            # No seed: the API object never holds it (PyOTA makes a random one).
            self._api_obj = iota.AsyncIota(adapter, local_pow=self.local_pow)
        return self._api_obj

    def _call(self, step: str, make: Callable[[Any], Awaitable[T]]) -> T:
        """Run one API coroutine on this wallet's loop; map every failure to WalletError."""
        with self._lock:
            try:
                api = self._api()
                if self._loop is None:
                    self._loop = asyncio.new_event_loop()
                return self._loop.run_until_complete(make(api))
            except WalletError:
                raise
            except Exception as err:
                raise self._wallet_error(step, err) from err

    def _wallet_error(self, step: str, err: Exception) -> WalletError:
        import httpx
        from iota.adapter import BadApiResponse, InvalidUri

        node = self.node_url
        if isinstance(err, InvalidUri):
            return WalletError(self._one_line(f"wallet.node_url {node!r} is not usable: {err}"),
                               retryable=False)
        if isinstance(err, httpx.TimeoutException):
            return WalletError(self._one_line(
                f"{step}: node {node} did not answer within {self.timeout_s:g} s"),
                kind="timeout")
        if isinstance(err, httpx.TransportError):
            return WalletError(self._one_line(
                f"{step}: cannot reach node {node}: {type(err).__name__}: {err}"),
                kind="unreachable")
        if isinstance(err, BadApiResponse):
            text = self._one_line(str(err))
            match = _STATUS.match(text)
            status, said = (int(match[1]), match[2]) if match else (None, text)
            # 4xx: the node refused this request; waiting will not change its mind.
            retryable = status is None or not 400 <= status < 500 or status in (408, 429)
            where = f"HTTP {status}" if status else "error"
            return WalletError(self._one_line(f"{step}: node {node} answered {where}: {said}"),
                               retryable=retryable, node_message=said, kind=where)
        return WalletError(self._one_line(
            f"{step}: unexpected answer from node {node}: {type(err).__name__}: {err}"),
            kind="unexpected answer")

    def _one_line(self, text: str) -> str:
        """Whitespace collapsed, the seed redacted, at most ``_MAX_MESSAGE`` characters."""
        seed = self._seed
        for secret in (seed.ljust(81, "9"), seed if len(seed) >= 16 else ""):
            if secret:
                text = text.replace(secret, "<seed>")
        text = " ".join(text.split())
        return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE - 3] + "..."

    def _address(self, index: int) -> Any:
        address = self._addresses.get(index)
        if address is None:
            from iota.crypto.addresses import AddressGenerator
            self._import()
            gen = AddressGenerator(self._seed, security_level=self.security_level,
                                   checksum=False)
            address = self._addresses[index] = gen.get_addresses(index, 1)[0]
        # A fresh copy: prepare() sets ``balance`` on it.
        return type(address)(address, balance=0, key_index=address.key_index,
                             security_level=address.security_level)

    def _receiver_address(self) -> Any:
        iota = self._import()
        address = iota.Address(self.receiver)
        if len(self.receiver) == 90 and not address.is_checksum_valid():
            raise WalletError("wallet.receiver has a wrong checksum: check the address",
                              retryable=False)
        return iota.Address(self.receiver[:81])

    def _spent_from(self, address: Any) -> bool:
        answer = self._call("wereAddressesSpentFrom",
                            lambda api: api.were_addresses_spent_from(addresses=[address]))
        return bool((answer.get("states") or [False])[0])

    def _balances(self, addresses: list[str]) -> list[int]:
        iota = self._import()
        wanted = [iota.Address(a) for a in addresses]
        answer = self._call("getBalances", lambda api: api.get_balances(addresses=wanted))
        balances = [int(b) for b in answer.get("balances") or []]
        if len(balances) != len(addresses):
            raise WalletError(f"getBalances: node {self.node_url} answered "
                              f"{len(balances)} balances for {len(addresses)} addresses")
        return balances

    def _attach_and_send(self, trytes: list[str]) -> str:
        iota = self._import()
        raw = [iota.TransactionTrytes(t) for t in trytes]
        tips = self._call("getTransactionsToApprove",
                          lambda api: api.get_transactions_to_approve(depth=self.depth))
        attached = self._call("attachToTangle", lambda api: api.attach_to_tangle(
            trunk_transaction=tips["trunkTransaction"],
            branch_transaction=tips["branchTransaction"],
            trytes=raw, min_weight_magnitude=self.min_weight_magnitude))
        done = [iota.TransactionTrytes(t) for t in attached["trytes"]]
        if len(done) != len(raw):
            raise WalletError(f"attachToTangle: node {self.node_url} returned {len(done)} "
                              f"transactions for {len(raw)}")
        self._call("broadcastTransactions", lambda api: api.broadcast_transactions(trytes=done))
        self._call("storeTransactions", lambda api: api.store_transactions(trytes=done))
        return self._tail_of([str(t) for t in done])

    def _tail_of(self, trytes: list[str]) -> str:
        """Hash (Curl-P-81) of the transaction with current index 0."""
        iota = self._import()
        from iota.trits import int_from_trits
        for t in trytes:
            if int_from_trits(iota.TryteString(t[2331:2340]).as_trits()) == 0:
                return str(iota.Transaction.from_tryte_string(t).hash)
        raise WalletError(f"node {self.node_url} returned a bundle without a tail transaction")


def _import_pow() -> None:
    """Import pyota-pow (local PoW) without its ``logging.basicConfig`` taking effect."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        import pow  # noqa: F401  (pyota-pow: x86-64 only)
    except ImportError:
        raise WalletError("wallet.local_pow = true needs the pyota-pow package "
                          "(x86-64 only); set local_pow = false to let the node do PoW",
                          retryable=False) from None
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
