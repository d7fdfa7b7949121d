"""The ledger in real SQLite: atomic rounds, exact queueing, sign-once rules."""

import math
import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2p_energy.core.metering import RoundTotals
from p2p_energy.core.pricing import NANO, Quote
from p2p_energy.errors import LedgerError
from p2p_energy.store.ledger import SCHEMA_VERSION, Ledger
from p2p_energy.store.lock import LedgerLock
from p2p_energy.wallet.base import Attachment, Signed


def rnd(i, mws=100.0):
    return RoundTotals(started_at=1.7e9 + i, duration_s=1.0, metered_s=1.0, consumer_mws=mws,
                       producer_mws=500.0, samples=20, expected_samples=20, ended_at=1.7e9 + i + 1)


def q(iota):
    return Quote(price=0.02, capped=False, owed_nano_units=round(iota * NANO))


@pytest.fixture
def ledger(tmp_path):
    led = Ledger(tmp_path / "ledger.db", clock=lambda: 1.7e9)
    yield led
    led.close()


def test_fractions_carry_and_queue_only_whole_iota(ledger):
    recs = [ledger.record_round(rnd(i), q(0.4)) for i in range(5)]
    assert [r.queued_units for r in recs] == [0, 0, 1, 0, 1]
    t = ledger.totals()
    assert t["queued_iota"] == 2 == math.floor(t["owed_iota"])
    assert t["carry_iota"] == pytest.approx(0.0)
    report = ledger.report()
    assert [p["round_ids"] for p in report["payments"]] == [[1, 2, 3], [4, 5]]


def test_report_has_the_documented_shape(ledger):
    ledger.record_round(rnd(0), q(2.5))
    r = ledger.report()
    assert set(r) == {"rounds", "payments", "totals", "waiting", "wallet_events"}
    assert r["waiting"] == {"rounds": 0, "oldest_ended_at": None}
    assert {"id", "started_at", "ended_at", "duration_s", "samples", "expected_samples",
            "consumer_mws", "producer_avg_mw", "price", "price_capped", "owed_iota"} <= set(
        r["rounds"][0])
    assert {"id", "round_ids", "value_iota", "status", "bundle_hash", "attempts",
            "created_at", "sent_at", "fee_nanos", "backend"} <= set(r["payments"][0])
    assert set(r["totals"]) == {"consumer_mws", "owed_iota", "paid_iota", "queued_iota",
                                "carry_iota", "fees_nanos"}
    assert r["rounds"][0]["started_at"].endswith("Z") and "." in r["rounds"][0]["started_at"]


def bundle(value, h="A" * 81, i=0):
    return Signed(h, '["' + "T" * 2673 + '"]', value, i, i + 1)


def test_claim_merges_unsigned_payments_and_sign_is_guarded(ledger):
    for i in range(3):
        ledger.record_round(rnd(i), q(2.0))
    p = ledger.claim_queued()
    assert p.value_units == 6 and ledger.report()["payments"][0]["round_ids"] == [1, 2, 3]
    with pytest.raises(LedgerError):
        ledger.store_signed(p.id, bundle(5), "pyota")  # value does not match: refuse
    ledger.store_signed(p.id, bundle(6), "pyota")
    with pytest.raises(LedgerError):
        ledger.store_signed(p.id, bundle(6, "B" * 81), "pyota")  # never a second signature
    assert ledger.in_flight().signed == bundle(6)
    ledger.record_round(rnd(4), q(3.0))  # owed while in flight: a new queued payment
    assert ledger.in_flight().id == p.id


def test_confirmation_moves_the_input_to_the_change_index(ledger):
    ledger.record_round(rnd(0), q(5.0))
    assert ledger.input_index(7) == 7
    p = ledger.claim_queued()
    ledger.store_signed(p.id, bundle(5, i=7), "pyota")
    ledger.record_attachment(p.id, Attachment("TAIL1", "[]"))
    assert ledger.payment(p.id).unsent == Attachment("TAIL1", "[]")  # recorded before sending
    ledger.mark_sent(p.id, "TAIL1")
    assert ledger.payment(p.id).unsent is None
    assert ledger.record_seen(p.id, ["TAIL1", "TAIL2"]) == ["TAIL2"]
    assert ledger.payment(p.id).attachments == ("TAIL1", "TAIL2")
    ledger.mark_confirmed(p.id)
    assert ledger.input_index(0) == 8 and ledger.in_flight() is None
    t = ledger.totals()
    assert t["paid_iota"] == 5 and t["queued_iota"] == 0


