"""A new private key file: mode 0600, never replacing a file that exists."""

from __future__ import annotations

import os

from ..errors import P2PEnergyError


def write_new_key_file(path: str, text: str) -> None:
    """Write ``text`` (a private key) to a new file at ``path``, mode 0600 whatever the
    umask, synced to disk.

    Raises:
        P2PEnergyError: the file exists, or cannot be created or written (a file this
            call created is removed again; the message never carries ``text``).
    """
    try:
        # O_EXCL: an existing file may hold a funded key; never replace it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise P2PEnergyError(f"{path}: exists already; not overwriting a key file") from None
    except OSError as err:
        raise P2PEnergyError(f"{path}: cannot create: {err.strerror}") from None
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, text.encode())
        os.fsync(fd)
    except OSError as err:
        os.close(fd)
        os.unlink(path)
        raise P2PEnergyError(f"{path}: cannot write: {err.strerror}") from None
    os.close(fd)
