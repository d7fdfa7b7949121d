"""Line charts as SVG text: small pure functions from points to markup.

Drawn on the server, so a page shows them with JavaScript off; no library, no
fonts to load, a few kilobytes per chart. One point per round; a series longer
than ``MAX_POINTS`` is thinned to the lowest and highest value of equal runs of
points, so a spike survives. A gap in the data (the daemon was stopped) breaks
the line rather than drawing a straight one across it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from html import escape

MAX_POINTS = 2000

Point = tuple[float, float]  # (epoch seconds, value)


@dataclass(frozen=True)
class Series:
    label: str
    css: str  # CSS class of the line: its colour
    points: Sequence[Point]  # in time order
    step: bool = False  # hold each value until the next point (running totals)


@dataclass(frozen=True)
class _Frame:
    x0: float
    x1: float
    lo: float
    hi: float
    log: bool
    left: float = 58.0
    top: float = 10.0
    width: float = 640.0
    height: float = 240.0
    bottom: float = 24.0
    right: float = 10.0

    def x(self, t: float) -> float:
        span = (self.x1 - self.x0) or 1.0
        return self.left + (t - self.x0) / span * (self.width - self.left - self.right)

    def y(self, v: float) -> float:
        if self.log:
            v, lo, hi = math.log10(max(v, self.lo)), math.log10(self.lo), math.log10(self.hi)
        else:
            lo, hi = self.lo, self.hi
        h = self.height - self.top - self.bottom
        return self.top + h - (v - lo) / ((hi - lo) or 1.0) * h


def thin(points: Sequence[Point], max_points: int = MAX_POINTS) -> list[Point]:
    """At most ``max_points`` points: the min and max of each of ``max_points // 2`` runs."""
    n = len(points)
    if n <= max_points:
        return list(points)
    runs = max(max_points // 2, 1)
    out: list[Point] = []
    for r in range(runs):
        run = points[r * n // runs:(r + 1) * n // runs]
        if run:
            lo = min(run, key=lambda p: p[1])
            hi = max(run, key=lambda p: p[1])
            out.extend(sorted({lo, hi}))
    return out


def segments(points: Sequence[Point], gap_s: float | None = None) -> list[list[Point]]:
    """Split where two points are more than ``gap_s`` apart (default 3x the median step)."""
    if len(points) < 2:
        return [list(points)] if points else []
    if gap_s is None:
        steps = sorted(b[0] - a[0] for a, b in itertools.pairwise(points))
        gap_s = 3 * steps[len(steps) // 2]
    out = [[points[0]]]
    for prev, p in itertools.pairwise(points):
        if p[0] - prev[0] > gap_s:
            out.append([])
        out[-1].append(p)
    return out


def nice_ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    """Round values from <= lo to >= hi, about ``count`` steps of 1, 2, 2.5 or 5 x 10^k."""
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * 0.999)
    start = math.floor(lo / step + 1e-9) * step
    ticks = [start]
    while ticks[-1] < hi - step * 1e-9:
        ticks.append(start + len(ticks) * step)
    return ticks


def log_ticks(lo: float, hi: float) -> list[float]:
    """Powers of ten from <= lo to >= hi (both > 0)."""
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    if a == b:
        b += 1
    return [10.0 ** k for k in range(a, b + 1)]


def number(v: float) -> str:
    """A short axis label: 40M / 2.5k / 12 / 2.5 / 0.025 / 1e-06."""
    a = abs(v)
    if a == 0:
        return "0"
    if a >= 1e9:
        return f"{v / 1e9:.4g}G"
    if a >= 1e6:
        return f"{v / 1e6:.4g}M"
    if a >= 1e4:
        return f"{v / 1e3:.4g}k"
    if a >= 10:
        return f"{v:.0f}"
    if a >= 0.001:
        return f"{v:.4g}"
    return f"{v:.0e}"


# Steps between x-axis ticks on spans up to 6 hours: a minute of rounds gets ticks too.
_SHORT_STEPS_S = (10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
_MAX_TICKS = 8


def time_ticks(x0: float, x1: float, tz: tzinfo) -> list[tuple[float, str]]:
    """Local-time ticks for the x axis: seconds to hours on short spans, every 3 h on a
    day, daily on longer spans."""
    if x1 - x0 <= 6 * 3600:
        return _short_ticks(x0, x1, tz)
    span_h = (x1 - x0) / 3600
    every_h = 3 if span_h <= 36 else 6 if span_h <= 72 else 24
    every_d = 1 if span_h <= 24 * 10 else 7
    out = []
    t = math.ceil(x0 / 1800) * 1800  # half hours: zones with :30 offsets too
    while t <= x1 and len(out) < 64:
        local = datetime.fromtimestamp(t, tz)
        if local.minute == 0:
            if every_h < 24 and local.hour % every_h == 0:
                out.append((t, local.strftime("%H:%M")))
            elif every_h == 24 and local.hour == 0 and local.toordinal() % every_d == 0:
                out.append((t, local.strftime("%m-%d")))
        t += 1800
    return out


def _short_ticks(x0: float, x1: float, tz: tzinfo) -> list[tuple[float, str]]:
    """Ticks on round local times (every 10 s .. 1 h), at most ``_MAX_TICKS`` of them."""
    step = next((s for s in _SHORT_STEPS_S if (x1 - x0) / s <= _MAX_TICKS), 3600)
    fmt = "%H:%M:%S" if step < 60 else "%H:%M"
    every = min(step, 60)  # whole minutes: zones with :30 and :45 offsets too
    out = []
    t = math.ceil(x0 / every) * every
    while t <= x1:
        local = datetime.fromtimestamp(t, tz)
        if (local.hour * 3600 + local.minute * 60 + local.second) % step == 0:
            out.append((float(t), local.strftime(fmt)))
        t += every
    return out


def _y_range(values: list[float], log: bool) -> tuple[float, float, list[float]]:
    if log:
        positive = [v for v in values if v > 0] or [1.0]
        ticks = log_ticks(min(positive), max(positive))
    else:
        lo = min(min(values, default=0.0), 0.0)
        ticks = nice_ticks(lo, max(values, default=1.0))
    return ticks[0], ticks[-1], ticks


def _polyline(frame: _Frame, pts: Sequence[Point], css: str, step: bool) -> str:
    if len(pts) == 1:
        t, v = pts[0]
        return (f'<circle class="line {css}" cx="{frame.x(t):.1f}" cy="{frame.y(v):.1f}"'
                f' r="2" data-points="1"/>')
    coords = []
    prev_v = None
    for t, v in pts:
        x = frame.x(t)
        if step and prev_v is not None:
            coords.append(f"{x:.1f},{frame.y(prev_v):.1f}")
        coords.append(f"{x:.1f},{frame.y(v):.1f}")
        prev_v = v
    return (f'<polyline class="line {css}" points="{" ".join(coords)}"'
            f' data-points="{len(pts)}"/>')


def line_chart(title: str, series: Sequence[Series], *, x_range: tuple[float, float],
               tz: tzinfo, unit: str, log_y: bool = False, width: int = 640,
               height: int = 240, max_points: int = MAX_POINTS) -> str:
    """An ``<svg>`` line chart of ``series`` over ``x_range`` (epoch s), times in ``tz``.

    The SVG scales to its container's width (viewBox). Each line carries
    ``data-points`` (how many points it draws); the svg the total.
    """
    drawn = [(s, thin(s.points, max_points)) for s in series]
    values = [v for _, pts in drawn for _, v in pts if math.isfinite(v)]
    lo, hi, ticks = _y_range(values, log_y)
    f = _Frame(x_range[0], x_range[1], lo, hi, log_y, width=width, height=height)
    total = sum(len(pts) for _, pts in drawn)
    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img"'
           f' data-points="{total}" preserveAspectRatio="xMidYMid meet">',
           f"<title>{escape(title)} ({escape(unit)})</title>"]
    for v in ticks:
        y = f.y(v)
        out.append(f'<line class="grid" x1="{f.left}" x2="{width - f.right}"'
                   f' y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text class="ylabel" x="{f.left - 4}" y="{y + 4:.1f}">{number(v)}</text>')
    for t, label in time_ticks(f.x0, f.x1, tz):
        x = f.x(t)
        out.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{f.top}"'
                   f' y2="{height - f.bottom}"/>')
        out.append(f'<text class="xlabel" x="{x:.1f}" y="{height - 6}">{label}</text>')
    if not total:
        out.append(f'<text class="empty" x="{width / 2}" y="{height / 2}">no rounds in'
                   " this time</text>")
    for s, pts in drawn:
        for seg in [pts] if s.step and pts else segments(pts):
            out.append(_polyline(f, seg, s.css, s.step))
    out.append("</svg>")
    return "".join(out)
