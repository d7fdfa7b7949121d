"""TOML file -> frozen, typed ``Config``, validated once at start-up.

Every key is a field of its section's dataclass, with its default and its
validator beside it (``fields.setting``): the one place defaults are written.
``SCHEMA`` is read off the dataclasses. Every error names file, key and value in
one line (``ConfigError``), values written as TOML (``true``, ``"text"``). The
seed is never shown, and is never stored in an error.

The wallet secret comes from one of three places, read by ``load_seed()`` (the
CLI calls it only when it builds a real wallet): ``wallet.seed`` in the TOML,
the file named by ``wallet.seed_file``, or the systemd credential
``$CREDENTIALS_DIRECTORY/seed`` (``LoadCredential=seed:...`` in the unit).
A config file that holds a seed, and a seed file, must not be readable by
group or others. What a secret looks like depends on the backend: 81 trytes
for ``pyota``; a private key or mnemonic for ``iota``, checked by the function
the caller passes (this package knows no wallet code).

This package is backend-blind: what differs between wallet backends (their
defaults, the form of receiver and seed, a table of their own such as
``[wallet.iota]``) is asked of each backend's descriptor, found by name through
the ``backends`` registry.

Its modules: ``model`` (``Config``, ``SCHEMA``), one per group of sections
(``meter``, ``wallet``, ``serving``), ``fields`` (validators), ``text`` (error
lines), ``rules`` (rules across keys), ``secrets`` (seed and password files).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .fields import UnshownValueError, float_in, int_in
from .meter import AVERAGES, CONVERSION_US, SENSORS, MeterConfig, PriceConfig, RoundConfig
from .model import (
    CONSUMER,
    PRODUCER,
    SCHEMA,
    SECRET_KEYS,
    TABLE_TYPES,
    TOP_LEVEL,
    Config,
    LedgerConfig,
    LogConfig,
)
from .rules import check_together, seed_rule, with_backend_forms
from .secrets import load_mqtt_password, load_seed, refuse_if_shared, refuse_shared_seed_file
from .serving import MqttConfig, ServeConfig
from .text import HIDDEN, did_you_mean, error, key
from .wallet import TRYTE_ALPHABET, WalletConfig, backend_tables

__all__ = [
    "AVERAGES",
    "CONSUMER",
    "CONVERSION_US",
    "PRODUCER",
    "SCHEMA",
    "SECRET_KEYS",
    "SENSORS",
    "TOP_LEVEL",
    "TRYTE_ALPHABET",
    "Config",
    "ConfigError",
    "LedgerConfig",
    "LogConfig",
    "MeterConfig",
    "MqttConfig",
    "PriceConfig",
    "RoundConfig",
    "ServeConfig",
    "WalletConfig",
    "build",
    "default_state_dir",
    "float_in",
    "full_schema",
    "int_in",
    "load",
    "load_mqtt_password",
    "load_seed",
    "override",
    "require_serve",
    "seed_rule",
]


def _shown(dotted: str, value: Any) -> Any:
    return HIDDEN if dotted in SECRET_KEYS else value


def build(data: Mapping[str, Any], *, source: str = "") -> Config:
    """Validate a parsed TOML mapping into a ``Config``.

    Raises:
        ConfigError: the first problem found, naming ``source``, key and value.
    """
    sections: dict[str, Any] = {}
    for section, body in data.items():
        if section in TOP_LEVEL:  # a key above the first table, such as role
            try:
                sections[section] = TOP_LEVEL[section](body)
            except ValueError as err:
                raise error(str(err), path=source, key=key(section),
                            value=_shown(key(section), body)) from None
            continue
        if section not in SCHEMA:
            known = {**SCHEMA, **TOP_LEVEL}
            raise error(f"unknown section{did_you_mean(section, known)}",
                        path=source, key=f"[{key(section)}]")
        sections[section] = _table(section, key(section), body, SCHEMA[section], source)
    config = with_backend_forms(Config(**sections, source=source))
    check_together(config)
    return config


def _table(name: str, shown: str, body: Any, schema: Mapping[str, Any], source: str,
           kind: type | None = None) -> Any:
    """One table (``name`` as in ``TABLE_TYPES``, or of type ``kind``; ``shown`` as TOML
    writes it) -> its type."""
    if not isinstance(body, Mapping):
        # A whole section given as a value (wallet = "...") may well be the seed.
        raise error("must be a table", path=source, key=shown)
    values: dict[str, Any] = {}
    tables = backend_tables() if name == "wallet" else {}
    if tables:
        schema = {**schema, **{t.name: t.schema for t in tables.values()}}
    for name_, raw in body.items():
        dotted = f"{shown}.{key(name_)}"
        validator = schema.get(name_)
        if validator is None:
            # The value of an unknown key is not shown: it may be a misspelt seed.
            raise error(f"unknown key{did_you_mean(name_, schema)}", path=source, key=dotted)
        if name_ in tables:
            values.setdefault("tables", {})[name_] = _table(
                dotted, dotted, raw, tables[name_].schema, source, tables[name_].type)
            continue
        if isinstance(validator, Mapping):
            values[name_] = _table(f"{name}.{name_}", dotted, raw, validator, source)
            continue
        try:
            values[name_] = validator(raw)
        except ValueError as err:
            hidden = isinstance(err, UnshownValueError)
            raise error(str(err), path=source, key=dotted,
                        value=HIDDEN if hidden else _shown(dotted, raw)) from None
    return (kind or TABLE_TYPES[name])(**values)


def full_schema() -> dict[str, Any]:
    """``SCHEMA`` with each backend's own table under ``wallet``: every key there is."""
    full = dict(SCHEMA)
    full["wallet"] = {**SCHEMA["wallet"], **{t.name: dict(t.schema)
                                             for t in backend_tables().values()}}
    return full


def override(c: Config, key: str, raw: Any, *, option: str) -> Config:
    """``c`` with ``key`` (``"section.name"``) set to ``raw``, validated as a file's value is.

    For command line options such as ``--round-s``: an error names the option.

    Raises:
        ConfigError: one line naming ``option``, the key and the value.
    """
    section, name = key.split(".")
    try:
        value = SCHEMA[section][name](raw)
    except ValueError as err:  # a value that may hold a secret is not repeated
        hidden = isinstance(err, UnshownValueError)
        raise error(str(err), path=option, key=key,
                    value=HIDDEN if hidden else _shown(key, raw)) from None
    changed = dataclasses.replace(c, **{section: dataclasses.replace(getattr(c, section),
                                                                     **{name: value})})
    # The file was valid before: a rule broken now is broken by the option.
    check_together(with_backend_forms(dataclasses.replace(changed, source=option)))
    return changed


def require_serve(c: Config) -> None:
    """``p2p-energy serve`` has something to do. Raises ConfigError (one line) if not."""
    if not c.serve.enabled and not c.mqtt.enabled:
        raise error("neither [serve] nor [mqtt] is enabled: set serve.enabled = true"
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
        raise error(f"cannot read config file: {err.strerror or err}", path=source) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise error("is not UTF-8 text", path=source) from None
    except tomllib.TOMLDecodeError as err:
        raise error(f"is not valid TOML: {err}", path=source) from None
    config = build(data, source=source)
    if config.wallet.seed:
        refuse_if_shared(source, mode, "holds wallet.seed but")
    if config.wallet.seed_file:
        refuse_shared_seed_file(config)
    return config


def default_state_dir() -> Path:
    """Where ``--simulate`` keeps its ledger without a config file."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "p2p-energy"
