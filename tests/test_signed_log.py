"""The signed log in the ledger: entries as the rule gives them, judged by Go's note and tlog.

Every round and every ended payment is one entry, appended with its checkpoint in
the transaction that records it. What the ledger stores and signs is checked by
implementations we did not write: Go's ``sumdb/note`` opens the checkpoint, Go's
``sumdb/tlog`` recomputes the stored hashes and judges the proofs.
"""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

import pytest

from p2p_energy.core import entries, note, tlog
from p2p_energy.core.metering import RoundTotals
from p2p_energy.core.pricing import NANO, PriceRule, Quote, quote_round
from p2p_energy.errors import LedgerError
from p2p_energy.store import lock
from p2p_energy.store.ledger import Ledger
from p2p_energy.store.schema import _MIGRATIONS
from p2p_energy.store.signed_log import LogView, LogWriter
from p2p_energy.wallet.base import Attachment, Signed

from support import go_sumdb
from support.go_sumdb import b64, unb64

RULE = PriceRule(10 * NANO, 10 * NANO)
RECEIVER = "0x" + "ab" * 32
T0 = 1_796_515_200.0  # 2026-12-05 00:00 UTC


@pytest.fixture
def judge() -> go_sumdb.GoSumdb:
    return go_sumdb.judge()


@pytest.fixture
def signer() -> note.Signer:
    return note.signer_from_seed("test.meter/p2p-energy/0001", bytes(range(32)))


def closed(i: int, consumer_mw: float = 60.0, producer_mw: float = 400.0) -> RoundTotals:
    """Round i: 60 s at these powers (producer covering 59.5 s of it)."""
    start = T0 + 60 * i
    return RoundTotals(started_at=start, duration_s=60, metered_s=60,
                       consumer_mws=consumer_mw * 60 + i * 0.0137, producer_mws=producer_mw * 59.5,
                       samples=60, expected_samples=60, ended_at=start + 60,
                       consumer_metered_s=60, producer_metered_s=59.5)


def record(led: Ledger, i: int, **kw: float) -> None:
    r = closed(i, **kw)
    led.record_round(r, quote_round(r.consumer_mws, r.producer_mws, r.producer_metered_s, RULE))


def pay(led: Ledger, *, confirm: bool) -> int:
    """Sign, send and end the queued payment: confirmed (paid) or failed (owed again)."""
    p = led.claim_queued()
    assert p is not None
    led.store_signed(p.id, Signed(f"D{p.id}".ljust(44, "x"), "{}", p.value_units, 0, 0,
                                  RECEIVER), "iota")
    led.record_attachment(p.id, Attachment(f"D{p.id}", "{}"))
    led.mark_sent(p.id, f"D{p.id}")
    if confirm:
        led.mark_confirmed(p.id, fee_nanos=1_976_000)
    else:
        led.mark_ended(p.id, "failed", "InsufficientGas", fee_nanos=2_000_000)
    return p.id


def log_of(path: Path) -> tuple[bytes, list[bytes], LogView, sqlite3.Connection]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    view = LogView(db)
    size = view.size()
    return view.checkpoint() or b"", list(view.iter_entries(size)), view, db


