"""The meter's log key (``[log] key_file``): read it, or make it on the first ``run``.

The file holds one line, the Go ``note`` signer form
``PRIVATE+KEY+<name>+<8 hex key ID>+<base64(0x01 || 32-byte seed)>``, so Go's
``note.NewSigner`` reads it as it is. It is made with mode 0600, whole, and
never over another (written to a temporary file, then linked to its name), and
refused when group or others may read it. Its text never reaches a message:
errors name the file and the key ``log.key_file``, never what the file holds.
"""

from __future__ import annotations

import os
import secrets
import socket
import tempfile
from pathlib import Path

from ..core.note import Signer, parse_signer, signer_key
from ..errors import ConfigError, KeyFormatError
from .secrets import _read_secret, beside_config

KEY = "log.key_file"


def key_file_path(config) -> str:
    """Where the key is: ``[log] key_file`` (relative to the config file's folder), or
    ``log.key`` beside the ledger."""
    if config.log.key_file:
        return beside_config(config, config.log.key_file)
    return str(Path(config.ledger.path).parent / "log.key")


def default_name() -> str:
    """A log name unique to this meter: ``<host>/p2p-energy/<8 random hex digits>``."""
    host = "".join(c for c in socket.gethostname() if c.isalnum() or c in "-.") or "meter"
    return f"{host}/p2p-energy/{secrets.token_hex(4)}"


def load_log_signer(config, *, make: bool = False) -> tuple[Signer, bool]:
    """The log's signer and whether it was made just now.

    ``make``: write a new key when the file is missing (``run``); otherwise a
    missing file is an error that says ``run`` makes it.

    Raises:
        ConfigError: the file cannot be read or made, others may read it, it holds
            no signer key, or its name is not ``[log] name``.
    """
    path = key_file_path(config)
    source = config.source or path
    made = False
    if make and not os.path.lexists(path):
        made = _make(path, config.log.name or default_name(), source)
    raw = _read_secret(path, "the log key", lambda reason: ConfigError(
        reason, path=source, key=KEY, value=path), source=source, key=KEY, value=path,
        missing_hint="; p2p-energy run makes it when it first starts")
    try:
        signer = parse_signer(raw.decode("ascii").strip())
    except (UnicodeDecodeError, KeyFormatError):
        raise ConfigError(f"{path} holds no log key in the Go note signer form"
                          " (PRIVATE+KEY+<name>+<id>+<key>)", path=source, key=KEY,
                          show_value=False) from None
    if config.log.name and config.log.name != signer.name:
        raise ConfigError(f"the key in {path} is named {signer.name!r}: the name is part of"
                          " the key and of every checkpoint signed with it; set [log] name to"
                          " it or leave it out", path=source, key="log.name",
                          value=config.log.name)
    return signer, made


def _make(path: str, name: str, source: str) -> bool:
    """Write a new key to ``path`` (0600, synced); False if another made it first.

    Written whole to a temporary file in the same folder, then linked to ``path``
    (which fails if it exists: a key is never overwritten), so a crash leaves
    either no key or a whole one, never an empty file every later start refuses.
    """
    text = (signer_key(name, os.urandom(32)) + "\n").encode("ascii")
    folder = Path(path).parent
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".log-key-", dir=folder)  # mode 0600
    except OSError as err:
        raise ConfigError(f"cannot make the log key: {err.strerror}", path=source, key=KEY,
                          value=path) from None
    try:
        try:
            os.write(fd, text)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError as err:
        raise ConfigError(f"cannot write the log key: {err.strerror}", path=source, key=KEY,
                          value=path) from None
    finally:
        os.unlink(tmp)
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the new name survives a power cut too
    finally:
        os.close(dir_fd)
    return True
