"""Small things the ledger and its reader share: times as text, why SQLite could not
open a file."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path


def iso(ts: float | None) -> str | None:
    """Epoch seconds -> ISO 8601 UTC with milliseconds."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


_SQLITE_READONLY, _SQLITE_CANTOPEN = 8, 14


def open_problem(path: str, err: sqlite3.Error) -> str:
    """Why SQLite could not open or read the ledger at ``path``, said so a person can act.

    SQLite needs to create the ledger's ``-shm`` (and ``-wal``) file beside it, even to
    read it while no writer has it open; in a folder this user cannot write to it
    says only "attempt to write a readonly database".
    """
    folder = Path(path).absolute().parent
    code = getattr(err, "sqlite_errorcode", 0) & 0xFF
    if code in (_SQLITE_READONLY, _SQLITE_CANTOPEN) and folder.is_dir() \
            and not os.access(folder, os.W_OK | os.X_OK):
        return (f"the folder {folder} is not writable by this user, and SQLite must create"
                f" {Path(path).name}-shm beside the ledger to read it: run as the ledger's"
                " owner, or let this user write to the folder")
    return str(err)
