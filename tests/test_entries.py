"""core.entries: one canonical byte string per entry (judged by rfc8785), the price rule."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from fractions import Fraction

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from p2p_energy.core import entries
from p2p_energy.core.entries import NANO, PaymentEntry, RoundEntry
from p2p_energy.core.pricing import PriceRule, quote_round
from p2p_energy.errors import EntryError

ROUND = RoundEntry(
    round_id=17, start_utc_ms=1_767_225_600_000, end_utc_ms=1_767_225_660_000, unit="µIOTA",
    consumer_energy_uws=6_000_000, producer_energy_uws=3_000_000, producer_metered_us=60_000_000,
    numerator_nano_units_per_s=10 * NANO, cap_nano_units_per_mws=10 * NANO,
    carry_in_nano_units=999_999_999, owed_nano_units=1_200 * NANO, queued_units=1_200,
    carry_out_nano_units=999_999_999)
PAYMENT = PaymentEntry(
    payment_id=4, backend="iota", reference="5Ytq8mKqVQzDqkeKQqGxRmkPd3bkBfFZAXdDh4WkNBfy",
    recipient="0x" + "ab" * 32, unit="µIOTA", amount_units=200_000, fee_nanos=-1_976_000,
    settles_rounds=((1, 17),),
    status=entries.EXECUTED)

MAX_NUMBER = 2**53 - 1
RULE = PriceRule(10 * NANO, 10 * NANO)
units = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp",
                                                                   "Cf", "Co", "Cn", "Mn", "Mc",
                                                                   "Me")),
                min_size=1, max_size=16)
u64 = st.integers(0, 2**64 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
rounds = st.builds(
    RoundEntry, round_id=st.integers(1, MAX_NUMBER), start_utc_ms=st.integers(0, 2**41),
    end_utc_ms=st.integers(2**41, MAX_NUMBER), unit=units,
    consumer_energy_uws=st.integers(-MAX_NUMBER, MAX_NUMBER),
    producer_energy_uws=st.integers(-MAX_NUMBER, MAX_NUMBER),
    producer_metered_us=st.integers(0, MAX_NUMBER),
    numerator_nano_units_per_s=u64, cap_nano_units_per_mws=u64, carry_in_nano_units=i64,
    owed_nano_units=u64, queued_units=u64, carry_out_nano_units=i64)
payments = st.builds(
    PaymentEntry, payment_id=st.integers(1, MAX_NUMBER), backend=st.from_regex(
        r"[a-z0-9][a-z0-9._-]{0,31}", fullmatch=True),
    reference=st.from_regex(r"[0-9A-Za-z]{1,128}", fullmatch=True),
    recipient=st.from_regex(r"[0-9A-Za-z]{1,128}", fullmatch=True), unit=units,
    amount_units=st.integers(1, 2**64 - 1), fee_nanos=st.integers(-(2**63), 2**63 - 1),
    settles_rounds=st.sets(st.integers(1, 500)).map(entries.round_ids_to_ranges),
    status=st.sampled_from([entries.EXECUTED, entries.FAILED]))


def encode(entry: RoundEntry | PaymentEntry) -> bytes:
    return (entries.encode_round(entry) if isinstance(entry, RoundEntry)
            else entries.encode_payment(entry))


def as_json(entry: RoundEntry | PaymentEntry) -> dict:
    return json.loads(encode(entry))


def spelled(obj: object) -> bytes:
    """Some JSON text for ``obj``, not necessarily canonical (for refusals)."""
    return json.dumps(obj).encode()


# -- canonical bytes, judged by rfc8785 ------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.one_of(rounds, payments))
def test_every_entry_is_rfc8785_of_itself_and_reads_back(entry: RoundEntry | PaymentEntry
                                                         ) -> None:
    data = encode(entry)
    assert rfc8785.dumps(json.loads(data)) == data
    assert entries.parse_entry(data) == entry


@settings(max_examples=300, deadline=None)
@given(st.one_of(rounds, payments), st.sampled_from([
    lambda o: json.dumps(o).encode(),  # spaces after separators, keys in our order
    lambda o: json.dumps(o, sort_keys=True, separators=(",", ":")).encode(),  # \\u escapes
    lambda o: json.dumps(o, sort_keys=True, separators=(",", ":"),
                         ensure_ascii=False).encode() + b"\n",
    lambda o: json.dumps(dict(reversed(o.items())), separators=(",", ":"),
                         ensure_ascii=False).encode(),
    lambda o: b" " + rfc8785.dumps(o),
    lambda o: b"\xef\xbb\xbf" + rfc8785.dumps(o),  # a UTF-8 byte order mark
]))
def test_other_spellings_of_the_same_entry_are_refused(entry: RoundEntry | PaymentEntry,
                                                       spell: object) -> None:
    """Our parser accepts exactly the bytes rfc8785's encoder makes of the same object."""
    obj = as_json(entry)
    data = spell(obj)  # type: ignore[operator]
    if data == rfc8785.dumps(obj):
        assert entries.parse_entry(data) == entry
    else:
        with pytest.raises(EntryError):
            entries.parse_entry(data)