def test_a_failed_attempt_to_sign_leaves_the_payment_queued(ledger):
    ledger.record_round(rnd(0), q(4.0))
    p = ledger.claim_queued()
    ledger.record_failure(p.id, "rejected")
    assert ledger.totals()["queued_iota"] == 4
    rec = ledger.record_round(rnd(1), q(0.5))
    assert rec.queued_units == 0
    report = ledger.report()
    assert report["payments"][0]["round_ids"] == [1] and report["payments"][0]["attempts"] == 1
    assert report["payments"][0]["last_error"] == "rejected"
    assert report["totals"]["carry_iota"] == pytest.approx(0.5)


def test_checkpoint_round_trip_and_cleared_by_round(ledger):
    snap = rnd(0, mws=42.0)
    ledger.checkpoint(snap)
    got = ledger.load_checkpoint()
    assert got.consumer_mws == 42.0 and got.samples == 20
    ledger.record_round(rnd(0), q(0.1))
    assert ledger.load_checkpoint() is None


def test_committed_rounds_survive_reopening(tmp_path):
    path = tmp_path / "l.db"
    a = Ledger(path)
    a.record_round(rnd(0), q(1.5))
    a.close()
    b = Ledger(path)
    assert b.totals()["queued_iota"] == 1
    assert b.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert b.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    b.close()


def test_newer_schema_is_refused_with_a_clear_error(tmp_path):
    path = tmp_path / "l.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(LedgerError, match="newer than this program"):
        Ledger(path)


def test_not_a_database_is_a_clear_error(tmp_path):
    path = tmp_path / "l.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LedgerError, match="cannot open ledger"):
        Ledger(path)


def _v1_ledger(path):
    """A ledger as version 1 wrote it: rounds, a payment, and an open-round checkpoint."""
    from p2p_energy.store.ledger import _create_v1

    db = sqlite3.connect(path, isolation_level=None)
    _create_v1(db)
    db.execute("PRAGMA user_version = 1")
    for i in range(3):
        db.execute("INSERT INTO rounds (started_at, ended_at, duration_s, metered_s, samples,"
                   " expected_samples, failed_samples, consumer_mws, producer_mws,"
                   " producer_avg_mw, price, price_capped, owed_niota)"
                   " VALUES (?, ?, 60, 58.5, 59, 60, 1, 1000, 29250, 500, 0.02, 0, 20000000000)",
                   (1.7e9 + 60 * i, 1.7e9 + 60 * i + 60))
    db.execute("INSERT INTO payments (value_iota, status, created_at) VALUES (60, 'queued', 1)")
    db.execute("INSERT INTO open_round (id, started_at, duration_s, metered_s, consumer_mws,"
               " producer_mws, samples, expected_samples, failed_samples, saved_at)"
               " VALUES (1, 1.7e9, 12.0, 11.0, 110.0, 5500.0, 12, 12, 0, 1.7e9)")
    db.close()


def test_a_v1_ledger_opens_with_every_row_and_per_channel_metered_time(tmp_path):
    path = tmp_path / "v1.db"
    _v1_ledger(path)
    with LedgerLock(path):  # as the daemon does: only it upgrades a ledger
        led = Ledger(path)
    try:
        rounds = led.report()["rounds"]
        assert [r["id"] for r in rounds] == [1, 2, 3]
        # Before channels were metered separately, both were metered together.
        assert all(r["metered_s"] == r["consumer_metered_s"] == r["producer_metered_s"] == 58.5
                   for r in rounds)
        assert led.totals()["queued_iota"] == 60 and led.totals()["owed_iota"] == 60
        cp = led.load_checkpoint()
        assert cp is not None and cp.consumer_mws == 110.0
        assert cp.consumer_metered_s == cp.producer_metered_s == 11.0
        assert led.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        led.close()


