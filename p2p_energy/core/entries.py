"""The signed log's entries: exact bytes, one canonical form per kind; the price rule.

An entry is a JSON object in RFC 8785 (JCS) canonical form, made by
``encode_opening`` (entry 0 only), ``encode_round``, ``encode_payment`` or (a
producer's meter) ``encode_production`` and nowhere else, parsed back only by
``parse_entry``, which refuses any other spelling of the same data (so one
entry has one byte string, and one leaf hash). The ledger stores those bytes
once and never encodes them again.

Values are integers and strings only, never floats, units in the field names:

- JSON numbers for counts, times and energies: integers of at most 2**53 - 1
  in magnitude (I-JSON, RFC 7493 2.2), which no round's energy comes near
  (100 W for a day is 8.6e12 uW·s); larger ones are refused.
- Decimal strings for money, as IOTA's own JSON-RPC writes u64 balances: one
  round can owe more than 2**53 nano-units (100 W x 60 s at 10 IOTA/mW·s is
  6e16), and a JSON number that large is not exact in every reader. Unsigned
  ones are 0 ..= 2**64 - 1, written without leading zeros; the network fee may
  be negative (a storage rebate) and is -2**63 ..= 2**63 - 1.
- Times are UTC milliseconds since the Unix epoch (numbers), not RFC 3339
  text: one integer has one spelling, where RFC 3339 allows several for one
  instant (offsets, "t"/"T", fraction digits) that a canonical form would
  have to forbid one by one; durations are subtractions; the daemon already
  keeps epoch seconds.

Money is counted in the ledger's unit, named in each entry's ``unit`` ("IOTA":
one legacy IOTA; "µIOTA": one micro-IOTA, 1,000 nanos, today's network);
"nano_units" are 1e-9 of it, which the daemon calls nano-IOTA.

The price rule is ``core.pricing``'s (``price_round``), exactly: the daemon
prices each round from the same integers its entry holds. Then
``queued_units, carry_out = pricing.settle(carry_in, owed)``: divmod by 1e9, or
nothing queued while the carry is below zero (a ledger that paid ahead).

The carry of round k+1 starts where round k's ended: a payment that fails is
queued again at once, as a new payment for the same rounds, so it never
touches the carry (its failed entry says it did not pay; the new payment's
entry, once executed, says it did).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import rfc8785

from ..errors import EntryError
from .note import check_key_name
from .pricing import NANO, price_round, settle

__all__ = ["NANO", "price_round"]  # with the names below: the rule a verifier uses

SCHEMA_VERSION = 1
MAX_JSON_INT = 2**53 - 1  # I-JSON: the largest integer every JSON reader holds exactly
MAX_U64 = 2**64 - 1
MIN_I64, MAX_I64 = -(2**63), 2**63 - 1
MAX_ENTRY_BYTES = 65_536
EXECUTED, FAILED = "executed", "failed"

_DECIMAL = re.compile(r"0|-?[1-9][0-9]*")
_BACKEND = re.compile(r"[a-z0-9][a-z0-9._-]{0,31}")
_NETWORK_TEXT = re.compile(r"[0-9A-Za-z]{1,128}")  # hex (0x...), trytes, base58 digests


# -- field kinds: how a Python value is written as JSON, and read back --------------------


@dataclass(frozen=True)
class _Kind:
    """One kind of field: ``write`` makes the JSON value, ``read`` checks and undoes it."""

    write: Callable[[str, Any], Any]
    read: Callable[[str, Any], Any]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _integer(lo: int, hi: int) -> _Kind:
    """A JSON number: an integer in [lo, hi] (within +-(2**53 - 1))."""
    def check(name: str, value: Any) -> int:
        if not _is_int(value) or not lo <= value <= hi:
            raise EntryError(f"{name} must be an integer in [{lo}, {hi}], not {value!r}")
        return value
    return _Kind(check, check)


def _decimal(lo: int, hi: int) -> _Kind:
    """An integer written as a decimal string, without leading zeros or "+"."""
    def write(name: str, value: Any) -> str:
        if not _is_int(value) or not lo <= value <= hi:
            raise EntryError(f"{name} must be an integer in [{lo}, {hi}], not {value!r}")
        return str(value)

    def read(name: str, value: Any) -> int:
        if not isinstance(value, str) or not _DECIMAL.fullmatch(value) or len(value) > 20:
            raise EntryError(f"{name} must be a decimal string, not {value!r}")
        number = int(value)
        write(name, number)
        return number
    return _Kind(write, read)


def _text(pattern: re.Pattern[str], what: str) -> _Kind:
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise EntryError(f"{name} must be {what}, not {value!r}")
        return value
    return _Kind(check, check)


def _one_of(*choices: str) -> _Kind:
    def check(name: str, value: Any) -> str:
        if value not in choices:
            raise EntryError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
        return value
    return _Kind(check, check)


def _check_unit(name: str, value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 16 or not value.isprintable() \
            or " " in value:
        raise EntryError(f"{name} must be a unit name (1 to 16 printable characters)")
    return value


def _check_ranges(name: str, pairs: Any) -> tuple[tuple[int, int], ...]:
    """Strictly increasing, non-adjacent [first, last] round id pairs: one way to write a set."""
    if not isinstance(pairs, list | tuple):
        raise EntryError(f"{name} must be a list of [first, last] round id ranges")
    out, previous_last = [], -1  # ids start at 1
    for pair in pairs:
        if (not isinstance(pair, list | tuple) or len(pair) != 2 or not all(map(_is_int, pair))
                or not previous_last + 1 < pair[0] <= pair[1] <= MAX_JSON_INT):
            raise EntryError(f"{name}: {pair!r} is not a [first, last] range of round ids"
                             " after the one before (and not adjacent to it)")
        previous_last = pair[1]
        out.append((pair[0], pair[1]))
    return tuple(out)


def _write_ranges(name: str, value: Any) -> list[list[int]]:
    return [list(pair) for pair in _check_ranges(name, value)]


_ID = _integer(1, MAX_JSON_INT)
_TIME_MS = _integer(0, MAX_JSON_INT)
_TIME_US = _integer(0, MAX_JSON_INT)  # 2**53 µs: 285 years
_SIGNED_ENERGY_UWS = _integer(-MAX_JSON_INT, MAX_JSON_INT)
_U64 = _decimal(0, MAX_U64)
_I64 = _decimal(MIN_I64, MAX_I64)
_UNIT = _Kind(_check_unit, _check_unit)
_RANGES = _Kind(_write_ranges, _check_ranges)


# -- the two kinds of entry ------------------------------------------------------------


@dataclass(frozen=True)
class RoundEntry:
    """A closed round: what it takes to recompute its price and what it owes."""

    round_id: int
    start_utc_ms: int
    end_utc_ms: int
    unit: str
    consumer_energy_uws: int  # may be below zero (noise at no load): owes nothing then
    producer_energy_uws: int  # may be below zero too (noise at night): capped then
    producer_metered_us: int  # the time the producer's energy covers
    numerator_nano_units_per_s: int
    cap_nano_units_per_mws: int
    carry_in_nano_units: int  # owed and not yet queued before this round (< 0: paid ahead)
    owed_nano_units: int
    queued_units: int  # whole units this round made payable
    carry_out_nano_units: int


# Where a linked round's priced figure came from (``LinkedRoundEntry.priced_from``):
FROM_PRODUCER = "producer"  # the producer's signed figure (within the band, or not compared)
DISPUTE_PRODUCER = "dispute_producer"  # outside the band; the producer's figure stands
DISPUTE_OWN = "dispute_own_channel"  # outside the band; this meter's own figure prices it
OWN_AFTER_WAIT = "own_channel_after_wait"  # no producer figure within wait_s: its own
PRICED_FROM = (FROM_PRODUCER, DISPUTE_PRODUCER, DISPUTE_OWN, OWN_AFTER_WAIT)
OWN_FIGURE = (DISPUTE_OWN, OWN_AFTER_WAIT)  # priced from this meter's own channel


def band_agrees(a_uws: int, a_us: int, b_uws: int, b_us: int, band_ppm: int,
                band_uw: int) -> bool:
    """Whether two meters' figures for one round agree within the band, exactly.

    Each figure's average power (energy over metered time) is compared:
    ``|a - b| <= band_ppm x 1e-6 x max(|a|, |b|) + band_uw``, in rational
    arithmetic, so that a verifier decides every round as the consumer did.
    """
    a, b = Fraction(a_uws, a_us), Fraction(b_uws, b_us)  # µW·s / µs = W
    return abs(a - b) <= Fraction(band_ppm, 1_000_000) * max(abs(a), abs(b)) \
        + Fraction(band_uw, 1_000_000)


def comparable(a_us: int, b_us: int) -> bool:
    """Whether two meters' figures cover nearly the same time (within 10 %), so that their
    averages can be compared: a round cut short on one side (a start, a restart, a clock
    step) averages over another stretch of the sun than a whole one."""
    return a_us > 0 and b_us > 0 and 10 * min(a_us, b_us) >= 9 * max(a_us, b_us)


@dataclass(frozen=True)
class LinkedRoundEntry(RoundEntry):
    """A consumer's round priced by the producer's own meter (``[producer]``, round v2).

    ``producer_energy_uws`` and ``producer_metered_us`` are the figures the price
    came from, as in every round; ``priced_from`` says whose. The entry also
    holds both figures it chose between: the producer's production entry named
    by ``producer_origin``, ``producer_index`` and its RFC 6962 leaf hash (hex),
    with that entry's figures (``named_*``; no entry named: index -1, hash "",
    figures 0), and this meter's own channel (``own_*``; 0 µs when it is not
    compared: not wired, or not metered in the round), with the band they were
    compared by (``band_ppm`` of the larger average power plus ``band_uw``; only when
    they cover nearly the same time, ``comparable``). So whether a round was
    disputed can be decided again from the entry alone.
    """

    priced_from: str
    producer_origin: str
    producer_index: int
    producer_leaf_hash: str
    named_energy_uws: int
    named_metered_us: int
    own_energy_uws: int
    own_metered_us: int
    band_ppm: int
    band_uw: int

    def link_problems(self) -> list[str]:
        """The rules its figures keep among themselves (a verifier checks the producer's
        log for the rest)."""
        problems = []
        rid = self.round_id
        named = self.producer_index >= 0
        if named != (self.priced_from != OWN_AFTER_WAIT) or named != bool(
                self.producer_leaf_hash):
            problems.append(f"round {rid}: priced from {self.priced_from}, naming"
                            f" producer entry {self.producer_index}"
                            f" {self.producer_leaf_hash or '(no hash)'}")
        priced = (self.producer_energy_uws, self.producer_metered_us)
        theirs = (self.named_energy_uws, self.named_metered_us)
        own = (self.own_energy_uws, self.own_metered_us)
        if self.priced_from in OWN_FIGURE and priced != own:
            problems.append(f"round {rid}: priced from its own channel"
                            f" ({self.priced_from}) with other figures than its own")
        if self.priced_from in (FROM_PRODUCER, DISPUTE_PRODUCER) and priced != theirs:
            problems.append(f"round {rid}: priced from the producer ({self.priced_from})"
                            " with other figures than the entry it names")
        if not named and theirs != (0, 0):
            problems.append(f"round {rid}: names no producer entry, yet figures of one")
        if named and problems == []:
            compared = comparable(self.own_metered_us, self.named_metered_us)
            agree = not compared or band_agrees(*own, *theirs, self.band_ppm, self.band_uw)
            if agree != (self.priced_from == FROM_PRODUCER):
                problems.append(
                    f"round {rid}: marked {self.priced_from}, and its figures"
                    f" ({self.own_energy_uws} µW·s over {self.own_metered_us} µs here,"
                    f" {self.named_energy_uws} over {self.named_metered_us} µs the"
                    f" producer's) {'agree' if agree else 'disagree'} within its band"
                    f" ({self.band_ppm} ppm + {self.band_uw} µW)")
        return problems


CLOCK_STATES = ("synchronized", "unsynchronized", "unknown")


@dataclass(frozen=True)
class ProductionEntry:
    """A closed round of a producer's meter (``role = "producer"``): what its panel made.

    Rounds are aligned to the wall clock: round ``start_utc_ms // slot_ms`` covers
    the slot ``[k x slot_ms, (k + 1) x slot_ms)`` of UTC milliseconds; a round cut
    short (the meter started or stopped within it) covers part of it. ``clock``
    says whether the meter's clock was synchronised (NTP) when it closed: only
    then do its slots mean the same instants as another meter's.
    """

    round_id: int
    slot_ms: int  # the round length
    start_utc_ms: int
    end_utc_ms: int
    producer_energy_uws: int
    producer_metered_us: int
    clock: str  # one of CLOCK_STATES

    @property
    def slot(self) -> int:
        """k: the slot this round is in."""
        return self.start_utc_ms // self.slot_ms

    @property
    def prices_rounds(self) -> bool:
        """Whether a consumer's round may be priced from it: it metered something, and
        closed while the meter's clock was synchronised (only then is its slot the same
        minutes as another meter's)."""
        return self.producer_metered_us > 0 and self.clock == "synchronized"


