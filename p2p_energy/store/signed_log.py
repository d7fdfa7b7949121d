"""The signed log inside the ledger: entries, the tree's hashes, the latest checkpoint.

Tables (schema step ``schema._add_signed_log``):

- ``log_entries (idx, data, round_id, payment_id)``: entry ``idx`` is the exact
  bytes ``core.entries`` made (stored once, never encoded again), with the
  round or payment it records;
- ``log_hashes (id, hash)``: the hash of every complete subtree, in Go tlog's
  layout (``core.tlog.stored_hash_index``): about two per entry, only appended;
- ``log_checkpoint``: one row, the latest signed checkpoint (C2SP
  tlog-checkpoint as a signed note), covering every entry;
- ``ledger_meta`` keys ``log_origin``, ``log_verifier`` (the verifier key, public),
  ``log_started_after_round`` (rounds up to this id were recorded before the log
  began: they are not in it; entry 0, the opening, sums them up).

``LogWriter.append`` runs inside the caller's write transaction, so an entry,
its hashes and the checkpoint that covers it commit together with the round or
payment they record, or not at all. ``LogView`` reads the same tables for
``serve``, ``log export`` and ``check``; it never writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

from ..core import tlog
from ..core.entries import (
    EXECUTED,
    FAILED,
    LinkedRoundEntry,
    OpeningEntry,
    PaymentEntry,
    ProductionEntry,
    RoundEntry,
    encode_opening,
    encode_payment,
    encode_production,
    encode_round,
    round_ids_to_ranges,
)
from ..core.metering import RoundTotals
from ..core.note import Checkpoint, Signer, sign_checkpoint
from ..core.pricing import NANO, Quote
from ..errors import LedgerError

MAX_PAGE = 1000  # entries per read, as /log/entries answers at most


class LogWriter:
    """Appends entries and signs a checkpoint for each, with the meter's key.

    The seed stays inside ``signer`` (no repr, no message shows it).
    """

    def __init__(self, signer: Signer, recipient: str = "") -> None:
        """``recipient``: the configured receiver, named in the entry of a payment signed
        before the ledger recorded recipients (schema 8)."""
        self.signer = signer
        self.origin = signer.name
        self.verifier_key = signer.verifier.key()
        self.recipient = recipient

    def bind(self, db: sqlite3.Connection, path: str, unit: str) -> None:
        """Check that this key signs this ledger's log, or start the log with it.

        In the caller's write transaction. Starting records the origin, the
        verifier key and the last round recorded before the log (not in it), and
        appends the opening entry (what the ledger held then, in ``unit``).

        Raises:
            LedgerError: the log is signed by another key (names both verifier keys).
        """
        known = dict(db.execute("SELECT key, value FROM ledger_meta WHERE key IN"
                                " ('log_origin', 'log_verifier')").fetchall())
        if known.get("log_verifier") not in (None, self.verifier_key):
            raise LedgerError(
                f"{path}: its log is signed by key {known['log_verifier']}, and [log] key_file"
                f" holds {self.verifier_key}: give the key it was started with (a new key"
                " would make every earlier bill unverifiable)")
        if known:
            return
        last = db.execute("SELECT COALESCE(MAX(id), 0) FROM rounds").fetchone()[0]
        db.executemany("INSERT INTO ledger_meta (key, value) VALUES (?, ?)",
                       [("log_origin", self.origin), ("log_verifier", self.verifier_key),
                        ("log_started_after_round", str(last))])
        self.append(db, opening_entry(db, last, unit))

    def append(self, db: sqlite3.Connection, data: bytes, *, round_id: int | None = None,
               payment_id: int | None = None) -> int:
        """Add entry ``data`` and sign the checkpoint of the grown tree; returns its index.

        In the caller's write transaction: O(log n) reads, about 2 SHA-256 and one
        Ed25519 signature.
        """
        size = _size(db)
        hash_at = _stored(db)
        new = tlog.new_stored_hashes(size, tlog.leaf_hash(data), hash_at)
        first = tlog.stored_hash_index(0, size)
        db.executemany("INSERT INTO log_hashes (id, hash) VALUES (?, ?)",
                       [(first + j, h) for j, h in enumerate(new)])
        db.execute("INSERT INTO log_entries (idx, data, round_id, payment_id) VALUES (?,?,?,?)",
                   (size, data, round_id, payment_id))
        root = tlog.tree_hash(size + 1, hash_at)
        note = sign_checkpoint(Checkpoint(self.origin, size + 1, root), self.signer)
        db.execute("INSERT OR REPLACE INTO log_checkpoint (id, size, note) VALUES (1, ?, ?)",
                   (size + 1, note))
        return size


def production_entry(round_id: int, r: RoundTotals, length_s: float, clock: str) -> bytes:
    """The entry of a producer's round: its slot, its times, the panel's energy and metered
    time, and whether the clock was synchronised. Its times are kept within its slot (a
    round resumed after its slot had passed, or cut by a clock step, covers part of it)."""
    slot_ms = max(round(length_s * 1000), 1)
    start_ms = round(r.started_at * 1000)
    slot_end = (start_ms // slot_ms + 1) * slot_ms
    end_ms = min(max(round(r.ended_at * 1000), start_ms), slot_end)
    return encode_production(ProductionEntry(
        round_id=round_id, slot_ms=slot_ms, start_utc_ms=start_ms, end_utc_ms=end_ms,
        producer_energy_uws=round(r.producer_mws * 1000),
        producer_metered_us=round((r.producer_metered_s or 0.0) * 1_000_000), clock=clock))


def opening_entry(db: sqlite3.Connection, after_round_id: int, unit: str) -> bytes:
    """Entry 0: the ledger's totals when the log begins (all zero for a new ledger)."""
    owed = int(db.execute("SELECT value FROM running_totals WHERE key = 'owed_nano_units'"
                          ).fetchone()[0])
    paid, pending = db.execute(
        "SELECT COALESCE(SUM(CASE WHEN status = 'confirmed' THEN value_units END), 0),"
        " COALESCE(SUM(CASE WHEN status IN ('queued', 'sent') THEN value_units END), 0)"
        " FROM payments").fetchone()
    return encode_opening(OpeningEntry(
        after_round_id=after_round_id, unit=unit, owed_nano_units=owed, paid_units=paid,
        pending_units=pending, carry_nano_units=owed - (paid + pending) * NANO))


