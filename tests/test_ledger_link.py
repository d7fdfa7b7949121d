"""A consumer's rounds wait for the producer's signed figure, then are priced in order.

Two real ledgers: the producer's (production entries under its own key, as its
daemon writes them) and the consumer's (rounds recorded waiting, priced by the
``Pricer`` from the producer's entries accepted through ``core.link.Follower``).
What the consumer's log then holds is judged by the rule (``round_problems``), the
carry chain, and the producer's own log (leaf hashes, figures).
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
from pathlib import Path

import pytest

from p2p_energy.config import build
from p2p_energy.core import entries, link, note, tlog
from p2p_energy.core.metering import RoundTotals
from p2p_energy.core.pricing import quote_round
from p2p_energy.errors import LedgerError
from p2p_energy.runtime.producer_link import Pricer, price_left_waiting
from p2p_energy.store.ledger import Ledger
from p2p_energy.store.signed_log import LogView, LogWriter, RoundLink

T0 = 1_796_515_200.0  # 2026-12-05 00:00 UTC, a slot boundary
PRODUCER = note.signer_from_seed("anna.lan/p2p-energy/0001", bytes(range(32)))
KEY = PRODUCER.verifier.key()  # the producer's verifier key, as [producer] names it
CONSUMER = note.signer_from_seed("bob.lan/p2p-energy/0002", bytes(range(1, 33)))


def consumer_config(**producer: object):
    return build({"round": {"length_s": 60}, "producer": {
        "verifier_key": PRODUCER.verifier.key(), "topic": "p2p-energy/anna/log",
        "wait_s": 120.0} | producer})


def closed(i: int, consumer_mw: float = 60.0, panel_mw: float = 400.0) -> RoundTotals:
    start = T0 + 60 * i
    return RoundTotals(started_at=start, duration_s=60, metered_s=60,
                       consumer_mws=consumer_mw * 60, producer_mws=panel_mw * 60, samples=60,
                       expected_samples=60, ended_at=start + 60, consumer_metered_s=60,
                       producer_metered_s=60)


def producer_log(path: Path, powers: list[float], *, skip: set[int] = frozenset()
                 ) -> tuple[list[bytes], bytes]:
    """The producer's ledger with one round per slot (none in the slots of ``skip``)."""
    led = Ledger(path, log=LogWriter(PRODUCER))
    for i, mw in enumerate(powers):
        if i not in skip:
            led.record_production(closed(i, 0.0, mw), 60.0, "synchronized")
    led.close()
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    view = LogView(db)
    data = list(view.iter_entries(view.size()))
    note_bytes = view.checkpoint() or b""
    db.close()
    return data, note_bytes


def consumer_ledger(path: Path) -> Ledger:
    first = Ledger(path)
    first.record_unit("iota")
    first.close()
    return Ledger(path, log=LogWriter(CONSUMER), clock=lambda: T0 + 3600)


def accept(led: Ledger, data: list[bytes], checkpoint: bytes) -> None:
    """What the link's thread does with the messages of one batch."""
    state = led.follow_producer(PRODUCER.verifier.key())
    follower = link.Follower(PRODUCER.verifier, state.frontier, state.checkpoint)
    accepted = []
    for i, d in enumerate(data):
        accepted += follower.offer_entry(i, d).accepted
    accepted += follower.offer_checkpoint(checkpoint).accepted
    led.accept_producer_entries(KEY, accepted, follower.frontier,
                                follower.checkpoint, state.since_ms)


def consumer_log(path: Path) -> list[entries.RoundEntry | entries.PaymentEntry]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    view = LogView(db)
    parsed = [entries.parse_entry(d) for d in view.iter_entries(view.size())]
    db.close()
    return parsed[1:]  # after the opening


def pricer(cfg, now: float) -> tuple[Pricer, list]:
    priced: list = []
    return Pricer(cfg, KEY, lambda *a: priced.append(a), wall=lambda: now), priced


