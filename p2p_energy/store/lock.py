"""One ledger, one writer: an OS lock on a file beside the ledger.

``fcntl.flock`` on ``<ledger>.lock``, held for the life of the process. The
kernel drops it when the process ends, however it ends, so a crash or a
SIGKILL never leaves a stale lock behind (as a pid file would). The file holds
the holder's pid, only to name it in the refusal. Readers (``ledger``,
``check``, ``statement``, ``serve``) take no lock: they open the ledger
read-only, and SQLite's WAL lets them read while the daemon writes. Only the
holder of the lock may upgrade the ledger's schema (``holds``).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..errors import LedgerBusy, P2PEnergyError

_held: set[Path] = set()  # ledgers whose lock this process holds


def holds(ledger_path: str | Path) -> bool:
    """True if this process holds the lock of the ledger at ``ledger_path``."""
    return Path(ledger_path).resolve() in _held


class LedgerLock:
    """The exclusive lock for writing one ledger. ``release()`` or process exit frees it."""

    def __init__(self, ledger_path: str | Path) -> None:
        self.ledger_path = Path(ledger_path)
        self.path = self.ledger_path.with_name(self.ledger_path.name + ".lock")
        self._fd: int | None = None

    def acquire(self, doing: str = "run") -> LedgerLock:
        """Take the lock without waiting.

        Raises:
            LedgerBusy: another process holds it (the message names the ledger and its pid).
            P2PEnergyError: the ledger path names a directory or lies under a file
                (refused before anything is made), or the lock file cannot be created.
        """
        problem = ledger_path_problem(self.ledger_path)
        if problem:
            raise P2PEnergyError(f"{self.ledger_path}: {problem}")  # nothing made yet
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as err:
            raise P2PEnergyError(f"{self.path}: cannot create the ledger's lock file: "
                                 f"{err.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            who = f"pid {pid}" if pid else "another process"
            raise LedgerBusy(f"{self.ledger_path}: in use by another p2p-energy ({who});"
                             f" refusing to {doing} beside it (stop it first, e.g."
                             " systemctl stop p2p-energy)", pid) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        _held.add(self.ledger_path.resolve())
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
            _held.discard(self.ledger_path.resolve())

    def __enter__(self) -> LedgerLock:
        return self if self._fd is not None else self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def ledger_path_problem(ledger_path: str | Path) -> str:
    """Why no ledger can be kept at ``ledger_path`` ("" if none is seen): it names a
    directory, or a folder on the way to it is a file. Read-only: nothing is created."""
    path = Path(ledger_path)
    if path.is_dir():
        return (f"ledger.path names a directory, not the ledger's file: name a file in it,"
                f" e.g. {path / 'ledger.db'}")
    if path.exists() and not path.is_file():  # a FIFO: "disk I/O error", or a wait
        return "ledger.path names something that is not a regular file (a FIFO, a device)"
    for folder in (path.parent, *path.parent.parents):
        if os.path.lexists(folder):
            if not folder.is_dir():
                return (f"cannot keep the ledger there: {folder} is a file, not a directory;"
                        " set ledger.path to a file in a directory")
            break
    return ""


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
