"""The daemon: the sampling loop, round closing, and the payer thread beside it.

The sampling loop is the only thing on the main thread. Per tick it reads
the sensor, integrates, and (once per round or checkpoint) commits to the
ledger; everything slow (signing, proof of work, the node) is the payer's.
Signals only set ``stop``; the loop then closes the open round pro rata,
records it, gives the payer a bounded time, and returns.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..config import PRODUCER, Config
from ..core.link import average_mw
from ..core.metering import RoundMeter, RoundTotals, Schedule
from ..core.pricing import Quote, quote_round
from ..errors import ImplausibleReading, SensorReadError
from ..notify import Notifier
from ..sensors.base import Sample, Sensor
from ..store.ledger import Ledger, RoundRecorded, iso
from ..store.signed_log import RoundLink
from .clock import UNSYNCHRONIZED, clock_state
from .log_publisher import LogPublisher
from .payer import Payer
from .producer_link import ProducerLink, price_left_waiting
from .recorder import Recorder

log = logging.getLogger(__name__)

_SWITCH_INTERVAL_S = 0.001  # how long the payer may hold the GIL while the loop waits

# How long the recorder (writing the last rounds) and then a payer in the middle
# of a network call are waited for on stop. Every payment step is committed
# before the next begins, so cutting the payer short loses nothing. The payer
# is told first and both run at once: at most 10 + 5 s, well inside the unit's
# TimeoutStopSec=30s.
RECORDER_GRACE_S = 10.0
PAYER_GRACE_S = 5.0


@dataclass
class LoopStats:
    """Counters a test or a bench can read after ``run`` returns."""

    ticks: int = 0
    missed: int = 0
    failed: int = 0
    rounds: int = 0
    worst_late_s: float = 0.0  # the latest a sample was taken after its deadline


class Daemon:
    """Wires a sensor, a ledger and a payer around the sampling schedule."""

    def __init__(self, config: Config, sensor: Sensor, ledger_path: str, payer: Payer | None, *,
                 notifier: Notifier | None = None, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, watchdog_s: float = 0.0,
                 open_ledger: Callable[[], Ledger] | None = None,
                 publisher: LogPublisher | None = None,
                 link: ProducerLink | None = None) -> None:
        """``open_ledger``: opens the ledger with the signed log's writer (by default
        ``Ledger(ledger_path)``, without one). ``payer``: None for a producer's meter
        (``role = "producer"``), which records its rounds and pays nothing;
        ``publisher``: publishes its signed log over MQTT, woken after each round;
        ``link``: a consumer priced from its producer's signed figures (``[producer]``):
        its rounds are recorded waiting, and the link prices them."""
        self.config = config
        self.open_ledger = open_ledger or (lambda: Ledger(ledger_path))
        self.sensor = sensor
        self.ledger_path = ledger_path
        self.payer = payer
        self.notifier = notifier or Notifier()  # no address: sends nothing
        self.clock = clock
        self.wall = wall
        self.watchdog_s = watchdog_s
        self.stop = threading.Event()
        self.stats = LoopStats()
        self._rule = config.price.rule  # whole nano-units: what each round prices and logs
        self.fatal_reason = ""  # set when a part gave up: the daemon exits non-zero
        self._sensor_failing = 0
        self._over_limit = False  # a channel above meter.max_power_mw, logged once
        self._next_watchdog = 0.0  # monotonic time WATCHDOG=1 is due next
        self.producer = config.role == PRODUCER
        self.publisher = publisher
        self.link = link
        self._stepped = False  # the wall clock stepped: the round it closes is not in step
        if self.producer:
            clock_state()  # looks up libc once, here, not in the sampling loop
        if payer is not None:
            payer.on_fatal = self.fatal
        if link is not None:
            link.pricer.on_priced = self._priced

    def fatal(self, reason: str) -> None:
        """A part of the daemon cannot go on (any thread): stop, and exit non-zero."""
        if not self.fatal_reason:
            self.fatal_reason = reason
            log.critical("stopping: %s", reason)
        self.stop.set()

    def request_stop(self, *_args: object) -> None:
        """Ask the loop to stop; it does the rest. From any thread, but not from a signal
        handler (it takes the event's lock): SIGTERM goes through ``signals``."""
        self.stop.set()

    def run(self) -> None:
        """Run until ``request_stop``. Raises SensorError/LedgerError at start-up."""
        m, r = self.config.meter, self.config.round
        self.sensor.open()
        self.stop.wait(getattr(self.sensor, "warmup_s", 0.0))  # first conversion under way
        ledger = self.open_ledger()  # opened here: a bad ledger (or log key) stops start-up
        try:
            resume = ledger.load_checkpoint()
            if self.link is None and not self.producer:  # rounds an earlier link left
                price_left_waiting(ledger, self.config, self._priced)
        finally:
            ledger.close()
        recorder = Recorder(self.open_ledger, self._recorded,
                            on_fatal=self.fatal)
        # The payer signs in pure Python (PyOTA) for seconds at a time. A tick gives up
        # the GIL dozens of times (each SQLite step, each log write) and waits up to
        # the switch interval to get it back each time: at the default 5 ms, a round's
        # commit ran 80-130 ms late. At 1 ms it stays within a 50 ms sample interval.
        switch_s = sys.getswitchinterval()
        sys.setswitchinterval(min(switch_s, _SWITCH_INTERVAL_S))
        try:
            recorder.start()
            if self.publisher is not None:
                self.publisher.start()
            if self.link is not None:
                self.link.start()
            if resume is not None:
                log.info("resuming the open round from its checkpoint (%.1f s, %.1f mW·s metered)",
                         resume.duration_s, resume.consumer_mws)
            self.notifier.ready()
            log.info("metering with %s every %g s, rounds of %g s; ledger %s",
                     self.sensor.describe(), m.sample_interval_s, r.length_s, self.ledger_path)
            self._loop(recorder, resume)
        finally:
            self.notifier.stopping()
            if self.payer is not None:
                self.payer.ask_to_stop()  # it finishes its step while the last round is written
            if not recorder.stop(RECORDER_GRACE_S):
                log.error("not every round reached the ledger (given up as logged above, or"
                          " still being written after %.0f s)", RECORDER_GRACE_S)
            if self.publisher is not None:
                self.publisher.stop()  # after the last round was written: it goes out too
            if self.link is not None:
                self.link.stop()  # rounds still waiting stay so in the ledger
            if self.payer is not None and not self.payer.stop(PAYER_GRACE_S):
                log.warning("payer still busy after %.0f s; its progress is in the ledger",
                            PAYER_GRACE_S)
            self.sensor.close()
            sys.setswitchinterval(switch_s)
            st = self.stats
            log.info("sampling: %d samples taken, %d missed, %d failed; worst lateness %.1f ms",
                     st.ticks, st.missed, st.failed, st.worst_late_s * 1e3)

    def _loop(self, recorder: Recorder, resume: RoundTotals | None) -> None:
        m, r = self.config.meter, self.config.round
        start = self.clock()
        schedule = Schedule(start, m.sample_interval_s)
        meter = RoundMeter(r.length_s, start, self.wall() - start, resume=resume,
                           max_gap_s=max(10 * m.sample_interval_s, 10.0))
        next_checkpoint = start + r.checkpoint_s
        live_max_age_s = max(3 * m.sample_interval_s, 5.0)  # older: the sensor is failing
        self._next_watchdog = start
        while True:
            if self._wait_until(schedule.deadline):
                break
            now = self.clock()
            late = now - schedule.deadline
            if late > self.stats.worst_late_s:
                self.stats.worst_late_s = late
            step = meter.follow_wall(now, self.wall())
            if step:
                self._wall_stepped(step)
                self._stepped = True
            missed = schedule.advance(now)
            closed = self._sample(meter, now)
            meter.expect(1 + missed)
            self.stats.ticks += 1
            if self.stats.ticks == 1 and self.payer is not None:
                self.payer.start()  # after the first sample: PyOTA's import must not delay it
            self.stats.missed += missed
            for done in closed:
                self._close(recorder, done)
            if now >= next_checkpoint:
                recorder.checkpoint(meter.snapshot(), meter.latest(
                    now, live_max_age_s, producer_only=self.producer))
                next_checkpoint += r.checkpoint_s * ((now - next_checkpoint) // r.checkpoint_s + 1)
            if now >= self._next_watchdog:
                self._feed_watchdog(now)
        for done in meter.close_now(self.clock()):
            self._close(recorder, done)

    @staticmethod
    def _wall_stepped(step: float) -> None:
        log.info("wall clock stepped by %+.3f s (NTP synchronised, or the time was set); "
                 "the open round closes now, in the time it began under, and round times "
                 "follow the new time from the next round on; metering is not affected "
                 "(it runs on the monotonic clock)", step)

    def _wait_until(self, deadline: float) -> bool:
        """Wait for the sample due at ``deadline``, feeding the watchdog meanwhile.

        ``sample_interval_s`` may be far longer than ``WatchdogSec=`` (up to
        3600 s against 30 s): while the loop waits, ``WATCHDOG=1`` still goes out
        at half the watchdog timeout. Returns True when asked to stop.
        """
        while True:
            now = self.clock()
            if now >= deadline:
                return self.stop.is_set()
            if now >= self._next_watchdog:
                self._feed_watchdog(now)
            if self.stop.wait(min(deadline, self._next_watchdog) - now):
                return True

    def _feed_watchdog(self, now: float) -> None:
        self.notifier.watchdog()
        self._next_watchdog = now + (self.watchdog_s or 1.0)

    def _sample(self, meter: RoundMeter, now: float) -> list[RoundTotals]:
        try:
            sample = self.sensor.read(now)
            if self.producer:  # its own panel only: the other channel is not this meter's
                sample = Sample(sample.t, None, sample.producer_mw)
            sample = self._bounded(sample)
        except SensorReadError as err:
            self.stats.failed += 1
            if not self._sensor_failing:
                log.warning("sensor read failed, sample skipped (further failures are counted, "
                            "not logged): %s", err)
            self._sensor_failing += 1
            return meter.fail(now)
        if self._sensor_failing:
            log.info("sensor reading again after %d failed samples", self._sensor_failing)
            self._sensor_failing = 0
        if sample.consumer_mw is not None and sample.producer_mw is not None:
            log.debug("sample: consumer %.2f mW, producer %.2f mW",
                      sample.consumer_mw, sample.producer_mw)
        else:  # one channel out of range: metered for the other only
            log.debug("sample: consumer %s mW, producer %s mW (None: out of range)",
                      sample.consumer_mw, sample.producer_mw)
        return meter.add(sample)

    def _bounded(self, sample: Sample) -> Sample:
        """``sample`` with a channel above ``meter.max_power_mw`` left out (missing for
        that channel only, like a saturated one); the bound keeps every amount storable.

        Raises:
            ImplausibleReading: neither channel is left.
        """
        limit = self.config.meter.max_power_mw
        c, p = sample.consumer_mw, sample.producer_mw  # None: that channel out of range
        # ``not <=`` also catches NaN.
        c_over = c is not None and not abs(c) <= limit
        p_over = p is not None and not abs(p) <= limit
        if not (c_over or p_over):
            if self._over_limit:
                log.info("readings within meter.max_power_mw again")
                self._over_limit = False
            return sample
        if (c_over or c is None) and (p_over or p is None):
            raise ImplausibleReading(f"consumer {c} mW, producer {p} mW: above"
                                     f" meter.max_power_mw = {limit:g}")
        if not self._over_limit:
            log.warning("%s reads %.0f mW, above meter.max_power_mw = %g: that channel is "
                        "left out (not billed) until it reads below again",
                        "consumer" if c_over else "producer", c if c_over else p, limit)
            self._over_limit = True
        return Sample(sample.t, None if c_over else c, None if p_over else p)

    def _close(self, recorder: Recorder, done: RoundTotals) -> None:
        """Price a closed round and hand it to the recorder (the loop never waits for disk).

        A producer's round is not priced: it goes to the log with the clock's state."""
        if self.producer:
            # The round a clock step closed began under the clock before it: not in step.
            state = UNSYNCHRONIZED if self._stepped else clock_state()
            self._stepped = False
            recorder.production(done, self.config.round.length_s, state)
            return
        if self.link is not None:
            recorder.waiting(done)  # priced by the link, from the producer's figure
            return
        recorder.round(done, quote_round(done.consumer_mws, done.producer_mws,
                                         done.producer_metered_s or 0.0, self._rule))

    def _recorded(self, rec: RoundRecorded, done: RoundTotals, q: Quote | None) -> None:
        """After a round is committed (recorder thread): wake the payer, log, tell systemd."""
        self.stats.rounds += 1
        if self.publisher is not None:
            self.publisher.wake()
        if self.link is not None and q is None:
            self.link.wake()
            log.info("round %d: %.1f mW·s used over %.1f s, own producer channel avg %.1f mW;"
                     " waiting for the producer's figure for its slot", rec.round_id,
                     done.consumer_mws, done.duration_s, done.producer_avg_mw)
            return
        if self.payer is None or q is None:  # a producer's round
            log.info("round %d: produced %.1f mW·s over %.1f s (avg %.1f mW), samples %d/%d",
                     rec.round_id, done.producer_mws, done.producer_metered_s or 0.0,
                     done.producer_avg_mw, done.samples, done.expected_samples)
            self.notifier.status(f"round {rec.round_id}: produced {done.producer_mws:.1f} mW·s")
            return
        self.payer.wake()
        log.info("round %d: %.1f mW·s used over %.1f s, producer avg %.1f mW,"
                 " price %.6g IOTA/mW·s%s, owed %.3f IOTA, queued %d IOTA, carry %.3f IOTA,"
                 " samples %d/%d",
                 rec.round_id, done.consumer_mws, done.duration_s, done.producer_avg_mw, q.price,
                 " (capped: too little production)" if q.capped else "", q.owed_iota,
                 rec.queued_units, rec.carry_units, done.samples, done.expected_samples)
        self.notifier.status(f"round {rec.round_id}: price {q.price:.4g} IOTA/mW·s, "
                             f"owed {q.owed_iota:.2f} IOTA, carry {rec.carry_units:.2f} IOTA"
                             + self._payments_status())

    def _priced(self, rec: RoundRecorded, done: RoundTotals, q: Quote, link: RoundLink) -> None:
        """A waiting round was priced (the link's thread): wake the payer, log."""
        self.stats.rounds += 1
        if self.payer is not None:
            self.payer.wake()
        log.info("round %d priced from %s: producer avg %.1f mW, price %.6g IOTA/mW·s%s,"
                 " owed %.3f IOTA, queued %d IOTA, carry %.3f IOTA", rec.round_id,
                 link.priced_from.replace("_", " "),
                 average_mw(q.producer_energy_uws, q.producer_metered_us), q.price,
                 " (capped: too little production)" if q.capped else "", q.owed_iota,
                 rec.queued_units, rec.carry_units)
        self.notifier.status(f"round {rec.round_id}: price {q.price:.4g} IOTA/mW·s "
                             f"({link.priced_from.replace('_', ' ')}), owed {q.owed_iota:.2f}"
                             f" IOTA, carry {rec.carry_units:.2f} IOTA" + self._payments_status())

    def _payments_status(self) -> str:
        if self.payer is None:
            return ""
        since = self.payer.failing_since
        if since is None:
            return ""
        return (f"; payments failing since {iso(since)} ({self.payer.failures} attempts):"
                f" {self.payer.last_failure[:120]}")
