"""Secrets named by the config: the wallet seed and the MQTT password.

A secret comes from the config file (``wallet.seed``), a file named in it
(``wallet.seed_file``, ``mqtt.password_file``; relative to the config file's
folder), or a systemd credential (``$CREDENTIALS_DIRECTORY/seed``,
``.../mqtt-password``). A file holding a secret must not be readable by group or
others (a systemd credential's mode is systemd's); it is read without blocking,
and at most ``SECRET_FILE_MAX_BYTES`` of it. No secret ever reaches an error.
"""

from __future__ import annotations

import errno
import os
import shlex
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .text import HIDDEN, error
from .wallet import SEED_RULE, tryte_seed

if TYPE_CHECKING:
    from .model import Config



def refuse_if_shared(path: str, mode: int, what: str, *, source: str = "", key: str = "",
                      value: Any = HIDDEN) -> None:
    """Raise if the file ``path``, which holds the seed, is readable by group or others."""
    if not mode & (stat.S_IRGRP | stat.S_IROTH):
        return
    who = {stat.S_IRGRP: "group", stat.S_IROTH: "others"}.get(
        mode & (stat.S_IRGRP | stat.S_IROTH), "group and others")
    raise error(f"{what} is readable by {who} (mode {stat.S_IMODE(mode):04o}):"
                 f" run chmod 600 {shlex.quote(path)}", path=source or path, key=key, value=value)


def file_value(path: str, value: str) -> Any:
    """``value`` of a secret's ``*_file`` key, as an error may show it: only if ``path``
    exists. A name that is no file may be the secret itself, put in the wrong key."""
    return value if os.path.lexists(path) else HIDDEN


_UNSHOWN_HINT = (" (the value is not shown: a name that is no file may be the secret itself,"
                 " put in the wrong key)")


def seed_file_path(config: Config) -> str:
    """``wallet.seed_file`` as a path: relative to the config file's folder."""
    return beside_config(config, config.wallet.seed_file)


