"""What ``verify`` remembers of a log between runs: one JSON file, replaced atomically.

The folder is ``--state DIR``, or by default
``$XDG_STATE_HOME/p2p-energy/verify/<origin>`` (``~/.local/state/...`` when
``XDG_STATE_HOME`` is unset or not absolute), the log's origin made a file
name (``origin_folder_name``). It holds ``state.json``:

- the signed checkpoint verified last (its note, exactly), its size and root,
  and the ``Frontier`` of that size (at most 63 hashes), from which the next
  run appends the new entries' leaf hashes;
- the ``Chain`` (last round id, its carry out, the unit, and a 128-bit digest
  with the entry index of every executed payment's reference: 24 bytes each,
  base64) and the ``Totals`` verified so far.

It is written only after a run found no problem: to ``state.json.tmp``, fsync,
renamed over ``state.json``, the folder fsynced. A run that finds a problem, or
stops on an error, leaves it as it was.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ..core.tlog import Frontier
from ..errors import VerifyError
from .audit import Chain, Totals

FORMAT = "p2p-energy verify state 1"
FILE_NAME = "state.json"
_RECORD = 24  # a reference's 16-byte digest, then its entry index (8 bytes, big-endian)
_SAFE = re.compile(r"[A-Za-z0-9._-]")
MAX_NAME = 200


def default_root(environ: dict[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/p2p-energy/verify`` or ``~/.local/state/p2p-energy/verify``."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".local" / "state"
    return root / "p2p-energy" / "verify"


def origin_folder_name(origin: str) -> str:
    """The log's origin as one file name: letters, digits, ``.``, ``_`` and ``-`` kept,
    every other byte of its UTF-8 as ``%XX`` (so two origins never share a folder), a
    leading ``.`` too; a name over 200 characters is cut and given a hash of the whole."""
    import hashlib

    name = "".join(c if _SAFE.fullmatch(c) else "".join(f"%{b:02X}" for b in c.encode())
                   for c in origin)
    if name.startswith("."):
        name = "%2E" + name[1:]
    if len(name) > MAX_NAME:
        name = name[:MAX_NAME - 17] + "~" + hashlib.sha256(origin.encode()).hexdigest()[:16]
    return name


@dataclass
class State:
    """A log as verified last time."""

    origin: str
    checkpoint_note: bytes  # the signed checkpoint, exactly as verified
    frontier: Frontier  # of checkpoint size; its root is the checkpoint's root
    chain: Chain
    totals: Totals

    @property
    def size(self) -> int:
        return self.frontier.size

    @property
    def root(self) -> bytes:
        return self.frontier.root()


def load(folder: Path) -> State | None:
    """The state kept in ``folder``; None when there is none yet.

    Raises:
        VerifyError: the file cannot be read or is not a state of this format.
    """
    path = folder / FILE_NAME
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise VerifyError(f"{path}: cannot be read: {getattr(err, 'strerror', err)}") from None
    try:
        return _decode(json.loads(text))
    except (ValueError, KeyError, TypeError, binascii.Error) as err:
        raise VerifyError(f"{path}: not a verify state ({err}); move it away to start"
                          " afresh") from None


def _decode(obj: dict[str, Any]) -> State:
    if obj["format"] != FORMAT:
        raise ValueError(f"format {obj['format']!r}")
    hashes = [base64.b64decode(h, validate=True) for h in obj["frontier"]]
    frontier = Frontier.from_hashes(_int(obj["size"]), hashes)
    raw = base64.b64decode(obj["references"], validate=True)
    if len(raw) % _RECORD:
        raise ValueError("references are not 24-byte records")
    references = {int.from_bytes(raw[i:i + 16], "big"): int.from_bytes(raw[i + 16:i + 24], "big")
                  for i in range(0, len(raw), _RECORD)}
    c = obj["chain"]
    carry = c["carry_out_nano_units"]
    chain = Chain(_int(c["last_round_id"]), None if carry is None else _int(carry),
                  c["unit"] if isinstance(c["unit"], str) else None, references,
                  opened=c.get("opened") is True,  # entry 0, the opening, was verified
                  role=c["role"] if isinstance(c.get("role"), str) else None,
                  last_end_utc_ms=_int(c.get("last_end_utc_ms", 0)))
    # A count a state written before it existed does not hold is 0 (none was counted).
    totals = Totals(**{f.name: _int(obj["totals"].get(f.name, 0)) for f in fields(Totals)})
    if not isinstance(obj["origin"], str):
        raise TypeError("origin is not text")
    return State(obj["origin"], obj["checkpoint"].encode("utf-8"), frontier, chain, totals)


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{value!r} is not an integer")
    return value


def save(folder: Path, state: State) -> None:
    """Write ``state`` to ``folder`` atomically (tmp, fsync, rename, fsync the folder).

    Raises:
        VerifyError: the folder cannot be made or written.
    """
    records = b"".join(k.to_bytes(16, "big") + i.to_bytes(8, "big")
                       for k, i in sorted(state.chain.references.items()))
    obj = {
        "format": FORMAT, "origin": state.origin,
        "checkpoint": state.checkpoint_note.decode("utf-8"),
        "size": state.size,
        "frontier": [base64.b64encode(h).decode() for h in state.frontier.hashes],
        "chain": {"last_round_id": state.chain.last_round_id,
                  "carry_out_nano_units": state.chain.carry_out_nano_units,
                  "unit": state.chain.unit, "opened": state.chain.opened,
                  "role": state.chain.role, "last_end_utc_ms": state.chain.last_end_utc_ms},
        "totals": asdict(state.totals),
        "references": base64.b64encode(records).decode(),
    }
    data = (json.dumps(obj, indent=1, ensure_ascii=False) + "\n").encode("utf-8")
    path, tmp = folder / FILE_NAME, folder / (FILE_NAME + ".tmp")
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as err:
        raise VerifyError(f"{folder}: cannot save the verify state: {err.strerror}") from None
