"""The read-only ledger view, in real SQLite: migration of a v1 file, live power, queries."""

import sqlite3

import pytest

from p2p_energy.core.metering import LivePower, RoundMeter, RoundTotals
from p2p_energy.core.pricing import NANO, Quote
from p2p_energy.errors import LedgerError
from p2p_energy.sensors.base import Sample
from p2p_energy.store import ledger as ledger_mod
from p2p_energy.store.ledger import SCHEMA_VERSION, Ledger
from p2p_energy.store.lock import LedgerLock
from p2p_energy.store.reader import LedgerReader, PaidSums
from p2p_energy.wallet.base import Attachment, Signed

T0 = 1.7e9


def rnd(i, mws=100.0, length=60.0):
    return RoundTotals(started_at=T0 + i * length, duration_s=length, metered_s=length,
                       consumer_mws=mws, producer_mws=500.0 * length, samples=60,
                       expected_samples=61, failed_samples=1, ended_at=T0 + (i + 1) * length)


def q(iota):
    return Quote(price=0.02, capped=False, owed_nano_units=round(iota * NANO))


def make_v1(path):
    """A ledger exactly as the first released schema wrote it, with a round and a payment."""
    db = sqlite3.connect(path, isolation_level=None)
    ledger_mod._create_v1(db)
    db.execute("PRAGMA user_version = 1")
    db.execute("INSERT INTO rounds VALUES (1, 1.0, 61.0, 60, 60, 60, 60, 0, 123.5, 500, 8.3,"
               " 0.02, 0, 2470000000)")
    db.execute("INSERT INTO payments (id, value_iota, status, created_at, bundle_hash, trytes,"
               " input_index, change_index) VALUES (1, 2, 'sent', 61.5, 'BUNDLE', '[\"T\"]', 0, 1)")
    db.execute("INSERT INTO payment_rounds VALUES (1, 1)")
    db.execute("INSERT INTO tails VALUES (1, 'TAIL', 62.0)")
    db.execute("INSERT INTO open_round VALUES (1, 61.0, 5.0, 5.0, 10.0, 20.0, 5, 5, 0, 66.0)")
    db.execute("INSERT INTO wallet_state VALUES ('input_index', 0)")
    db.close()


def test_a_v1_ledger_opens_with_every_row_kept_and_gains_live_power(tmp_path):
    path = tmp_path / "v1.db"
    make_v1(path)
    reader = LedgerReader(path)  # before the daemon upgrades it: read as it is
    assert reader.live_power() is None and reader.sums().rounds == 1
    (pay,) = reader.payments()
    assert (pay.reference, pay.reference_kind, pay.fee_nanos) == ("BUNDLE", "bundle_hash", 0)
    reader.close()
    with LedgerLock(path):  # as the daemon does: only it upgrades a ledger
        led = Ledger(path, clock=lambda: 70.0)
    assert led.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    report = led.report()
    assert [r["consumer_mws"] for r in report["rounds"]] == [123.5]
    assert report["payments"][0]["bundle_hash"] == "BUNDLE"
    assert report["payments"][0]["round_ids"] == [1]
    assert led.payment(1).attachments == ("TAIL",)
    assert led.load_checkpoint().consumer_mws == 10.0
    assert led.input_index(5) == 0
    led.checkpoint(rnd(1), LivePower(42.0, 7.5, 69.0))
    led.close()
    with LedgerReader(path) as reader:
        assert reader.live_power() == (LivePower(42.0, 7.5, 69.0), 70.0)  # saved at 70


def test_live_power_outlives_the_round_that_deletes_the_checkpoint(tmp_path):
    led = Ledger(tmp_path / "l.db", clock=lambda: T0 + 31)
    led.checkpoint(rnd(0), LivePower(50.0, 500.0, T0 + 30))
    led.record_round(rnd(0), q(1.0))
    assert led.load_checkpoint() is None
    with LedgerReader(tmp_path / "l.db") as reader:
        assert reader.live_power() == (LivePower(50.0, 500.0, T0 + 30), T0 + 31)
    led.close()


