"""TOML file -> frozen, typed ``Config``, validated once at start-up.

Every key, its type, its default and its allowed range live in ``SCHEMA``
below: that table is the one place defaults are written. Every error names
file, key and value in one line (``ConfigError``). The seed is never shown.
"""

from __future__ import annotations

import difflib
import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

SENSORS = ("ina3221", "simulated", "replay")
BACKENDS = ("pyota", "dry-run")
AVERAGES = (1, 4, 16, 64, 128, 256, 512, 1024)
CONVERSION_US = (140, 204, 332, 588, 1100, 2116, 4156, 8244)
TRYTE_ALPHABET = frozenset("9ABCDEFGHIJKLMNOPQRSTUVWXYZ")
SECRET_KEYS = frozenset({"wallet.seed"})


@dataclass(frozen=True)
class MeterConfig:
    sensor: str = "ina3221"
    i2c_bus: int = 1
    i2c_address: int = 0x40
    consumer_channel: int = 1
    producer_channel: int = 2
    shunt_ohms: tuple[float, float, float] = (0.1, 0.1, 0.1)
    sample_interval_s: float = 1.0
    replay_file: str = ""
    averages: int | str = "auto"
    bus_conversion_us: int = 1100
    shunt_conversion_us: int = 1100


@dataclass(frozen=True)
class RoundConfig:
    length_s: float = 60.0
    checkpoint_s: float = 10.0


@dataclass(frozen=True)
class PriceConfig:
    numerator: float = 10.0
    # numerator / 1 mW: below ~1 mW a 0.1-ohm INA3221 channel reads noise
    # (one shunt LSB is 40 uV / 0.1 ohm = 0.4 mA, ~1.2 mW at 3 V).
    max_price: float = 10.0


@dataclass(frozen=True)
class WalletConfig:
    backend: str = "pyota"
    node_url: str = "http://127.0.0.1:14265"
    seed_file: str = ""
    receiver: str = ""
    tag: str = "ENERGYTRADE"
    depth: int = 3
    min_weight_magnitude: int = 14
    security_level: int = 2
    start_index: int = 0
    timeout_s: float = 30.0
    local_pow: bool = False
    poll_s: float = 10.0
    promote_after_s: float = 60.0
    reattach_after_s: float = 300.0
    retry_max_s: float = 300.0
    # Kept out of repr() so that printing a Config can never show it.
    seed: str = field(default="", repr=False)


@dataclass(frozen=True)
class LedgerConfig:
    path: str = "/var/lib/p2p-energy/ledger.db"


@dataclass(frozen=True)
class Config:
    meter: MeterConfig = field(default_factory=MeterConfig)
    round: RoundConfig = field(default_factory=RoundConfig)
    price: PriceConfig = field(default_factory=PriceConfig)
    wallet: WalletConfig = field(default_factory=WalletConfig)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    source: str = ""


# -- validators: each takes the raw TOML value, returns the typed one or raises ValueError

def _int(lo: int, hi: int) -> Callable[[Any], int]:
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError("must be a whole number")
        if not lo <= v <= hi:
            raise ValueError(f"must be between {lo} and {hi}")
        return v
    return check