def refuse_shared_seed_file(config: Config) -> None:
    """Refuse a seed file group or others may read, whatever wallet will (or won't) read it.

    A file that cannot be looked at, or is no regular file, is left to
    ``load_seed``, which names the problem when a wallet needs the seed.
    """
    path = seed_file_path(config)
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):  # ValueError: a NUL in the name (no file has one)
        return
    if not stat.S_ISREG(mode):
        return
    what = "seed file" + (f" {path}" if path != config.wallet.seed_file else "")
    refuse_if_shared(path, mode, what, source=config.source, key="wallet.seed_file",
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
                raise error(str(err), path=config.source, key="wallet.seed") from None
            return w.seed.strip()
        return w.seed
    if w.seed_file:
        path = seed_file_path(config)
        return _read_seed(path, source=config.source, key="wallet.seed_file",
                          value=file_value(path, w.seed_file), check=check)
    creds = env.get("CREDENTIALS_DIRECTORY", "")
    if creds:
        # systemd made this file for us, owner-only plus an ACL for the service
        # user; the ACL mask shows up as group bits, so the mode is not checked.
        return _read_seed(os.path.join(creds, "seed"), check=check)
    raise error("no seed: set wallet.seed_file, or run under systemd with"
                 " LoadCredential=seed:/etc/p2p-energy/seed", path=config.source,
                 key="wallet.seed")


SECRET_FILE_MAX_BYTES = 4096


def _read_at_most(fd: int, size: int) -> bytes:
    chunks = []
    while size > 0 and (chunk := os.read(fd, size)):
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _read_secret(path: str, what: str, fail: Callable[[str], ConfigError], *, source: str,
                 key: str, value: Any, missing_hint: str = "") -> bytes:
    """The bytes of a small secret file (at most ``SECRET_FILE_MAX_BYTES`` + 1 of them).

    With ``key`` the file must not be readable by group or others; without, it is
    a systemd credential, whose mode is systemd's. Raises ``fail(reason)``.
    """
    try:
        # O_NONBLOCK: a FIFO or device named by mistake must not hang start-up.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except (OSError, ValueError) as err:  # ValueError: a NUL in the name
        hint = missing_hint if getattr(err, "errno", None) == errno.ENOENT else ""
        if key and value is HIDDEN:
            hint += _UNSHOWN_HINT
        reason = getattr(err, "strerror", None) or "no file name holds a NUL character"
        raise fail(f"cannot read {what}: {reason}{hint}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise fail(f"{what} is not a regular file")
        if key:
            refuse_if_shared(path, mode, what, source=source, key=key, value=value)
        return _read_at_most(fd, SECRET_FILE_MAX_BYTES + 1)
    except OSError as err:
        raise fail(f"cannot read {what}: {err.strerror or err}") from None
    finally:
        os.close(fd)


def _read_seed(path: str, *, source: str = "", key: str = "", value: Any = HIDDEN,
               check: Callable[[str], object] | None = None) -> str:
    """Read and check one seed file; its contents never reach an error.

    With ``key`` (a ``wallet.seed_file``) errors name the config file, the key and
    its value, and the file's mode is checked. Without, ``path`` is a systemd
    credential: systemd makes it owner-only plus an ACL for the service user, and
    the ACL mask shows up as group bits, so its mode is not checked.
    """
    def fail(reason: str) -> ConfigError:
        if key:
            return error(reason, path=source, key=key, value=value)
        return error(reason, path=path)

    # Name the file unless the error already shows it (as the path, or the key's value).
    what = "seed file" if key else "seed credential"
    if key and value is not HIDDEN and path != value:
        what += f" {path}"
    raw = _read_secret(path, what, fail, source=source, key=key, value=value,
                       missing_hint="" if key else
                       " (the unit needs LoadCredential=seed:/etc/p2p-energy/seed)")
    if check is not None:
        return _checked_secret(raw, what, check, fail)
    try:
        seed = tryte_seed(raw.decode("ascii").strip()) \
            if len(raw) <= SECRET_FILE_MAX_BYTES else None
    except (UnicodeDecodeError, ValueError):
        seed = None
    if seed is None:
        raise fail(f"{what} does not hold a seed: {SEED_RULE}")
    if not seed:
        raise fail(f"{what} is empty")
    return seed


def _checked_secret(raw: bytes, what: str, check: Callable[[str], object],
                    fail: Callable[[str], ConfigError]) -> str:
    """A secret file's text, as the backend's ``check`` accepts it."""
    if len(raw) > SECRET_FILE_MAX_BYTES:
        raise fail(f"{what} is larger than {SECRET_FILE_MAX_BYTES} bytes: not a key")
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


def beside_config(config: Config, name: str) -> str:
    """A file named in the config: relative to the config file's folder unless absolute."""
    try:
        path = Path(name).expanduser()
    except RuntimeError:  # "~someone" of no user here: taken as it is written (not found)
        path = Path(name)
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
        path = beside_config(config, m.password_file)
        return _read_password(path, source=config.source, key="mqtt.password_file",
                              value=file_value(path, m.password_file))
    creds = env.get("CREDENTIALS_DIRECTORY", "")
    credential = os.path.join(creds, "mqtt-password")
    if m.username and creds and os.path.exists(credential):
        return _read_password(credential)  # systemd's copy: its mode is not ours to check
    return ""


def _read_password(path: str, *, source: str = "", key: str = "",
                   value: Any = HIDDEN) -> str:
    """Read one password file; its contents never reach an error. With ``key`` (a
    ``mqtt.password_file``) errors name config file, key and value, and the mode is
    checked; without, ``path`` is a systemd credential."""
    def fail(reason: str) -> ConfigError:
        if key:
            return error(reason, path=source, key=key, value=value)
        return error(reason, path=path)

    raw = _read_secret(path, "password file", fail, source=source, key=key, value=value)
    try:
        password = raw.decode("utf-8").strip() if len(raw) <= SECRET_FILE_MAX_BYTES else ""
    except UnicodeDecodeError:
        password = ""
    if not password:
        raise fail("password file is empty, too long or not UTF-8 text")
    return password