@dataclass(frozen=True)
class OpeningEntry:
    """Entry 0: where the log begins, and what the ledger held before it.

    A ledger that recorded rounds before it kept a log (an upgrade) says here
    what those rounds owed in all, how much of it was paid and how much was
    queued or on its way, as its own totals said. A verifier cannot check these
    figures (they are the consumer's word), but every later entry is checked
    from them: the first round's carry is ``carry_nano_units``, and the bill's
    totals start here. A new ledger's opening is all zeros.
    """

    after_round_id: int  # rounds 1 .. this were recorded before the log began (0: none)
    unit: str
    owed_nano_units: int  # what those rounds owed, in all
    paid_units: int  # of it, paid (confirmed) before the log began
    pending_units: int  # queued or sent then: those payments end in the log
    carry_nano_units: int  # owed, not yet queued: owed - (paid + pending) x 1e9

    def problems(self) -> list[str]:
        """The one rule its figures keep."""
        expected = self.owed_nano_units - (self.paid_units + self.pending_units) * NANO
        if self.carry_nano_units != expected:
            return [f"opening: carry_nano_units is {self.carry_nano_units}, its other"
                    f" figures give {expected}"]
        return []


@dataclass(frozen=True)
class PaymentEntry:
    """A payment the network executed, or one that failed (its amount is owed again).

    ``failed`` covers every payment that ended without paying (failed on the
    network, never executed, abandoned): it only ever raises what is owed.
    """

    payment_id: int
    backend: str
    reference: str  # bundle hash (legacy) or transaction digest (today's network)
    recipient: str
    unit: str
    amount_units: int
    fee_nanos: int  # what the network charged, in its nanos (may be negative: rebates)
    settles_rounds: tuple[tuple[int, int], ...]  # inclusive round id ranges
    status: str

    def round_ids(self) -> Iterator[int]:
        """Every round id the payment settles, in order."""
        for first, last in self.settles_rounds:
            yield from range(first, last + 1)


