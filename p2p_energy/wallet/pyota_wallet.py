"""The Wallet protocol on PyOTA 3.1 and the legacy IOTA node API.

PyOTA is imported (``pyota_api``) only when a wallet first talks to the node:
importing it costs ~0.4 s and prints pkg_resources warnings.

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
import gc
import json
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from ..config import WalletConfig
from ..errors import InsufficientBalance, NotPromotable, WalletError
from .base import CONFIRMED, LEGACY_UNIT, PENDING, Attachment, Signed, Status
from .pyota_api import import_iota, node_error

log = logging.getLogger(__name__)

T = TypeVar("T")
_MAX_MESSAGE = 300
_SIGNED = slice(0, 2430)  # signature, essence, bundle hash: what attaching keeps
_SPENT_SCAN = 100  # change indexes looked at past a spent one before giving up


class PyotaWallet:
    """Pays ``config.receiver`` from addresses of ``config.seed`` through one node.

    Addresses are derived on demand and cached (~0.2-0.3 s each, ~10x that on
    a Raspberry Pi). Nothing is imported or contacted before the first call.
    """

    backend = "pyota"
    unit = LEGACY_UNIT

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
        self._iota: Any = None
        self._api_obj: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    # -- the Wallet protocol

    def prepare(self, value: int, input_index: int) -> Signed:
        """Sign a bundle paying ``value`` IOTA from the address at ``input_index``.

        One ``wereAddressesSpentFrom`` asks about the input and the next key index
        together: a spent input is never signed with again, and a spent change
        index is skipped (the change goes to the first unspent index after the
        input). Then ``getBalances`` for the input. Never scans the seed.

        Raises:
            ValueError: ``value`` is not positive, or ``input_index`` is negative.
            InsufficientBalance: the input holds less than ``value`` (``available``: what it holds).
            WalletError: the input was spent from, or the node could not be asked.
        """
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"refusing a transfer of {value!r} IOTA: must be positive")
        if input_index < 0:
            raise ValueError(f"input index {input_index} must not be negative")
        iota = self._import()
        source = self._address(input_index)
        receiver = self._receiver_address()
        change_index = self._fresh_change_index(source, input_index)
        balance = self._balances([str(source)])[0]
        if balance < value:
            raise InsufficientBalance(
                f"address #{input_index} ({str(source)[:12]}...) holds {balance} i, "
                f"the payment needs {value} i", available=balance)
        source.balance = balance
        bundle = iota.ProposedBundle([iota.ProposedTransaction(
            address=receiver, value=value, tag=iota.Tag(self.tag))])
        bundle.add_inputs([source])
        if balance > value:
            bundle.send_unspent_inputs_to(self._address(change_index))
        bundle.finalize()
        from iota.crypto.signing import KeyGenerator
        bundle.sign_inputs(KeyGenerator(self._seed))
        trytes = [str(t) for t in bundle.as_tryte_strings()]  # head first
        log.debug("signed bundle %s: %d i from #%d, change to #%d, %d transactions",
                  bundle.hash, value, input_index, change_index, len(trytes))
        return Signed(str(bundle.hash), json.dumps(trytes), value, input_index, change_index,
                      self.receiver[:81])  # the address without its checksum

    def attach(self, signed: Signed) -> Attachment:
        """Tips and proof of work for the signed bundle; nothing is broadcast.

        The attachment's id is the tail transaction's hash, computed here from
        the attached trytes, so the payer records it before the node has it.

        Raises:
            WalletError: a node call failed, or the node changed the signed content.
        """
        iota = self._import()
        signed_trytes = _payload_trytes(signed)
        raw = [iota.TransactionTrytes(t) for t in signed_trytes]
        tips = self._call("getTransactionsToApprove",
                          lambda api: api.get_transactions_to_approve(depth=self.depth))
        attached = self._call("attachToTangle", lambda api: api.attach_to_tangle(
            trunk_transaction=tips["trunkTransaction"],
            branch_transaction=tips["branchTransaction"],
            trytes=raw, min_weight_magnitude=self.min_weight_magnitude))
        done = [str(t) for t in attached["trytes"]]
        if sorted(t[_SIGNED] for t in done) != sorted(t[_SIGNED] for t in signed_trytes):
            raise WalletError(f"attachToTangle: node {self.node_url} returned transactions "
                              "that are not the signed bundle", kind="unexpected answer")
        return Attachment(self._tail_of(done), json.dumps(done))

    def send(self, attachment: Attachment) -> None:
        """Broadcast and store one attachment (sending it again is harmless).

        Raises:
            WalletError: a node call failed; ``retryable`` False when the node refused it.
        """
        iota = self._import()
        done = [iota.TransactionTrytes(t) for t in json.loads(attachment.data)]
        self._call("broadcastTransactions", lambda api: api.broadcast_transactions(trytes=done))
        self._call("storeTransactions", lambda api: api.store_transactions(trytes=done))

    def status(self, signed: Signed, known: Sequence[str]) -> Status:
        """Confirmed if any attachment of the bundle is included, by bundle, not by memory.

        ``findTransactions(bundles=...)`` finds every attachment the node holds
        (``getTrytes`` tells tails from the rest); inclusion is asked for those
        and for ``known`` together. Those the node holds are returned, to be recorded.

        Raises:
            WalletError: the node could not be asked.
        """
        held = self._tails_of_bundle(signed.reference)
        tails = list(dict.fromkeys([*known, *held]))
        if not tails:
            return Status(PENDING)
        iota = self._import()
        hashes = [iota.TransactionHash(t) for t in tails]
        answer = self._call("getInclusionStates",
                            lambda api: api.get_inclusion_states(transactions=hashes))
        states = self._one_each("getInclusionStates", answer["states"], tails, flags=True)
        included = [t for t, s in zip(tails, states, strict=True) if s]
        held = list(dict.fromkeys([*held, *included]))
        if included:
            return Status(CONFIRMED, tuple(held), detail=f"tail {included[0]}")
        return Status(PENDING, tuple(held))

    def promote(self, signed: Signed, known: Sequence[str]) -> None:
        """Attach a zero-value transaction approving the newest known tail.

        Raises:
            NotPromotable: no tail, or the node says it is not promotable: attach again.
            WalletError: the node failed.
        """
        if not known:
            raise NotPromotable(f"bundle {signed.reference[:12]}... has no attachment")
        tail = known[-1]
        iota = self._import()
        tx = iota.TransactionHash(tail)
        try:
            self._call("promote", lambda api: api.promote_transaction(
                transaction=tx, depth=self.depth, min_weight_magnitude=self.min_weight_magnitude))
        except WalletError as err:
            if "not promotable" in str(err):
                raise NotPromotable(f"tail {tail[:12]}... is not promotable",
                                    node_message=err.node_message) from err
            raise

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

    def _import(self) -> Any:
        if self._iota is None:
            self._iota = import_iota()
            # Every module imported by now lives as long as the process: leave those
            # objects out of every later collection. A full collection runs in the
            # thread that allocates (here, signing) and holds the GIL throughout: on a
            # Pi's CPU budget one took ~230 ms, and the sampling loop waited for it.
            import iota.crypto.addresses
            import iota.crypto.signing  # noqa: F401
            gc.freeze()
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
        return node_error(step, err, self.node_url, self.timeout_s, self._one_line)

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

    def _spent_from(self, addresses: list[Any]) -> list[bool]:
        answer = self._call("wereAddressesSpentFrom",
                            lambda api: api.were_addresses_spent_from(addresses=addresses))
        return self._one_each("wereAddressesSpentFrom", answer["states"], addresses, flags=True)

    def _balances(self, addresses: list[str]) -> list[int]:
        iota = self._import()
        wanted = [iota.Address(a) for a in addresses]
        answer = self._call("getBalances", lambda api: api.get_balances(addresses=wanted))
        return [int(b) for b in self._one_each("getBalances", answer["balances"], addresses)]

    def _one_each(self, step: str, answers: Any, asked: Sequence[Any], *,
                  flags: bool = False) -> list[Any]:
        """``answers``, checked to be a list of one answer per thing ``asked`` about.

        ``flags``: each must be a JSON boolean. A garbled "spent" or "included"
        must never read as false or true: it is an unexpected answer.
        """
        if not isinstance(answers, list) or len(answers) != len(asked) or (
                flags and not all(isinstance(a, bool) for a in answers)):
            raise WalletError(self._one_line(
                f"{step}: node {self.node_url} answered {answers!r} for {len(asked)} asked"),
                kind="unexpected answer")
        return answers

    def _fresh_change_index(self, source: Any, input_index: int) -> int:
        """The first key index after ``input_index`` never spent from.

        Raises:
            WalletError: ``source`` was spent from, or no fresh index nearby.
        """
        candidate = input_index + 1
        spent = self._spent_from([source, self._address(candidate)])
        if spent[0]:
            # The ledger thinks this address is fresh, the node says a bundle spent
            # from it: signing again would reveal more of its one-time key.
            raise WalletError(
                f"address #{input_index} ({str(source)[:12]}...) was already spent from; "
                "refusing to sign with its key again: send the funds to a fresh address "
                "and run 'p2p-energy wallet set-index N' with its key index",
                retryable=False, kind="spent input")
        for _ in range(_SPENT_SCAN):
            if not spent[-1]:
                return candidate
            log.warning("key index %d was already spent from: not using it for change",
                        candidate)
            candidate += 1
            spent = self._spent_from([self._address(candidate)])
        raise WalletError(f"key indexes {input_index + 1}-{candidate} were all spent from: "
                          "no fresh change address", retryable=False, kind="spent change")

    def _tails_of_bundle(self, reference: str) -> list[str]:
        """Tail hashes of every attachment of bundle ``reference`` the node holds."""
        iota = self._import()
        bundle = iota.BundleHash(reference)
        answer = self._call("findTransactions",
                            lambda api: api.find_transactions(bundles=[bundle]))
        found = [str(h) for h in self._list_of("findTransactions", answer, "hashes")]
        if not all(_is_trytes(h, 81) for h in found):
            raise self._unexpected("findTransactions", found, "transaction hashes")
        if not found:
            return []
        hashes = [iota.TransactionHash(h) for h in found]
        answer = self._call("getTrytes", lambda api: api.get_trytes(hashes=hashes))
        trytes = [str(t) for t in self._one_each(
            "getTrytes", self._list_of("getTrytes", answer, "trytes"), hashes)]
        if not all(_is_trytes(t, 2673) for t in trytes):
            raise self._unexpected("getTrytes", trytes, "transaction trytes")
        return [str(h) for h, t in zip(hashes, trytes, strict=True)
                if t[2349:2430] == reference and _current_index(t) == 0]

    def _list_of(self, step: str, answer: Any, key: str) -> list[Any]:
        """``answer[key]``, checked to be a list (a wrong shape is a retryable error)."""
        found = answer.get(key) if isinstance(answer, dict) else None
        if not isinstance(found, list):
            raise self._unexpected(step, answer, f"a list of {key!r}")
        return found

    def _unexpected(self, step: str, answer: Any, wanted: str) -> WalletError:
        return WalletError(self._one_line(
            f"{step}: node {self.node_url} answered {answer!r}, not {wanted}"),
            kind="unexpected answer")

    def _tail_of(self, trytes: list[str]) -> str:
        """Hash (Curl-P-81) of the transaction with current index 0."""
        iota = self._import()
        for t in trytes:
            if _current_index(t) == 0:
                return str(iota.Transaction.from_tryte_string(t).hash)
        raise WalletError(f"node {self.node_url} returned a bundle without a tail transaction",
                          kind="unexpected answer")


def _payload_trytes(signed: Signed) -> list[str]:
    """The signed transaction trytes (head first) a payload holds."""
    trytes = json.loads(signed.payload)
    if not isinstance(trytes, list) or not all(isinstance(t, str) and len(t) == 2673
                                               for t in trytes):
        raise WalletError(f"payment {signed.reference[:12]}...: its payload is not a legacy "
                          "bundle", retryable=False)
    return trytes


def _is_trytes(text: str, size: int) -> bool:
    return len(text) == size and not text.strip("9ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _current_index(trytes: str) -> int:
    """A transaction's index in its bundle, from its trytes (no hashing)."""
    iota = import_iota()
    from iota.trits import int_from_trits
    return int_from_trits(iota.TryteString(trytes[2331:2340]).as_trits())


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
