"""TOML file -> frozen, typed ``Config``, validated once at start-up.

Every key, its type, its default and its allowed range live in ``SCHEMA``
below: that table is the one place defaults are written. Every error names
file, key and value in one line (``ConfigError``), values written as TOML
(``true``, ``"text"``). The seed is never shown, and is never stored in an error.

The wallet secret comes from one of three places, read by ``load_seed()`` (the
CLI calls it only when it builds a real wallet): ``wallet.seed`` in the TOML,
the file named by ``wallet.seed_file``, or the systemd credential
``$CREDENTIALS_DIRECTORY/seed`` (``LoadCredential=seed:...`` in the unit).
A config file that holds a seed, and a seed file, must not be readable by
group or others. What a secret looks like depends on the backend: 81 trytes
for ``pyota``; a private key or mnemonic for ``iota``, checked by the function
the caller passes (this module knows no wallet code).

This module is backend-blind: what differs between wallet backends (their
defaults, the form of receiver and seed, a table of their own such as
``[wallet.iota]``) is asked of each backend's descriptor, found by name through
the ``backends`` registry.
"""

from __future__ import annotations

import dataclasses
import difflib
import errno
import json
import math
import os
import re
import shlex
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import backends
from .core.pricing import INT64_MAX, SUMS_LAST_S, most_owed_iota_per_s, most_owed_niota
from .core.trytes import SEED_TRYTES
from .errors import ConfigError

SENSORS = ("ina3221", "simulated", "replay")
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
    # A sample above this (either channel) is counted as failed, not billed. It
    # bounds what a round can owe (see _check_amounts): an INA3221 with 0.1-ohm
    # shunts reads at most 26 V x 1.64 A = 42.6 W.
    max_power_mw: float = 100_000.0


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
    backend: str = backends.DEFAULT
    node_url: str = ""  # "": the backend's default (its descriptor's)
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
    dry_run_latency_s: float = 0.0  # backend = "dry-run": seconds each network step takes
    min_payment: int = 0  # ledger units; 0: the backend's default (its descriptor's)
    # The backends' own tables ([wallet.<name>]), by name; read as ``wallet.<name>``.
    tables: Mapping[str, Any] = field(default_factory=dict)
    # Kept out of repr() so that printing a Config can never show it.
    seed: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        name = self.backend if self.backend in backends.REGISTRY else backends.DEFAULT
        defaults = backends.backend(name)
        if not self.node_url:
            object.__setattr__(self, "node_url", defaults.node_url)
        if not self.min_payment:
            object.__setattr__(self, "min_payment", defaults.min_payment)
        # Every backend's table, as set or with its defaults (so both compare equal).
        object.__setattr__(self, "tables", {name: self.tables.get(name) or table.type()
                                            for name, table in _backend_tables().items()})

    def __getattr__(self, name: str) -> Any:
        """``wallet.<table>``: a backend's own table (``[wallet.iota]``)."""
        tables = self.__dict__.get("tables", {})
        if name in tables:
            return tables[name]
        raise AttributeError(name)


@dataclass(frozen=True)
class LedgerConfig:
    path: str = "/var/lib/p2p-energy/ledger.db"


@dataclass(frozen=True)
class ServeConfig:
    """``p2p-energy serve``: the dashboard, JSON and /metrics over HTTP."""

    enabled: bool = False
    listen: str = "127.0.0.1:8080"
    timezone: str = ""  # for days in statements and the dashboard; "" = the system's
    # Names the page may be reached by besides the listen address, localhost, this
    # machine's own names and any IP address: a Host header naming anything else is
    # refused (a web page whose name is made to point here: DNS rebinding).
    allowed_hosts: tuple[str, ...] = ()
    timeout_s: float = 15.0  # for each request, from the connection (or the last answer) on
    max_connections: int = 64  # at once; more are answered 503 at once

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) of ``listen``."""
        return _split_host_port(self.listen)


@dataclass(frozen=True)
class MqttConfig:
    """``p2p-energy serve``: the figures published to an MQTT broker for Home Assistant."""

    enabled: bool = False
    broker: str = "mqtt://127.0.0.1:1883"
    username: str = ""
    password_file: str = ""
    ca_file: str = ""  # mqtts:// only: CA certificates; "" = the system's
    topic_prefix: str = "p2p-energy"
    discovery_prefix: str = "homeassistant"
    device_id: str = ""  # "" = p2p-energy-<hostname>
    publish_s: float = 10.0

    @property
    def tls(self) -> bool:
        return self.broker.startswith("mqtts://")

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) of ``broker``; the port defaults to 1883, or 8883 for mqtts://."""
        rest = self.broker.split("://", 1)[1]
        if rest.endswith("]") or ":" not in rest.rsplit("]", 1)[-1]:
            rest += ":8883" if self.tls else ":1883"
        return _split_host_port(rest)