_ROUND_FIELDS: dict[str, _Kind] = {
    "round_id": _ID, "start_utc_ms": _TIME_MS, "end_utc_ms": _TIME_MS, "unit": _UNIT,
    "consumer_energy_uws": _SIGNED_ENERGY_UWS, "producer_energy_uws": _SIGNED_ENERGY_UWS,
    "producer_metered_us": _TIME_US, "numerator_nano_units_per_s": _U64,
    "cap_nano_units_per_mws": _U64, "carry_in_nano_units": _I64, "owed_nano_units": _U64,
    "queued_units": _U64, "carry_out_nano_units": _I64,
}
_PAYMENT_FIELDS: dict[str, _Kind] = {
    "payment_id": _ID, "backend": _text(_BACKEND, "a backend name"),
    "reference": _text(_NETWORK_TEXT, "1 to 128 ASCII letters and digits"),
    "recipient": _text(_NETWORK_TEXT, "1 to 128 ASCII letters and digits"),
    "unit": _UNIT, "amount_units": _decimal(1, MAX_U64), "fee_nanos": _I64,
    "settles_rounds": _RANGES, "status": _one_of(EXECUTED, FAILED),
}
def _check_key_name(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise EntryError(f"{name} must be a log's key name")
    try:
        check_key_name(value)
    except ValueError as err:
        raise EntryError(f"{name}: {err}") from None
    return value


_LINKED_ROUND_FIELDS: dict[str, _Kind] = {
    **_ROUND_FIELDS, "priced_from": _one_of(*PRICED_FROM),
    "producer_origin": _Kind(_check_key_name, _check_key_name),
    "producer_index": _integer(-1, MAX_JSON_INT),
    "producer_leaf_hash": _text(re.compile(r"(?:[0-9a-f]{64})?"), "64 hex digits or empty"),
    "named_energy_uws": _SIGNED_ENERGY_UWS, "named_metered_us": _TIME_US,
    "own_energy_uws": _SIGNED_ENERGY_UWS, "own_metered_us": _TIME_US,
    "band_ppm": _integer(0, 1_000_000), "band_uw": _integer(0, MAX_JSON_INT),
}
LINKED_ROUND_VERSION = 2
_PRODUCTION_FIELDS: dict[str, _Kind] = {
    "round_id": _ID, "slot_ms": _integer(1, MAX_JSON_INT), "start_utc_ms": _TIME_MS,
    "end_utc_ms": _TIME_MS, "producer_energy_uws": _SIGNED_ENERGY_UWS,
    "producer_metered_us": _TIME_US, "clock": _one_of(*CLOCK_STATES),
}
_OPENING_FIELDS: dict[str, _Kind] = {
    "after_round_id": _integer(0, MAX_JSON_INT), "unit": _UNIT, "owed_nano_units": _U64,
    "paid_units": _U64, "pending_units": _U64, "carry_nano_units": _I64,
}
_SCHEMAS: dict[tuple[str, int], tuple[type, dict[str, _Kind]]] = {
    ("opening", SCHEMA_VERSION): (OpeningEntry, _OPENING_FIELDS),
    ("production", SCHEMA_VERSION): (ProductionEntry, _PRODUCTION_FIELDS),
    ("round", SCHEMA_VERSION): (RoundEntry, _ROUND_FIELDS),
    ("round", LINKED_ROUND_VERSION): (LinkedRoundEntry, _LINKED_ROUND_FIELDS),
    ("payment", SCHEMA_VERSION): (PaymentEntry, _PAYMENT_FIELDS),
}


def _canonical(obj: dict[str, Any]) -> bytes:
    """RFC 8785 canonical JSON of an entry's object, at the json module's C speed.

    For what an entry holds (ASCII keys; integers within +-(2**53 - 1);
    strings; lists of lists of integers) RFC 8785 is exactly what ``json``
    writes with sorted keys, no spaces and no ASCII escaping: the same short
    escapes, ``\\u00xx`` (lower case) for other control characters, everything
    else as UTF-8; integers in decimal; ASCII keys sort alike by code point and
    by UTF-16 unit. ``_encode`` checks it against the rfc8785 package for every
    entry it makes, the tests across the domain; verifying a year of entries
    is then twice as fast as re-encoding each with rfc8785.
    """
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                      allow_nan=False).encode("utf-8")


