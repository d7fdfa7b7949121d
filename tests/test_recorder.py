"""The recorder: rounds reach the ledger in order, once, even when a write fails first."""

import threading

from p2p_energy.core.metering import RoundTotals
from p2p_energy.core.pricing import NANO, Quote
from p2p_energy.errors import LedgerError
from p2p_energy.store.ledger import Ledger


def rnd(i):
    return RoundTotals(started_at=i, duration_s=1, metered_s=1, consumer_mws=float(i),
                       producer_mws=1, samples=1, expected_samples=1, ended_at=i + 1)


class FlakyLedger(Ledger):
    """A real SQLite ledger whose first ``fail`` round writes raise, as a full disk would."""

    fail = 2

    def record_round(self, r, q):
        if self.fail:
            self.fail -= 1
            raise OSError(28, "No space left on device")
        return super().record_round(r, q)


def test_rounds_are_written_in_order_once_after_failures(tmp_path, monkeypatch):
    import p2p_energy.runtime.recorder as recorder_mod
    from p2p_energy.runtime.recorder import Recorder

    monkeypatch.setattr(recorder_mod, "RETRY_S", 0.01)
    path = tmp_path / "l.db"
    seen, done = [], threading.Event()

    def on_round(rec, totals, q):
        seen.append((rec.round_id, totals.consumer_mws))
        if len(seen) == 5:
            done.set()

    rec = Recorder(lambda: FlakyLedger(path), on_round)
    rec.start()
    for i in range(5):
        rec.round(rnd(i), Quote(1.0, False, NANO // 2))
        rec.checkpoint(rnd(100 + i))
    assert done.wait(5)
    assert rec.stop(5)
    assert seen == [(1, 0.0), (2, 1.0), (3, 2.0), (4, 3.0), (5, 4.0)]
    check = Ledger(path)
    assert check.totals()["queued_iota"] == 2
    assert check.load_checkpoint().consumer_mws == 104.0
    check.close()


def test_stop_writes_everything_queued(tmp_path):
    from p2p_energy.runtime.recorder import Recorder

    path = tmp_path / "l.db"
    rec = Recorder(lambda: Ledger(path), lambda *a: None)
    rec.start()
    for i in range(50):
        rec.round(rnd(i), Quote(1.0, False, NANO))
    assert rec.stop(10)
    check = Ledger(path)
    assert len(check.report()["rounds"]) == 50 and check.totals()["queued_iota"] == 50
    check.close()


def test_a_round_that_can_never_be_written_is_logged_and_fatal_and_the_queue_goes_on(
        tmp_path, caplog):
    from p2p_energy.runtime.recorder import Recorder

    path = tmp_path / "l.db"
    fatal, seen = [], []
    rec = Recorder(lambda: Ledger(path), lambda r, t, q: seen.append(r.round_id),
                   on_fatal=fatal.append)
    rec.start()
    rec.round(rnd(1), Quote(1.0, False, 2**63))  # more than SQLite's INTEGER holds
    rec.round(rnd(2), Quote(1.0, False, NANO))
    assert not rec.stop(5)  # ended, but a round was not written
    assert len(fatal) == 1 and "could not be recorded" in fatal[0]
    assert "owed 9223372036854775808 nano-IOTA" in caplog.text
    assert seen == [1]  # the next round was written
    check = Ledger(path)
    assert check.totals()["queued_iota"] == 1
    check.close()


def test_a_ledger_refusing_writes_for_too_long_is_fatal(tmp_path, monkeypatch):
    import p2p_energy.runtime.recorder as recorder_mod
    from p2p_energy.runtime.recorder import Recorder

    monkeypatch.setattr(recorder_mod, "RETRY_S", 0.01)
    class BrokenDisk(FlakyLedger):
        fail = 10**6

    fatal = []
    rec = Recorder(lambda: BrokenDisk(tmp_path / "l.db"), lambda *a: None,
                   on_fatal=fatal.append, give_up_s=0.2)
    rec.start()
    rec.round(rnd(1), Quote(1.0, False, NANO))
    assert not rec.stop(5)
    assert fatal and "refused writes for 0.2 s" in fatal[0]


class LockedOnOpen(Ledger):
    """A real SQLite ledger that cannot be opened the first ``fail`` times (another
    writer holds the file locked)."""

    fail = 0

    def __init__(self, path):
        if LockedOnOpen.fail:
            LockedOnOpen.fail -= 1
            raise LedgerError(f"{path}: cannot open ledger: database is locked")
        super().__init__(path)


def test_a_ledger_that_opens_after_a_while_gets_every_round(tmp_path, monkeypatch):
    import p2p_energy.runtime.recorder as recorder_mod
    from p2p_energy.runtime.recorder import Recorder

    monkeypatch.setattr(recorder_mod, "RETRY_S", 0.01)
    monkeypatch.setattr(LockedOnOpen, "fail", 5)
    path = tmp_path / "l.db"
    fatal = []
    rec = Recorder(lambda: LockedOnOpen(path), lambda *a: None, on_fatal=fatal.append)
    rec.start()
    for i in range(3):
        rec.round(rnd(i), Quote(1.0, False, NANO))
    assert rec.stop(5) and fatal == [] and LockedOnOpen.fail == 0
    check = Ledger(path)
    assert len(check.report()["rounds"]) == 3 and check.totals()["queued_iota"] == 3
    check.close()


def test_a_ledger_that_never_opens_is_fatal_and_every_round_is_logged(
        tmp_path, monkeypatch, caplog):
    import p2p_energy.runtime.recorder as recorder_mod
    from p2p_energy.runtime.recorder import Recorder

    monkeypatch.setattr(recorder_mod, "RETRY_S", 0.01)
    monkeypatch.setattr(LockedOnOpen, "fail", 10**6)
    fatal = []
    rec = Recorder(lambda: LockedOnOpen(tmp_path / "l.db"), lambda *a: None,
                   on_fatal=fatal.append, give_up_s=0.2)
    rec.start()
    for i in range(3):
        rec.round(rnd(i), Quote(1.0, False, (i + 1) * NANO))
    assert not rec.stop(5)  # nothing was written, and stop says so
    assert fatal[0] == (f"the ledger could not be opened for 0.2 s: {tmp_path / 'l.db'}:"
                        " cannot open ledger: database is locked")
    lost = [r.getMessage() for r in caplog.records if "round not recorded" in r.getMessage()]
    assert len(lost) == 3  # each with its figures, for the owner to settle by hand
    assert [f"owed {(i + 1) * NANO} nano-IOTA" in m for i, m in enumerate(lost)] == [True] * 3
    assert not (tmp_path / "l.db").exists()
