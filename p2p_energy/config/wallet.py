"""``[wallet]``: the keys every backend shares; each backend's own table (``[wallet.iota]``)
is its descriptor's, found by name through the ``backends`` registry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import backends
from ..core.trytes import SEED_TRYTES
from .fields import boolean, choice, float_in, int_in, refuse_url_secrets, setting, string

TRYTE_ALPHABET = frozenset("9ABCDEFGHIJKLMNOPQRSTUVWXYZ")

SEED_RULE = (f"must be exactly {SEED_TRYTES} trytes (capital letters A-Z and 9);"
             " pad a shorter seed with 9s on the right, which IOTA treats as the same seed")


def _backend(v: Any) -> str:
    """A registered backend's name (the registry as it is now, not at import)."""
    return choice(backends.names())(v)


def _url(v: Any) -> str:
    """An http(s) URL without credentials, query or fragment: every URL the config takes."""
    v = string(v)
    if not v.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    refuse_url_secrets(v, "give the node's plain URL, e.g. \"https://node.example.org:14265\"")
    return v


def _tag(v: Any) -> str:
    v = string(v)
    if not v or len(v) > 27 or not set(v) <= TRYTE_ALPHABET:
        raise ValueError("must be 1 to 27 trytes: capital letters A-Z and 9 only")
    return v


def tryte_seed(v: Any) -> str:
    """A legacy seed of 81 trytes, or "" (not set here: it comes from a file or credential)."""
    v = string(v)
    if v and (len(v) != SEED_TRYTES or not set(v) <= TRYTE_ALPHABET):
        raise ValueError(SEED_RULE)
    return v


def backend_tables() -> dict[str, Any]:
    """Each backend's own table (``wallet.base.Table``), by table name."""
    return {d.table.name: d.table for d in backends.all_backends() if d.table is not None}


@dataclass(frozen=True)
class WalletConfig:
    backend: str = setting(backends.DEFAULT, _backend)
    node_url: str = setting("", _url)  # "": the backend's default (its descriptor's)
    seed_file: str = setting("", string)
    receiver: str = setting("", string)  # its form is the backend's: checked with it
    tag: str = setting("ENERGYTRADE", _tag)
    depth: int = setting(3, int_in(1, 15))
    min_weight_magnitude: int = setting(14, int_in(1, 27))
    security_level: int = setting(2, int_in(1, 3))
    start_index: int = setting(0, int_in(0, 2**31))
    timeout_s: float = setting(30.0, float_in(0.1, 600.0))
    local_pow: bool = setting(False, boolean)
    poll_s: float = setting(10.0, float_in(0.01, 3600.0))
    promote_after_s: float = setting(60.0, float_in(0.01, 86400.0))
    reattach_after_s: float = setting(300.0, float_in(0.01, 86400.0))
    retry_max_s: float = setting(300.0, float_in(0.01, 86400.0))
    # backend = "dry-run": seconds each network step takes
    dry_run_latency_s: float = setting(0.0, float_in(0.0, 600.0))
    # ledger units; 0: the backend's default (its descriptor's)
    min_payment: int = setting(0, int_in(1, 10**15))
    # The backends' own tables ([wallet.<name>]), by name; read as ``wallet.<name>``.
    tables: Mapping[str, Any] = field(default_factory=dict)
    # Its form depends on the backend: checked with it.
    seed: str = setting("", string, secret=True)

    def __post_init__(self) -> None:
        name = self.backend if self.backend in backends.REGISTRY else backends.DEFAULT
        defaults = backends.backend(name)
        if not self.node_url:
            object.__setattr__(self, "node_url", defaults.node_url)
        if not self.min_payment:
            object.__setattr__(self, "min_payment", defaults.min_payment)
        # Every backend's table, as set or with its defaults (so both compare equal).
        object.__setattr__(self, "tables", {name: self.tables.get(name) or table.type()
                                            for name, table in backend_tables().items()})

    def __getattr__(self, name: str) -> Any:
        """``wallet.<table>``: a backend's own table (``[wallet.iota]``)."""
        tables = self.__dict__.get("tables", {})
        if name in tables:
            return tables[name]
        raise AttributeError(name)
