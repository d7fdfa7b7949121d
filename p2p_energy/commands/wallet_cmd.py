"""``p2p-energy wallet new | address``: make a key for today's IOTA network, show its address.

``wallet new -o FILE`` writes a new Ed25519 private key (``iotaprivkey1...``,
the form ``iota keytool import`` takes) to a new file of mode 0600 and prints
the address to fund; it never prints the key and never overwrites a file.
``wallet address -c CONFIG`` prints the address of the key the config names
(``wallet.seed``, ``seed_file`` or the systemd credential).
"""

from __future__ import annotations

import argparse
import os

from .. import backends
from ..config import Config
from ..errors import ConfigError, P2PEnergyError


def cmd_wallet_new(args: argparse.Namespace) -> int:
    """Write a new key to ``args.output``; print its address. Returns the exit code.

    Raises:
        P2PEnergyError: the file exists or cannot be written (nothing is left behind).
    """
    from ..wallet.iota_keys import generate

    keypair = generate()
    path = args.output
    try:
        # O_EXCL: an existing file may hold a funded key; never replace it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise P2PEnergyError(f"{path}: exists already; not overwriting a key file") from None
    except OSError as err:
        raise P2PEnergyError(f"{path}: cannot create: {err.strerror}") from None
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, (keypair.export() + "\n").encode())
        os.fsync(fd)
    except OSError as err:
        os.close(fd)
        os.unlink(path)
        raise P2PEnergyError(f"{path}: cannot write: {err.strerror}") from None
    os.close(fd)
    print(keypair.address)
    return 0


def cmd_wallet_address(cfg: Config) -> int:
    """Print the address of the configured key (a backend with keys of its own).

    Raises:
        ConfigError: a backend without addresses of its own, or no usable key.
    """
    backend = backends.backend(cfg.wallet.backend)
    if backend.address is None:
        able = " or ".join(f'"{b.name}"' for b in backends.all_backends() if b.address)
        raise ConfigError(f'wallet address needs backend = {able}, not "{backend.name}"',
                          path=cfg.source, key="wallet.backend")
    print(backend.address(cfg))
    return 0