def _float(lo: float, hi: float, *, lo_open: bool = False) -> Callable[[Any], float]:
    def check(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ValueError("must be a number")
        v = float(v)
        if not math.isfinite(v) or v > hi or v < lo or (lo_open and v == lo):
            low = "above" if lo_open else "at least"
            raise ValueError(f"must be {low} {lo:g} and at most {hi:g}")
        return v
    return check


def _choice(options: tuple[Any, ...]) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if isinstance(v, bool) or v not in options:
            raise ValueError("must be one of " + ", ".join(repr(o) for o in options))
        return v
    return check


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError("must be a string")
    return v


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("must be true or false")
    return v


def _shunts(v: Any) -> tuple[float, float, float]:
    if not isinstance(v, list) or len(v) != 3:
        raise ValueError("must be a list of three resistances in ohms, one per channel")
    check = _float(0.0, 1000.0, lo_open=True)
    return tuple(check(x) for x in v)  # type: ignore[return-value]


def _averages(v: Any) -> int | str:
    if v == "auto":
        return v
    return _choice(AVERAGES)(v)


def _tag(v: Any) -> str:
    v = _str(v)
    if not v or len(v) > 27 or not set(v) <= TRYTE_ALPHABET:
        raise ValueError("must be 1 to 27 trytes: capital letters A-Z and 9 only")
    return v


def _seed(v: Any) -> str:
    v = _str(v)
    if v and (len(v) > 81 or not set(v) <= TRYTE_ALPHABET):
        raise ValueError("must be up to 81 trytes: capital letters A-Z and 9 only")
    return v


def _receiver(v: Any) -> str:
    v = _str(v)
    if v and (len(v) not in (81, 90) or not set(v) <= TRYTE_ALPHABET):
        raise ValueError("must be an IOTA address: 81 trytes, or 90 with its checksum (A-Z, 9)")
    return v


def _url(v: Any) -> str:
    v = _str(v)
    if not v.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return v


# section -> key -> validator. Defaults come from the dataclasses above.
SCHEMA: dict[str, dict[str, Callable[[Any], Any]]] = {
    "meter": {
        "sensor": _choice(SENSORS),
        "i2c_bus": _int(0, 255),
        "i2c_address": _int(0x40, 0x43),
        "consumer_channel": _int(1, 3),
        "producer_channel": _int(1, 3),
        "shunt_ohms": _shunts,
        "sample_interval_s": _float(0.01, 3600.0),
        "replay_file": _str,
        "averages": _averages,
        "bus_conversion_us": _choice(CONVERSION_US),
        "shunt_conversion_us": _choice(CONVERSION_US),
    },
    "round": {
        "length_s": _float(0.1, 86400.0),
        "checkpoint_s": _float(0.1, 86400.0),
    },
    "price": {
        "numerator": _float(0.0, 1e12, lo_open=True),
        "max_price": _float(0.0, 1e12, lo_open=True),
    },
    "wallet": {
        "backend": _choice(BACKENDS),
        "node_url": _url,
        "seed": _seed,
        "seed_file": _str,
        "receiver": _receiver,
        "tag": _tag,
        "depth": _int(1, 15),
        "min_weight_magnitude": _int(1, 27),
        "security_level": _int(1, 3),
        "start_index": _int(0, 2**31),
        "timeout_s": _float(0.1, 600.0),
        "local_pow": _bool,
        "poll_s": _float(0.01, 3600.0),
        "promote_after_s": _float(0.01, 86400.0),
        "reattach_after_s": _float(0.01, 86400.0),
        "retry_max_s": _float(0.01, 86400.0),
    },
    "ledger": {
        "path": _str,
    },
}

_SECTION_TYPES = {
    "meter": MeterConfig, "round": RoundConfig, "price": PriceConfig,
    "wallet": WalletConfig, "ledger": LedgerConfig,
}


def _did_you_mean(name: str, options: Any) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _shown(key: str, value: Any) -> bool:
    return key not in SECRET_KEYS


def build(data: Mapping[str, Any], *, source: str = "") -> Config:
    """Validate a parsed TOML mapping into a ``Config``.

    Raises:
        ConfigError: the first problem found, naming ``source``, key and value.
    """
    sections: dict[str, Any] = {}
    for section, body in data.items():
        if section not in SCHEMA:
            raise ConfigError(f"unknown section{_did_you_mean(section, SCHEMA)}",
                              path=source, key=f"[{section}]")
        if not isinstance(body, Mapping):
            raise ConfigError("must be a table", path=source, key=section, value=body)
        values = {}
        for key, raw in body.items():
            dotted = f"{section}.{key}"
            validator = SCHEMA[section].get(key)
            if validator is None:
                hint = _did_you_mean(key, SCHEMA[section])
                raise ConfigError(f"unknown key{hint}", path=source, key=dotted, value=raw,
                                  show_value=_shown(dotted, raw))
            try:
                values[key] = validator(raw)
            except ValueError as err:
                raise ConfigError(str(err), path=source, key=dotted, value=raw,
                                  show_value=_shown(dotted, raw)) from None
        sections[section] = _SECTION_TYPES[section](**values)
    config = Config(**sections, source=source)
    _check_together(config)
    return config


def _check_together(c: Config) -> None:
    """Rules that involve more than one key."""
    m, src = c.meter, c.source
    if m.consumer_channel == m.producer_channel:
        raise ConfigError("must differ from meter.consumer_channel", path=src,
                          key="meter.producer_channel", value=m.producer_channel)
    if m.sensor == "replay" and not m.replay_file:
        raise ConfigError('is required when meter.sensor = "replay"', path=src,
                          key="meter.replay_file", value=m.replay_file)
    if c.round.length_s < m.sample_interval_s:
        raise ConfigError(f"must be at least meter.sample_interval_s ({m.sample_interval_s:g})",
                          path=src, key="round.length_s", value=c.round.length_s)
    if c.wallet.seed and c.wallet.seed_file:
        raise ConfigError("set wallet.seed or wallet.seed_file, not both", path=src,
                          key="wallet.seed_file", value=c.wallet.seed_file)


def load(path: str | os.PathLike[str]) -> Config:
    """Read and validate a TOML config file.

    Raises:
        ConfigError: the file is unreadable, not TOML, or holds a bad value.
    """
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read config file: {err.strerror}", path=source) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError("is not UTF-8 text", path=source) from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"is not valid TOML: {err}", path=source) from None
    return build(data, source=source)


def default_state_dir() -> Path:
    """Where ``--simulate`` keeps its ledger without a config file."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "p2p-energy"