@dataclass(frozen=True)
class Config:
    meter: MeterConfig = field(default_factory=MeterConfig)
    round: RoundConfig = field(default_factory=RoundConfig)
    price: PriceConfig = field(default_factory=PriceConfig)
    wallet: WalletConfig = field(default_factory=WalletConfig)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    source: str = ""


# -- validators: each takes the raw TOML value, returns the typed one or raises ValueError

def int_in(lo: int, hi: int) -> Callable[[Any], int]:
    """A validator: an integer from ``lo`` to ``hi`` (for backends' own tables too)."""
    return _int(lo, hi)


def float_in(lo: float, hi: float) -> Callable[[Any], float]:
    """A validator: a number from ``lo`` to ``hi`` (for backends' own tables too)."""
    return _float(lo, hi)


def _int(lo: int, hi: int) -> Callable[[Any], int]:
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError("must be a whole number")
        if not lo <= v <= hi:
            raise ValueError(f"must be between {lo} and {hi}")
        return v
    return check


def _i2c_address(v: Any) -> int:
    # TOML turns 0x41 into 65, so say the rule (and the value) in hex.
    rule = "must be 0x40, 0x41, 0x42 or 0x43 (as set by the A0 pin), without quotes"
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(rule)
    if not 0x40 <= v <= 0x43:
        raise ValueError(rule + (f"; this is 0x{v:02x}" if v >= 0 else ""))
    return v


def _float(lo: float, hi: float, *, lo_open: bool = False) -> Callable[[Any], float]:
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


def _choice(options: tuple[Any, ...]) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if isinstance(v, bool) or v not in options:
            raise ValueError("must be one of " + ", ".join(_toml(o) for o in options))
        return v
    return check


def _backend(v: Any) -> str:
    """A registered backend's name (the registry as it is now, not at import)."""
    return _choice(backends.names())(v)


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


_SEED_RULE = (f"must be exactly {SEED_TRYTES} trytes (capital letters A-Z and 9);"
              " pad a shorter seed with 9s on the right, which IOTA treats as the same seed")


def _tryte_seed(v: Any) -> str:
    # "" means "not set here": the seed then comes from seed_file or the credential.
    v = _str(v)
    if v and (len(v) != SEED_TRYTES or not set(v) <= TRYTE_ALPHABET):
        raise ValueError(_SEED_RULE)
    return v


def _ledger_path(v: Any) -> str:
    # SQLite keeps nothing for "" (a temporary file) or ":memory:", and may read
    # "file:..." as a URI naming either: a ledger must be a file that stays.
    v = _str(v)
    if not v.strip():
        raise ValueError(f"is empty: give the ledger file's path, e.g. {_toml(LedgerConfig.path)}")
    if v == ":memory:":
        raise ValueError("is SQLite's in-memory database, which keeps nothing: give a file path")
    if v.startswith("file:"):
        raise ValueError("is an SQLite URI: give a plain file path")
    return v


class _UnshownValueError(ValueError):
    """A bad value that the error must not repeat (it may hold a password or a token)."""


def _refuse_url_secrets(v: str, instead: str) -> None:
    """Refuse a URL that carries a credential (``user:password@``) or a query or fragment
    (``?apikey=...``): such URLs end up in logs, errors and pages. The error hides the value.
    """
    rest = v.split("://", 1)[-1]
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" in netloc:
        raise _UnshownValueError(f"must not hold a user name or password (user:password@),"
                                 f" which would show in logs and pages: {instead}")
    if "?" in rest or "#" in rest:
        raise _UnshownValueError(f"must not hold a query (?...) or fragment (#...), which"
                                 f" may carry a token and would show in logs and pages: {instead}")


