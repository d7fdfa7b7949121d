"""What a transaction's coins say of its fate when no node serves the transaction itself.

Pure functions of what the node answered (no I/O), for ``IotaWallet.status``.
A node that prunes, or a load-balanced endpoint answering from a replica that
lags, says "Could not find the referenced transaction" for one that ran; the
coins it names are the witnesses.

What a transfer of ours does to its gas coins (Move object model): it consumes
each at the version it names, gives the first one the version ``after`` =
max(named versions) + 1 (Lamport versioning), made by its digest, and deletes
the others at ``after`` (gas smashing). It does so whether it succeeds or fails
(a failure still smashes and charges the gas). Only one transaction can consume
an object's version.

Every verdict rests on positive evidence; what cannot be told is ``UNDECIDED``
(the payer waits and never pays again on a guess).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any


class Fate(Enum):
    RAN = "ran"  # our digest made the first coin's version ``after``
    SPENT_ELSEWHERE = "spent elsewhere"  # another transaction consumed a coin it names
    UNMOVED = "unmoved"  # every coin it names is still at its signed version
    UNDECIDED = "undecided"  # cannot be told from what the node serves
    ASK_PAST = "ask the past version"  # the first coin moved on: read its version ``after``
    ASK_FIRST_AGAIN = "ask the first coin again"  # a smashed-looking coin: re-read the first


@dataclass(frozen=True)
class Verdict:
    fate: Fate
    why: str = ""
    balance_nanos: int | None = None  # the first coin's balance at ``after`` (RAN), if shown


@dataclass(frozen=True)
class CoinNow:
    """One entry of ``iota_multiGetObjects`` (or of ``iota_tryGetPastObject``)."""

    kind: str  # "live" | "deleted" | "missing"
    version: int = 0
    previous: str | None = None  # the transaction that made this version, if shown
    balance_nanos: int | None = None  # if the content was shown


def coin_now(obj: Any) -> CoinNow:
    """Read one ``iota_multiGetObjects`` entry. "notExists" is ``missing``: the node may
    lag or serve another network; it proves nothing.

    Raises:
        KeyError, TypeError, ValueError, AttributeError: not the shape of an answer.
    """
    if isinstance(obj.get("data"), dict):
        return _live(obj["data"])
    error = obj["error"]
    if error["code"] == "deleted":
        return CoinNow("deleted", int(error["version"]))
    if error["code"] == "notExists":
        return CoinNow("missing")
    raise ValueError(f"error code {error['code']!r}")


def coin_then(answer: Any) -> CoinNow:
    """Read an ``iota_tryGetPastObject`` answer (the SDK's ``ObjectRead``): a version
    that is not served (pruned, or never made) is ``missing``.

    Raises:
        KeyError, TypeError, ValueError, AttributeError: not the shape of an answer.
    """
    status = answer["status"]
    if status == "VersionFound":
        return _live(answer["details"])
    if status == "ObjectDeleted":
        return CoinNow("deleted", int(answer["details"]["version"]))
    if status in ("VersionNotFound", "VersionTooHigh", "ObjectNotExists"):
        return CoinNow("missing")
    raise ValueError(f"status {status!r}")


def _live(data: dict[str, Any]) -> CoinNow:
    previous = data.get("previousTransaction")
    balance = None
    content = data.get("content")
    if isinstance(content, dict):
        balance = int(content["fields"]["balance"])
    return CoinNow("live", int(data["version"]), str(previous) if previous else None, balance)


def after_version(gas_coins: list[list[Any]]) -> int:
    """The version our transaction gives its first gas coin."""
    return max(int(c[1]) for c in gas_coins) + 1


def judge_now(digest: str, gas_coins: list[list[Any]], coins: list[CoinNow]) -> Verdict:
    """The verdict from the coins as the node shows them now (``coins`` in the order of
    ``gas_coins``: [object id, signed version, digest])."""
    first_id, signed = gas_coins[0][0], int(gas_coins[0][1])
    after = after_version(gas_coins)
    first = coins[0]
    if first.kind == "missing" or first.version < signed:
        return Verdict(Fate.UNDECIDED, f"the node does not know gas coin {first_id} at"
                                       f" version {signed} (it may lag)")
    if first.kind == "live" and first.version == signed:
        return _first_unmoved(gas_coins, coins)
    if first.kind == "live" and first.version == after:
        return _made_by(digest, first_id, after, signed, first)
    if first.version < after or (first.kind == "deleted" and first.version == after):
        # Ours would make version ``after`` of it, and never deletes it.
        return Verdict(Fate.SPENT_ELSEWHERE, f"gas coin {first_id} is at version"
                                             f" {first.version}, past {signed}: {first.kind},"
                                             " by another transaction")
    return Verdict(Fate.ASK_PAST)


def judge_past(digest: str, gas_coins: list[list[Any]], then: CoinNow) -> Verdict:
    """The verdict from the first gas coin's version ``after``, read after it moved on."""
    first_id, signed = gas_coins[0][0], int(gas_coins[0][1])
    after = after_version(gas_coins)
    if then.kind == "live" and then.version == after:
        return _made_by(digest, first_id, after, signed, then)
    if then.kind == "deleted" and then.version == after:
        return Verdict(Fate.SPENT_ELSEWHERE, f"gas coin {first_id} was deleted at version"
                                             f" {after} by another transaction")
    return Verdict(Fate.UNDECIDED, f"gas coin {first_id} moved past version {signed}, and the"
                                   f" node does not serve its version {after}")


def _made_by(digest: str, first_id: str, after: int, signed: int, coin: CoinNow) -> Verdict:
    if coin.previous is None:
        return Verdict(Fate.UNDECIDED, f"the node does not say which transaction made"
                                       f" version {after} of gas coin {first_id}")
    if coin.previous == digest:
        return Verdict(Fate.RAN, f"gas coin {first_id} was at version {after}, made by it",
                       coin.balance_nanos)
    return Verdict(Fate.SPENT_ELSEWHERE, f"gas coin {first_id} is at version {after}, past"
                                         f" {signed}, made by transaction {coin.previous}")


def _first_unmoved(gas_coins: list[list[Any]], coins: list[CoinNow]) -> Verdict:
    """The first coin is at its signed version (so, as read, it has not run).

    The node reads each object apart: ours may run between the reads, so another
    coin deleted at exactly ``after`` may be ours smashing it (read the first coin
    again). Any other move of another coin is another transaction's.
    """
    first_id = gas_coins[0][0]
    after = after_version(gas_coins)
    for (object_id, signed, _), coin in zip(gas_coins[1:], coins[1:], strict=True):
        if coin.kind == "deleted" and coin.version == after:
            return Verdict(Fate.ASK_FIRST_AGAIN)
        if coin.kind == "deleted" or (coin.kind == "live" and coin.version > int(signed)):
            return Verdict(Fate.SPENT_ELSEWHERE, f"gas coin {object_id} moved (version"
                                                 f" {coin.version}) while {first_id}, which"
                                                 " it would move too, did not")
    if all(c.kind == "live" and c.version == int(g[1]) for c, g in zip(coins, gas_coins,
                                                                       strict=True)):
        return Verdict(Fate.UNMOVED)
    return Verdict(Fate.UNDECIDED, "the node does not hold every coin it names at its"
                                   " signed version")


def judge_first_again(digest: str, gas_coins: list[list[Any]], coins: list[CoinNow],
                      first: CoinNow) -> Verdict:
    """After ``ASK_FIRST_AGAIN``: ``first`` is the first coin read after the others.
    Still at its signed version, the other coin was deleted by another transaction
    (ours moves the first coin in the same step)."""
    if first.kind == "live" and first.version == int(gas_coins[0][1]):
        return Verdict(Fate.SPENT_ELSEWHERE, f"a gas coin it names was deleted while"
                                             f" {gas_coins[0][0]}, which it would move in the"
                                             " same step, did not move")
    return judge_now(digest, gas_coins, [first, *coins[1:]])


def paid_or_failed(facts: dict[str, Any], balance_after_nanos: int | None
                   ) -> tuple[bool, int] | None:
    """Whether a transaction that ran paid its amount, from its first gas coin's balance
    after it; (paid, fee in nanos), or None when that cannot be told.

    ``facts``: the signed payload's ``gas_nanos`` (what its coins held), ``amount_nanos``,
    ``budget_nanos`` and ``rebate_nanos`` (the storage rebate of its coins, from the dry
    run). Spent = held - balance after. A failure spends at most the budget less the
    rebate; a success spends the amount plus a fee of at least minus the rebate. When
    the amount is larger than budget + rebate, the two never overlap.
    """
    if balance_after_nanos is None or "gas_nanos" not in facts:
        return None
    held, amount = int(facts["gas_nanos"]), int(facts["amount_nanos"])
    budget, rebate = int(facts["budget_nanos"]), int(facts["rebate_nanos"])
    spent = held - balance_after_nanos
    if spent > budget:
        return True, spent - amount
    if spent < amount - rebate:
        return False, spent
    return None
