"""The pure parts of ``verify``: audit rules the end-to-end tests do not reach, the state
file, the statement's numbers."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from p2p_energy.core import entries
from p2p_energy.core.entries import NANO
from p2p_energy.core.tlog import Frontier, leaf_hash
from p2p_energy.errors import VerifyError
from p2p_energy.verify import state
from p2p_energy.verify.audit import MAX_PROBLEMS_KEPT, Audit, Chain, Problems, Totals
from p2p_energy.verify.report import units, watt_hours

from support.log_server import SignedLog


def audited(log: SignedLog, chain: Chain | None = None) -> Audit:
    audit = Audit(chain or Chain(), Problems())
    for i, data in enumerate(log.entries):
        audit.entry(i, data)
    return audit


def test_a_clean_log_has_no_problem_and_its_totals() -> None:
    log = SignedLog()
    log.add_rounds(5)
    log.add_payment("9" * 44, "0x" + "e1" * 32, 7)
    audit = audited(log)
    rounds = [entries.parse_entry(e) for e in log.entries[:5]]
    assert audit.problems.lines == []
    assert audit.run == Totals(entries=6, rounds=5, payments=1, executed_payments=1,
                               consumer_energy_uws=sum(r.consumer_energy_uws for r in rounds),
                               owed_nano_units=sum(r.owed_nano_units for r in rounds),
                               paid_logged_units=7)
    assert audit.chain.last_round_id == 5
    assert audit.chain.carry_out_nano_units == rounds[-1].carry_out_nano_units


def test_round_ids_must_increase_and_the_unit_stay_one() -> None:
    log = SignedLog()
    log.add_rounds(3)
    again = replace(log.next_round(), round_id=2)
    log.add_round(again)
    log.append(entries.encode_round(replace(log.next_round(), round_id=10, unit="IOTA")))
    assert audited(log).problems.lines == [
        "entry 3: round 2 comes after round 3: round ids must increase",
        "entry 4: in IOTA, where the entries before it are in µIOTA",
    ]


def test_the_chain_carries_over_from_a_run_before() -> None:
    log = SignedLog()
    log.add_rounds(2)
    first = entries.parse_entry(log.entries[0])
    chain = Chain(last_round_id=7, carry_out_nano_units=first.carry_in_nano_units + 1,
                  unit="µIOTA")
    assert audited(log, chain).problems.lines == [
        "entry 0: round 1 comes after round 7: round ids must increase",
        "entry 0: round 1: carry_in_nano_units is 0, the round before it ended with"
        " carry_out_nano_units 1",
        "entry 1: round 2 comes after round 7: round ids must increase",
    ]


def test_a_payment_before_the_first_round_settles_rounds_from_before_the_log() -> None:
    """A ledger that began its log with a payment in flight: it ends before any round."""
    log = SignedLog()
    log.add_payment("9" * 44, "0x" + "e1" * 32, 3, settles=((90, 94),))
    log.add_rounds(2)
    log.add_payment("8" * 44, "0x" + "e1" * 32, 1, settles=((1, 3),))
    assert audited(log).problems.lines == [
        "entry 3: payment 2 settles round 3, which the log has not recorded before it (last"
        " round 2)"]


def test_bytes_that_are_no_entry_are_a_problem_not_an_error() -> None:
    audit = Audit(Chain(), Problems())
    audit.entry(4, b'{"kind":"round"}')
    audit.entry(5, b"\xff")
    assert [line.split(":")[0] for line in audit.problems.lines] == ["entry 4", "entry 5"]
    assert audit.run.entries == 2


def test_problems_beyond_a_thousand_are_counted() -> None:
    problems = Problems()
    for i in range(MAX_PROBLEMS_KEPT + 5):
        problems.add(f"entry {i}", "bad")
    assert problems.count == MAX_PROBLEMS_KEPT + 5 and len(problems.lines) == MAX_PROBLEMS_KEPT


@pytest.mark.parametrize("nano, text", [(0, "0"), (1, "0.000000001"), (1_500_000_000, "1.5"),
                                        (-2_000_000_001, "-2.000000001"),
                                        (10**27, "1000000000000000000")])
def test_money_is_printed_exactly(nano: int, text: str) -> None:
    assert units(nano) == text


def test_energy_is_printed_in_watt_hours() -> None:
    assert watt_hours(3_600_000_000) == "1.000"
    assert watt_hours(1_800_000) == "0.000" and watt_hours(1_800_001) == "0.001"
    assert watt_hours(-5_400_000) == "-0.002"  # -1.5 mWh, half to even


# -- the state ---------------------------------------------------------------------------

def _state(size: int = 5) -> state.State:
    frontier = Frontier()
    for i in range(size):
        frontier.append(leaf_hash(b"%d" % i))
    return state.State("o.example/log", b"o.example/log\n5\nAAAA\n\n", frontier,
                       Chain(9, -3, "µIOTA", {2**127 + 5: 4, 7: 1}),
                       Totals(entries=5, rounds=4, payments=1, owed_nano_units=10**20))


def test_the_state_is_saved_atomically_and_read_back(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "b"
    saved = _state()
    state.save(folder, saved)
    assert sorted(p.name for p in folder.iterdir()) == ["state.json"]  # no .tmp left
    assert (folder / "state.json").stat().st_mode & 0o777 == 0o600
    loaded = state.load(folder)
    assert loaded is not None
    assert (loaded.origin, loaded.checkpoint_note, loaded.chain, loaded.totals) == \
           (saved.origin, saved.checkpoint_note, saved.chain, saved.totals)
    assert (loaded.size, loaded.root) == (5, saved.root)
    assert state.load(tmp_path / "none") is None


@pytest.mark.parametrize("spoil", [
    lambda o: o.update(format="p2p-energy verify state 2"),
    lambda o: o.update(size=7),  # a frontier of 5 has two hashes, one of 7 three
    lambda o: o.update(references="AAAA"),
    lambda o: o["totals"].update(rounds="4"),
    lambda o: o.pop("chain"),
])
def test_a_spoilt_state_is_refused_in_one_line(tmp_path: Path, spoil) -> None:
    state.save(tmp_path, _state())
    obj = json.loads((tmp_path / "state.json").read_text())
    spoil(obj)
    (tmp_path / "state.json").write_text(json.dumps(obj))
    with pytest.raises(VerifyError, match=r"state.json: not a verify state \(.*\); move it away"
                                          " to start afresh") as err:
        state.load(tmp_path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("origin, name", [
    ("consumer.example/p2p-energy", "consumer.example%2Fp2p-energy"),
    ("..", "%2E."), (".hidden", "%2Ehidden"), ("a b%", "a%20b%25"), ("µ", "%C2%B5"),
])
def test_an_origin_makes_one_safe_folder_name(origin: str, name: str) -> None:
    assert state.origin_folder_name(origin) == name


def test_a_long_origin_is_cut_and_keeps_apart() -> None:
    a, b = state.origin_folder_name("x" * 300 + "a"), state.origin_folder_name("x" * 300 + "b")
    assert len(a) == len(b) == state.MAX_NAME and a != b


def test_the_default_folder_follows_xdg(tmp_path: Path) -> None:
    assert state.default_root({"XDG_STATE_HOME": str(tmp_path)}) == \
        tmp_path / "p2p-energy" / "verify"
    assert state.default_root({"XDG_STATE_HOME": "relative"}) == \
        Path.home() / ".local" / "state" / "p2p-energy" / "verify"


def test_the_opening_starts_the_chain_and_opens_only_once() -> None:
    opening = entries.OpeningEntry(after_round_id=0, unit="µIOTA", owed_nano_units=5 * NANO + 7,
                                   paid_units=3, pending_units=2, carry_nano_units=7)
    log = SignedLog()
    log.append(entries.encode_opening(opening))
    log.add_round(log.next_round())  # carry_in 0, where the opening says 7
    log.append(entries.encode_opening(opening))
    audit = audited(log)
    assert audit.problems.lines == [
        "entry 1: round 1: carry_in_nano_units is 0, the round before it ended with"
        " carry_out_nano_units 7",
        "entry 2: an opening entry: a log opens once, at entry 0"]
    assert (audit.run.opening_owed_nano_units, audit.run.opening_paid_units) == (5 * NANO + 7, 3)


def test_an_opening_whose_figures_disagree_is_named() -> None:
    wrong = entries.OpeningEntry(4, "µIOTA", 10 * NANO, 3, 2, 6 * NANO)
    log = SignedLog()
    log.append(entries.encode_opening(wrong))
    log.add_payment("9" * 44, "0x" + "e1" * 32, 2, settles=((3, 4),))  # before the log: fine
    log.add_payment("8" * 44, "0x" + "e1" * 32, 1, settles=((5, 5),))  # not recorded yet
    assert audited(log).problems.lines == [
        f"entry 0: opening: carry_nano_units is {6 * NANO}, its other figures give {5 * NANO}",
        "entry 2: payment 2 settles round 5, which the log has not recorded before it (last"
        " round 4)"]


def _production(round_id: int, start_ms: int, end_ms: int, metered_us: int,
                clock: str = "synchronized") -> bytes:
    return entries.encode_production(entries.ProductionEntry(
        round_id, 60_000, start_ms, end_ms, 1_000_000, metered_us, clock))


def test_a_producers_rounds_do_not_overlap_meter_more_than_they_span_or_mix_with_a_consumers():
    log = SignedLog()
    log.append(entries.encode_opening(entries.OpeningEntry(0, "µIOTA", 0, 0, 0, 0)))
    t = 1_796_515_200_000
    log.append(_production(1, t, t + 60_000, 60_000_000))
    log.append(_production(2, t + 60_000, t + 90_000, 31_000_000))  # 1 s more than it spans
    log.append(_production(3, t + 80_000, t + 120_000, 40_000_000))  # overlaps round 2
    log.append(_production(4, t + 100_000, t + 120_000, 20_000_000, "unsynchronized"))
    log.add_round(log.next_round(round_id=5, carry_in_nano_units=0))
    assert audited(log).problems.lines == [
        "entry 2: round 2: 31000000 µs metered in a round of 30000000 µs",
        f"entry 3: round 3 starts at {t + 80_000} ms, before the round before it ended"
        f" ({t + 90_000} ms)",
        "entry 5: a consumer's round in a producer's log"]