def _encode(kind: str, entry: Any, spec: dict[str, _Kind],
            version: int = SCHEMA_VERSION) -> bytes:
    """The one place entry bytes are made: RFC 8785 canonical JSON.

    Raises EntryError when a value is out of range, or (never seen) when
    ``_canonical`` and the rfc8785 package would write different bytes.
    """
    obj = {"kind": kind, "v": version}
    obj.update({name: k.write(name, getattr(entry, name)) for name, k in spec.items()})
    data = _canonical(obj)
    try:
        judged = rfc8785.dumps(obj)
    except rfc8785.CanonicalizationError as e:
        raise EntryError(f"{kind} entry cannot be written in RFC 8785 form: {e}") from None
    if data != judged:
        raise EntryError(f"{kind} entry: json and rfc8785 disagree on its canonical form")
    if len(data) > MAX_ENTRY_BYTES:
        raise EntryError(f"{kind} entry of {len(data)} bytes is over {MAX_ENTRY_BYTES}")
    return data


def encode_round(entry: RoundEntry) -> bytes:
    """The bytes of a round entry. Raises EntryError for a value out of its range."""
    _check_times(entry)
    if isinstance(entry, LinkedRoundEntry):
        return _encode("round", entry, _LINKED_ROUND_FIELDS, LINKED_ROUND_VERSION)
    return _encode("round", entry, _ROUND_FIELDS)


