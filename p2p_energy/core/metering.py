"""Sampling schedule and energy accounting per round: pure, no I/O, no sleeps.

Times ``t`` are ``time.monotonic()`` seconds; powers are mW; energies mW·s.

Energy is the trapezoid integral of power over real elapsed time between
consecutive good samples. A round closes every ``length_s`` of elapsed time,
not every N samples: a segment that crosses a round's end is split there,
with the power at the end interpolated linearly, so every mW·s measured is
billed to exactly one round. Production below zero (reverse current through
the panel's diode, noise at night) counts as zero production.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of both channels, taken at monotonic time ``t`` (seconds).

    Power may be negative (reverse current through the panel's diode, noise at
    night); the core decides what negative production means, not the sensor.
    """

    t: float
    consumer_mw: float
    producer_mw: float


class Schedule:
    """Sample deadlines at ``start + k * interval_s``: no drift, late ticks counted.

    A tick that runs so late that later deadlines have already passed does not
    run them late: they are skipped and ``advance`` reports how many.
    """

    def __init__(self, start: float, interval_s: float) -> None:
        self.start = start
        self.interval_s = interval_s
        self.k = 0

    @property
    def deadline(self) -> float:
        """Monotonic time the current sample is due."""
        return self.start + self.k * self.interval_s

    def advance(self, now: float) -> int:
        """Move past the tick that ran at ``now``; return the deadlines missed."""
        first_future = math.floor((now - self.start) / self.interval_s) + 1
        missed = max(first_future - (self.k + 1), 0)
        self.k = max(first_future, self.k + 1)
        return missed


@dataclass(frozen=True, slots=True)
class RoundTotals:
    """Running or final totals of one round. Times are wall-clock epoch seconds.

    Each channel has its own metered time: a sample may carry one channel and
    not the other (the other out of range), so the consumer's energy covers
    ``consumer_metered_s`` and the producer's average is over
    ``producer_metered_s``. Left out (None), both equal ``metered_s``, as for
    rounds recorded before channels were metered separately.
    """

    started_at: float
    duration_s: float = 0.0  # elapsed time the round spans
    metered_s: float = 0.0  # of which covered by samples (gaps are not guessed)
    consumer_mws: float = 0.0
    producer_mws: float = 0.0
    samples: int = 0
    expected_samples: int = 0
    failed_samples: int = 0
    ended_at: float = 0.0
    consumer_metered_s: float | None = None  # covered by samples with the consumer in range
    producer_metered_s: float | None = None  # ... with the producer in range

    def __post_init__(self) -> None:
        for name in ("consumer_metered_s", "producer_metered_s"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, self.metered_s)

    @property
    def producer_avg_mw(self) -> float:
        """Time-weighted average production over the producer's metered time."""
        metered = self.producer_metered_s or 0.0
        return self.producer_mws / metered if metered > 0 else 0.0


@dataclass(slots=True)
class _Track:
    """One stream of readings: its last point, and what it adds to the open round."""

    t: float | None = None  # monotonic time of the last reading (None: none yet)
    mw: float = 0.0
    mws: float = 0.0  # energy integrated in the open round
    metered_s: float = 0.0  # time integrated in the open round

    def to(self, t: float, mw: float, max_gap_s: float) -> None:
        """Integrate (trapezoid) from the last reading to ``(t, mw)``, unless the gap is long."""
        prev = self.t
        if prev is not None and t - prev <= max_gap_s:
            dt = t - prev
            self.metered_s += dt
            self.mws += (self.mw + mw) * 0.5 * dt
        self.t, self.mw = t, mw

    def split(self, end: float, t: float, mw: float, max_gap_s: float) -> None:
        """The round ends at ``end``, before the reading ``(t, mw)``: integrate up to ``end``,
        with the power at ``end`` interpolated."""
        prev = self.t
        if prev is not None and prev < end and t > prev and t - prev <= max_gap_s:
            self.to(end, self.mw + (mw - self.mw) * (end - prev) / (t - prev), max_gap_s)

    def hold(self, t: float, max_gap_s: float) -> None:
        """Hold the last reading up to ``t`` when it is recent."""
        prev = self.t
        if prev is not None and prev < t and t - prev <= max_gap_s:
            self.to(t, self.mw, max_gap_s)

    def restart(self, mws: float = 0.0, metered_s: float = 0.0) -> None:
        """A new round: keep the last reading, start the totals again."""
        self.mws, self.metered_s = mws, metered_s


