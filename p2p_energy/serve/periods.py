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


def parse_day(text: str, tz: tzinfo) -> Period:
    """``YYYY-MM-DD`` -> that local day. Raises ValueError with a one-line reason."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise ValueError(f"{text!r} is not a day: use YYYY-MM-DD")
    try:
        return day(date.fromisoformat(text), tz)
    except ValueError:
        raise ValueError(f"{text!r} is not a day of the calendar") from None


def parse_month(text: str, tz: tzinfo) -> Period:
    """``YYYY-MM`` -> that local month. Raises ValueError with a one-line reason."""
    m = re.fullmatch(r"(\d{4})-(\d{2})", text)
    if not m or not 1 <= int(m.group(2)) <= 12 or int(m.group(1)) < 1:
        raise ValueError(f"{text!r} is not a month: use YYYY-MM")
    return month(int(m.group(1)), int(m.group(2)), tz)


def parse_time(text: str, tz: tzinfo) -> float:
    """An API time: epoch seconds, or ISO 8601 (a date, or a time; local unless it
    has an offset or Z). Raises ValueError."""
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(value):
            raise ValueError(f"{text!r} is not a time")
        return value
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a time: use epoch seconds or ISO 8601") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return dt.timestamp()