def _check_times(entry: RoundEntry) -> None:
    if entry.end_utc_ms < entry.start_utc_ms:
        raise EntryError(f"round {entry.round_id} ends before it starts")


def encode_production(entry: ProductionEntry) -> bytes:
    """The bytes of a producer's round entry. Raises EntryError for a value out of range,
    or a round that is not within one slot."""
    _check_slot(entry)
    return _encode("production", entry, _PRODUCTION_FIELDS)


def _check_slot(entry: ProductionEntry) -> None:
    last = max(entry.end_utc_ms - 1, entry.start_utc_ms)
    if entry.end_utc_ms < entry.start_utc_ms or last // entry.slot_ms != entry.slot:
        raise EntryError(f"round {entry.round_id} ({entry.start_utc_ms} .. {entry.end_utc_ms}"
                         f" ms) is not within one slot of {entry.slot_ms} ms")


def encode_opening(entry: OpeningEntry) -> bytes:
    """The bytes of the opening entry. Raises EntryError for a value out of its range."""
    return _encode("opening", entry, _OPENING_FIELDS)


def encode_payment(entry: PaymentEntry) -> bytes:
    """The bytes of a payment entry (``round_ids_to_ranges`` makes ``settles_rounds``).

    Raises EntryError for a value out of its range."""
    return _encode("payment", entry, _PAYMENT_FIELDS)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise EntryError("entry has a key twice")
    return obj