@dataclass(frozen=True)
class RoundLink:
    """Whose figure priced a consumer's round (``[producer]``): what its entry (round
    version 2, ``core.entries.LinkedRoundEntry``) says besides the figures themselves."""

    priced_from: str  # core.entries.PRICED_FROM
    producer_origin: str
    producer_index: int  # -1: no producer entry (its own channel after waiting)
    producer_leaf_hash: bytes  # b"" with no entry
    own_energy_uws: int
    own_metered_us: int  # 0: not compared (channel not wired, or not metered)
    named_energy_uws: int  # the named entry's figures (0 with none)
    named_metered_us: int
    band_ppm: int  # the band the two were compared by
    band_uw: int


def round_entry(round_id: int, r: RoundTotals, q: Quote, unit: str, carry_in: int,
                queued: int, carry_out: int, link: RoundLink | None = None) -> bytes:
    """The entry of a round as recorded: the integers it was priced from, the rule,
    the carry before and after it and the whole units it queued (and, ``link``, whose
    figure priced it).

    Raises:
        LedgerError: the quote does not name its rule (made by hand, not ``quote_round``).
    """
    if q.rule is None:
        raise LedgerError(f"round {round_id} was priced without its rule: it cannot be logged")
    start_ms = round(r.started_at * 1000)
    end_ms = max(round(r.ended_at * 1000), start_ms)  # a wall clock stepped back mid-round
    figures = dict(
        round_id=round_id, start_utc_ms=start_ms, end_utc_ms=end_ms, unit=unit,
        consumer_energy_uws=q.consumer_energy_uws, producer_energy_uws=q.producer_energy_uws,
        producer_metered_us=q.producer_metered_us,
        numerator_nano_units_per_s=q.rule.numerator_nano_units_per_s,
        cap_nano_units_per_mws=q.rule.cap_nano_units_per_mws, carry_in_nano_units=carry_in,
        owed_nano_units=q.owed_nano_units, queued_units=queued, carry_out_nano_units=carry_out)
    if link is None:
        return encode_round(RoundEntry(**figures))
    return encode_round(LinkedRoundEntry(
        **figures, priced_from=link.priced_from, producer_origin=link.producer_origin,
        producer_index=link.producer_index, producer_leaf_hash=link.producer_leaf_hash.hex(),
        named_energy_uws=link.named_energy_uws, named_metered_us=link.named_metered_us,
        own_energy_uws=link.own_energy_uws, own_metered_us=link.own_metered_us,
        band_ppm=link.band_ppm, band_uw=link.band_uw))


