"""Validators: each takes the raw TOML value, returns the typed one or raises ValueError.

The generic ones live here (numbers, choices, strings, URLs); a section's own
validators live beside its dataclass. ``setting`` ties a default and its
validator to one dataclass field, so each key is named once.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from typing import Any

from .text import toml


def setting(default: Any, check: Callable[[Any], Any], *, secret: bool = False) -> Any:
    """A dataclass field: its default, and the validator of its TOML value.

    A ``secret`` is kept out of ``repr()`` (printing a Config can never show it)
    and out of every error.
    """
    return dataclasses.field(default=default, repr=not secret,
                             metadata={"check": check, "secret": secret})


def schema_of(kind: type) -> dict[str, Callable[[Any], Any]]:
    """key -> validator of every ``setting`` of the dataclass ``kind``, in field order."""
    return {f.name: f.metadata["check"] for f in dataclasses.fields(kind)
            if "check" in f.metadata}


class UnshownValueError(ValueError):
    """A bad value that the error must not repeat (it may hold a password or a token)."""


def int_in(lo: int, hi: int) -> Callable[[Any], int]:
    """A validator: an integer from ``lo`` to ``hi`` (for backends' own tables too)."""
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError("must be a whole number")
        if not lo <= v <= hi:
            raise ValueError(f"must be between {lo} and {hi}")
        return v
    return check


def float_in(lo: float, hi: float, *, lo_open: bool = False) -> Callable[[Any], float]:
    """A validator: a number from ``lo`` (or above it) to ``hi`` (for backends' tables too)."""
    def check(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ValueError("must be a number")
        try:
            v = float(v)
        except OverflowError:  # a whole number of hundreds of digits: TOML allows it
            v = math.inf if v > 0 else -math.inf
        if not math.isfinite(v) or v > hi or v < lo or (lo_open and v == lo):
            low = "above" if lo_open else "at least"
            raise ValueError(f"must be {low} {lo:g} and at most {hi:g}")
        return v
    return check


def choice(options: tuple[Any, ...]) -> Callable[[Any], Any]:
    """A validator: one of ``options`` (never a boolean, though ``True == 1``)."""
    def check(v: Any) -> Any:
        if isinstance(v, bool) or v not in options:
            raise ValueError("must be one of " + ", ".join(toml(o) for o in options))
        return v
    return check


def string(v: Any) -> str:
    """Any text."""
    if not isinstance(v, str):
        raise ValueError("must be a string")
    return v


def boolean(v: Any) -> bool:
    """``true`` or ``false``."""
    if not isinstance(v, bool):
        raise ValueError("must be true or false")
    return v


def refuse_url_secrets(v: str, instead: str) -> None:
    """Refuse a URL that carries a credential (``user:password@``) or a query or fragment
    (``?apikey=...``): such URLs end up in logs, errors and pages. The error hides the value.
    """
    rest = v.split("://", 1)[-1]
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" in netloc:
        raise UnshownValueError(f"must not hold a user name or password (user:password@),"
                                f" which would show in logs and pages: {instead}")
    if "?" in rest or "#" in rest:
        raise UnshownValueError(f"must not hold a query (?...) or fragment (#...), which"
                                f" may carry a token and would show in logs and pages: {instead}")


def split_host_port(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6 address]:port`` -> (host, port). Raises ValueError."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("must be host:port, e.g. \"127.0.0.1:8080\" or \"[::1]:8080\"")
    return host, int(port)