def test_the_reader_cannot_write_and_is_not_blocked_by_a_writer(tmp_path):
    path = tmp_path / "l.db"
    led = Ledger(path)
    led.record_round(rnd(0), q(0.5))
    reader = LedgerReader(path)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.db.execute("DELETE FROM rounds")
    led.db.execute("BEGIN IMMEDIATE")  # the daemon in the middle of a commit
    led.db.execute("INSERT INTO wallet_state VALUES ('x', 1)")
    assert reader.sums().rounds == 1  # the last committed state, at once
    led.db.execute("COMMIT")
    led.record_round(rnd(1), q(0.5))
    assert reader.sums().rounds == 2
    reader.close()
    led.close()


def test_missing_newer_or_empty_ledgers_are_one_line_errors(tmp_path):
    with pytest.raises(LedgerError, match="no ledger yet"):
        LedgerReader(tmp_path / "none.db")
    assert not (tmp_path / "none.db").exists()  # read-only: nothing created
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    with pytest.raises(LedgerError, match="not a ledger yet"):
        LedgerReader(empty)
    newer = tmp_path / "newer.db"
    Ledger(newer).close()
    db = sqlite3.connect(newer)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(LedgerError, match="newer than this program"):
        LedgerReader(newer)


def test_rounds_sums_and_payments(tmp_path):
    path = tmp_path / "l.db"
    now = [T0 + 100]
    led = Ledger(path, clock=lambda: now[0])
    for i, mws in enumerate([100.0, -5.0, 300.0]):
        led.record_round(rnd(i, mws), q(1.5))  # 4 whole IOTA queued over three rounds
    p = led.claim_queued()
    led.store_signed(p.id, Signed("H" * 81, "[]", p.value_units, 0, 1), "pyota")
    led.record_attachment(p.id, Attachment("TAIL", ""))
    led.mark_sent(p.id, "TAIL")
    now[0] = T0 + 300
    led.mark_confirmed(p.id)
    led.close()
    with LedgerReader(path) as r:
        assert [x.id for x in r.rounds(T0 + 60, T0 + 180)] == [1, 2]  # [start, end)
        s = r.sums()
        assert s.rounds == 3 and s.consumer_mws == 400.0  # the negative round counts as 0
        assert s.owed_nano_units == round(4.5 * NANO) and s.samples == 180
        assert s.expected_samples == 183 and s.last_end == T0 + 180
        assert r.sums(T0 + 120, T0 + 200).consumer_mws == 300.0
        assert r.sums(None, T0 + 121).owed_nano_units == 3 * NANO
        assert r.paid() == r.paid(T0 + 300, T0 + 301)
        assert r.paid().value_units == 4 and r.paid(0, T0 + 300).count == 0
        (pay,) = r.payments()
        assert (pay.reference, pay.reference_kind, pay.status) == ("H" * 81, "bundle_hash",
                                                                   "confirmed")
        assert r.by_status() == {"confirmed": (1, 4)}
        assert r.confirmations(0, T0 + 1000) == [(T0 + 300, 4)]
        assert [x.id for x in r.payments_between(T0 + 300, T0 + 301)] == [pay.id]


def test_a_payment_on_todays_network_shows_its_digest_and_fee(tmp_path):
    path = tmp_path / "l.db"
    led = Ledger(path, clock=lambda: T0)
    led.record_round(rnd(0), q(3.0))
    p = led.claim_queued()
    led.store_signed(p.id, Signed("DIGEST", "{}", p.value_units, 0, 0), "iota")
    led.mark_confirmed(p.id, fee_nanos=1500)
    led.record_round(rnd(1), q(3.0))
    p = led.claim_queued()
    led.store_signed(p.id, Signed("DIGEST2", "{}", p.value_units, 0, 0), "iota")
    led.mark_ended(p.id, "failed", "abort", fee_nanos=700)  # executed, paid nothing
    led.close()
    with LedgerReader(path) as r:
        pay = r.payments()[-1]
        assert (pay.reference, pay.reference_kind, pay.fee_nanos) == ("DIGEST", "digest", 1500)
        assert r.paid() == PaidSums(count=1, value_units=3, fee_nanos=2200)


def test_the_meter_reports_its_latest_reading_in_wall_time():
    meter = RoundMeter(60.0, 100.0, 1000.0, max_gap_s=10.0)
    assert meter.latest(100.0, 5.0) is None
    meter.add(Sample(t=101.0, consumer_mw=50.0, producer_mw=-3.0))
    assert meter.latest(102.0, 5.0) == LivePower(50.0, 0.0, 1101.0)
    meter.fail(107.0)  # the sensor stopped answering: no live reading after max_age_s
    assert meter.latest(107.0, 5.0) is None