def _url(v: Any) -> str:
    """An http(s) URL without credentials, query or fragment: every URL the config takes."""
    v = _str(v)
    if not v.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    _refuse_url_secrets(v, "give the node's plain URL, e.g. \"https://node.example.org:14265\"")
    return v


def _split_host_port(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6 address]:port`` -> (host, port). Raises ValueError."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("must be host:port, e.g. \"127.0.0.1:8080\" or \"[::1]:8080\"")
    return host, int(port)


_HOST_NAME = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*\.?")


def _host_names(v: Any) -> tuple[str, ...]:
    """Host names the dashboard may be reached by, lowercase, e.g. ["meter.lan"]."""
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ValueError('must be a list of host names, e.g. ["meter.lan"]')
    names = tuple(x.strip().lower() for x in v)
    for name in names:
        if len(name) > 253 or not _HOST_NAME.fullmatch(name):
            raise ValueError(f"{_toml(name)} is not a host name: letters, digits, - and dots,"
                             ' without a port or scheme, e.g. "meter.lan"')
    return names


def _listen(v: Any) -> str:
    _split_host_port(_str(v))
    return v


_BROKER_RULE = "must be mqtt://host[:port] or mqtts://host[:port]"


def _broker(v: Any) -> str:
    v = _str(v)
    scheme, sep, rest = v.partition("://")
    if not sep or scheme not in ("mqtt", "mqtts"):
        raise ValueError(_BROKER_RULE)
    _refuse_url_secrets(v, "give mqtt://host[:port], the user name in mqtt.username and the"
                           " password in a file named by mqtt.password_file")
    if not rest or "/" in rest:
        raise ValueError(_BROKER_RULE)
    try:
        MqttConfig(broker=v).address  # noqa: B018 (validates the port)
    except ValueError:
        raise ValueError(f"{_BROKER_RULE}, the port a number up to 65535") from None
    return v


def _timezone(v: Any) -> str:
    v = _str(v)
    if v:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("is not a known time zone: use a name like \"Europe/Berlin\""
                             " (see timedatectl list-timezones), or \"\" for the system's"
                             ) from None
    return v


def _topic(v: Any) -> str:
    v = _str(v)
    if not v or set(v) & set("+#\0") or v.startswith("/") or v.endswith("/"):
        raise ValueError("must be an MQTT topic without + or #, not starting or ending in /")
    return v


def _device_id(v: Any) -> str:
    v = _str(v)
    if v and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", v):
        raise ValueError("must be 1 to 64 letters, digits, _ or -")
    return v


# section -> key -> validator (or a nested table's own schema). Defaults come from
# the dataclasses above.
SCHEMA: dict[str, dict[str, Any]] = {
    "meter": {
        "sensor": _choice(SENSORS),
        "i2c_bus": _int(0, 255),
        "i2c_address": _i2c_address,
        "consumer_channel": _int(1, 3),
        "producer_channel": _int(1, 3),
        "shunt_ohms": _shunts,
        "sample_interval_s": _float(0.01, 3600.0),
        "replay_file": _str,
        "averages": _averages,
        "bus_conversion_us": _choice(CONVERSION_US),
        "shunt_conversion_us": _choice(CONVERSION_US),
        "max_power_mw": _float(1.0, 1e9),
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
        "backend": _backend,
        "node_url": _url,
        "seed": _str,  # its form depends on the backend: checked with it
        "seed_file": _str,
        "receiver": _str,  # its form is the backend's: checked with it
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
        "dry_run_latency_s": _float(0.0, 600.0),
        "min_payment": _int(1, 10**15),
        # and each backend's own table, from its descriptor (``_backend_tables``)
    },
    "ledger": {
        "path": _ledger_path,
    },
    "serve": {
        "enabled": _bool,
        "listen": _listen,
        "timezone": _timezone,
        "allowed_hosts": _host_names,
        "timeout_s": _float(1.0, 300.0),
        "max_connections": _int(1, 4096),
    },
    "mqtt": {
        "enabled": _bool,
        "broker": _broker,
        "username": _str,
        "password_file": _str,
        "ca_file": _str,
        "topic_prefix": _topic,
        "discovery_prefix": _topic,
        "device_id": _device_id,
        "publish_s": _float(0.1, 3600.0),
    },
}