def test_rounds_and_checkpoints_keep_each_channels_metered_time(ledger):
    r = RoundTotals(started_at=1.7e9, duration_s=60.0, metered_s=60.0, consumer_mws=600.0,
                    producer_mws=15000.0, samples=60, expected_samples=60, ended_at=1.7e9 + 60,
                    consumer_metered_s=60.0, producer_metered_s=30.0)
    ledger.checkpoint(r)
    assert ledger.load_checkpoint().producer_metered_s == 30.0
    ledger.record_round(r, q(1))
    row = ledger.report()["rounds"][0]
    assert (row["consumer_metered_s"], row["producer_metered_s"]) == (60.0, 30.0)
    assert row["producer_avg_mw"] == pytest.approx(500.0)  # over the producer's 30 s


def test_a_payment_that_failed_on_the_network_is_owed_again_with_its_fee(ledger):
    ledger.record_round(rnd(0), q(5.0))
    p = ledger.claim_queued()
    ledger.store_signed(p.id, Signed("D" * 44, "{}", 5, 0, 0), "iota")
    again = ledger.mark_ended(p.id, "failed", "InsufficientGas", fee_nanos=1_500_000)
    assert ledger.in_flight() is None
    assert ledger.claim_queued().id == again
    report = ledger.report()
    assert [(x["status"], x["value_iota"], x["fee_nanos"]) for x in report["payments"]] == [
        ("failed", 5, 1_500_000), ("queued", 5, 0)]
    assert report["payments"][0]["digest"] == "D" * 44 and "bundle_hash" not in report[
        "payments"][0]
    assert report["payments"][1]["round_ids"] == [1]
    assert report["totals"]["fees_nanos"] == 1_500_000 and report["totals"]["queued_iota"] == 5


def test_split_pays_part_now_and_keeps_the_rest_queued(ledger):
    ledger.record_round(rnd(0), q(9.0))
    p = ledger.claim_queued()
    rest = ledger.split_queued(p.id, 4)
    assert ledger.payment(p.id).value_units == 4 and ledger.payment(rest).value_units == 5
    ledger.store_signed(p.id, bundle(4), "pyota")
    assert ledger.claim_queued().id == rest
    assert ledger.totals()["queued_iota"] == 9
    assert ledger.claim_queued(min_value=6) is None  # less than the minimum waits


# A ledger written by the release before wallet protocol v2 (schema 1), row by row.
_V1_ROWS = [
    "INSERT INTO rounds VALUES (1, 1.7e9, 1.7e9+60, 60, 60, 60, 60, 0, 5000, 9000, 150, 0.066,"
    " 0, 330000000000)",
    "INSERT INTO payments VALUES (1, 300, 'confirmed', 1.7e9, 1.7e9, 1.7e9, 1, NULL,"
    " 'BUNDLEA', '[\"TRYTESA\"]', 0, 1)",
    "INSERT INTO payments VALUES (2, 30, 'sent', 1.7e9, 1.7e9, NULL, 2, 'timeout',"
    " 'BUNDLEB', '[\"TRYTESB\"]', 1, 2)",
    "INSERT INTO payments VALUES (3, 7, 'queued', 1.7e9, NULL, NULL, 0, NULL, NULL, NULL,"
    " NULL, NULL)",
    "INSERT INTO payments VALUES (4, 5, 'sent', 1.7e9, 1.7e9, NULL, 1, NULL,"
    " 'BUNDLEC', '[\"DRYRUNBUNDLEC\"]', 2, 3)",
    "INSERT INTO payment_rounds VALUES (1, 1)",
    "INSERT INTO tails VALUES (1, 'TAILA1', 1.7e9)",
    "INSERT INTO tails VALUES (2, 'TAILB1', 1.7e9+1)",
    "INSERT INTO tails VALUES (2, 'TAILB2', 1.7e9+2)",
    "INSERT INTO open_round VALUES (1, 1.7e9+60, 5, 5, 400, 700, 5, 5, 0, 1.7e9+65)",
    "INSERT INTO wallet_state VALUES ('input_index', 1)",
]


