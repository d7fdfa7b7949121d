"""One-line, TOML-flavoured error text: every ``ConfigError`` names file, key and value.

Values are written as TOML writes them (``true``, ``"text"``), cut at 100
characters, with anything non-printable escaped so the error stays on one line.
A value passed as ``HIDDEN`` (a secret, or beside the point) is not shown.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SHOWN_CHARS = 100  # room for a 90-tryte address in quotes
HIDDEN = object()  # "do not show a value": the value is a secret, or beside the point


def printable(text: str) -> str:
    """``text`` with every non-printable character escaped, so it stays on one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else json.dumps(c)[1:-1] if ord(c) < 0x10000
                   else f"\\U{ord(c):08X}" for c in text)


def toml(value: Any) -> str:
    """``value`` as it would be written in TOML (true, "text", [1, 2]), on one line."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = '"' + printable(value.replace("\\", "\\\\").replace('"', '\\"')) + '"'
    elif isinstance(value, float) and not math.isfinite(value):
        text = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    elif isinstance(value, list | tuple):
        text = "[" + ", ".join(toml(v) for v in value) + "]"
    elif isinstance(value, Mapping):
        text = "{" + ", ".join(f"{key(k)} = {toml(v)}" for k, v in value.items()) + "}"
    elif isinstance(value, int | float):
        text = repr(value)
    else:  # dates and times
        text = printable(value.isoformat() if hasattr(value, "isoformat") else str(value))
    if len(text) > _SHOWN_CHARS:
        text = text[:_SHOWN_CHARS - 3] + "..."
    return text


def key(part: str) -> str:
    """One part of a dotted key, quoted as TOML needs it."""
    return part if _BARE_KEY.fullmatch(part) else toml(part)


def error(reason: str, *, path: str, key: str = "", value: Any = HIDDEN) -> ConfigError:
    """A ``ConfigError`` whose one-line text shows ``value`` in TOML syntax."""
    shown = value is not HIDDEN
    err = ConfigError(reason, path=path, key=key, value=value if shown else None,
                      show_value=shown)
    where = printable(path or "<config>")
    if key:
        where += f": {key}" + (f" = {toml(value)}" if shown else "")
    err.args = (f"{where}: {printable(reason)}",)
    return err


def did_you_mean(name: str, options: Any) -> str:
    """" (did you mean ...?)" naming the option closest to a misspelt ``name``, or ""."""
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean {toml(close[0])}?)" if close else ""