_TABLE_TYPES: dict[str, type] = {
    "meter": MeterConfig, "round": RoundConfig, "price": PriceConfig,
    "wallet": WalletConfig, "ledger": LedgerConfig,
    "serve": ServeConfig, "mqtt": MqttConfig,
}


# -- one-line, TOML-flavoured error text

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SHOWN_CHARS = 100  # room for a 90-tryte address in quotes
_HIDDEN = object()  # "do not show a value": the value is a secret, or beside the point


def _printable(text: str) -> str:
    """``text`` with every non-printable character escaped, so it stays on one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else json.dumps(c)[1:-1] if ord(c) < 0x10000
                   else f"\\U{ord(c):08X}" for c in text)


def _toml(value: Any) -> str:
    """``value`` as it would be written in TOML (true, "text", [1, 2]), on one line."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = '"' + _printable(value.replace("\\", "\\\\").replace('"', '\\"')) + '"'
    elif isinstance(value, float) and not math.isfinite(value):
        text = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    elif isinstance(value, list | tuple):
        text = "[" + ", ".join(_toml(v) for v in value) + "]"
    elif isinstance(value, Mapping):
        text = "{" + ", ".join(f"{_key(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    elif isinstance(value, int | float):
        text = repr(value)
    else:  # dates and times
        text = _printable(value.isoformat() if hasattr(value, "isoformat") else str(value))
    if len(text) > _SHOWN_CHARS:
        text = text[:_SHOWN_CHARS - 3] + "..."
    return text


def _key(part: str) -> str:
    return part if _BARE_KEY.fullmatch(part) else _toml(part)


def _error(reason: str, *, path: str, key: str = "", value: Any = _HIDDEN) -> ConfigError:
    """A ``ConfigError`` whose one-line text shows ``value`` in TOML syntax."""
    shown = value is not _HIDDEN
    err = ConfigError(reason, path=path, key=key, value=value if shown else None,
                      show_value=shown)
    where = _printable(path or "<config>")
    if key:
        where += f": {key}" + (f" = {_toml(value)}" if shown else "")
    err.args = (f"{where}: {_printable(reason)}",)
    return err


def _did_you_mean(name: str, options: Any) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean {_toml(close[0])}?)" if close else ""


def _shown(key: str, value: Any) -> Any:
    return _HIDDEN if key in SECRET_KEYS else value


def build(data: Mapping[str, Any], *, source: str = "") -> Config:
    """Validate a parsed TOML mapping into a ``Config``.

    Raises:
        ConfigError: the first problem found, naming ``source``, key and value.
    """
    sections: dict[str, Any] = {}
    for section, body in data.items():
        if section not in SCHEMA:
            raise _error(f"unknown section{_did_you_mean(section, SCHEMA)}",
                         path=source, key=f"[{_key(section)}]")
        sections[section] = _table(section, _key(section), body, SCHEMA[section], source)
    config = _with_backend_forms(Config(**sections, source=source))
    _check_together(config)
    return config


def _table(name: str, shown: str, body: Any, schema: Mapping[str, Any], source: str,
           kind: type | None = None) -> Any:
    """One table (``name`` as in ``_TABLE_TYPES``, or of type ``kind``; ``shown`` as TOML
    writes it) -> its type."""
    if not isinstance(body, Mapping):
        # A whole section given as a value (wallet = "...") may well be the seed.
        raise _error("must be a table", path=source, key=shown)
    values: dict[str, Any] = {}
    tables = _backend_tables() if name == "wallet" else {}
    if tables:
        schema = {**schema, **{t.name: t.schema for t in tables.values()}}
    for key, raw in body.items():
        dotted = f"{shown}.{_key(key)}"
        validator = schema.get(key)
        if validator is None:
            # The value of an unknown key is not shown: it may be a misspelt seed.
            raise _error(f"unknown key{_did_you_mean(key, schema)}", path=source, key=dotted)
        if key in tables:
            values.setdefault("tables", {})[key] = _backend_table(tables[key], dotted, raw,
                                                                  source)
            continue
        if isinstance(validator, Mapping):
            values[key] = _table(f"{name}.{key}", dotted, raw, validator, source)
            continue
        try:
            values[key] = validator(raw)
        except ValueError as err:
            hidden = isinstance(err, _UnshownValueError)
            raise _error(str(err), path=source, key=dotted,
                         value=_HIDDEN if hidden else _shown(dotted, raw)) from None
    return (kind or _TABLE_TYPES[name])(**values)


