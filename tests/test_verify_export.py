"""Log export files (``core.export``): the format exactly, strict reading, constant memory."""

from __future__ import annotations

import base64
import io
import tracemalloc
from pathlib import Path

import pytest

from p2p_energy.core.export import ExportReader, write_export
from p2p_energy.errors import ExportError
from p2p_energy.verify.run import verify_log
from p2p_energy.verify.sources import FileSource

from support.log_server import SignedLog


def exported(log: SignedLog) -> bytes:
    out = io.BytesIO()
    write_export(out, log.checkpoint(), log.entries)
    return out.getvalue()


@pytest.fixture(scope="module")
def log() -> SignedLog:
    log = SignedLog()
    log.add_rounds(3)
    log.add_payment("9" * 44, "0x" + "e1" * 32)
    return log


def test_the_format_is_exactly_as_documented(log: SignedLog) -> None:
    note = log.checkpoint()
    lines = b"".join(base64.b64encode(e) + b"\n" for e in log.entries)
    assert exported(log) == (b"p2p-energy log export 1\ncheckpoint %d\n" % len(note) + note
                             + b"entries 4\n" + lines)
    reader = ExportReader(io.BytesIO(exported(log)))
    assert (reader.checkpoint_note, reader.count) == (note, 4)
    assert list(reader.entries()) == log.entries


def test_the_writer_refuses_a_count_other_than_the_tree_size(log: SignedLog) -> None:
    with pytest.raises(ExportError, match="3 entries for a checkpoint of tree size 4"):
        write_export(io.BytesIO(), log.checkpoint(), log.entries[:3])
    with pytest.raises(ExportError, match="more entries than the checkpoint's tree size 4"):
        write_export(io.BytesIO(), log.checkpoint(), [*log.entries, b"{}"])
    with pytest.raises(ExportError, match="entry 1 has 0 bytes"):
        write_export(io.BytesIO(), log.checkpoint(), [log.entries[0], b"", *log.entries[2:]])
    with pytest.raises(ExportError, match="checkpoint: malformed note"):
        write_export(io.BytesIO(), b"no note\n", log.entries)


def _cut(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) >= 1
    return data.replace(old, new, 1)


@pytest.mark.parametrize("change, message", [
    (lambda d: b"P" + d[1:], "not a p2p-energy log export"),
    (lambda d: _cut(d, b"checkpoint ", b"checkpoint 0"), "expected a line 'checkpoint <number>'"),
    (lambda d: _cut(d, b"entries 4\n", b"entries 04\n"), "expected a line 'entries <number>'"),
    (lambda d: _cut(d, b"entries 4\n", b"entries 4 \n"), "expected a line 'entries <number>'"),
    (lambda d: _cut(d, b"entries 4\n", b"entries 5\n"), "entry 4: the file ends"),
    (lambda d: d[:-1], "entry 3: the file ends"),
    (lambda d: d + b"\n", "the file goes on after its 4 entries"),
    (lambda d: d[:d.index(b"checkpoint ") + 40], "the file ends inside its checkpoint"),
])
def test_a_malformed_export_is_one_named_error(log: SignedLog, change, message) -> None:
    data = change(exported(log))
    with pytest.raises(ExportError, match=message) as err:
        list(ExportReader(io.BytesIO(data)).entries())
    assert "\n" not in str(err.value)


def test_an_entry_line_must_be_the_one_spelling_of_base64(log: SignedLog) -> None:
    data = exported(log)
    line = base64.b64encode(log.entries[2])
    assert line.endswith(b"=")  # padded: its last character carries spare bits
    spare = line[:-2] + bytes([line[-2] + 1]) + b"="  # decodes the same, another spelling
    for bad, why in [(spare, "not one line of base64"), (line[:-1], "not one line of base64"),
                     (b" " + line, "not one line of base64"), (b"", "empty")]:
        with pytest.raises(ExportError, match=f"entry 2: {why}"):
            list(ExportReader(io.BytesIO(data.replace(line, bad))).entries())


def test_an_entry_line_is_read_with_a_bound(log: SignedLog) -> None:
    data = exported(log).replace(base64.b64encode(log.entries[1]), b"QUFB" * 30_000)
    with pytest.raises(ExportError, match="entry 1: the line is too long"):
        list(ExportReader(io.BytesIO(data)).entries())


class CountingFile(io.BytesIO):
    """A file that says how far it has been read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.high = 0

    def readline(self, size: int | None = -1) -> bytes:  # type: ignore[override]
        line = super().readline(size)
        self.high = max(self.high, self.tell())
        return line

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.high = max(self.high, self.tell())
        return data


def test_entries_are_read_one_at_a_time() -> None:
    log = SignedLog()
    log.add_rounds(2000)
    fp = CountingFile(exported(log))
    reader = ExportReader(fp)
    entries = reader.entries()
    header = fp.high
    first, second = next(entries), next(entries)
    assert (first, second) == tuple(log.entries[:2])
    # Only the two lines were read: not the next one, not the file.
    assert fp.high == header + sum(len(base64.b64encode(e)) + 1 for e in log.entries[:2])


def test_verifying_an_export_holds_no_more_than_a_few_entries(tmp_path: Path) -> None:
    """20,000 entries (~7 MB) verified in a few hundred KB: they are not held."""
    log = SignedLog()
    log.add_rounds(20_000)
    path = tmp_path / "log.export"
    path.write_bytes(exported(log))
    size = sum(map(len, log.entries))
    source = FileSource(path)
    tracemalloc.start()
    try:
        from p2p_energy.core.note import parse_verifier
        out = verify_log(source, parse_verifier(log.verifier_key), tmp_path / "state", None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        source.close()
    assert not out.problems and out.run.entries == 20_000
    assert size > 6_000_000
    assert peak < 1_000_000, peak
