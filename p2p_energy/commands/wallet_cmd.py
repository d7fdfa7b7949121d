"""``p2p-energy wallet <name>`` for each subcommand a wallet backend offers.

The backends' descriptors say which (``Backend.commands``: today ``new`` and
``address`` of backend ``iota``); ``cli`` builds their parsers from ``offered()``
and runs them here. A subcommand that needs a config runs only under a config
whose backend offers it; one that needs none (``wallet new``) is the one backend's
that offers it.
"""

from __future__ import annotations

import argparse

from .. import backends
from ..config import Config
from ..errors import ConfigError
from ..wallet.base import WalletCommand


def offered() -> dict[str, WalletCommand]:
    """Every wallet subcommand some backend offers, by name, in the registry's order
    (a name two backends offer is described by the first).

    Raises:
        ValueError: two backends offer a subcommand of one name that needs no config
            (no config would say which of them runs it).
    """
    found: dict[str, WalletCommand] = {}
    for backend in backends.all_backends():
        for command in backend.commands:
            first = found.get(command.name)
            if first is None:
                found[command.name] = command
            elif not (first.needs_config and command.needs_config):
                raise ValueError(f"wallet {command.name}: offered by two backends, and it"
                                 " needs no config to say which of them runs it")
    return found


def cmd_wallet(cfg: Config | None, args: argparse.Namespace) -> int:
    """Run ``wallet <args.wallet_command>`` and print its line. Returns the exit code.

    ``cfg`` is None for a subcommand that needs no config.

    Raises:
        ConfigError: the config's backend does not offer the subcommand.
        P2PEnergyError: the subcommand failed (its message).
    """
    name = args.wallet_command
    if cfg is None:
        command = offered()[name]
    else:
        backend = backends.backend(cfg.wallet.backend)
        command = backend.command(name)
        if command is None:
            able = " or ".join(f'"{b.name}"' for b in backends.all_backends()
                               if b.command(name))
            raise ConfigError(f'wallet {name} needs backend = {able}, not "{backend.name}"',
                              path=cfg.source, key="wallet.backend")
    print(command.run(cfg, args))
    return 0