def full_schema() -> dict[str, Any]:
    """``SCHEMA`` with each backend's own table under ``wallet``: every key there is."""
    full = dict(SCHEMA)
    full["wallet"] = {**SCHEMA["wallet"], **{t.name: dict(t.schema)
                                             for t in _backend_tables().values()}}
    return full


def _backend_tables() -> dict[str, Any]:
    """Each backend's own table (``wallet.base.Table``), by table name."""
    return {d.table.name: d.table for d in backends.all_backends() if d.table is not None}


def _backend_table(table: Any, shown: str, body: Any, source: str) -> Any:
    """A backend's ``[wallet.<name>]`` -> its dataclass, validated as any table is."""
    return _table(shown, shown, body, table.schema, source, table.type)


def _check_together(c: Config) -> None:
    """Rules that involve more than one key."""
    m, src = c.meter, c.source
    if m.consumer_channel == m.producer_channel:
        raise _error("must differ from meter.consumer_channel", path=src,
                     key="meter.producer_channel", value=m.producer_channel)
    if m.sensor == "replay" and not m.replay_file:
        raise _error('is required when meter.sensor = "replay"', path=src,
                     key="meter.replay_file", value=m.replay_file)
    if c.round.length_s < m.sample_interval_s:
        raise _error(f"must be at least meter.sample_interval_s ({m.sample_interval_s:g})",
                     path=src, key="round.length_s", value=c.round.length_s)
    if c.wallet.seed and c.wallet.seed_file:
        raise _error("set wallet.seed or wallet.seed_file, not both", path=src,
                     key="wallet.seed_file",
                     value=_file_value(_seed_file_path(c), c.wallet.seed_file))
    if c.mqtt.password_file and not c.mqtt.username:
        raise _error("needs mqtt.username (MQTT sends no password without a user name)",
                     path=src, key="mqtt.password_file",
                     value=_file_value(_beside_config(c, c.mqtt.password_file),
                                       c.mqtt.password_file))
    if c.mqtt.ca_file and not c.mqtt.tls:
        raise _error('is only used with broker = "mqtts://..."', path=src,
                     key="mqtt.ca_file", value=c.mqtt.ca_file)
    _check_amounts(c)


def _with_backend_forms(c: Config) -> Config:
    """``c`` with the receiver and seed in the backend's form (its descriptor's rules).

    Raises:
        ConfigError: a receiver or seed of a form the backend does not take.
    """
    w, src = c.wallet, c.source
    backend = backends.backend(w.backend)
    try:
        receiver = backend.receiver(w.receiver) if w.receiver else ""
    except ValueError as err:
        raise _error(str(err), path=src, key="wallet.receiver", value=w.receiver) from None
    rule = backend.seed_rule(w.seed) if w.seed else ""
    if rule:
        raise _error(rule, path=src, key="wallet.seed")
    if receiver == w.receiver:
        return c
    return dataclasses.replace(c, wallet=dataclasses.replace(w, receiver=receiver))


def seed_rule(seed: str) -> str:
    """"" for a legacy seed given in ``wallet.seed`` (or none), else the rule it breaks."""
    try:
        _tryte_seed(seed)
    except ValueError as err:
        return str(err)
    return ""


