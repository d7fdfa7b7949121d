"""Days and months in the owner's time zone, as epoch-second intervals [start, end).

A local day is 23 or 25 hours long on the days daylight saving time starts or
ends; computing bounds from local midnights (``zoneinfo``) gets that right,
adding 86400 seconds would not.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_ZONEINFO_DIR = re.compile(r".*/zoneinfo/(?:posix/|right/)?(.+)$")
_MARGIN_S = 2 * 86400  # room for a local day's end and any zone's offset


def _time_t_bits() -> int:
    """32 where the C library's time_t ends in January 2038 (32-bit Raspberry Pi OS
    before Debian 13), else 64: Python converts times to local or UTC through it."""
    try:
        datetime.fromtimestamp(2**31 + _MARGIN_S, UTC)
    except (OverflowError, OSError, ValueError):
        return 32
    return 64


def time_range(time_t_bits: int) -> tuple[float, float]:
    """The epoch seconds [first, last] the API takes: from 1970 to what both time_t and
    ``datetime`` (year 9999) can show, less two days for any day's end in any zone."""
    last = 2**31 - 1 if time_t_bits == 32 else datetime(9999, 12, 31, tzinfo=UTC).timestamp()
    return 0.0, float(last - _MARGIN_S)


TIME_RANGE = time_range(_time_t_bits())


def resolve_timezone(name: str = "", environ: dict[str, str] | None = None) -> tzinfo:
    """The zone ``name``, or the system's: ``$TZ``, then /etc/localtime, else UTC.

    Raises:
        ZoneInfoNotFoundError: ``name`` is not a known zone (config validates it first).
    """
    if name:
        return ZoneInfo(name)
    env = os.environ if environ is None else environ
    candidates = [env.get("TZ", "").lstrip(":")]
    link = os.path.realpath("/etc/localtime")
    if m := _ZONEINFO_DIR.match(link):
        candidates.append(m.group(1))
    for key in candidates:
        if key:
            try:
                return ZoneInfo(key)
            except (ZoneInfoNotFoundError, ValueError):
                pass
    try:
        with open("/etc/localtime", "rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError):
        return UTC


def zone_name(tz: tzinfo) -> str:
    return getattr(tz, "key", None) or str(tz)


@dataclass(frozen=True)
class Period:
    """A local day or month: ``label`` like 2026-03-29 or 2026-03; [start, end) epoch s."""

    label: str
    start: float
    end: float

    @property
    def hours(self) -> float:
        return (self.end - self.start) / 3600


def _midnight(d: date, tz: tzinfo) -> float:
    return datetime.combine(d, time(), tzinfo=tz).timestamp()


def day(d: date, tz: tzinfo) -> Period:
    return Period(d.isoformat(), _midnight(d, tz), _midnight(d + timedelta(days=1), tz))


def month(year: int, mon: int, tz: tzinfo) -> Period:
    first = date(year, mon, 1)
    following = date(year + mon // 12, mon % 12 + 1, 1)
    return Period(f"{year:04d}-{mon:02d}", _midnight(first, tz), _midnight(following, tz))


def days_of(p: Period, tz: tzinfo) -> list[Period]:
    """The local days of a month (or the one day of a day)."""
    d = local_date(p.start, tz)
    out = []
    while (one := day(d, tz)).start < p.end:
        out.append(one)
        d += timedelta(days=1)
    return out


def local_date(ts: float, tz: tzinfo) -> date:
    return datetime.fromtimestamp(ts, tz).date()


def today(now: float, tz: tzinfo) -> Period:
    return day(local_date(now, tz), tz)


def this_month(now: float, tz: tzinfo) -> Period:
    d = local_date(now, tz)
    return month(d.year, d.month, tz)


def parse_day(text: str, tz: tzinfo, bounds: tuple[float, float] = TIME_RANGE) -> Period:
    """``YYYY-MM-DD`` -> that local day, within ``bounds`` (epoch s). Raises ValueError
    with a one-line reason."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise ValueError(f"{text!r} is not a day: use YYYY-MM-DD")
    try:
        d = date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a day of the calendar") from None
    first, last = (datetime.fromtimestamp(t, UTC).date() for t in bounds)
    if not first < d < last:
        raise ValueError(f"{text!r} is out of range: days from {first + timedelta(days=1)}"
                         f" to {last - timedelta(days=1)} on this system")
    return day(d, tz)


def parse_month(text: str, tz: tzinfo) -> Period:
    """``YYYY-MM`` -> that local month. Raises ValueError with a one-line reason."""
    m = re.fullmatch(r"(\d{4})-(\d{2})", text)
    if not m or not 1 <= int(m.group(2)) <= 12 or int(m.group(1)) < 1:
        raise ValueError(f"{text!r} is not a month: use YYYY-MM")
    return month(int(m.group(1)), int(m.group(2)), tz)


def parse_time(text: str, tz: tzinfo, bounds: tuple[float, float] = TIME_RANGE) -> float:
    """An API time: epoch seconds, or ISO 8601 (a date, or a time; local unless it
    has an offset or Z), within ``bounds`` (epoch s). Raises ValueError."""
    try:
        value = float(text)
    except ValueError:
        value = _parse_iso(text, tz)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]!r} is not a time")
    if not bounds[0] <= value <= bounds[1]:
        first, last = (datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")
                       for t in bounds)
        raise ValueError(f"{text[:40]!r} is out of range: times from {first} to {last}"
                         f" ({bounds[0]:.0f} to {bounds[1]:.0f}) on this system")
    return value


def _parse_iso(text: str, tz: tzinfo) -> float:
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text[:40]!r} is not a time: use epoch seconds or ISO 8601"
                         ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    try:
        return dt.timestamp()
    except (OverflowError, OSError, ValueError):  # beyond what time_t holds
        return math.inf if dt.year > 1970 else -math.inf