json_values = st.recursive(
    st.integers(-MAX_NUMBER, MAX_NUMBER) | st.text(st.characters(codec="utf-8")),
    lambda inner: st.lists(inner, max_size=4), max_leaves=8)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.text(st.characters(codec="ascii"), max_size=12), json_values,
                       max_size=8))
def test_the_fast_canonical_form_is_rfc8785_on_the_entries_domain(obj: dict) -> None:
    """ASCII keys, safe integers, any text (controls, escapes, non-BMP), lists of them."""
    assert entries._canonical(obj) == rfc8785.dumps(obj)


@pytest.mark.parametrize("unit", ['µIOTA', 'a"b', "back\\slash", "\u2028sep", "é", "\U0001f600",
                                  "\x7fdel", "ÿ"])
def test_tricky_unit_strings_are_written_as_rfc8785_writes_them(unit: str) -> None:
    entry = dataclasses.replace(ROUND, unit=unit)
    if not unit.isprintable():
        with pytest.raises(EntryError, match="unit"):
            entries.encode_round(entry)
        return
    data = entries.encode_round(entry)
    assert data == rfc8785.dumps(as_json(entry))
    assert entries.parse_entry(data).unit == unit
    escaped = json.dumps(json.loads(data), sort_keys=True, separators=(",", ":")).encode()
    if escaped != data:  # the same text with \\u escapes is not the entry
        with pytest.raises(EntryError, match="canonical"):
            entries.parse_entry(escaped)


def test_integer_bounds() -> None:
    """JSON numbers stop at 2**53 - 1 (I-JSON); money is decimal text up to 2**64 - 1."""
    top = dataclasses.replace(ROUND, round_id=MAX_NUMBER, producer_energy_uws=MAX_NUMBER,
                              consumer_energy_uws=-MAX_NUMBER, owed_nano_units=2**64 - 1)
    assert entries.parse_entry(entries.encode_round(top)) == top
    for field, value in (("round_id", MAX_NUMBER + 1), ("producer_energy_uws", 2**53),
                         ("consumer_energy_uws", -(2**53)), ("owed_nano_units", 2**64),
                         ("carry_in_nano_units", -(2**63) - 1), ("carry_out_nano_units", 2**63),
                         ("producer_energy_uws", -(2**53)), ("round_id", 0), ("round_id", True)):
        with pytest.raises(EntryError, match=field):
            entries.encode_round(dataclasses.replace(ROUND, **{field: value}))
    with pytest.raises(rfc8785.IntegerDomainError):  # rfc8785 itself draws the same line
        rfc8785.dumps(2**53)
    fee = dataclasses.replace(PAYMENT, fee_nanos=-(2**63))
    assert entries.parse_entry(entries.encode_payment(fee)).fee_nanos == -(2**63)


@pytest.mark.parametrize(("field", "raw"), [
    ("owed_nano_units", "007"), ("owed_nano_units", "-0"), ("owed_nano_units", "+1"),
    ("owed_nano_units", " 1"), ("owed_nano_units", "1.0"), ("owed_nano_units", "1e3"),
    ("owed_nano_units", "18446744073709551616"), ("owed_nano_units", 5),
    ("owed_nano_units", "١٢"), ("round_id", "17"), ("round_id", 17.0), ("round_id", True),
    ("round_id", 9007199254740992), ("unit", ""), ("unit", "two words"), ("unit", 1),
    ("start_utc_ms", None),
])
def test_values_of_the_wrong_form_are_refused(field: str, raw: object) -> None:
    obj = as_json(ROUND)
    obj[field] = raw
    # Spell it as canonically as we can, so the value, not the spelling, is refused.
    data = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    with pytest.raises(EntryError):
        entries.parse_entry(data)