def _check_amounts(c: Config) -> None:
    """Every amount the ledger stores, and every sum of them, must fit SQLite's INTEGER.

    One round owes at most max_power_mw x length_s x max_price; whole IOTA paid
    over a century of such rounds must fit too. (The total owed in nano-IOTA is
    kept as exact decimal text, so it has no bound.)
    """
    m, p, src = c.meter, c.price, c.source
    hint = "lower price.max_price, round.length_s or meter.max_power_mw"
    per_round = most_owed_niota(m.max_power_mw, c.round.length_s, p.max_price)
    if per_round > INT64_MAX:
        raise _error(f"with meter.max_power_mw = {m.max_power_mw:g} and round.length_s ="
                     f" {c.round.length_s:g}, one round could owe {per_round:.3g} nano-IOTA,"
                     f" more than the ledger holds ({INT64_MAX:.3g}): {hint}", path=src,
                     key="price.max_price", value=p.max_price)
    per_century = most_owed_iota_per_s(m.max_power_mw, p.max_price) * SUMS_LAST_S
    if per_century > INT64_MAX:
        raise _error(f"with meter.max_power_mw = {m.max_power_mw:g}, a century of rounds"
                     f" could owe {per_century:.3g} IOTA, more than the ledger's sums hold"
                     f" ({INT64_MAX:.3g}): {hint}", path=src, key="price.max_price",
                     value=p.max_price)


def override(c: Config, key: str, raw: Any, *, option: str) -> Config:
    """``c`` with ``key`` (``"section.name"``) set to ``raw``, validated as a file's value is.

    For command line options such as ``--round-s``: an error names the option.

    Raises:
        ConfigError: one line naming ``option``, the key and the value.
    """
    section, name = key.split(".")
    try:
        value = SCHEMA[section][name](raw)
    except ValueError as err:
        raise _error(str(err), path=option, key=key, value=raw) from None
    changed = dataclasses.replace(c, **{section: dataclasses.replace(getattr(c, section),
                                                                     **{name: value})})
    # The file was valid before: a rule broken now is broken by the option.
    _check_together(_with_backend_forms(dataclasses.replace(changed, source=option)))
    return changed


def require_serve(c: Config) -> None:
    """``p2p-energy serve`` has something to do. Raises ConfigError (one line) if not."""
    if not c.serve.enabled and not c.mqtt.enabled:
        raise _error("neither [serve] nor [mqtt] is enabled: set serve.enabled = true"
                     " (dashboard, /metrics) or mqtt.enabled = true (Home Assistant)",
                     path=c.source)


