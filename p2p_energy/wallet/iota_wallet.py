"""The Wallet protocol on today's IOTA network (Move-based: Ed25519, coin objects, JSON-RPC).

One payment is one transaction, signed once and committed to the ledger (its
bytes, signature and digest are the ``Signed`` payload) before anything is
sent. It names exact versions of the sender's coin objects, so it can execute
at most once: sending it again, after a crash or an answer that never came,
is harmless, and the node answers its effects again.

``status`` asks the node for the transaction by digest: executed with status
``success`` is confirmed, with ``failure`` it paid nothing but spent gas
(``failed``: owed again, the fee recorded). A digest the node does not serve
proves nothing (a node prunes; a load-balanced endpoint may answer from a
replica that lags): the coins it names decide (``iota_fate``). It ran if its
first gas coin's next version was made by it (paid or failed, told from that
coin's balance when the node does not serve the effects); it is dead if
another transaction consumed a coin it names, or if nothing it names moved and
it can no longer run (its last epoch is over, or that epoch's reference gas
price is above its own) as seen for ``dead_after_s``. Anything else is pending,
and sent again (``promote``); what cannot be told is said once in the log.

Units: the ledger's unit is one micro-IOTA here, ``NANOS_PER_UNIT`` nanos.
Fees (computation + storage - rebate) are in nanos.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..config import WalletConfig
from ..errors import InsufficientBalance, RpcError, WalletError
from . import iota_tx
from .base import CONFIRMED, DEAD, FAILED, MICRO_UNIT, PENDING, Attachment, Signed, Status
from .iota_fate import (
    CoinNow,
    Fate,
    Verdict,
    after_version,
    coin_now,
    coin_then,
    judge_first_again,
    judge_now,
    judge_past,
    paid_or_failed,
)
from .iota_keys import Keypair, address_bytes
from .iota_rpc import RpcClient
from .iota_units import IOTA_COIN, NANOS_PER_IOTA, NANOS_PER_UNIT, NOT_FOUND

log = logging.getLogger(__name__)

MIN_BUDGET_UNITS = 1_000  # the network's smallest budget, in gas units (x gas price)
TX_REJECTED = -32002  # JSON-RPC code of a transaction the node refused for its inputs
EXPIRES_AFTER_EPOCHS = 1  # a transaction may run in the epoch it was signed in and the next
_PAGE = 50
MAX_OBJECTS_PER_CALL = 50  # a fullnode's QUERY_MAX_RESULT_LIMIT for iota_multiGetObjects
# A transaction seen unmoved once it can no longer run is dead only when still seen so
# this long after: an epoch (or price) read from a replica ahead of the one that
# answered for the coins must not make a transaction that ran look dead.
DEAD_AFTER_S = 120.0
_OBJECT_OPTIONS = {"showPreviousTransaction": True, "showContent": True}


@dataclass(frozen=True)
class Coin:
    ref: iota_tx.ObjectRef
    balance: int  # nanos


def fee_of(effects: dict[str, Any]) -> int:
    """Gas a transaction cost, in nanos: computation + storage - rebate (may be negative)."""
    used = effects["gasUsed"]
    return int(used["computationCost"]) + int(used["storageCost"]) - int(used["storageRebate"])


class IotaWallet:
    """Pays ``receiver`` from the address of ``keypair`` through one fullnode.

    ``gas_margin`` multiplies the dry run's gas (computation + storage) into the
    budget; ``max_budget_nanos`` caps it (a payment whose gas would need more
    waits: gas prices change). Nothing is contacted before the first call.
    """

    backend = "iota"
    unit = MICRO_UNIT

    def __init__(self, *, node_url: str, receiver: str, keypair: Keypair, timeout_s: float,
                 gas_margin: float = 1.5, max_budget_nanos: int = 50_000_000,
                 dead_after_s: float = DEAD_AFTER_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.receiver = receiver.lower()
        self._receiver_bytes = address_bytes(self.receiver)
        self._keypair = keypair
        self.address = keypair.address
        self.gas_margin = gas_margin
        self.max_budget_nanos = max_budget_nanos
        self.rpc = RpcClient(node_url, timeout_s)
        self.dead_after_s = dead_after_s
        self._clock = clock
        self._refused: dict[str, str] = {}  # digest -> the node's refusal (status detail)
        self._undecided: dict[str, str] = {}  # digest -> why its fate is unknown, logged once
        self._closed_since: dict[str, float] = {}  # digest -> first seen unmoved and closed

    @classmethod
    def from_config(cls, w: WalletConfig, keypair: Keypair) -> IotaWallet:
        """The wallet ``[wallet]`` and ``[wallet.iota]`` describe, signing with ``keypair``."""
        return cls(node_url=w.node_url, receiver=w.receiver, keypair=keypair,
                   timeout_s=w.timeout_s, gas_margin=w.iota.gas_margin,
                   max_budget_nanos=w.iota.max_budget_nanos)

    # -- the Wallet protocol

    def prepare(self, value: int, input_index: int) -> Signed:
        """Sign a transfer of ``value`` micro-IOTA; no network write.

        Fetches the coins (``iotax_getCoins``) and the reference gas price,
        dry-runs the transaction for its gas and signs it with the budget set
        from that, merging as many coins as the amount and budget need.

        Raises:
            ValueError: ``value`` is not positive.
            InsufficientBalance: the coins hold less than value + gas budget
                (``available``: whole units payable now).
            WalletError: the node could not be asked, or the dry run failed.
        """
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"refusing a transfer of {value!r} units: must be positive")
        amount = value * NANOS_PER_UNIT
        coins, chosen, price = self._funds_for(amount)
        gas = self._budget(amount, chosen, price)
        if gas is None or sum(c.balance for c in chosen) < amount + gas[0]:
            raise self._short(coins, amount, price)
        budget, epoch, rebate = gas
        # Valid in this epoch and the next: if it has not run by then (say, the gas
        # price rose at an epoch change and the node keeps refusing it), it is dead.
        expires = epoch + EXPIRES_AFTER_EPOCHS
        tx_bytes = self._build(amount, chosen, price, budget, expires)
        digest = iota_tx.transaction_digest(tx_bytes)
        payload = json.dumps({
            "tx_bytes": base64.b64encode(tx_bytes).decode(),
            "signature": iota_tx.sign_transaction(self._keypair, tx_bytes),
            "gas_coins": [[c.ref.object_id, c.ref.version, c.ref.digest] for c in chosen],
            "amount_nanos": amount, "receiver": self.receiver, "budget_nanos": budget,
            "expires_after_epoch": expires,
            # What tells a success from a failure by the first coin's balance after it.
            "gas_nanos": sum(c.balance for c in chosen), "rebate_nanos": rebate})
        log.debug("signed %s: %d nanos to %s, %d gas coin(s), budget %d", digest, amount,
                  self.receiver, len(chosen), budget)
        return Signed(digest, payload, value, input_index, input_index, self.receiver)

    def attach(self, signed: Signed) -> Attachment:
        """The signed transaction itself: its digest names the one attachment there is."""
        return Attachment(signed.reference, signed.payload)

    def send(self, attachment: Attachment) -> None:
        """Submit the signed bytes (``iota_executeTransactionBlock``); harmless to repeat.

        Raises:
            WalletError: no usable answer (the transaction may or may not have run);
                kind ``refused`` when the node refused it for its inputs (nothing
                was sent: it counts as unpaid; whether it ran before, can still
                run or is dead, ``status`` tells).
        """
        data = json.loads(attachment.data)
        try:
            self.rpc.call("iota_executeTransactionBlock", data["tx_bytes"], [data["signature"]],
                          {"showEffects": True}, "WaitForLocalExecution")
        except RpcError as err:
            if err.code != TX_REJECTED:
                raise
            self._refused[attachment.id] = err.node_message
            raise WalletError(f"node refused transaction {attachment.id}: {err.node_message}",
                              kind="refused", node_message=err.node_message) from None
        self._refused.pop(attachment.id, None)

    def status(self, signed: Signed, known: Sequence[str]) -> Status:
        """Executed (confirmed or failed, with its fee), pending, or proven dead.

        See the module docstring and ``iota_fate``: a digest the node does not serve
        is judged by the coins it names; every verdict rests on evidence, and what
        cannot be told stays pending, said once in the log, never paid again.

        Raises:
            WalletError: the node could not be asked, or answered an unexpected shape.
        """
        digest = signed.reference
        found = self._executed(digest)
        if found is not None:
            return found
        data = json.loads(signed.payload)
        # The epoch first, the coins after: coins seen unmoved once it can no longer
        # run prove that it never will (on one node; see DEAD_AFTER_S for many).
        closed = self._closed(data)
        verdict = self._coins_verdict(digest, data["gas_coins"])
        if verdict.fate is not Fate.UNMOVED or not closed:
            self._closed_since.pop(digest, None)
        if verdict.fate is Fate.RAN:
            return self._ran(signed, data, verdict)
        if verdict.fate is Fate.SPENT_ELSEWHERE:
            return Status(DEAD, (), detail=f"unknown to the node, and {verdict.why}")
        if verdict.fate is Fate.UNMOVED and closed:
            return self._closed_and_unmoved(digest, closed)
        if verdict.fate is Fate.UNDECIDED:
            return self._undecided_status(digest, verdict.why)
        self._undecided.pop(digest, None)
        # Unknown to the node: no attachment it knows (so the payer sends it again).
        return Status(PENDING, (), detail=self._refused.get(digest, ""))

    def _ran(self, signed: Signed, data: dict[str, Any], verdict: Verdict) -> Status:
        """It ran: its effects if a node serves them by now, else paid or failed as its
        first coin's balance tells, else undecided."""
        found = self._executed(signed.reference)
        if found is not None:
            return found
        outcome = paid_or_failed(data, verdict.balance_nanos)
        if outcome is None:
            return self._undecided_status(signed.reference, f"{verdict.why}, but whether it"
                                          " paid or failed cannot be told from its coin")
        paid, fee = outcome
        how = f"{verdict.why}; effects not served, told by its coin's balance"
        log.warning("transaction %s is not served by the node, but it ran and %s (%s)",
                    signed.reference, "paid" if paid else "failed", how)
        if paid:
            return Status(CONFIRMED, (signed.reference,), fee_nanos=fee, detail=how)
        return Status(FAILED, (signed.reference,), fee_nanos=fee,
                      detail=f"executed with status failure ({how})")

    def _closed_and_unmoved(self, digest: str, closed: str) -> Status:
        """Dead once seen so for ``dead_after_s`` (pending until then)."""
        now = self._clock()
        since = self._closed_since.setdefault(digest, now)
        if now - since < self.dead_after_s:
            return Status(PENDING, (), detail=f"{closed}; dead if nothing it names has moved"
                                              f" {self.dead_after_s:g} s after that was seen")
        return Status(DEAD, (), detail=f"unknown to the node, nothing it names moved,"
                                       f" and {closed}")

    def _undecided_status(self, digest: str, why: str) -> Status:
        if self._undecided.get(digest) != why:
            log.warning("transaction %s: cannot tell whether it ran (%s); waiting, and never"
                        " paying it again on a guess", digest, why)
        self._undecided[digest] = why
        return Status(PENDING, (), detail=f"cannot tell whether it ran: {why}")

    def promote(self, signed: Signed, known: Sequence[str]) -> None:
        """Submit the same signed bytes again."""
        self.send(self.attach(signed))

    def describe(self) -> str:
        return (f"IOTA wallet: node {self.rpc.url}, address {self.address}, receiver "
                f"{self.receiver}, timeout {self.rpc.timeout_s:g} s")

    def close(self) -> None:
        """Nothing to release: every call uses its own connection."""

    # -- for ``check`` and the bench

    def coins(self) -> list[Coin]:
        """Every IOTA coin object of the address (all pages of ``iotax_getCoins``)."""
        coins: list[Coin] = []
        cursor = None
        while True:
            page = self.rpc.call("iotax_getCoins", self.address, IOTA_COIN, cursor, _PAGE)
            try:
                for c in page["data"]:
                    coins.append(_coin(c))
                more, cursor = bool(page["hasNextPage"]), page.get("nextCursor")
            except (KeyError, TypeError, ValueError) as err:
                raise self._garbage("iotax_getCoins", err) from None
            if not more or cursor is None:
                return coins

    def balance_nanos(self) -> int:
        answer = self.rpc.call("iotax_getBalance", self.address, IOTA_COIN)
        try:
            return int(answer["totalBalance"])
        except (KeyError, TypeError, ValueError) as err:
            raise self._garbage("iotax_getBalance", err) from None

    def reference_gas_price(self) -> int:
        answer = self.rpc.call("iotax_getReferenceGasPrice")
        try:
            return int(answer)
        except (TypeError, ValueError) as err:
            raise self._garbage("iotax_getReferenceGasPrice", err) from None

    def chain_identifier(self) -> str:
        return str(self.rpc.call("iota_getChainIdentifier"))

    def latest_checkpoint(self) -> int:
        answer = self.rpc.call("iota_getLatestCheckpointSequenceNumber")
        try:
            return int(answer)
        except (TypeError, ValueError) as err:
            raise self._garbage("iota_getLatestCheckpointSequenceNumber", err) from None

    def estimate_fee_nanos(self, value: int) -> int:
        """What a transfer of ``value`` units would cost now, by a dry run (nothing signed).

        Raises:
            InsufficientBalance: the coins cannot cover ``value`` and a minimal budget.
            WalletError: the node could not be asked, or the dry run failed.
        """
        amount = value * NANOS_PER_UNIT
        _, chosen, price = self._funds_for(amount)
        budget = min(sum(c.balance for c in chosen) - amount, self.max_budget_nanos)
        return fee_of(self._dry_run(self._build(amount, chosen, price, budget)))

    # -- internals

    def _funds_for(self, amount: int) -> tuple[list[Coin], list[Coin], int]:
        """(all coins, the coins to spend, reference gas price) for ``amount`` nanos.

        Raises:
            InsufficientBalance: not even ``amount`` and the smallest gas budget.
            WalletError: the node could not be asked.
        """
        coins = self.coins()
        price = self.reference_gas_price()
        chosen = _choose(coins, amount + self.max_budget_nanos)
        if sum(c.balance for c in chosen) < amount + MIN_BUDGET_UNITS * price:
            raise self._short(coins, amount, price)
        return coins, chosen, price

    def _build(self, amount: int, chosen: list[Coin], price: int, budget: int,
               expires_after_epoch: int | None = None) -> bytes:
        return iota_tx.transfer_bytes(
            sender=address_bytes(self.address), receiver=self._receiver_bytes,
            amount_nanos=amount, gas_coins=[c.ref for c in chosen], gas_price=price,
            gas_budget=budget, expires_after_epoch=expires_after_epoch)

    def _dry_run(self, tx_bytes: bytes) -> dict[str, Any]:
        answer = self.rpc.call("iota_dryRunTransactionBlock",
                               base64.b64encode(tx_bytes).decode())
        try:
            effects = answer["effects"]
            status = effects["status"]["status"]
            fee_of(effects)
            int(effects["executedEpoch"])
        except (KeyError, TypeError, ValueError) as err:
            raise self._garbage("iota_dryRunTransactionBlock", err) from None
        if status != "success":
            error = str(effects["status"].get("error", "no reason given"))
            raise WalletError(f"iota_dryRunTransactionBlock: the transfer would fail: {error}",
                              kind="dry run failed", node_message=error)
        return effects

    def _executed(self, digest: str) -> Status | None:
        try:
            answer = self.rpc.call("iota_getTransactionBlock", digest, {"showEffects": True})
        except RpcError as err:
            if NOT_FOUND in err.node_message:
                return None
            raise
        try:
            effects = answer["effects"]
            fee = fee_of(effects)
            if effects["status"]["status"] == "success":
                return Status(CONFIRMED, (digest,), fee_nanos=fee)
            error = str(effects["status"].get("error", "no reason given"))
        except (KeyError, TypeError, ValueError) as err:
            raise self._garbage("iota_getTransactionBlock", err) from None
        return Status(FAILED, (digest,), fee_nanos=fee,
                      detail=f"executed with status failure: {error}")

    def _coins_verdict(self, digest: str, gas_coins: list[list[Any]]) -> Verdict:
        """What the gas coins say of transaction ``digest`` (``iota_fate``)."""
        coins = self._objects([c[0] for c in gas_coins])
        verdict = judge_now(digest, gas_coins, coins)
        if verdict.fate is Fate.ASK_FIRST_AGAIN:
            [first] = self._objects([gas_coins[0][0]])
            verdict = judge_first_again(digest, gas_coins, coins, first)
        if verdict.fate is Fate.ASK_PAST:
            verdict = judge_past(digest, gas_coins,
                                 self._past(gas_coins[0][0], after_version(gas_coins)))
        return verdict

    def _objects(self, ids: list[str]) -> list[CoinNow]:
        """The objects as the node shows them now, at most MAX_OBJECTS_PER_CALL per call."""
        out: list[CoinNow] = []
        for start in range(0, len(ids), MAX_OBJECTS_PER_CALL):
            chunk = ids[start:start + MAX_OBJECTS_PER_CALL]
            answer = self.rpc.call("iota_multiGetObjects", chunk, _OBJECT_OPTIONS)
            if not isinstance(answer, list) or len(answer) != len(chunk):
                raise self._garbage("iota_multiGetObjects",
                                    ValueError("wrong number of objects"))
            try:
                out += [coin_now(obj) for obj in answer]
            except (KeyError, TypeError, ValueError, AttributeError) as err:
                raise self._garbage("iota_multiGetObjects", err) from None
        return out

    def _past(self, object_id: str, version: int) -> CoinNow:
        answer = self.rpc.call("iota_tryGetPastObject", object_id, version, _OBJECT_OPTIONS)
        try:
            return coin_then(answer)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise self._garbage("iota_tryGetPastObject", err) from None

    def _closed(self, data: dict[str, Any]) -> str:
        """A sentence saying why the transaction can no longer run from now on, or ''.

        Its last epoch is over; or this is its last epoch and the epoch's reference
        gas price (fixed for the epoch) is above the price it was signed with.
        """
        expires = data.get("expires_after_epoch")
        if expires is None:
            return ""
        epoch = self.current_epoch()
        if epoch < expires:
            return ""
        if epoch == expires:
            price = self.reference_gas_price()
            if self.current_epoch() == expires:  # the price read is this epoch's
                signed_price = iota_tx.gas_price_of(base64.b64decode(data["tx_bytes"]))
                if price <= signed_price:
                    return ""
                return (f"the reference gas price of its last epoch {expires} is {price},"
                        f" above its {signed_price}")
        return f"its last epoch {expires} is over"

    def current_epoch(self) -> int:
        """The epoch of the node's latest checkpoint."""
        sequence = self.latest_checkpoint()
        answer = self.rpc.call("iota_getCheckpoint", str(sequence))
        try:
            return int(answer["epoch"])
        except (KeyError, TypeError, ValueError) as err:
            raise self._garbage("iota_getCheckpoint", err) from None

    def _budget(self, amount: int, chosen: list[Coin], price: int
                ) -> tuple[int, int, int] | None:
        """(gas budget, current epoch, storage rebate) for this transfer: a dry run's
        computation + storage, times ``gas_margin``, the epoch it ran in and the rebate
        of the coins it changes (nanos). None if the dry run ran out of funds (the
        coins are short).

        Raises:
            WalletError: the node failed, the dry run failed for another reason, or
                the budget would pass ``max_budget_nanos``.
        """
        held = sum(c.balance for c in chosen)
        trial = min(held - amount, self.max_budget_nanos)
        try:
            effects = self._dry_run(self._build(amount, chosen, price, trial))
        except WalletError as err:
            if trial < self.max_budget_nanos and "Insufficient" in err.node_message:
                return None  # the gas did not fit beside the amount
            raise
        gas = effects["gasUsed"]
        budget = max(math.ceil((int(gas["computationCost"]) + int(gas["storageCost"]))
                               * self.gas_margin), MIN_BUDGET_UNITS * price)
        if budget > self.max_budget_nanos:
            raise WalletError(f"a transfer needs a gas budget of {budget} nanos, more than "
                              f"wallet.iota.max_budget_nanos ({self.max_budget_nanos}); "
                              "waiting for gas prices to fall", kind="gas too high")
        return budget, int(effects["executedEpoch"]), int(gas["storageRebate"])

    def _short(self, coins: list[Coin], amount: int, price: int) -> InsufficientBalance:
        """The error for funds that do not cover ``amount`` and its gas, saying how many
        whole units could be paid now (a dry run of a 1-nano transfer prices the gas)."""
        total = sum(c.balance for c in coins)
        chosen = _choose(coins, total)  # what one transaction can use: MAX_GAS_COINS coins
        usable = sum(c.balance for c in chosen)
        budget = None
        if usable > MIN_BUDGET_UNITS * price:
            try:
                gas = self._budget(1, chosen, price)
                budget = gas[0] if gas else None
            except WalletError:
                budget = None
        available = max(usable - budget, 0) // NANOS_PER_UNIT if budget else 0
        gas = f"{budget / NANOS_PER_IOTA:.9f} IOTA" if budget else "its"
        held = f"{total / NANOS_PER_IOTA:.9f} IOTA in {len(coins)} coin(s)"
        if len(chosen) < len(coins):
            held += (f", {usable / NANOS_PER_IOTA:.9f} IOTA of it in the {len(chosen)} largest"
                     " that one transaction can use (each payment merges them)")
        return InsufficientBalance(
            f"address {self.address} holds {held}; the payment needs"
            f" {amount / NANOS_PER_IOTA:.9f} IOTA plus {gas} gas", available=available)

    def _garbage(self, method: str, err: Exception) -> WalletError:
        return WalletError(f"{method}: node {self.rpc.url} answered an unexpected shape "
                           f"({type(err).__name__}: {err})", kind="garbage")


def _coin(c: dict[str, Any]) -> Coin:
    """A coin as ``iotax_getCoins`` shows it, checked so that a transaction can name it.

    Raises:
        KeyError, TypeError, ValueError: a field is missing or malformed.
    """
    ref = iota_tx.ObjectRef(c["coinObjectId"].lower(), int(c["version"]), c["digest"])
    address_bytes(ref.object_id)  # object ids have the form of addresses
    iota_tx.digest_bytes(ref.digest)
    balance = int(c["balance"])
    if balance < 0 or not 0 <= ref.version < 2**64:
        raise ValueError(f"coin {ref.object_id}: balance {balance}, version {ref.version}")
    return Coin(ref, balance)


def _choose(coins: list[Coin], target: int) -> list[Coin]:
    """The largest coins, as few as reach ``target`` nanos (all of them, up to the cap,
    if none do). The first pays the gas; the network merges the others into it."""
    chosen: list[Coin] = []
    for coin in sorted(coins, key=lambda c: (-c.balance, c.ref.object_id)):
        if sum(c.balance for c in chosen) >= target or len(chosen) == iota_tx.MAX_GAS_COINS:
            break
        chosen.append(coin)
    return chosen