@pytest.mark.parametrize("data", [
    b"", b"[]", b"null", b'"round"', b"{}", b'{"kind":"round"}', b'{"kind":"round","v":2}',
    b'{"kind":"round","v":true}', b'{"kind":["round"],"v":1}', b'{"kind":"bill","v":1}',
    b"\xff", b"{" * 40_000, b'{"v":1,"v":1}', b"{" + b" " * 70_000 + b"}",
    b'{"kind":"round","v":NaN}', b'{"kind":"round","v":1.0}', b'{"kind":"round","v":1e0}',
    b'{"kind":"round","v":' + b"9" * 5000 + b"}",
])
def test_what_is_not_an_entry_is_refused(data: bytes) -> None:
    with pytest.raises(EntryError):
        entries.parse_entry(data)


def test_missing_extra_and_duplicate_fields_are_refused() -> None:
    obj = as_json(ROUND)
    del obj["carry_in_nano_units"]
    with pytest.raises(EntryError, match=r"missing \['carry_in_nano_units'\]"):
        entries.parse_entry(rfc8785.dumps(obj))
    obj = {**as_json(ROUND), "note": "x"}
    with pytest.raises(EntryError, match=r"unexpected \['note'\]"):
        entries.parse_entry(rfc8785.dumps(obj))
    data = entries.encode_round(ROUND)
    with pytest.raises(EntryError, match="twice"):
        entries.parse_entry(data[:-1] + b',"v":1}')


