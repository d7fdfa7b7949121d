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

from .sensors.base import Sample


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
    """Running or final totals of one round. Times are wall-clock epoch seconds."""

    started_at: float
    duration_s: float = 0.0  # elapsed time the round spans
    metered_s: float = 0.0  # of which covered by samples (gaps are not guessed)
    consumer_mws: float = 0.0
    producer_mws: float = 0.0
    samples: int = 0
    expected_samples: int = 0
    failed_samples: int = 0
    ended_at: float = 0.0

    @property
    def producer_avg_mw(self) -> float:
        """Time-weighted average production over the metered time."""
        return self.producer_mws / self.metered_s if self.metered_s > 0 else 0.0


@dataclass(frozen=True, slots=True)
class LivePower:
    """The latest power reading, for display: mW, and when it was taken (epoch s)."""

    consumer_mw: float
    producer_mw: float
    sampled_at: float


@dataclass(slots=True)
class _Running:
    """The open round's mutable totals (the hot path adds to these in place)."""

    started_at: float
    carried_s: float = 0.0  # elapsed time carried over from a checkpoint
    metered_s: float = 0.0
    consumer_mws: float = 0.0
    producer_mws: float = 0.0
    samples: int = 0
    expected_samples: int = 0
    failed_samples: int = 0

    @classmethod
    def resumed(cls, r: RoundTotals) -> _Running:
        return cls(r.started_at, r.duration_s, r.metered_s, r.consumer_mws, r.producer_mws,
                   r.samples, r.expected_samples, r.failed_samples)

    def totals(self, span_s: float, ended_at: float = 0.0) -> RoundTotals:
        return RoundTotals(self.started_at, self.carried_s + span_s, self.metered_s,
                           self.consumer_mws, self.producer_mws, self.samples,
                           self.expected_samples, self.failed_samples, ended_at)


@dataclass(slots=True)
class _Point:
    t: float
    consumer_mw: float
    producer_mw: float


class RoundMeter:
    """Integrates samples into rounds of ``length_s`` elapsed seconds.

    ``wall_offset`` converts monotonic to wall time (``wall = t + wall_offset``),
    fixed once so that round timestamps never jump with NTP. ``resume`` carries
    a checkpointed open round over a restart: it closes once its elapsed time
    reaches ``length_s``. Gaps between good samples longer than ``max_gap_s``
    are not interpolated: that energy is unknown and is not invented.
    """

    def __init__(self, length_s: float, start_t: float, wall_offset: float, *,
                 max_gap_s: float, resume: RoundTotals | None = None) -> None:
        self.length_s = length_s
        self.wall_offset = wall_offset
        self.max_gap_s = max_gap_s
        self._prev: _Point | None = None
        if resume is None:
            self._open = _Running(started_at=start_t + wall_offset)
        else:
            self._open = _Running.resumed(resume)
        # The open round spans [_span_t0, _end_t) on this process's monotonic clock.
        self._span_t0 = start_t
        self._end_t = start_t + max(length_s - self._open.carried_s, 0.0)

    def expect(self, count: int = 1) -> None:
        """Count sample deadlines that fell in the open round (taken or not)."""
        self._open.expected_samples += count

    def add(self, s: Sample) -> list[RoundTotals]:
        """Add a good sample; return the rounds it closed (usually none)."""
        point = _Point(s.t, s.consumer_mw, max(s.producer_mw, 0.0))
        closed: list[RoundTotals] = []
        while point.t >= self._end_t:
            prev = self._prev
            if prev is not None and point.t - prev.t <= self.max_gap_s and point.t > prev.t:
                f = (self._end_t - prev.t) / (point.t - prev.t)
                at_end = _Point(self._end_t,
                                prev.consumer_mw + (point.consumer_mw - prev.consumer_mw) * f,
                                prev.producer_mw + (point.producer_mw - prev.producer_mw) * f)
                self._integrate(prev, at_end)
                self._prev = at_end
            closed.append(self._close_round())
        if self._prev is not None and point.t - self._prev.t <= self.max_gap_s:
            self._integrate(self._prev, point)
        self._prev = point
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
        upto = self._prev.t if self._prev is not None else self._span_t0
        return self._open.totals(max(upto - self._span_t0, 0.0))

    def latest(self, t: float, max_age_s: float) -> LivePower | None:
        """The last good reading (production below zero shown as zero), or None if
        there is none taken within ``max_age_s`` before ``t``."""
        p = self._prev
        if p is None or t - p.t > max_age_s:
            return None
        return LivePower(p.consumer_mw, p.producer_mw, p.t + self.wall_offset)

    def _hold_to(self, t: float) -> None:
        prev = self._prev
        if prev is not None and prev.t < t and t - prev.t <= self.max_gap_s:
            held = _Point(t, prev.consumer_mw, prev.producer_mw)
            self._integrate(prev, held)
            self._prev = held

    def _integrate(self, a: _Point, b: _Point) -> None:
        dt = b.t - a.t
        o = self._open
        o.metered_s += dt
        o.consumer_mws += (a.consumer_mw + b.consumer_mw) * 0.5 * dt
        o.producer_mws += (a.producer_mw + b.producer_mw) * 0.5 * dt

    def _close_round(self) -> RoundTotals:
        end = self._end_t
        done = self._open.totals(end - self._span_t0, ended_at=end + self.wall_offset)
        self._open = _Running(started_at=end + self.wall_offset)
        self._span_t0 = end
        self._end_t = end + self.length_s
        return done