def test_each_round_and_ended_payment_is_one_entry_the_rule_recomputes(tmp_path, signer):
    first = Ledger(tmp_path / "l.db")
    first.record_unit("iota")  # as run does before it opens the ledger with the log's key
    first.close()
    led = Ledger(tmp_path / "l.db", log=LogWriter(signer))
    for i in range(3):
        record(led, i)
    paid = pay(led, confirm=True)
    record(led, 3)
    failed = pay(led, confirm=False)
    record(led, 4, consumer_mw=0.0, producer_mw=0.0)  # night: capped, owes nothing
    led.close()

    note_bytes, data, _view, db = log_of(tmp_path / "l.db")
    parsed = [entries.parse_entry(d) for d in data]
    kinds = [type(e).__name__ for e in parsed]
    assert kinds == ["OpeningEntry"] + ["RoundEntry"] * 3 + [
        "PaymentEntry", "RoundEntry", "PaymentEntry", "RoundEntry"]
    assert parsed[0] == entries.OpeningEntry(0, "µIOTA", 0, 0, 0, 0)  # a new ledger
    rounds = [e for e in parsed if isinstance(e, entries.RoundEntry)]
    assert [r.round_id for r in rounds] == [1, 2, 3, 4, 5]
    for before, after in itertools.pairwise(rounds):
        assert after.carry_in_nano_units == entries.next_carry_in(before)
    assert all(entries.round_problems(r) == [] for r in rounds)
    stored = db.execute("SELECT owed_nano_units FROM rounds ORDER BY id").fetchall()
    assert [r.owed_nano_units for r in rounds] == [o for (o,) in stored]
    assert rounds[0].unit == "µIOTA" and rounds[0].start_utc_ms == int(T0 * 1000)
    assert rounds[0].producer_metered_us == 59_500_000
    assert rounds[4].owed_nano_units == rounds[4].consumer_energy_uws * 10_000_000  # at the cap
    assert entries.recompute(rounds[4]).capped
    payments = [e for e in parsed if isinstance(e, entries.PaymentEntry)]
    assert [(p.payment_id, p.status, p.recipient, p.backend) for p in payments] == [
        (paid, entries.EXECUTED, RECEIVER, "iota"), (failed, entries.FAILED, RECEIVER, "iota")]
    assert payments[0].settles_rounds == ((1, 3),) and payments[0].fee_nanos == 1_976_000
    checkpoint = note.open_checkpoint(note_bytes, signer.verifier)
    assert checkpoint.size == 8
    assert checkpoint.root_hash == tlog.root_from_leaves(tlog.leaf_hash(d) for d in data)
    db.close()


def test_go_opens_the_checkpoint_rebuilds_our_stored_hashes_and_accepts_our_proofs(
        tmp_path, signer, judge):
    led = Ledger(tmp_path / "l.db", log=LogWriter(signer))
    sizes = []
    for i in range(21):
        record(led, i)
        if i % 4 == 3:
            pay(led, confirm=i % 8 == 3)
        sizes.append(LogView(led.db).size())
    led.close()
    note_bytes, data, view, db = log_of(tmp_path / "l.db")
    n = len(data)
    opened = judge.open(signer.verifier.key(), note_bytes)
    assert opened["text"] == f"{signer.name}\n{n}\n{b64(view.root(n))}\n"
    leaves = [tlog.leaf_hash(d) for d in data]
    inclusion = [(i, s, view.inclusion_proof(i, s)) for s in (1, 7, n) for i in range(s)]
    consistency = [(m, s, view.consistency_proof(m, s)) for s in sizes for m in range(1, s + 1)]
    answer = judge.tree(leaves, inclusion, consistency)
    ours = [bytes(h) for (h,) in db.execute("SELECT hash FROM log_hashes ORDER BY id")]
    assert [unb64(h) for h in answer["stored"]] == ours  # Go's layout, byte for byte
    assert unb64(answer["roots"][n]) == note.parse_checkpoint(opened["text"]).root_hash
    assert all(v["err"] == "" for v in answer["inclusion"] + answer["consistency"])
    db.close()


def test_a_checkpoint_covers_every_entry_after_each_commit(tmp_path, signer):
    led = Ledger(tmp_path / "l.db", log=LogWriter(signer))
    for i in range(5):
        record(led, i)
        note_bytes, data, _view, db = log_of(tmp_path / "l.db")
        assert note.open_checkpoint(note_bytes, signer.verifier).size == len(data) == i + 2
        db.close()
    led.close()


def test_a_ledger_refuses_a_key_other_than_its_logs(tmp_path, signer):
    Ledger(tmp_path / "l.db", log=LogWriter(signer)).close()
    other = note.signer_from_seed("test.meter/p2p-energy/0001", bytes(32))
    with pytest.raises(LedgerError) as caught:
        Ledger(tmp_path / "l.db", log=LogWriter(other))
    message = str(caught.value)
    assert signer.verifier.key() in message and other.verifier.key() in message
    assert "PRIVATE" not in message and other.key().split("+", 4)[4] not in message


def test_a_started_log_refuses_writes_without_its_key_and_keeps_nothing_of_them(
        tmp_path, signer):
    led = Ledger(tmp_path / "l.db", log=LogWriter(signer))
    record(led, 0)
    pid = led.claim_queued()
    assert pid is not None
    led.store_signed(pid.id, Signed("D".ljust(44, "x"), "{}", pid.value_units, 0, 0, RECEIVER),
                     "iota")
    led.close()
    keyless = Ledger(tmp_path / "l.db")
    with pytest.raises(LedgerError, match=r"signed log.*\[log\] key_file"):
        record(keyless, 1)
    with pytest.raises(LedgerError, match="signed log"):
        keyless.mark_confirmed(pid.id)
    assert keyless.db.execute("SELECT COUNT(*) FROM rounds").fetchone()[0] == 1
    assert keyless.payment(pid.id).status == "queued"
    keyless.close()