def test_a_v1_ledger_opens_with_every_row_kept(tmp_path):
    from p2p_energy.store.ledger import _create_v1
    path = tmp_path / "v1.db"
    db = sqlite3.connect(path)
    _create_v1(db)
    for row in _V1_ROWS:
        db.execute(row)
    db.execute("PRAGMA user_version = 1")
    db.commit()
    counts = {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in (
        "rounds", "payments", "payment_rounds", "tails", "open_round", "wallet_state")}
    db.close()
    with LedgerLock(path):  # as the daemon does: only it upgrades a ledger
        led = Ledger(path)
    try:
        assert led.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        counts["attachments"] = counts.pop("tails")
        assert {t: led.db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in counts} == counts
        flying = led.in_flight()
        assert flying.id == 2 and flying.attachments == ("TAILB1", "TAILB2")
        assert flying.unsent is None  # v1 recorded a tail only after broadcasting it
        assert flying.signed == Signed("BUNDLEB", '["TRYTESB"]', 30, 1, 2)
        assert flying.backend == "pyota" and led.payment(4).backend == "dry-run"
        assert led.payment(3).backend is None and led.input_index(0) == 1
        report = led.report()
        assert [p["bundle_hash"] for p in report["payments"]] == [
            "BUNDLEA", "BUNDLEB", None, "BUNDLEC"]
        assert report["totals"]["paid_iota"] == 335 and report["totals"]["fees_nanos"] == 0
        assert report["totals"]["owed_iota"] == 330.0  # the running total starts from v1's sum
        assert led.load_checkpoint().consumer_mws == 400
        led.mark_confirmed(2)  # and it goes on working
        assert led.input_index(0) == 2
    finally:
        led.close()


def test_owed_totals_stay_exact_past_what_sqlite_sum_can_hold(ledger):
    per_round = 4 * 10**18 + 1  # nano-IOTA: fits an INTEGER; three of them do not
    recs = [ledger.record_round(rnd(i), Quote(10.0, True, per_round)) for i in range(3)]
    assert [r.queued_units for r in recs] == [4 * 10**9, 4 * 10**9, 4 * 10**9]
    with pytest.raises(sqlite3.OperationalError, match="integer overflow"):
        ledger.db.execute("SELECT SUM(owed_nano_units) FROM rounds").fetchone()
    t = ledger.totals()
    assert t["queued_iota"] == 12 * 10**9 and t["carry_iota"] == pytest.approx(3e-9)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["round", "pay", "fail", "split", "refused"]),
                          st.integers(0, 3 * NANO)), min_size=1, max_size=40))
def test_what_a_round_reads_is_kept_exactly_as_a_full_count_would_give(tmp_path_factory, steps):
    """``live_units`` and the rounds each payment covers, kept without reading every payment
    and round, are what counting them all gives, whatever happens to payments."""
    led = Ledger(tmp_path_factory.mktemp("live") / "l.db")
    for i, (step, owed) in enumerate(steps):
        if step == "round":
            rec = led.record_round(rnd(i), Quote(price=0.02, capped=False, owed_nano_units=owed))
            uncovered = led.db.execute(
                "SELECT COUNT(*) FROM rounds r WHERE r.id NOT IN (SELECT pr.round_id FROM"
                " payment_rounds pr JOIN payments p ON p.id = pr.payment_id"
                " WHERE p.status IN ('queued', 'sent', 'confirmed'))").fetchone()[0]
            if rec.queued_payment_id is not None:  # queued: every round is covered now
                assert uncovered == 0
        p = led.claim_queued()
        if p is None:
            continue
        if step == "split" and p.value_units > 1:
            led.split_queued(p.id, 1)
        elif step == "refused":
            led.record_failure(p.id, "refused")
        elif step in ("pay", "fail"):
            led.store_signed(p.id, Signed(f"R{p.id}".ljust(81, "9"), "[]", p.value_units, 0, 0),
                             "pyota")
            if step == "pay":
                led.mark_confirmed(p.id)
            else:
                led.mark_ended(p.id, "failed", "test")
        kept = led.db.execute("SELECT value FROM running_totals WHERE key = 'live_units'"
                              ).fetchone()[0]
        counted = led.db.execute("SELECT COALESCE(SUM(value_units), 0) FROM payments WHERE"
                                 " status IN ('queued', 'sent', 'confirmed')").fetchone()[0]
        assert int(kept) == counted
    led.close()