def test_waiting_rounds_owe_nothing_until_priced_in_order_from_the_producers_entries(tmp_path):
    data, checkpoint = producer_log(tmp_path / "p.db", [400.0, 200.0, 800.0])
    led = consumer_ledger(tmp_path / "c.db")
    led.follow_producer(PRODUCER.verifier.key())
    led.db.execute("UPDATE ledger_meta SET value = ? WHERE key = 'producer_since_ms'",
                   (str(int(T0 * 1000)),))  # followed since before these rounds
    for i in range(3):
        rec = led.record_waiting_round(closed(i, panel_mw=[398.0, 201.0, 300.0][i]))
        assert rec.queued_payment_id is None and rec.queued_units == 0
    assert led.totals()["owed_iota"] == 0 and consumer_log(tmp_path / "c.db") == []
    with pytest.raises(LedgerError, match="wait for the producer"):
        led.record_round(closed(9), quote_round(1.0, 1.0, 1.0, consumer_config().price.rule))
    cfg = consumer_config()
    p, priced = pricer(cfg, T0 + 190)
    assert p.price_ready(led) == 0  # within wait_s and no figure yet: all wait
    accept(led, data, checkpoint)
    assert p.price_ready(led) == 3
    rounds = consumer_log(tmp_path / "c.db")
    assert all(isinstance(r, entries.LinkedRoundEntry) for r in rounds)
    assert [r.priced_from for r in rounds] == ["producer", "producer", "dispute_producer"]
    for r, i in zip(rounds, (1, 2, 3), strict=True):  # entry 0 is the producer's opening
        theirs = entries.parse_entry(data[i])
        assert (r.producer_index, r.producer_leaf_hash) == (i, tlog.leaf_hash(data[i]).hex())
        assert (r.producer_energy_uws, r.producer_metered_us) == (
            theirs.producer_energy_uws, theirs.producer_metered_us)
        assert r.link_problems() == [] and entries.round_problems(r) == []
    assert rounds[2].own_energy_uws == 300 * 60_000  # both figures in a disputed round
    for before, after in itertools.pairwise(rounds):
        assert after.carry_in_nano_units == before.carry_out_nano_units
    owed = led.db.execute("SELECT value FROM running_totals WHERE key = 'owed_nano_units'"
                          ).fetchone()[0]
    assert int(owed) == sum(r.owed_nano_units for r in rounds)
    assert [a[0].round_id for a in priced] == [1, 2, 3]
    led.close()


def test_a_round_waits_behind_an_older_one_and_payments_cover_only_priced_rounds(tmp_path):
    data, checkpoint = producer_log(tmp_path / "p.db", [400.0] * 4, skip={0})
    led = consumer_ledger(tmp_path / "c.db")
    led.follow_producer(PRODUCER.verifier.key())
    led.db.execute("UPDATE ledger_meta SET value = ? WHERE key = 'producer_since_ms'",
                   (str(int(T0 * 1000)),))
    for i in range(4):
        led.record_waiting_round(closed(i, consumer_mw=5000.0))  # owes whole units each
    accept(led, data, checkpoint)
    p, _ = pricer(consumer_config(), T0 + 60 * 1 + 100)  # round 1 waited 100 s of 120
    assert p.price_ready(led) == 0  # its figure never came: the later ones wait behind it
    with pytest.raises(LedgerError, match="not the oldest"):
        led.price_waiting(2, closed(1), quote_round(300.0, 24000.0, 60.0, p.rule),
                          RoundLink("producer", PRODUCER.name, 2, b"\0" * 32, 0, 0, 0, 0,
                                    10_000, 10_000))
    p, _ = pricer(consumer_config(), T0 + 60 + 121)  # waited; the producer's log went past
    assert p.price_ready(led) == 4
    rounds = consumer_log(tmp_path / "c.db")
    assert [r.priced_from for r in rounds] == ["own_channel_after_wait"] + ["producer"] * 3
    assert rounds[0].producer_index == -1 and rounds[0].link_problems() == []
    covered = [r for (r,) in led.db.execute("SELECT round_id FROM payment_rounds ORDER BY 1")]
    assert covered == [1, 2, 3, 4]
    led.close()