def test_rounds_before_the_log_began_are_summed_up_in_its_opening(tmp_path, signer):
    led = Ledger(tmp_path / "l.db")  # as before the upgrade: no log
    for i in range(3):
        record(led, i)
    paid_before = pay(led, confirm=True)
    record(led, 3)
    led.close()
    led = Ledger(tmp_path / "l.db", log=LogWriter(signer))
    record(led, 4)
    meta = LogView(led.db).meta()
    assert meta["log_started_after_round"] == "4" and meta["log_origin"] == signer.name
    opening, first = [entries.parse_entry(d) for d in LogView(led.db).iter_entries(2)]
    owed = sum(o for (o,) in led.db.execute("SELECT owed_nano_units FROM rounds WHERE id <= 4"))
    paid = led.payment(paid_before).value_units
    pending = led.db.execute("SELECT value_units FROM payments WHERE status = 'queued'"
                             " ORDER BY id LIMIT 1").fetchone()[0]
    assert opening == entries.OpeningEntry(4, "IOTA", owed, paid, pending,
                                           owed - (paid + pending) * NANO)
    assert opening.problems() == []
    assert isinstance(first, entries.RoundEntry) and first.round_id == 5
    assert first.carry_in_nano_units == opening.carry_nano_units
    led.close()


def test_verify_counts_what_was_owed_and_paid_before_the_log(tmp_path, signer, capsys):
    """Outstanding = owed - paid, the rounds and payments from before the log included."""
    from p2p_energy.commands.cli import main
    from p2p_energy.commands.log_cmd import export

    led = Ledger(tmp_path / "l.db")
    for i in range(5):
        record(led, i)
    pay(led, confirm=True)  # 540 IOTA paid before the log
    led.close()
    led = Ledger(tmp_path / "l.db", log=LogWriter(signer))
    for i in range(5, 8):
        record(led, i)
    pay(led, confirm=True)
    record(led, 8)
    owed = sum(o for (o,) in led.db.execute("SELECT owed_nano_units FROM rounds"))
    paid = led.db.execute("SELECT SUM(value_units) FROM payments WHERE status = 'confirmed'"
                          ).fetchone()[0]
    led.close()
    export(str(tmp_path / "l.db"), str(tmp_path / "log.txt"))
    code = main(["verify", str(tmp_path / "log.txt"), "--key", signer.verifier.key(),
                 "--state", str(tmp_path / "state")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"owed: {owed / NANO:.9f}".rstrip("0") in out
    assert f"outstanding: {(owed - paid * NANO) / NANO:.9f}".rstrip("0") in out
    assert "of which before the log began" in out


def test_a_quote_made_by_hand_cannot_enter_the_log(tmp_path, signer):
    led = Ledger(tmp_path / "l.db", log=LogWriter(signer))
    with pytest.raises(LedgerError, match="without its rule"):
        led.record_round(closed(0), Quote(price=0.02, capped=False, owed_nano_units=5))
    assert led.db.execute("SELECT COUNT(*) FROM rounds").fetchone()[0] == 0
    led.close()


def test_the_upgrade_to_the_signed_log_keeps_every_row(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    for step in _MIGRATIONS[:-1]:
        step(db)
    db.execute(f"PRAGMA user_version = {len(_MIGRATIONS) - 1}")
    db.close()
    with lock.LedgerLock(str(path)):
        old = Ledger(path)  # the daemon upgrades, under the lock
    rows_before = {t: old.db.execute(f"SELECT * FROM {t}").fetchall()
                   for t in ("rounds", "payments", "running_totals")}
    record(old, 0)  # a hand-made ledger without a log still records rounds
    columns = {r[1] for r in old.db.execute("PRAGMA table_info(payments)")}
    assert "recipient" in columns and LogView(old.db).started() is False
    assert rows_before["rounds"] == [] and old.db.execute(
        "SELECT COUNT(*) FROM rounds").fetchone()[0] == 1
    old.close()