def _refuse(text: str) -> Any:
    raise EntryError(f"entry holds a non-integer number {text}")


def _load(data: bytes) -> dict[str, Any]:
    """The JSON object of an entry: UTF-8, no duplicate keys, no floats, no NaN."""
    if len(data) > MAX_ENTRY_BYTES:
        raise EntryError(f"entry of {len(data)} bytes is over {MAX_ENTRY_BYTES}")
    try:
        obj = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates,
                         parse_float=_refuse, parse_constant=_refuse)
    except EntryError:
        raise
    except (ValueError, RecursionError) as e:  # bad UTF-8 or JSON, a huge number, deep nesting
        raise EntryError(f"entry is not JSON text in UTF-8: {e}") from None
    if not isinstance(obj, dict):
        raise EntryError("entry is not a JSON object")
    return obj


def parse_entry(data: bytes) -> RoundEntry | PaymentEntry | OpeningEntry | ProductionEntry:
    """Read an entry, refusing anything but the canonical bytes of a known kind and version.

    Raises EntryError naming the first problem: not JSON, unknown kind or
    version, missing or extra fields, a value of the wrong type or range, or a
    spelling other than the one ``encode_*`` writes.
    """
    obj = _load(data)
    kind, version = obj.get("kind"), obj.get("v")
    known = isinstance(kind, str) and _is_int(version)
    schema = _SCHEMAS.get((kind, version)) if known else None
    if schema is None:
        raise EntryError(f"unknown entry kind {obj.get('kind')!r}, version {obj.get('v')!r}")
    cls, spec = schema
    names = set(obj) - {"kind", "v"}
    if names != set(spec):
        missing, extra = sorted(set(spec) - names), sorted(names - set(spec))
        raise EntryError(f"{obj['kind']} entry: missing {missing}, unexpected {extra}")
    entry = cls(**{name: k.read(name, obj[name]) for name, k in spec.items()})
    if cls is RoundEntry or cls is LinkedRoundEntry:
        _check_times(entry)
    if cls is ProductionEntry:
        _check_slot(entry)
    if _canonical(obj) != data:
        raise EntryError(f"{obj['kind']} entry is not in RFC 8785 canonical form")
    return entry


def parse_production(data: bytes) -> ProductionEntry | str:
    """The production entry ``data`` holds, or why it holds none (``parse_entry``)."""
    try:
        entry = parse_entry(data)
    except EntryError as err:
        return str(err)
    if not isinstance(entry, ProductionEntry):
        return f"a {type(entry).__name__}"
    return entry


# -- the price rule --------------------------------------------------------------------


@dataclass(frozen=True)
class Bill:
    """What a round owes by the rule, recomputed from its own figures."""

    capped: bool
    price_nano_units_per_mws: Fraction
    owed_nano_units: int
    queued_units: int
    carry_out_nano_units: int


def recompute(entry: RoundEntry) -> Bill:
    """Price a round entry again from its own figures, as a verifier does."""
    capped, price, owed = price_round(
        entry.consumer_energy_uws, entry.producer_energy_uws, entry.producer_metered_us,
        entry.numerator_nano_units_per_s, entry.cap_nano_units_per_mws)
    queued, carry_out = settle(entry.carry_in_nano_units, owed)
    return Bill(capped, price, owed, queued, carry_out)


def round_problems(entry: RoundEntry) -> list[str]:
    """Each figure of a round entry that the rule does not give, one line each."""
    bill = recompute(entry)
    problems = []
    for name in ("owed_nano_units", "queued_units", "carry_out_nano_units"):
        logged, expected = getattr(entry, name), getattr(bill, name)
        if logged != expected:
            problems.append(f"round {entry.round_id}: {name} is {logged}, the rule gives"
                            f" {expected}")
    return problems


def next_carry_in(previous: RoundEntry) -> int:
    """The carry the round after ``previous`` must start with (nano-units): its carry out.

    A failed payment is queued again at once for the same rounds (see the module
    docstring), so failures in between do not change it.
    """
    return previous.carry_out_nano_units


def round_ids_to_ranges(ids: Iterable[int]) -> tuple[tuple[int, int], ...]:
    """Round ids, in any order, as the ``settles_rounds`` ranges of a payment entry."""
    ranges: list[list[int]] = []
    for i in sorted(set(ids)):
        if ranges and ranges[-1][1] == i - 1:
            ranges[-1][1] = i
        else:
            ranges.append([i, i])
    return _check_ranges("settles_rounds", ranges)
