"""The wallet backends there are, by name: one line each.

Each line names the module in ``wallet/`` whose ``BACKEND`` (``wallet.base.Backend``)
says everything that differs between them: its config table and defaults, its
ledger unit, how a payment is referenced, how it opens, its ``check`` lines, its
``p2p-energy wallet`` subcommands.
This module depends on nothing, so ``config`` can name and check backends
without importing ``wallet`` (a backend's module is imported when it is asked
for, as Python's ``codecs`` registry does). Code outside ``wallet/`` asks a
descriptor; it never compares a backend's name.
"""

from __future__ import annotations

import importlib
from typing import Any

REGISTRY: dict[str, str] = {
    "pyota": "p2p_energy.wallet.pyota_backend",  # the legacy network, through PyOTA
    "dry-run": "p2p_energy.wallet.dryrun",  # records what it would send; nothing moves
    "iota": "p2p_energy.wallet.iota_backend",  # today's IOTA network (Move, JSON-RPC)
}
DEFAULT = "pyota"  # wallet.backend when a config names none
SIMULATION = "dry-run"  # what --simulate pays with


def names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def backend(name: str) -> Any:
    """The descriptor (``wallet.base.Backend``) of the backend called ``name``.

    Raises:
        KeyError: no backend has that name.
    """
    return importlib.import_module(REGISTRY[name]).BACKEND


def all_backends() -> list[Any]:
    return [backend(name) for name in REGISTRY]
