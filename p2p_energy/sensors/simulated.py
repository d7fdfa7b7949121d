"""A deterministic stand-in for the INA3221: a sunny day that turns to dusk.

The day is compressed so that a demo shows the price move within minutes:
it starts in the morning, and each cycle of ``day_s`` seconds has a sunny
half (production rising and falling like the sun, with a passing cloud) and a
dark half (no production, so the price cap applies). The load varies slowly
around 60 mW.
"""

from __future__ import annotations

import math

from .base import Sample


class SimulatedSensor:
    """Consumer and producer power as pure functions of time since ``open``."""

    def __init__(self, day_s: float = 600.0, peak_producer_mw: float = 800.0,
                 base_consumer_mw: float = 60.0, start_phase: float = 0.1) -> None:
        self.day_s = day_s
        self.start_phase = start_phase  # 0 = sunrise, 0.25 = noon, 0.5 = dusk
        self.peak_producer_mw = peak_producer_mw
        self.base_consumer_mw = base_consumer_mw
        self._t0: float | None = None

    def open(self) -> None:
        self._t0 = None

    def read(self, t: float) -> Sample:
        if self._t0 is None:
            self._t0 = t
        x = t - self._t0
        return Sample(t, self.consumer_mw(x), self.producer_mw(x))

    def consumer_mw(self, x: float) -> float:
        """Load at ``x`` seconds: a base, a slow swing and a short-term ripple."""
        return (self.base_consumer_mw + 25.0 * math.sin(2 * math.pi * x / 97.0)
                + 5.0 * math.sin(2 * math.pi * x / 7.3))

    def producer_mw(self, x: float) -> float:
        """Panel output at ``x`` seconds: a sine arc by day, a cloud, zero by night."""
        phase = (x / self.day_s + self.start_phase) % 1.0
        if phase >= 0.5:
            return 0.0
        sun = math.sin(math.pi * phase / 0.5)
        cloud = 0.6 if 0.28 <= phase < 0.33 else 1.0
        return self.peak_producer_mw * sun * cloud

    def describe(self) -> str:
        return f"simulated sensor ({self.day_s:g} s day, peak {self.peak_producer_mw:g} mW)"

    def close(self) -> None:
        pass
