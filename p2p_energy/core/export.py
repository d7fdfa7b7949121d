"""A log export: a signed checkpoint and every entry it covers, in one file. Pure, streaming.

What the consumer hands the neighbour when there is no network between them
(``p2p-energy verify FILE`` reads it). The format, version 1, exactly::

    p2p-energy log export 1\\n
    checkpoint <L>\\n
    <L bytes: the signed checkpoint note, exactly as signed>
    entries <N>\\n
    <base64 of entry 0>\\n
    ...                                  (N lines in all)
    <base64 of entry N-1>\\n

- ``L`` and ``N`` are decimal, without leading zeros (``0`` itself allowed for
  ``N``); ``L`` is at most 65,536; ``N`` at most 2**63 - 1 and, as written, the
  checkpoint's tree size (a reader hands both to the verifier, which compares
  them once the signature checks).
- The note is C2SP signed-note text and ends with a newline, so ``entries``
  starts a line.
- Each entry line is standard base64 (RFC 4648 section 4) with its padding, the
  one spelling that decodes and encodes back to itself, of 1 to 65,536 bytes
  (``core.entries.MAX_ENTRY_BYTES``), and nothing else but its newline.
- The file ends right after the last entry's newline.

Nothing is held but the line being read: ``ExportReader.entries`` yields one
entry at a time, so reading a year of entries takes constant memory.
Anything else raises ``ExportError`` naming what and where (the verifier's
"not a log").
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from ..errors import ExportError, NoteError
from .entries import MAX_ENTRY_BYTES
from .note import MAX_TREE_SIZE, peek_checkpoint

MAGIC = b"p2p-energy log export 1\n"
MAX_NOTE_BYTES = 65_536
# One entry line: base64 of MAX_ENTRY_BYTES bytes, and the newline.
MAX_LINE_BYTES = 4 * ((MAX_ENTRY_BYTES + 2) // 3) + 1
_NUMBER = re.compile(rb"0|[1-9][0-9]*")


def write_export(fp: BinaryIO, checkpoint_note: bytes, entries: Iterable[bytes]) -> int:
    """Write an export of ``checkpoint_note`` and its ``entries`` to ``fp``, streaming.

    The entries must be exactly as many as the checkpoint's tree size. The note
    is not verified here (its signature is the reader's business), only parsed
    for that size. On an error part of the export may be written already: write
    to a temporary file and rename it once this returns. Returns the entry count.

    Raises:
        ExportError: a note that holds no checkpoint or is too long, an empty or
            oversized entry, or more or fewer entries than the tree size.
    """
    try:
        size = peek_checkpoint(checkpoint_note).size
    except NoteError as err:
        raise ExportError(f"checkpoint: {err}") from None
    if len(checkpoint_note) > MAX_NOTE_BYTES:
        raise ExportError(f"checkpoint note of {len(checkpoint_note)} bytes is over"
                          f" {MAX_NOTE_BYTES}")
    fp.write(MAGIC + b"checkpoint %d\n" % len(checkpoint_note) + checkpoint_note
             + b"entries %d\n" % size)
    count = 0
    for entry in entries:
        if count == size:
            raise ExportError(f"more entries than the checkpoint's tree size {size}")
        if not 1 <= len(entry) <= MAX_ENTRY_BYTES:
            raise ExportError(f"entry {count} has {len(entry)} bytes, not 1 to"
                              f" {MAX_ENTRY_BYTES}")
        fp.write(base64.b64encode(entry) + b"\n")
        count += 1
    if count != size:
        raise ExportError(f"{count} entries for a checkpoint of tree size {size}")
    return count


class ExportReader:
    """Reads an export from ``fp`` (binary, positioned at its start).

    Construction reads the header and the checkpoint; ``checkpoint_note`` and
    ``count`` (the ``entries`` line) are then known. ``entries()`` yields the
    entries, once, and checks that the file ends after the last.

    Raises:
        ExportError: the header, the checkpoint's length or the ``entries`` line
            is not as the format says, or the file ends early.
    """

    def __init__(self, fp: BinaryIO) -> None:
        self._fp = fp
        if fp.read(len(MAGIC)) != MAGIC:
            raise ExportError("not a p2p-energy log export (its first line is not"
                              f" {MAGIC.decode().strip()!r})")
        length = self._number(b"checkpoint", MAX_NOTE_BYTES)
        self.checkpoint_note = fp.read(length)
        if len(self.checkpoint_note) != length:
            raise ExportError(f"the file ends inside its checkpoint ({len(self.checkpoint_note)}"
                              f" of {length} bytes)")
        self.count = self._number(b"entries", MAX_TREE_SIZE)
        self._read = False

    def _number(self, word: bytes, most: int) -> int:
        """The number of a ``<word> <decimal>\\n`` line."""
        line = self._fp.readline(len(word) + 22)
        name = word.decode()
        head, _, value = line.partition(b" ")
        if head != word or not value.endswith(b"\n") or not _NUMBER.fullmatch(value[:-1]):
            raise ExportError(f"expected a line '{name} <number>', found {_show(line)}")
        number = int(value[:-1])
        if number > most:
            raise ExportError(f"{name} {number} is over {most}")
        return number

    def entries(self) -> Iterator[bytes]:
        """The entries, in order, one at a time (constant memory).

        Raises:
            ExportError: a line that is not one entry in base64, fewer lines than
                the ``entries`` line says, or anything after the last.
            RuntimeError: called a second time.
        """
        if self._read:
            raise RuntimeError("an export's entries are read once")
        self._read = True
        readline = self._fp.readline
        for index in range(self.count):
            line = readline(MAX_LINE_BYTES)
            if not line.endswith(b"\n"):
                what = "the file ends" if len(line) < MAX_LINE_BYTES else "the line is too long"
                raise ExportError(f"entry {index}: {what} (the export says {self.count}"
                                  " entries)")
            yield _decode(index, line[:-1])
        if self._fp.read(1):
            raise ExportError(f"the file goes on after its {self.count} entries")


def _decode(index: int, text: bytes) -> bytes:
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        data = None
    if data is None or base64.b64encode(data) != text:
        raise ExportError(f"entry {index}: not one line of base64 ({_show(text)})")
    if not data:
        raise ExportError(f"entry {index}: empty")
    return data


def _show(raw: bytes, limit: int = 40) -> str:
    """A short, printable, one-line rendering of bytes read from a file."""
    text = raw[:limit].decode("ascii", "backslashreplace")
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return repr(text + ("..." if len(raw) > limit else "")) if raw else "nothing"