def test_a_payment_queued_by_a_priced_round_does_not_cover_rounds_still_waiting(tmp_path):
    data, checkpoint = producer_log(tmp_path / "p.db", [400.0])
    led = consumer_ledger(tmp_path / "c.db")
    led.follow_producer(PRODUCER.verifier.key())
    led.db.execute("UPDATE ledger_meta SET value = ? WHERE key = 'producer_since_ms'",
                   (str(int(T0 * 1000)),))
    for i in range(3):
        led.record_waiting_round(closed(i, consumer_mw=5000.0))
    accept(led, data, checkpoint)
    p, _ = pricer(consumer_config(), T0 + 100)
    assert p.price_ready(led) == 1
    payments = led.db.execute("SELECT payment_id, round_id FROM payment_rounds").fetchall()
    assert [r for _, r in payments] == [1]  # not rounds 2 and 3, which owe nothing yet
    led.close()


def test_with_after_wait_own_channel_a_round_is_priced_from_this_meter_after_wait_s(tmp_path):
    led = consumer_ledger(tmp_path / "c.db")
    led.follow_producer(PRODUCER.verifier.key())
    led.record_waiting_round(closed(0, panel_mw=350.0))
    cfg = consumer_config(after_wait="own_channel")
    assert pricer(cfg, T0 + 60 + 119)[0].price_ready(led) == 0
    assert pricer(cfg, T0 + 60 + 120)[0].price_ready(led) == 1
    (r,) = consumer_log(tmp_path / "c.db")
    assert (r.priced_from, r.producer_energy_uws) == ("own_channel_after_wait", 350 * 60_000)
    led.close()


def test_rounds_left_waiting_by_a_link_taken_out_of_the_config_are_priced(tmp_path, caplog):
    led = consumer_ledger(tmp_path / "c.db")
    led.follow_producer(PRODUCER.verifier.key())
    for i in range(2):
        led.record_waiting_round(closed(i))
    unlinked = build({"round": {"length_s": 60}})
    with caplog.at_level(logging.WARNING):
        assert price_left_waiting(led, unlinked, lambda *a: None) == 2
    assert "no longer set" in caplog.text
    assert led.oldest_waiting() is None
    rounds = consumer_log(tmp_path / "c.db")
    assert [r.priced_from for r in rounds] == ["own_channel_after_wait"] * 2
    assert rounds[0].producer_origin == PRODUCER.name
    led.record_round(closed(2), quote_round(60.0 * 60, 400.0 * 60, 60.0,
                                            unlinked.price.rule))  # and rounds go on
    assert len(consumer_log(tmp_path / "c.db")) == 3
    led.close()


def producer_entries_of(path: Path, signer: note.Signer, rounds: list[tuple[float, str, float]]
                        ) -> tuple[list[bytes], bytes]:
    """A producer's log under ``signer``: (power, clock, metered s) for slots 0, 1, ..."""
    led = Ledger(path, log=LogWriter(signer))
    for i, (mw, clock, metered_s) in enumerate(rounds):
        r = closed(i, 0.0, mw)
        led.record_production(RoundTotals(
            started_at=r.started_at, duration_s=60, metered_s=metered_s, producer_mws=mw * 60,
            samples=60, expected_samples=60, ended_at=r.ended_at, consumer_metered_s=0,
            producer_metered_s=metered_s), 60.0, clock)
    led.close()
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    view = LogView(db)
    out = list(view.iter_entries(view.size())), view.checkpoint() or b""
    db.close()
    return out


