"""The frozen ``Config``, its ``[ledger]`` section, and ``SCHEMA`` derived from them.

Each key is named once: as a field of its section's dataclass, with its default
and validator (``fields.setting``). ``SCHEMA`` (section -> key -> validator) is
read off the dataclasses.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..core.note import check_key_name
from ..errors import KeyFormatError
from .fields import choice, schema_of, setting, string
from .meter import MeterConfig, PriceConfig, RoundConfig
from .producer import ProducerConfig
from .serving import MqttConfig, ServeConfig
from .text import toml
from .wallet import WalletConfig

_LEDGER_PATH = "/var/lib/p2p-energy/ledger.db"


def _ledger_path(v: Any) -> str:
    # SQLite keeps nothing for "" (a temporary file) or ":memory:", and may read
    # "file:..." as a URI naming either: a ledger must be a file that stays.
    v = string(v)
    if not v.strip():
        raise ValueError(f"is empty: give the ledger file's path, e.g. {toml(_LEDGER_PATH)}")
    if v == ":memory:":
        raise ValueError("is SQLite's in-memory database, which keeps nothing: give a file path")
    if v.startswith("file:"):
        raise ValueError("is an SQLite URI: give a plain file path")
    return v


@dataclass(frozen=True)
class LedgerConfig:
    path: str = setting(_LEDGER_PATH, _ledger_path)


def _key_file(v: Any) -> str:
    v = string(v)
    if v and not v.strip():
        raise ValueError("is blank: leave it out (the key goes beside the ledger) or give a path")
    return v


def _log_name(v: Any) -> str:
    v = string(v)
    if v:
        try:
            check_key_name(v)
        except KeyFormatError as err:
            raise ValueError(f"is not a key name: {err} (no spaces, no '+')") from None
    return v


@dataclass(frozen=True)
class LogConfig:
    """``[log]``: the signed log of every round and payment, and the key that signs it."""

    # "" : "log.key" in the ledger's folder. Made (mode 0600) on the first run.
    key_file: str = setting("", _key_file)
    # The log's origin and key name, used when the key is made; "" : "<host>/p2p-energy/<random>".
    name: str = setting("", _log_name)


CONSUMER, PRODUCER = "consumer", "producer"


@dataclass(frozen=True)
class Config:
    # What this meter is: the consumer's (meters both sides, prices, pays) or the
    # producer's own (meters its panel, signs its figures, pays nothing).
    role: str = setting(CONSUMER, choice((CONSUMER, PRODUCER)))
    meter: MeterConfig = field(default_factory=MeterConfig)
    round: RoundConfig = field(default_factory=RoundConfig)
    price: PriceConfig = field(default_factory=PriceConfig)
    wallet: WalletConfig = field(default_factory=WalletConfig)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    log: LogConfig = field(default_factory=LogConfig)
    producer: ProducerConfig = field(default_factory=ProducerConfig)
    source: str = ""


# section -> its dataclass, and section -> key -> validator. Each backend's own table
# under ``wallet`` comes from its descriptor (``wallet.backend_tables``).
TABLE_TYPES: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(Config)
                                if f.default_factory is not dataclasses.MISSING}  # type: ignore[misc]
SCHEMA: dict[str, dict[str, Any]] = {name: schema_of(kind) for name, kind in TABLE_TYPES.items()}
# Keys at the top of the file, outside any table: name -> validator.
TOP_LEVEL: dict[str, Any] = {f.name: f.metadata["check"] for f in dataclasses.fields(Config)
                             if "check" in f.metadata}
# "section.key" of every value no error may show.
SECRET_KEYS = frozenset(f"{name}.{f.name}" for name, kind in TABLE_TYPES.items()
                        for f in dataclasses.fields(kind) if f.metadata.get("secret"))