@settings(max_examples=500, deadline=None)
@given(st.one_of(rounds, payments), st.data())
def test_a_flipped_bit_never_reads_as_the_same_entry(entry: RoundEntry | PaymentEntry,
                                                     data: st.DataObject) -> None:
    raw = bytearray(encode(entry))
    bit = data.draw(st.integers(0, len(raw) * 8 - 1))
    raw[bit // 8] ^= 1 << (bit % 8)
    with contextlib.suppress(EntryError):
        assert entries.parse_entry(bytes(raw)) != entry


def test_settled_rounds_are_ranges_written_one_way() -> None:
    assert entries.round_ids_to_ranges([9, 1, 2, 3, 7, 8, 3]) == ((1, 3), (7, 9))
    assert list(dataclasses.replace(PAYMENT, settles_rounds=((1, 3), (7, 9))).round_ids()) \
        == [1, 2, 3, 7, 8, 9]
    for ranges in ([[1, 3], [4, 9]], [[7, 9], [1, 3]], [[1, 3], [2, 9]], [[0, 3]], [[3, 1]],
                   [[1]], [[1, 2, 3]], [1, 2], "1-3"):
        obj = {**as_json(PAYMENT), "settles_rounds": ranges}
        with pytest.raises(EntryError, match="settles_rounds"):
            entries.parse_entry(rfc8785.dumps(obj))


def test_payment_text_fields() -> None:
    for field, value in (("reference", "0x12 34"), ("reference", ""), ("recipient", "ab\n"),
                         ("recipient", "x" * 129), ("backend", "IOTA"), ("status", "pending")):
        with pytest.raises(EntryError, match=field):
            entries.encode_payment(dataclasses.replace(PAYMENT, **{field: value}))


def test_schema_tables_follow_the_dataclasses() -> None:
    for cls, spec in entries._SCHEMAS.values():
        assert [f.name for f in dataclasses.fields(cls)] == list(spec)


def test_entry_sizes() -> None:
    """A round entry is a few hundred bytes: ~190 MB for a year of 60 s rounds."""
    assert 300 < len(entries.encode_round(ROUND)) < 450
    assert len(entries.encode_payment(PAYMENT)) < 400


# -- the price rule --------------------------------------------------------------------


def test_recompute_uncapped_round() -> None:
    # 3,000 mW·s over 60 s: 50 mW average; 10 IOTA/s / 50 mW = 0.2 IOTA per mW·s;
    # 6,000 mW·s x 0.2 = 1,200 units; with a carry of 0.999999999 unit: 1,200 queued.
    bill = entries.recompute(ROUND)
    assert bill == entries.Bill(False, Fraction(2 * NANO, 10), 1_200 * NANO, 1_200, 999_999_999)
    assert entries.round_problems(ROUND) == []
    assert quote_round(6000.0, 3000.0, 60.0, RULE).owed_nano_units == bill.owed_nano_units


def test_recompute_capped_rounds() -> None:
    night = dataclasses.replace(ROUND, producer_energy_uws=0)
    assert entries.recompute(night).capped and entries.recompute(night).owed_nano_units == \
        6_000 * 10 * NANO
    no_time = dataclasses.replace(ROUND, producer_metered_us=0)
    assert entries.recompute(no_time).capped
    # Exactly at the cap (N x T = C x E) is capped, as the daemon's ">=".
    edge = dataclasses.replace(ROUND, producer_energy_uws=60_000, numerator_nano_units_per_s=10,
                               cap_nano_units_per_mws=10)
    assert entries.recompute(edge).capped
    assert not entries.recompute(dataclasses.replace(edge, producer_energy_uws=60_001)).capped
    assert quote_round(6000.0, 60.0, 60.0, RULE).capped  # 1 mW: 10 / 1 = the cap
    assert quote_round(6000.0, 60.001, 60.0, RULE).capped is False


def test_negative_consumer_energy_owes_nothing() -> None:
    bill = entries.recompute(dataclasses.replace(ROUND, consumer_energy_uws=-5))
    assert bill.owed_nano_units == 0 and bill.queued_units == 0


def test_owed_rounds_half_to_even_like_the_daemon() -> None:
    base = dataclasses.replace(ROUND, producer_energy_uws=0, cap_nano_units_per_mws=1,
                               carry_in_nano_units=0)
    # E_c x 1 nano-unit per mW·s / 1000: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, 0.501 -> 1.
    for energy_uws, owed in ((500, 0), (1500, 2), (2500, 2), (501, 1), (499, 0)):
        bill = entries.recompute(dataclasses.replace(base, consumer_energy_uws=energy_uws))
        assert bill.owed_nano_units == owed == round(energy_uws / 1000), energy_uws


def test_carry_goes_round_in_nano_units() -> None:
    entry = dataclasses.replace(ROUND, carry_in_nano_units=3 * NANO + 5)  # a payment failed
    bill = entries.recompute(entry)
    assert (bill.queued_units, bill.carry_out_nano_units) == (1_203, 5)


def test_a_changed_owed_amount_is_named() -> None:
    cheated = dataclasses.replace(ROUND, owed_nano_units=ROUND.owed_nano_units - 1)
    problems = entries.round_problems(cheated)
    assert problems == [f"round 17: owed_nano_units is {1_200 * NANO - 1}, the rule gives"
                        f" {1_200 * NANO}"]


def test_next_carry_in_is_the_carry_out() -> None:
    """A failed payment is queued again as a new payment: the carry does not move."""
    assert entries.next_carry_in(ROUND) == 999_999_999


def test_a_carry_below_zero_queues_nothing_until_caught_up() -> None:
    ahead = dataclasses.replace(ROUND, carry_in_nano_units=-1_500 * NANO)
    bill = entries.recompute(ahead)
    assert (bill.queued_units, bill.carry_out_nano_units) == (0, -300 * NANO)


def test_the_daemon_prices_the_integers_it_logs() -> None:
    """A round whose float price was off by one nano-unit before: now the rule's figure."""
    ec_uws, ep_uws, tp_us = 4_957_012_259, 1_006_910, 58_589_000
    q = quote_round(ec_uws / 1000, ep_uws / 1000, tp_us / 1_000_000, RULE)
    assert (q.consumer_energy_uws, q.producer_energy_uws, q.producer_metered_us) == (
        ec_uws, ep_uws, tp_us)
    _, _, rule = entries.price_round(ec_uws, ep_uws, tp_us, 10 * NANO, 10 * NANO)
    assert q.owed_nano_units == rule == 2_884_333_170_219_295


def test_the_opening_entry_round_trips_and_is_judged_by_rfc8785() -> None:
    opening = entries.OpeningEntry(after_round_id=41, unit="µIOTA", owed_nano_units=2**64 - 1,
                                   paid_units=17, pending_units=3, carry_nano_units=-(2**63))
    data = entries.encode_opening(opening)
    assert entries.parse_entry(data) == opening
    assert data == rfc8785.dumps(json.loads(data))
    assert json.loads(data)["kind"] == "opening" and json.loads(data)["owed_nano_units"] == \
        str(2**64 - 1)
    with pytest.raises(EntryError, match="after_round_id"):
        entries.encode_opening(dataclasses.replace(opening, after_round_id=-1))