def load(path: str | os.PathLike[str]) -> Config:
    """Read and validate a TOML config file.

    Raises:
        ConfigError: the file is unreadable, not TOML, or holds a bad value; or it
            holds ``wallet.seed``, or names a ``wallet.seed_file``, that group or
            others may read (whatever the backend).
    """
    source = str(path)
    try:
        with open(path, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            raw = f.read()
    except OSError as err:
        raise _error(f"cannot read config file: {err.strerror or err}", path=source) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise _error("is not UTF-8 text", path=source) from None
    except tomllib.TOMLDecodeError as err:
        raise _error(f"is not valid TOML: {err}", path=source) from None
    config = build(data, source=source)
    if config.wallet.seed:
        _refuse_if_shared(source, mode, "holds wallet.seed but")
    if config.wallet.seed_file:
        _refuse_shared_seed_file(config)
    return config


# -- the seed


def _refuse_if_shared(path: str, mode: int, what: str, *, source: str = "", key: str = "",
                      value: Any = _HIDDEN) -> None:
    """Raise if the file ``path``, which holds the seed, is readable by group or others."""
    if not mode & (stat.S_IRGRP | stat.S_IROTH):
        return
    who = {stat.S_IRGRP: "group", stat.S_IROTH: "others"}.get(
        mode & (stat.S_IRGRP | stat.S_IROTH), "group and others")
    raise _error(f"{what} is readable by {who} (mode {stat.S_IMODE(mode):04o}):"
                 f" run chmod 600 {shlex.quote(path)}", path=source or path, key=key, value=value)


def _file_value(path: str, value: str) -> Any:
    """``value`` of a secret's ``*_file`` key, as an error may show it: only if ``path``
    exists. A name that is no file may be the secret itself, put in the wrong key."""
    return value if os.path.lexists(path) else _HIDDEN


_UNSHOWN_HINT = (" (the value is not shown: a name that is no file may be the secret itself,"
                 " put in the wrong key)")


def _seed_file_path(config: Config) -> str:
    """``wallet.seed_file`` as a path: relative to the config file's folder."""
    path = Path(config.wallet.seed_file).expanduser()
    if not path.is_absolute() and config.source:
        path = Path(config.source).parent / path
    return str(path)


def _refuse_shared_seed_file(config: Config) -> None:
    """Refuse a seed file group or others may read, whatever wallet will (or won't) read it.

    A file that cannot be looked at, or is no regular file, is left to
    ``load_seed``, which names the problem when a wallet needs the seed.
    """
    path = _seed_file_path(config)
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if not stat.S_ISREG(mode):
        return
    what = "seed file" + (f" {path}" if path != config.wallet.seed_file else "")
    _refuse_if_shared(path, mode, what, source=config.source, key="wallet.seed_file",
                      value=config.wallet.seed_file)


def load_seed(config: Config, *, environ: Mapping[str, str] | None = None,
              check: Callable[[str], object] | None = None) -> str:
    """The wallet secret, from the first place that has one.

    Without ``check`` it must be a seed of 81 trytes. ``check`` (the backend's
    parser, e.g. of an ``iotaprivkey``) raises ``ValueError`` saying what is wrong
    with the text, never repeating it; surrounding whitespace is removed first.

    1. ``wallet.seed`` in the config (``load()`` already checked the file mode);
    2. the file ``wallet.seed_file`` (relative to the config file's folder);
       whitespace around the seed is ignored, and the file must not be
       readable by group or others;
    3. the systemd credential ``$CREDENTIALS_DIRECTORY/seed``.

    Call it once at start-up, and only for a wallet that signs (not dry-run).

    Raises:
        ConfigError: no seed anywhere, a file that cannot be read, is shared,
            or does not hold 81 trytes. The message never contains the seed.
    """
    env = os.environ if environ is None else environ
    w = config.wallet
    if w.seed:
        if check is not None:
            try:
                check(w.seed.strip())
            except ValueError as err:
                raise _error(str(err), path=config.source, key="wallet.seed") from None
            return w.seed.strip()
        return w.seed
    if w.seed_file:
        path = _seed_file_path(config)
        return _read_seed(path, source=config.source, key="wallet.seed_file",
                          value=_file_value(path, w.seed_file), check=check)
    creds = env.get("CREDENTIALS_DIRECTORY", "")
    if creds:
        # systemd made this file for us, owner-only plus an ACL for the service
        # user; the ACL mask shows up as group bits, so the mode is not checked.
        return _read_seed(os.path.join(creds, "seed"), check=check)
    raise _error("no seed: set wallet.seed_file, or run under systemd with"
                 " LoadCredential=seed:/etc/p2p-energy/seed", path=config.source,
                 key="wallet.seed")


_SEED_FILE_MAX_BYTES = 4096


def _read_at_most(fd: int, size: int) -> bytes:
    chunks = []
    while size > 0 and (chunk := os.read(fd, size)):
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _read_secret(path: str, what: str, fail: Callable[[str], ConfigError], *, source: str,
                 key: str, value: Any, missing_hint: str = "") -> bytes:
    """The bytes of a small secret file (at most ``_SEED_FILE_MAX_BYTES`` + 1 of them).

    With ``key`` the file must not be readable by group or others; without, it is
    a systemd credential, whose mode is systemd's. Raises ``fail(reason)``.
    """
    try:
        # O_NONBLOCK: a FIFO or device named by mistake must not hang start-up.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as err:
        hint = missing_hint if err.errno == errno.ENOENT else ""
        if key and value is _HIDDEN:
            hint += _UNSHOWN_HINT
        raise fail(f"cannot read {what}: {err.strerror or err}{hint}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise fail(f"{what} is not a regular file")
        if key:
            _refuse_if_shared(path, mode, what, source=source, key=key, value=value)
        return _read_at_most(fd, _SEED_FILE_MAX_BYTES + 1)
    except OSError as err:
        raise fail(f"cannot read {what}: {err.strerror or err}") from None
    finally:
        os.close(fd)


def _read_seed(path: str, *, source: str = "", key: str = "", value: Any = _HIDDEN,
               check: Callable[[str], object] | None = None) -> str:
    """Read and check one seed file; its contents never reach an error.

    With ``key`` (a ``wallet.seed_file``) errors name the config file, the key and
    its value, and the file's mode is checked. Without, ``path`` is a systemd
    credential: systemd makes it owner-only plus an ACL for the service user, and
    the ACL mask shows up as group bits, so its mode is not checked.
    """
    def fail(reason: str) -> ConfigError:
        if key:
            return _error(reason, path=source, key=key, value=value)
        return _error(reason, path=path)

    # Name the file unless the error already shows it (as the path, or the key's value).
    what = "seed file" if key else "seed credential"
    if key and value is not _HIDDEN and path != value:
        what += f" {path}"
    raw = _read_secret(path, what, fail, source=source, key=key, value=value,
                       missing_hint="" if key else
                       " (the unit needs LoadCredential=seed:/etc/p2p-energy/seed)")
    if check is not None:
        return _checked_secret(raw, what, check, fail)
    try:
        seed = _tryte_seed(raw.decode("ascii").strip()) \
            if len(raw) <= _SEED_FILE_MAX_BYTES else None
    except (UnicodeDecodeError, ValueError):
        seed = None
    if seed is None:
        raise fail(f"{what} does not hold a seed: {_SEED_RULE}")
    if not seed:
        raise fail(f"{what} is empty")
    return seed


def _checked_secret(raw: bytes, what: str, check: Callable[[str], object],
                    fail: Callable[[str], ConfigError]) -> str:
    """A secret file's text, as the backend's ``check`` accepts it."""
    if len(raw) > _SEED_FILE_MAX_BYTES:
        raise fail(f"{what} is larger than {_SEED_FILE_MAX_BYTES} bytes: not a key")
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise fail(f"{what} is not UTF-8 text") from None
    if not text:
        raise fail(f"{what} is empty")
    try:
        check(text)
    except ValueError as err:
        raise fail(f"{what} {err}") from None
    return text


def _beside_config(config: Config, name: str) -> str:
    """A file named in the config: relative to the config file's folder unless absolute."""
    path = Path(name).expanduser()
    if not path.is_absolute() and config.source:
        path = Path(config.source).parent / path
    return str(path)


def load_mqtt_password(config: Config, *, environ: Mapping[str, str] | None = None) -> str:
    """The MQTT password ("" for none), from the first place that has one.

    1. the file ``mqtt.password_file`` (relative to the config file's folder
       unless absolute), which must not be readable by group or others;
    2. with ``mqtt.username`` set, the systemd credential
       ``$CREDENTIALS_DIRECTORY/mqtt-password``, if the unit loads one.

    Whitespace around the password is ignored.

    Raises:
        ConfigError: the file cannot be read, is shared, or is empty. The message
            never contains the password.
    """
    m = config.mqtt
    env = os.environ if environ is None else environ
    if m.password_file:
        path = _beside_config(config, m.password_file)
        return _read_password(path, source=config.source, key="mqtt.password_file",
                              value=_file_value(path, m.password_file))
    creds = env.get("CREDENTIALS_DIRECTORY", "")
    credential = os.path.join(creds, "mqtt-password")
    if m.username and creds and os.path.exists(credential):
        return _read_password(credential)  # systemd's copy: its mode is not ours to check
    return ""


def _read_password(path: str, *, source: str = "", key: str = "",
                   value: Any = _HIDDEN) -> str:
    """Read one password file; its contents never reach an error. With ``key`` (a
    ``mqtt.password_file``) errors name config file, key and value, and the mode is
    checked; without, ``path`` is a systemd credential."""
    def fail(reason: str) -> ConfigError:
        if key:
            return _error(reason, path=source, key=key, value=value)
        return _error(reason, path=path)

    raw = _read_secret(path, "password file", fail, source=source, key=key, value=value)
    try:
        password = raw.decode("utf-8").strip() if len(raw) <= _SEED_FILE_MAX_BYTES else ""
    except UnicodeDecodeError:
        password = ""
    if not password:
        raise fail("password file is empty, too long or not UTF-8 text")
    return password


def default_state_dir() -> Path:
    """Where ``--simulate`` keeps its ledger without a config file."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "p2p-energy"