def payment_entry(db: sqlite3.Connection, payment_id: int, unit: str,
                  recipient_fallback: str = "") -> bytes:
    """The entry of a payment that ended: executed (confirmed) or failed (owed again)."""
    row = db.execute("SELECT backend, reference, recipient, value_units, fee_nanos, status"
                     " FROM payments WHERE id = ?", (payment_id,)).fetchone()
    backend, reference, recipient, value, fee, status = row
    rounds = [r[0] for r in db.execute("SELECT round_id FROM payment_rounds WHERE payment_id = ?",
                                       (payment_id,))]
    return encode_payment(PaymentEntry(
        payment_id=payment_id, backend=backend, reference=reference,
        recipient=recipient or recipient_fallback or "unrecorded", unit=unit,
        amount_units=value, fee_nanos=fee, settles_rounds=round_ids_to_ranges(rounds),
        status=EXECUTED if status == "confirmed" else FAILED))


def _size(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT size FROM log_checkpoint WHERE id = 1").fetchone()
    return int(row[0]) if row else 0


def _stored(db: sqlite3.Connection) -> tlog.HashAt:
    def read(i: int) -> bytes:
        row = db.execute("SELECT hash FROM log_hashes WHERE id = ?", (i,)).fetchone()
        if row is None:
            raise LedgerError(f"the log's stored hash {i} is missing")
        return bytes(row[0])
    return tlog.stored_reader(read)


def started_with(path: str) -> str | None:
    """The verifier key the log of the ledger at ``path`` was begun with; None when the
    file is no ledger (yet), or its log has not begun. Reads only."""
    from .reader import LedgerReader

    try:
        with LedgerReader(path) as reader:
            return LogView(reader.db).meta().get("log_verifier")
    except LedgerError:  # none yet, or one that opening it for the run names the problem of
        return None


def has_log(db: sqlite3.Connection) -> bool:
    """Whether this ledger's log has started (its entries must then be written)."""
    return db.execute("SELECT 1 FROM ledger_meta WHERE key = 'log_verifier'").fetchone() \
        is not None


class LogView:
    """Read-only answers about the log, on a connection of the caller's (one snapshot
    when the caller holds a read transaction)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def started(self) -> bool:
        return _has_tables(self.db) and has_log(self.db)

    def meta(self) -> dict[str, str]:
        """``log_origin``, ``log_verifier``, ``log_started_after_round`` (empty: no log)."""
        if not _has_tables(self.db):
            return {}
        return dict(self.db.execute("SELECT key, value FROM ledger_meta WHERE key LIKE 'log_%'")
                    .fetchall())

    def size(self) -> int:
        return _size(self.db) if _has_tables(self.db) else 0

    def checkpoint(self) -> bytes | None:
        """The latest signed checkpoint note, exactly as signed; None before the first entry."""
        if not _has_tables(self.db):
            return None
        row = self.db.execute("SELECT note FROM log_checkpoint WHERE id = 1").fetchone()
        return bytes(row[0]) if row else None

    def entries(self, start: int, end: int) -> list[bytes]:
        """Entries ``start`` .. ``end - 1`` (at most ``MAX_PAGE``; fewer past the end)."""
        end = min(end, start + MAX_PAGE)
        rows = self.db.execute("SELECT data FROM log_entries WHERE idx >= ? AND idx < ?"
                               " ORDER BY idx", (start, end)).fetchall()
        return [bytes(r[0]) for r in rows]

    def iter_entries(self, size: int) -> Iterator[bytes]:
        """Entries 0 .. ``size - 1``, a page at a time (for an export)."""
        for start in range(0, size, MAX_PAGE):
            yield from self.entries(start, min(start + MAX_PAGE, size))

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 6962 2.1.1 audit path; ValueError unless 0 <= index < size <= the log's."""
        self._within(size)
        return tlog.inclusion_proof(index, size, _stored(self.db))

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """RFC 6962 2.1.2 proof; ValueError unless 0 <= old <= new <= the log's size."""
        self._within(new_size)
        return tlog.consistency_proof(old_size, new_size, _stored(self.db))

    def root(self, size: int) -> bytes:
        self._within(size)
        return tlog.tree_hash(size, _stored(self.db))

    def _within(self, size: int) -> None:
        if size > self.size():
            raise ValueError(f"the log holds {self.size()} entries, not {size}")


def _has_tables(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'"
                      " AND name = 'log_checkpoint'").fetchone() is not None