@dataclass(frozen=True, slots=True)
class LivePower:
    """The latest power reading, for display: mW, and when it was taken (epoch s)."""

    consumer_mw: float
    producer_mw: float
    sampled_at: float


@dataclass(slots=True)
class _Running:
    """The open round's counters; its energies and metered times live in the tracks."""

    started_at: float
    carried_s: float = 0.0  # elapsed time carried over from a checkpoint
    samples: int = 0
    expected_samples: int = 0
    failed_samples: int = 0


class RoundMeter:
    """Integrates samples into rounds aligned to the wall clock: round k covers the slot
    ``[k L, (k + 1) L)`` of UTC seconds (L = ``length_s``), so that two meters (the
    consumer's and the producer's) agree which round is which. The first round after
    a start is the rest of its slot; a round resumed from a checkpoint closes at its
    slot's end, or at once if that has passed while the daemon was stopped.

    ``wall_offset`` converts monotonic to wall time (``wall = t + wall_offset``).
    It is fixed, so that NTP slewing never moves a round's timestamps; a real
    step of the wall clock (the first NTP sync on a Pi without a real-time
    clock) is followed through ``follow_wall``. Metering itself only ever uses
    the monotonic ``t``. ``resume`` carries a checkpointed open round over a
    restart: it closes once its elapsed time reaches ``length_s``. Gaps between
    good readings longer than ``max_gap_s`` are not interpolated: that energy is
    unknown and is not invented.

    Each channel is integrated on its own. A channel that is None in a sample
    (out of range: its true value is known to lie outside what the chip reads)
    is missing for that channel only: the time from its last reading to its
    next one is not metered for it, rather than interpolated through a value
    known to be wrong, and the other channel is metered as usual. A failed
    sample (nothing known) is bridged like a short gap. ``metered_s`` is the
    time covered by samples at all.
    """

    def __init__(self, length_s: float, start_t: float, wall_offset: float, *,
                 max_gap_s: float, resume: RoundTotals | None = None,
                 wall_step_s: float = 1.0) -> None:
        self.length_s = length_s
        self.wall_offset = wall_offset
        self.wall_step_s = wall_step_s
        self.max_gap_s = max_gap_s
        self._consumer, self._producer, self._sampled = _Track(), _Track(), _Track()
        if resume is None:
            self._open = _Running(started_at=start_t + wall_offset)
        else:
            self._open = _Running(resume.started_at, resume.duration_s, resume.samples,
                                  resume.expected_samples, resume.failed_samples)
            self._consumer.restart(resume.consumer_mws, resume.consumer_metered_s or 0.0)
            # A checkpoint saved before production below zero counted as zero may hold
            # less than none; carried on, it would make the round's production negative.
            self._producer.restart(max(resume.producer_mws, 0.0),
                                   resume.producer_metered_s or 0.0)
            self._sampled.restart(0.0, resume.metered_s)
        # The open round spans [_span_t0, _end_t) on this process's monotonic clock.
        self._span_t0 = start_t
        self._end_t = self._next_end(start_t)
        # A round closing in another frame than today's offset (see ``_close_round``).
        self._ends_at: float | None = None
        now = start_t + wall_offset
        if resume is not None and (self._slot_end(resume.started_at) <= now
                                   or now < resume.started_at):
            # Its slot is over (or the clock is now behind it): it closes at once, as it
            # was saved, within its slot; the next round starts now.
            self._end_t = start_t
            self._ends_at = resume.started_at + resume.duration_s

    def expect(self, count: int = 1) -> None:
        """Count sample deadlines that fell in the open round (taken or not)."""
        self._open.expected_samples += count

    def follow_wall(self, t: float, wall: float) -> float:
        """Compare the wall clock ``wall`` read at monotonic ``t`` with the fixed offset.

        If it moved by more than ``wall_step_s`` (a step, not NTP slewing), the open
        round closes at ``t`` with the times of the clock it began under (so it stays
        within its slot), and the rounds after it follow the new time, in its slots.
        Returns the step in seconds (0.0: none). Two subtractions and a compare when
        nothing happened.
        """
        step = wall - t - self.wall_offset
        if -self.wall_step_s <= step <= self.wall_step_s:
            return 0.0
        if self._ends_at is None:
            self._ends_at = max(t, self._span_t0) + self.wall_offset  # the old clock's now
        self._end_t = min(self._end_t, max(t, self._span_t0))  # closes with the next sample
        self.wall_offset += step
        return step

    def _slot_end(self, wall: float) -> float:
        """The wall-clock end of the slot ``[k L, (k + 1) L)`` that holds ``wall``.

        A time within a millionth of a slot below a boundary counts as on it, so
        float rounding never makes a round of a few microseconds.
        """
        k = math.floor(wall / self.length_s + 1e-6)
        return (k + 1) * self.length_s

    def _next_end(self, t: float) -> float:
        """Monotonic time of the first slot boundary after monotonic ``t``."""
        return self._slot_end(t + self.wall_offset) - self.wall_offset

    def add(self, s: Sample) -> list[RoundTotals]:
        """Add a sample; return the rounds it closed (usually none).

        A channel that is None in ``s`` is missing from this sample only.
        """
        t, consumer, producer = s.t, s.consumer_mw, s.producer_mw
        if producer is not None and producer < 0.0:
            producer = 0.0
        gap = self.max_gap_s
        closed: list[RoundTotals] = []
        while t >= self._end_t:
            end = self._end_t
            if consumer is not None:
                self._consumer.split(end, t, consumer, gap)
            if producer is not None:
                self._producer.split(end, t, producer, gap)
            self._sampled.split(end, t, 0.0, gap)
            closed.append(self._close_round())
        if consumer is not None:
            self._consumer.to(t, consumer, gap)
        else:
            self._consumer.t = None  # out of range: nothing to integrate from
        if producer is not None:
            self._producer.to(t, producer, gap)
        else:
            self._producer.t = None
        self._sampled.to(t, 0.0, gap)
        self._open.samples += 1
        return closed

    def fail(self, t: float) -> list[RoundTotals]:
        """Count a sample that could not be taken at ``t``; close rounds that are due.

        A round that ends while the sensor is failing closes on time, holding
        the last good reading up to its end when that reading is recent.
        """
        closed = self.close_due(t)
        self._open.failed_samples += 1
        return closed

    def close_due(self, t: float) -> list[RoundTotals]:
        """Close every round whose end is at or before ``t`` without a new sample."""
        closed = []
        while t >= self._end_t:
            self._hold_to(self._end_t)
            closed.append(self._close_round())
        return closed

    def close_now(self, t: float) -> list[RoundTotals]:
        """Close the open round early at ``t`` (pro rata, on shutdown), and any due."""
        closed = self.close_due(t)
        if t > self._span_t0 or self._open.samples or self._open.carried_s > 0:
            self._hold_to(t)
            self._end_t = max(t, self._span_t0)
            closed.append(self._close_round())
        return closed

    def snapshot(self) -> RoundTotals:
        """The open round's totals up to its last integrated point (for checkpoints)."""
        upto = self._sampled.t if self._sampled.t is not None else self._span_t0
        return self._totals(max(upto - self._span_t0, 0.0))

    def latest(self, t: float, max_age_s: float, *,
               producer_only: bool = False) -> LivePower | None:
        """The last good reading of each channel (production below zero shown as zero),
        stamped with the older of the two; None unless both were read in range
        within ``max_age_s`` before ``t`` (a failing sensor, a saturated channel).
        ``producer_only``: a producer's meter, which reads no consumer (shown as 0 mW)."""
        c, p = self._consumer, self._producer
        if producer_only:
            if p.t is None or t - p.t > max_age_s:
                return None
            return LivePower(0.0, p.mw, p.t + self.wall_offset)
        if c.t is None or p.t is None or t - min(c.t, p.t) > max_age_s:
            return None
        return LivePower(c.mw, p.mw, min(c.t, p.t) + self.wall_offset)

    def _hold_to(self, t: float) -> None:
        for track in (self._consumer, self._producer, self._sampled):
            track.hold(t, self.max_gap_s)

    def _totals(self, span_s: float, ended_at: float = 0.0) -> RoundTotals:
        o, c, p = self._open, self._consumer, self._producer
        return RoundTotals(
            started_at=o.started_at, duration_s=o.carried_s + span_s,
            metered_s=self._sampled.metered_s, consumer_mws=c.mws, producer_mws=p.mws,
            samples=o.samples, expected_samples=o.expected_samples,
            failed_samples=o.failed_samples, ended_at=ended_at,
            consumer_metered_s=c.metered_s, producer_metered_s=p.metered_s)

    def _close_round(self) -> RoundTotals:
        end = self._end_t
        ended_at = end + self.wall_offset if self._ends_at is None else self._ends_at
        self._ends_at = None
        done = self._totals(end - self._span_t0, ended_at=ended_at)
        self._open = _Running(started_at=end + self.wall_offset)
        for track in (self._consumer, self._producer, self._sampled):
            track.restart()
        self._span_t0 = end
        self._end_t = self._next_end(end)
        return done
