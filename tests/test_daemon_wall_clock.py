"""The wall clock steps at boot (first NTP sync, no RTC): round timestamps follow, metering not."""

import itertools
import logging
import threading
import time

import pytest

from p2p_energy import config
from p2p_energy.runtime.daemon import Daemon
from p2p_energy.runtime.payer import Payer, PayerPolicy
from p2p_energy.sensors.simulated import SimulatedSensor
from p2p_energy.store.ledger import Ledger
from p2p_energy.wallet.dryrun import DryRunWallet

LENGTH_S, INTERVAL_S = 0.1, 0.01
BEHIND_S = 30 * 86400.0  # the time of the last shutdown, a month ago
SYNC_AFTER, STOP_AFTER = 5, 12  # rounds recorded when NTP steps the clock / when we stop


class OnRounds(logging.Handler):
    """Calls ``then[n]`` when the daemon logs its n-th recorded round.

    Counted in rounds, not seconds: on a busy machine the daemon's start-up alone
    can take longer than a few rounds, and a timer started before it would step
    the clock before enough rounds were made.
    """

    def __init__(self, then: dict) -> None:
        super().__init__(logging.INFO)
        self.then, self.rounds = then, 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("round "):
            self.rounds += 1
            self.then.get(self.rounds, lambda: None)()


def test_round_timestamps_follow_a_wall_clock_step(tmp_path, caplog):
    synced = threading.Event()

    def wall() -> float:  # a Pi without a real-time clock, until NTP steps it
        return time.time() - (0.0 if synced.is_set() else BEHIND_S)

    cfg = config.build({"meter": {"sensor": "simulated", "sample_interval_s": INTERVAL_S},
                        "round": {"length_s": LENGTH_S}, "wallet": {"backend": "dry-run"}})
    path = str(tmp_path / "ledger.db")
    payer = Payer(lambda: Ledger(path), DryRunWallet, PayerPolicy(poll_s=0.05))
    daemon = Daemon(cfg, SimulatedSensor(), path, payer, wall=wall)
    on_rounds = OnRounds({SYNC_AFTER: synced.set, STOP_AFTER: daemon.request_stop})
    daemon_log = logging.getLogger("p2p_energy.runtime.daemon")
    give_up = threading.Timer(60, daemon.request_stop)  # a hang fails below, not for ever
    give_up.start()
    daemon_log.addHandler(on_rounds)
    try:
        with caplog.at_level(logging.INFO, logger="p2p_energy.runtime.daemon"):
            daemon.run()
    finally:
        daemon_log.removeHandler(on_rounds)
        give_up.cancel()
    assert on_rounds.rounds >= STOP_AFTER
    stopped = time.time()
    ledger = Ledger(path)
    rounds = ledger.report()["rounds"]
    raw = ledger.db.execute("SELECT started_at, ended_at, duration_s FROM rounds").fetchall()
    ledger.close()

    before = [r for r in raw if r[1] < stopped - BEHIND_S / 2]
    after = [r for r in raw if r[0] > stopped - BEHIND_S / 2]
    assert len(before) >= 3 and len(after) >= 5 and len(before) + len(after) == len(raw)
    assert all(stopped - 5 < r[1] <= stopped for r in after)  # today's date, not last month's
    for a, b in itertools.pairwise(after):  # one step, then contiguous again
        assert b[0] == pytest.approx(a[1], abs=1e-6)
    # Aligned to the wall clock: each round is one whole slot but the first (the rest of
    # its slot), the one the step closed (in the time it began under), the first after
    # it (the rest of its slot in the new time) and the last (the stop).
    assert len(rounds) == len(raw)
    for _started, ended, duration in before[1:-1] + after[1:-1]:
        assert duration == pytest.approx(LENGTH_S, abs=1e-5)  # floats of wall-clock size
        assert ended / LENGTH_S == pytest.approx(round(ended / LENGTH_S), abs=1e-6)
    steps = [r.getMessage() for r in caplog.records if "wall clock" in r.getMessage()]
    assert len(steps) == 1, steps
    assert steps[0].startswith("wall clock stepped by +2592000.")
    assert "round times follow the new time from the next round on" in steps[0]
