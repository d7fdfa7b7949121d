"""Replays a recorded trace: CSV ``t_s,consumer_mw,producer_mw``.

``t_s`` is seconds from the first row. Power between rows is interpolated
linearly; after the last row the trace starts over from the first.
"""

from __future__ import annotations

import bisect
import csv
from pathlib import Path

from ..errors import ConfigError
from .base import Sample

HEADER = ["t_s", "consumer_mw", "producer_mw"]


def load_trace(path: str, source: str = "") -> tuple[list[float], list[float], list[float]]:
    """Read and check a trace file.

    Raises:
        ConfigError: unreadable file, wrong header, a bad number, or times
            that do not start at 0 and increase.
    """
    key = "meter.replay_file"
    try:
        with Path(path).open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or "not UTF-8 text"
        raise ConfigError(f"cannot read trace: {reason}", path=source, key=key,
                          value=path) from None
    if not rows or [c.strip() for c in rows[0]] != HEADER:
        raise ConfigError("trace must start with the header t_s,consumer_mw,producer_mw",
                          path=source, key=key, value=path)
    ts: list[float] = []
    cons: list[float] = []
    prod: list[float] = []
    for line_no, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        try:
            t, c, p = (float(x) for x in row)
        except ValueError:
            raise ConfigError(f"line {line_no}: expected three numbers, got {','.join(row)!r}",
                              path=source, key=key, value=path) from None
        if (not ts and t != 0) or (ts and t <= ts[-1]):
            raise ConfigError(f"line {line_no}: t_s must start at 0 and increase",
                              path=source, key=key, value=path)
        ts.append(t)
        cons.append(c)
        prod.append(p)
    if not ts:
        raise ConfigError("trace has no rows", path=source, key=key, value=path)
    return ts, cons, prod


class ReplaySensor:
    """Plays a trace on the monotonic clock, starting at the first read."""

    def __init__(self, path: str, source: str = "") -> None:
        self.path = path
        self._ts, self._cons, self._prod = load_trace(path, source)
        self._t0: float | None = None

    def open(self) -> None:
        self._t0 = None

    def read(self, t: float) -> Sample:
        if self._t0 is None:
            self._t0 = t
        x = t - self._t0
        period = self._ts[-1]
        if period > 0:
            x %= period
        i = bisect.bisect_right(self._ts, x) - 1
        if i >= len(self._ts) - 1:
            return Sample(t, self._cons[-1], self._prod[-1])
        f = (x - self._ts[i]) / (self._ts[i + 1] - self._ts[i])
        return Sample(t, self._cons[i] + (self._cons[i + 1] - self._cons[i]) * f,
                      self._prod[i] + (self._prod[i + 1] - self._prod[i]) * f)

    def describe(self) -> str:
        return f"replay of {self.path} ({len(self._ts)} rows, {self._ts[-1]:g} s)"

    def close(self) -> None:
        pass