def test_an_entry_that_metered_nothing_or_with_its_clock_unsynchronised_prices_no_round(
        tmp_path):
    data, checkpoint = producer_entries_of(tmp_path / "p.db", PRODUCER, [
        (400.0, "synchronized", 0.0),  # a sensor that failed all round: 0 µs, capped if used
        (400.0, "unsynchronized", 60.0),  # its slot may be another minute than ours
        (400.0, "synchronized", 60.0)])
    led = consumer_ledger(tmp_path / "c.db")
    led.follow_producer(KEY)
    led.db.execute("UPDATE ledger_meta SET value = ? WHERE key = 'producer_since_ms'",
                   (str(int(T0 * 1000)),))
    for i in range(3):
        led.record_waiting_round(closed(i, panel_mw=399.0))
    accept(led, data, checkpoint)
    assert sorted(r[0] for r in led.db.execute("SELECT idx FROM producer_entries")) == [3]
    p, _ = pricer(consumer_config(), T0 + 60 * 3 + 121)  # waited; the log went past them
    assert p.price_ready(led) == 3
    rounds = consumer_log(tmp_path / "c.db")
    assert [r.priced_from for r in rounds] == ["own_channel_after_wait"] * 2 + ["producer"]
    assert not any(entries.recompute(r).capped for r in rounds)  # never the 0 µs figure
    led.close()


def test_a_producer_with_a_new_key_under_the_same_name_is_followed_from_its_new_log(tmp_path):
    renewed = note.signer_from_seed(PRODUCER.name, bytes(range(7, 39)))  # same name, new key
    old, old_cp = producer_log(tmp_path / "old.db", [400.0, 400.0])
    new, new_cp = producer_entries_of(tmp_path / "new.db", renewed,
                                      [(100.0, "synchronized", 60.0)] * 2)
    led = consumer_ledger(tmp_path / "c.db")
    led.follow_producer(KEY)
    led.db.execute("UPDATE ledger_meta SET value = ? WHERE key = 'producer_since_ms'",
                   (str(int(T0 * 1000)),))
    accept(led, old, old_cp)
    state = led.follow_producer(renewed.verifier.key())  # the owner put in the new key
    assert state.frontier.size == 0
    follower = link.Follower(renewed.verifier)
    accepted = [a for i, d in enumerate(new) for a in follower.offer_entry(i, d).accepted]
    accepted += follower.offer_checkpoint(new_cp).accepted
    assert led.accept_producer_entries(renewed.verifier.key(), accepted, follower.frontier,
                                       follower.checkpoint, int(T0 * 1000)) == 2
    stored = led.producer_entry(renewed.verifier.key(), 60_000, int(T0 * 1000) // 60_000)
    assert stored is not None and stored.data == new[1]  # the new log's, not the old one's
    led.close()


def test_a_producer_whose_entries_all_price_nothing_still_lets_rounds_go_by_after_wait(
        tmp_path):
    """Its clock never synchronised: every entry is unusable, yet its log passes the slots
    (how far it reached is kept from every entry accepted), so "wait" does not wait
    forever."""
    data, checkpoint = producer_entries_of(tmp_path / "p.db", PRODUCER,
                                           [(400.0, "unsynchronized", 60.0)] * 4)
    led = consumer_ledger(tmp_path / "c.db")
    led.follow_producer(KEY)
    led.db.execute("UPDATE ledger_meta SET value = ? WHERE key = 'producer_since_ms'",
                   (str(int(T0 * 1000)),))
    for i in range(3):
        led.record_waiting_round(closed(i))
    accept(led, data, checkpoint)
    assert led.db.execute("SELECT COUNT(*) FROM producer_entries").fetchone()[0] == 0
    assert led.producer_reached_ms() == int((T0 + 4 * 60) * 1000)
    assert pricer(consumer_config(), T0 + 60 + 119)[0].price_ready(led) == 0  # within wait_s
    assert pricer(consumer_config(), T0 + 3 * 60 + 120)[0].price_ready(led) == 3
    assert [r.priced_from for r in consumer_log(tmp_path / "c.db")] == [
        "own_channel_after_wait"] * 3
    led.close()
