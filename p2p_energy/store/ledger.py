"""The ledger: SQLite, the single source of truth for rounds and payments.

Rules it keeps:
- A closed round is committed, together with the payment it makes due, in one
  transaction, before any payment for it is attempted.
- ``paid + queued == floor(total owed)`` after every round: the fraction is
  carried (amounts owed are kept as whole billionths of a ledger unit, see ``pricing``;
  the unit, IOTA or micro-IOTA, is the one ``reader.ledger_unit_of`` names).
- A payment is signed at most once: the signed transfer (``reference`` and
  ``payload``) is committed before it is sent, and is only ever sent again from
  here, never signed again. Every attachment's id is committed before it is sent.

Each thread opens its own ``Ledger`` (SQLite connections are not shared).
Only the process holding the ledger's lock (``lock.LedgerLock``: ``run``,
``wallet set-index``) upgrades an existing ledger's schema; read-only commands
open it with ``readonly=True`` and never change it.
WAL mode lets the payer read while the meter writes; ``synchronous=FULL``
makes each commit survive a power cut. The seed is never stored here.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from ..core.link import Accepted, average_mw
from ..core.metering import LivePower, RoundTotals
from ..core.pricing import NANO, Quote, carry_units, payable_units
from ..core.tlog import Frontier
from ..errors import LedgerError
from ..wallet.base import FAILED, Attachment, Signed, ledger_unit
from . import lock, producer_log
from .common import iso, open_problem
from .reader import LedgerReader, ledger_unit_of
from .schema import _MIGRATIONS, SCHEMA_VERSION, _create_v1, record_unit
from .signed_log import (
    LogWriter,
    RoundLink,
    has_log,
    payment_entry,
    production_entry,
    round_entry,
)

__all__ = [
    "SCHEMA_VERSION",
    "_MIGRATIONS",
    "Ledger",
    "Payment",
    "RoundRecorded",
    "_create_v1",
    "holds_simulation",
    "iso",
    "open_problem",
]

# Payments that count as paid or queued (a failed one is owed again).
_LIVE = "('queued', 'sent', 'confirmed')"


@dataclass(frozen=True)
class Payment:
    id: int
    value_units: int  # ledger units
    status: str
    attempts: int
    reference: str | None
    payload: str | None
    input_index: int | None
    change_index: int | None
    backend: str | None
    fee_nanos: int
    attachments: tuple[str, ...]  # ids, oldest first
    last_attached_at: float | None
    unsent: Attachment | None  # the newest attachment, recorded but not known to be sent

    @property
    def signed(self) -> Signed | None:
        """The stored signed transfer, or None if not signed yet."""
        if self.reference is None or self.payload is None:
            return None
        return Signed(self.reference, self.payload, self.value_units,
                      int(self.input_index or 0), int(self.change_index or 0))


@dataclass(frozen=True)
class RoundRecorded:
    round_id: int
    queued_payment_id: int | None
    queued_units: int
    carry_units: float


def holds_simulation(path: str | Path) -> bool | None:
    """Whether the ledger at ``path`` was made by ``run --simulate``; None when the file
    is not a ledger yet (missing, empty, or left by a first start that died before its
    schema was written: the daemon makes it a ledger). Reads only.

    Raises:
        LedgerError: it cannot be read, or its schema is newer than this program's.
    """
    p = Path(path)
    if not p.is_file() or p.stat().st_size == 0:
        return None
    uri = "file:" + quote(str(p.absolute())) + "?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True, timeout=10.0, isolation_level=None)
        try:
            if int(db.execute("PRAGMA user_version").fetchone()[0]) == 0:
                return None
        finally:
            db.close()
    except sqlite3.DatabaseError as err:
        raise LedgerError(f"{p}: cannot open ledger: {err}") from None
    ledger = Ledger(p, readonly=True)
    try:
        return ledger.is_simulation()
    finally:
        ledger.close()


class Ledger:
    """One connection to the ledger file. Not shared between threads."""

    def __init__(self, path: str | Path, *, clock=time.time, readonly: bool = False,
                 log: LogWriter | None = None) -> None:
        """Open (and create) the ledger; ``readonly``: SQLite ``mode=ro``, never changed.

        ``log``: the signed log's writer (the meter's key). A ledger whose log has
        started refuses to record a round or end a payment without it: no round
        or payment may lack its entry.

        Raises:
            LedgerError: cannot open; schema newer than this program; an older schema
                and this process does not hold the ledger's lock (only the daemon
                upgrades it); ``readonly`` and the file is not a ledger yet; ``log``
                holds another key than the one the ledger's log was started with.
        """
        self.path = str(path)
        self._log = log
        self.clock = clock
        self.readonly = readonly
        self.version = SCHEMA_VERSION
        try:
            if readonly:
                uri = "file:" + quote(str(Path(self.path).absolute())) + "?mode=ro"
                self.db = sqlite3.connect(uri, uri=True, timeout=10.0, isolation_level=None)
                try:
                    self.version = self._schema_version()
                except BaseException:
                    self.db.close()
                    raise
                if self.version == 0:
                    self.db.close()
                    raise LedgerError(f"{self.path}: not a ledger yet (has the daemon started?)")
                return
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
            if log is not None:
                with self._tx() as db:
                    log.bind(db, self.path, ledger_unit_of(db, None))
        except sqlite3.DatabaseError as err:
            raise LedgerError(f"{self.path}: cannot open ledger: {open_problem(self.path, err)}"
                              ) from None
        except OSError as err:
            raise LedgerError(f"{self.path}: cannot open ledger: {err.strerror}") from None

    def _schema_version(self) -> int:
        version = int(self.db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise LedgerError(f"{self.path}: ledger schema {version} is newer than this "
                              f"program understands ({SCHEMA_VERSION}): upgrade p2p-energy")
        return version

    @property
    def outdated(self) -> bool:
        """True for a read-only ledger the daemon has not upgraded to this schema yet."""
        return self.version < SCHEMA_VERSION

    def require_current(self) -> None:
        """Raises LedgerError (one line: start the daemon once) if ``outdated``."""
        if self.outdated:
            raise LedgerError(
                f"{self.path}: ledger schema {self.version} is older than this program's"
                f" ({SCHEMA_VERSION}); the daemon upgrades it when it starts: restart it once"
                " (sudo systemctl restart p2p-energy), then run this again")

    def _migrate(self) -> None:
        """Bring the file to ``SCHEMA_VERSION``, one step at a time, in one transaction.

        Only under the ledger's lock: an older daemon still writing would go on
        recording rounds as its schema wants, and what it owes would go missing.
        """
        with self._tx():
            version = self._schema_version()
            if 0 < version < SCHEMA_VERSION and not lock.holds(self.path):
                raise LedgerError(f"{self.path}: ledger schema {version} needs upgrading, "
                                  "which only the daemon does (under the ledger's lock)")
            for step in _MIGRATIONS[version:]:
                step(self.db)
            if version != SCHEMA_VERSION:
                self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (BEGIN IMMEDIATE) so it cannot deadlock."""
        if self.readonly:
            raise LedgerError(f"{self.path}: opened read-only")
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _writer(self, db: sqlite3.Connection) -> LogWriter | None:
        """The log's writer, None while this ledger keeps no log.

        Raises:
            LedgerError: the log has started and this connection has no key for it.
        """
        if self._log is None and has_log(db):
            raise LedgerError(f"{self.path}: this ledger keeps a signed log; what is recorded"
                              " goes into it, signed with the meter's key ([log] key_file),"
                              " which this command did not load")
        return self._log

    def close(self) -> None:
        self.db.close()

    # -- metering side -------------------------------------------------------------------

    def record_round(self, r: RoundTotals, q: Quote) -> RoundRecorded:
        """Commit a closed round and queue the whole IOTA it makes payable, atomically."""
        with self._tx() as db:
            writer = self._writer(db)
            if db.execute("SELECT 1 FROM rounds WHERE waiting = 1 LIMIT 1").fetchone():
                raise LedgerError(f"{self.path}: rounds wait for the producer's figure; a"
                                  " round after them is priced after them")
            round_id = self._insert_round(db, r, q)
            return self._settle(db, writer, round_id, r, q)

    def record_waiting_round(self, r: RoundTotals) -> RoundRecorded:
        """Commit a closed round that waits for the producer's figure (``[producer]``):
        recorded with this meter's own figures, priced later (``price_waiting``), in order.
        It owes nothing and is not in the signed log until then."""
        with self._tx() as db:
            self._writer(db)
            round_id = self._insert_round(db, r, None, waiting=True)
            owed, live = self._owed_and_live(db)
            return RoundRecorded(round_id, None, 0, carry_units(owed, live))

    def price_waiting(self, round_id: int, r: RoundTotals, q: Quote,
                      link: RoundLink) -> RoundRecorded:
        """Price the oldest waiting round, as ``record_round`` prices a round: what it owes,
        the whole units that makes payable, and its entry (naming the producer's entry
        ``link`` names) in the signed log, atomically.

        Raises:
            LedgerError: ``round_id`` is not the oldest round waiting (rounds are priced
                in order: the carry runs from one to the next).
        """
        with self._tx() as db:
            writer = self._writer(db)
            oldest = db.execute("SELECT MIN(id) FROM rounds WHERE waiting = 1").fetchone()[0]
            if oldest != round_id:
                raise LedgerError(f"{self.path}: round {round_id} is not the oldest round"
                                  f" waiting for the producer ({oldest})")
            db.execute("UPDATE rounds SET waiting = 0, price = ?, price_capped = ?,"
                       " owed_nano_units = ?, priced_from = ?, producer_index = ?,"
                       " producer_mws = ?, producer_metered_s = ?, producer_avg_mw = ?"
                       " WHERE id = ?",
                       (q.price, int(q.capped), q.owed_nano_units, link.priced_from,
                        link.producer_index if link.producer_index >= 0 else None,
                        q.producer_energy_uws / 1000, q.producer_metered_us / 1e6,
                        average_mw(q.producer_energy_uws, q.producer_metered_us), round_id))
            return self._settle(db, writer, round_id, r, q, link)

    def oldest_waiting(self) -> tuple[int, RoundTotals] | None:
        """The oldest round waiting for the producer's figure (the one priced next)."""
        row = self.db.execute(
            "SELECT id, started_at, ended_at, duration_s, metered_s, samples,"
            " expected_samples, failed_samples, consumer_mws, producer_mws,"
            " consumer_metered_s, producer_metered_s FROM rounds WHERE waiting = 1"
            " ORDER BY id LIMIT 1").fetchone()
        if row is None:
            return None
        return row[0], RoundTotals(
            started_at=row[1], ended_at=row[2], duration_s=row[3], metered_s=row[4],
            samples=row[5], expected_samples=row[6], failed_samples=row[7],
            consumer_mws=row[8], producer_mws=row[9], consumer_metered_s=row[10],
            producer_metered_s=row[11])

    def follow_producer(self, verifier_key: str) -> producer_log.FollowState:
        """Follow the producer of ``verifier_key`` (``producer_log.start_following``)."""
        with self._tx() as db:
            return producer_log.start_following(db, verifier_key, round(self.clock() * 1000))

    def accept_producer_entries(self, producer_key: str, accepted: list[Accepted],
                                frontier: Frontier, checkpoint: bytes, since_ms: int) -> int:
        """Keep what the producer's signed checkpoint covers (``producer_log.save_accepted``)."""
        with self._tx() as db:
            return producer_log.save_accepted(db, producer_key, accepted, frontier,
                                              checkpoint, since_ms)

    def producer_entry(self, producer_key: str, slot_ms: int,
                       slot: int) -> producer_log.StoredEntry | None:
        """The producer's accepted entry for ``slot``, if any (``producer_log.entry_for_slot``)."""
        return producer_log.entry_for_slot(self.db, producer_key, slot_ms, slot)

    def producer_reached_ms(self) -> int | None:
        """How far in time the producer's accepted entries reach (UTC ms), usable or not."""
        return producer_log.reached_ms(self.db)

    def _settle(self, db: sqlite3.Connection, writer: LogWriter | None, round_id: int,
                r: RoundTotals, q: Quote, link: RoundLink | None = None) -> RoundRecorded:
        """What round ``round_id`` owes, added to the running totals; the whole units that
        makes payable, queued for the rounds up to it no payment covers yet; its entry."""
        owed, live = self._owed_and_live(db)
        owed += q.owed_nano_units  # a Python int: exact however long the ledger runs
        db.execute("UPDATE running_totals SET value = ? WHERE key = 'owed_nano_units'",
                   (str(owed),))
        value = payable_units(owed, live)
        payment_id = None
        if value > 0:
            payment_id = int(db.execute(
                "INSERT INTO payments (value_units, status, created_at)"
                " VALUES (?, 'queued', ?)", (value, self.clock())).lastrowid or 0)
            self._add_live(db, value)
            # The rounds no live payment covers yet: those after the newest one covered
            # (a payment that fails is queued again for the same rounds, so they stay
            # covered), up to this one (later ones may wait for the producer's figure).
            # Read through the index from the top: a few rows, not all.
            db.execute(
                "INSERT INTO payment_rounds (payment_id, round_id) SELECT ?, r.id FROM rounds r"
                " WHERE r.id <= ? AND r.id > COALESCE((SELECT pr.round_id FROM payment_rounds"
                f" pr JOIN payments p ON p.id = pr.payment_id WHERE p.status IN {_LIVE}"
                " ORDER BY pr.round_id DESC LIMIT 1), 0)", (payment_id, round_id))
        if writer is not None:
            carry_in = owed - q.owed_nano_units - live * NANO
            entry = round_entry(round_id, r, q, ledger_unit_of(db, None), carry_in, value,
                                owed - (live + value) * NANO, link)
            writer.append(db, entry, round_id=round_id)
        return RoundRecorded(round_id, payment_id, value, carry_units(owed, live + value))

    def record_production(self, r: RoundTotals, length_s: float, clock: str) -> RoundRecorded:
        """Commit a producer's closed round (``role = "producer"``): no price, nothing owed,
        nothing queued; its production entry in the signed log, in the same transaction.

        ``length_s``: the round length (its slot); ``clock``: ``runtime.clock`` state.
        """
        with self._tx() as db:
            writer = self._writer(db)
            round_id = self._insert_round(db, r, None)
            if writer is not None:
                writer.append(db, production_entry(round_id, r, length_s, clock),
                              round_id=round_id)
            return RoundRecorded(round_id, None, 0, 0.0)

    @staticmethod
    def _insert_round(db: sqlite3.Connection, r: RoundTotals, q: Quote | None, *,
                      waiting: bool = False) -> int:
        """The closed round's row (``q`` None: unpriced and owing nothing: a producer's,
        its consumer channel not its meter's, or one ``waiting`` for the producer's
        figure); the open round's checkpoint goes. Its id."""
        consumer = (r.consumer_mws, r.consumer_metered_s) if q is not None or waiting \
            else (0.0, 0.0)
        priced = (q.price, int(q.capped), q.owed_nano_units) if q is not None else (0.0, 0, 0)
        cur = db.execute(
            "INSERT INTO rounds (started_at, ended_at, duration_s, metered_s, samples,"
            " expected_samples, failed_samples, consumer_mws, producer_mws,"
            " producer_avg_mw, price, price_capped, owed_nano_units, consumer_metered_s,"
            " producer_metered_s, waiting) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (r.started_at, r.ended_at, r.duration_s, r.metered_s, r.samples,
             r.expected_samples, r.failed_samples, consumer[0], r.producer_mws,
             r.producer_avg_mw, *priced, consumer[1], r.producer_metered_s, int(waiting)))
        db.execute("DELETE FROM open_round")
        return int(cur.lastrowid or 0)

    def checkpoint(self, r: RoundTotals, live: LivePower | None = None) -> None:
        """Save the open round's running totals (replacing the previous checkpoint),
        and the latest power ``live`` for ``p2p-energy serve`` to show (None: no
        recent good reading; the last one stays, growing old)."""
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO open_round (id, started_at, duration_s, metered_s,"
                " consumer_mws, producer_mws, samples, expected_samples, failed_samples, saved_at,"
                " consumer_metered_s, producer_metered_s)"
                " VALUES (1,?,?,?,?,?,?,?,?,?,?,?)",
                (r.started_at, r.duration_s, r.metered_s, r.consumer_mws, r.producer_mws,
                 r.samples, r.expected_samples, r.failed_samples, self.clock(),
                 r.consumer_metered_s, r.producer_metered_s))
            if live is not None:
                db.execute("INSERT OR REPLACE INTO live_power (id, consumer_mw, producer_mw,"
                           " sampled_at, saved_at) VALUES (1,?,?,?,?)",
                           (live.consumer_mw, live.producer_mw, live.sampled_at, self.clock()))

    def load_checkpoint(self) -> RoundTotals | None:
        """The open round saved before the last stop or crash, if any."""
        row = self.db.execute(
            "SELECT started_at, duration_s, metered_s, consumer_mws, producer_mws, samples,"
            " expected_samples, failed_samples, consumer_metered_s, producer_metered_s"
            " FROM open_round WHERE id = 1").fetchone()
        if row is None:
            return None
        return RoundTotals(started_at=row[0], duration_s=row[1], metered_s=row[2],
                           consumer_mws=row[3], producer_mws=row[4], samples=row[5],
                           expected_samples=row[6], failed_samples=row[7],
                           consumer_metered_s=row[8], producer_metered_s=row[9])

    # -- payer side ----------------------------------------------------------------------

    def in_flight(self) -> Payment | None:
        """The payment that has been signed but has not ended yet (at most one)."""
        row = self.db.execute(
            "SELECT id FROM payments WHERE reference IS NOT NULL"
            " AND status IN ('queued', 'sent') ORDER BY id LIMIT 1").fetchone()
        return self.payment(row[0]) if row else None

    def claim_queued(self, min_value: int = 1) -> Payment | None:
        """Merge every unsigned queued payment into the oldest one and return it.

        Amounts owed while a payment was in flight go out together in one transfer.
        Returns None while nothing is queued, or less than ``min_value`` units.
        """
        with self._tx() as db:
            rows = db.execute(
                "SELECT id, value_units FROM payments WHERE status = 'queued'"
                " AND reference IS NULL ORDER BY id").fetchall()
            if not rows or sum(r[1] for r in rows) < min_value:
                return None
            keep, rest = rows[0][0], [r[0] for r in rows[1:]]
            for other in rest:
                db.execute("UPDATE payments SET value_units = value_units +"
                           " (SELECT value_units FROM payments WHERE id = ?) WHERE id = ?",
                           (other, keep))
                db.execute("UPDATE OR IGNORE payment_rounds SET payment_id = ?"
                           " WHERE payment_id = ?", (keep, other))
                db.execute("DELETE FROM payments WHERE id = ?", (other,))
        return self.payment(keep)

    def split_queued(self, payment_id: int, value: int) -> int:
        """Keep ``value`` units in an unsigned queued payment; queue the rest anew.

        For paying what the wallet holds now and the rest after a deposit. The
        rest is linked to the same rounds. Returns the new payment's id.

        Raises:
            LedgerError: the payment is not an unsigned queued one larger than ``value``.
        """
        with self._tx() as db:
            row = db.execute("SELECT value_units FROM payments WHERE id = ? AND status = 'queued'"
                             " AND reference IS NULL", (payment_id,)).fetchone()
            if row is None or not 0 < value < row[0]:
                raise LedgerError(f"payment {payment_id} cannot be split at {value}")
            db.execute("UPDATE payments SET value_units = ? WHERE id = ?", (value, payment_id))
            return self._requeue(db, payment_id, row[0] - value)

    def _requeue(self, db: sqlite3.Connection, payment_id: int, value: int) -> int:
        """A new queued payment of ``value`` for the rounds of ``payment_id``."""
        new_id = int(db.execute(
            "INSERT INTO payments (value_units, status, created_at) VALUES (?, 'queued', ?)",
            (value, self.clock())).lastrowid or 0)
        db.execute("INSERT INTO payment_rounds (payment_id, round_id) SELECT ?, round_id"
                   " FROM payment_rounds WHERE payment_id = ?", (new_id, payment_id))
        return new_id

    def store_signed(self, payment_id: int, signed: Signed, backend: str) -> None:
        """Commit the signed transfer before it is ever sent.

        Raises:
            LedgerError: the payment changed or was signed already (never sign twice).
        """
        with self._tx() as db:
            changed = db.execute(
                "UPDATE payments SET reference = ?, payload = ?, input_index = ?,"
                " change_index = ?, backend = ?, recipient = ? WHERE id = ? AND value_units = ?"
                " AND reference IS NULL AND status = 'queued'",
                (signed.reference, signed.payload, signed.input_index, signed.change_index,
                 backend, signed.recipient or None, payment_id, signed.value)).rowcount
            if changed != 1:
                raise LedgerError(f"payment {payment_id} changed while it was being signed")

    def record_attachment(self, payment_id: int, attachment: Attachment) -> None:
        """An attachment was made and is about to be sent: its id is known from now on.

        An id seen before (today's network: a transaction has one digest, however
        often it is sent) is made the newest again, unsent, so that the wait
        before the next attempt starts now.
        """
        with self._tx() as db:
            db.execute("INSERT INTO attachments (payment_id, attachment_id, attached_at, data)"
                       " VALUES (?,?,?,?) ON CONFLICT (payment_id, attachment_id) DO UPDATE"
                       " SET attached_at = excluded.attached_at, data = excluded.data,"
                       " sent_at = NULL",
                       (payment_id, attachment.id, self.clock(), attachment.data))

    def mark_sent(self, payment_id: int, attachment_id: str) -> None:
        """The attachment went out (the node accepted it)."""
        now = self.clock()
        with self._tx() as db:
            db.execute("UPDATE attachments SET sent_at = COALESCE(sent_at, ?)"
                       " WHERE payment_id = ? AND attachment_id = ?",
                       (now, payment_id, attachment_id))
            db.execute("UPDATE payments SET status = 'sent', sent_at = COALESCE(sent_at, ?),"
                       " attempts = attempts + 1, last_error = NULL WHERE id = ?",
                       (now, payment_id))

    def abandon_attachment(self, payment_id: int, attachment_id: str, why: str) -> None:
        """An attachment never sent that will not be sent again (the node refused it, or it
        waited too long): its data is dropped, so it is no longer the one to send. Its id
        stays recorded (the network is still asked about it)."""
        with self._tx() as db:
            db.execute("UPDATE attachments SET data = NULL WHERE payment_id = ?"
                       " AND attachment_id = ? AND sent_at IS NULL", (payment_id, attachment_id))
            db.execute("UPDATE payments SET last_error = ? WHERE id = ?", (why, payment_id))

    def record_seen(self, payment_id: int, attachment_ids: Sequence[str]) -> list[str]:
        """Attachments the network holds (so they were sent); returns those the ledger
        did not know."""
        now = self.clock()
        added = []
        with self._tx() as db:
            for a in attachment_ids:
                if db.execute("INSERT OR IGNORE INTO attachments (payment_id, attachment_id,"
                              " attached_at, sent_at) VALUES (?,?,?,?)",
                              (payment_id, a, now, now)).rowcount:
                    added.append(a)
                else:
                    db.execute("UPDATE attachments SET sent_at = COALESCE(sent_at, ?)"
                               " WHERE payment_id = ? AND attachment_id = ?",
                               (now, payment_id, a))
        return added

    def record_failure(self, payment_id: int, message: str) -> None:
        """Count a failed attempt; the payment stays as it is (an unsigned one stays queued:
        nothing reached the network, so nothing ended, and the signed log has nothing
        to say; the payer tries again after its backoff)."""
        with self._tx() as db:
            db.execute("UPDATE payments SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                       (message, payment_id))

    def mark_confirmed(self, payment_id: int, fee_nanos: int = 0) -> None:
        """The transfer is confirmed: its change key index becomes the next input."""
        with self._tx() as db:
            writer = self._writer(db)
            row = db.execute("SELECT change_index FROM payments WHERE id = ?",
                             (payment_id,)).fetchone()
            db.execute("UPDATE payments SET status = 'confirmed', confirmed_at = ?,"
                       " fee_nanos = ? WHERE id = ?", (self.clock(), fee_nanos, payment_id))
            self._set_input_index(db, row[0])
            if writer is not None:
                writer.append(db, payment_entry(db, payment_id, ledger_unit_of(db, None),
                                                writer.recipient), payment_id=payment_id)

    def mark_ended(self, payment_id: int, state: str, detail: str, fee_nanos: int = 0, *,
                   owner_note: str = "", default_index: int = 0) -> int:
        """A signed transfer that will never pay (``failed``, ``dead``, or ``abandoned``
        by the owner): owed again now.

        ``failed`` executed and spent its inputs (and ``fee_nanos``): the change
        index becomes the next input. ``owner_note`` (``wallet abandon``): the owner
        ended it; recorded in ``wallet_events`` (kind ``abandon``) with the key index
        before and after (``default_index`` when none is recorded yet). Returns the id
        of the payment queued anew.
        """
        with self._tx() as db:
            writer = self._writer(db)
            row = db.execute("SELECT value_units, change_index FROM payments WHERE id = ?",
                             (payment_id,)).fetchone()
            db.execute("UPDATE payments SET status = 'failed', fee_nanos = ?, last_error = ?"
                       " WHERE id = ?", (fee_nanos, f"{state}: {detail}", payment_id))
            if writer is not None:
                writer.append(db, payment_entry(db, payment_id, ledger_unit_of(db, None),
                                                writer.recipient), payment_id=payment_id)
            old = self.input_index(default_index)
            if state == FAILED:
                self._set_input_index(db, row[1])
            if owner_note:
                db.execute("INSERT INTO wallet_events (at, kind, old_index, new_index, note)"
                           " VALUES (?, 'abandon', ?, ?, ?)",
                           (self.clock(), old, self.input_index(default_index),
                            f"payment {payment_id}: {owner_note}"))
            return self._requeue(db, payment_id, row[0])

    @staticmethod
    def _set_input_index(db: sqlite3.Connection, index: int) -> None:
        db.execute("INSERT OR REPLACE INTO wallet_state (key, value) VALUES ('input_index', ?)",
                   (index,))

    def set_input_index(self, index: int, note: str, *, default: int) -> int:
        """The owner says the funds are at key ``index`` now; returns the index before.

        Recorded in ``wallet_events``. Refused while a payment is in flight: its
        change goes to a key index already chosen.

        Raises:
            LedgerError: a payment is signed and not confirmed yet.
        """
        with self._tx() as db:
            flying = db.execute("SELECT id, value_units, input_index FROM payments WHERE"
                                " reference IS NOT NULL AND status IN ('queued', 'sent')"
                                " ORDER BY id LIMIT 1").fetchone()
            if flying is not None:
                unit = ledger_unit_of(db, None)  # the ledger's: its payments' values are in it
                raise LedgerError(
                    f"{self.path}: payment {flying[0]} of {flying[1]} {unit} from key index"
                    f" {flying[2]} is in flight; set the key index once it is confirmed")
            old = self.input_index(default)
            self._set_input_index(db, index)
            db.execute("INSERT INTO wallet_events (at, kind, old_index, new_index, note)"
                       " VALUES (?, 'set-index', ?, ?, ?)", (self.clock(), old, index, note))
        return old

    def wallet_events(self) -> list[dict[str, object]]:
        """Key index changes made by the owner, oldest first."""
        return self._reader().wallet_events()

    def record_role(self, role: str) -> None:
        """This ledger is a ``role``'s (``run`` says so as it starts, under the lock).

        Raises:
            LedgerError: it holds rounds of the other role (a consumer's priced rounds and
                payments, or a producer's production: one log cannot hold both).
        """
        with self._tx() as db:
            row = db.execute("SELECT value FROM ledger_meta WHERE key = 'role'").fetchone()
            held = db.execute("SELECT EXISTS (SELECT 1 FROM rounds)").fetchone()[0]
            if row is not None and row[0] != role and held:
                raise LedgerError(f"{self.path}: a {row[0]}'s ledger, and this config says"
                                  f" role = \"{role}\": give it a new ledger.path")
            db.execute("INSERT OR REPLACE INTO ledger_meta (key, value) VALUES ('role', ?)",
                       (role,))

    def log_published(self) -> int:
        """How many of the log's entries an MQTT broker has acknowledged (a producer's)."""
        row = self.db.execute("SELECT value FROM ledger_meta WHERE key = 'log_published'"
                              ).fetchone()
        return int(row[0]) if row else 0

    def set_log_published(self, size: int) -> None:
        """The broker acknowledged the log's first ``size`` entries and their checkpoint."""
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO ledger_meta (key, value) VALUES"
                       " ('log_published', ?)", (str(size),))

    def is_simulation(self) -> bool:
        """True for a ledger made by ``run --simulate`` (simulated rounds, dry-run payments)."""
        row = self.db.execute("SELECT value FROM wallet_state WHERE key = 'simulation'").fetchone()
        return bool(row and row[0])

    def record_unit(self, backend: str) -> None:
        """The amounts written from now on are in the unit of ``backend`` (``run`` says so
        as it starts, under the ledger's lock; ``reader.ledger_unit_of`` reads it).

        Raises:
            LedgerError: the ledger holds amounts in another unit (IOTA and micro-IOTA
                cannot share one running total, one carry, one signed log).
        """
        with self._tx() as db:
            recorded = db.execute("SELECT value FROM ledger_meta WHERE key = 'unit'").fetchone()
            wanted = ledger_unit(backend)
            holds = db.execute("SELECT EXISTS (SELECT 1 FROM rounds)"
                               " OR EXISTS (SELECT 1 FROM payments)").fetchone()[0]
            if recorded is not None and recorded[0] != wanted and holds:
                raise LedgerError(
                    f"{self.path}: its amounts are in {recorded[0]}, and wallet.backend ="
                    f" \"{backend}\" pays in {wanted}; one ledger keeps one unit: give this"
                    " backend a new ledger.path (this ledger, its log and what it owes stay"
                    " as they are)")
            record_unit(db, backend)

    def mark_simulation(self) -> None:
        """Record that this ledger holds a simulation: a real ``run`` never pays from it."""
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO wallet_state (key, value) VALUES ('simulation', 1)")

    def set_health(self, failing_since: float | None, failures: int, last_error: str) -> None:
        """What the payer says about itself, for ``check`` (another process) to read."""
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO payer_health (id, failing_since, failures,"
                       " last_error, updated_at) VALUES (1, ?, ?, ?, ?)",
                       (failing_since, failures, last_error or None, self.clock()))

    def health(self) -> tuple[float | None, int, str]:
        """(failing since, failed attempts, last error); (None, 0, "") when all is well."""
        row = self.db.execute("SELECT failing_since, failures, last_error FROM payer_health"
                              " WHERE id = 1").fetchone()
        return (row[0], row[1], row[2] or "") if row else (None, 0, "")

    def input_index(self, default: int) -> int:
        """The key index of the address that holds the funds now."""
        row = self.db.execute(
            "SELECT value FROM wallet_state WHERE key = 'input_index'").fetchone()
        return int(row[0]) if row else default

    def payment(self, payment_id: int) -> Payment:
        row = self.db.execute(
            "SELECT id, value_units, status, attempts, reference, payload, input_index,"
            " change_index, backend, fee_nanos FROM payments WHERE id = ?",
            (payment_id,)).fetchone()
        atts = self.db.execute(
            "SELECT attachment_id, attached_at, data, sent_at FROM attachments"
            " WHERE payment_id = ? ORDER BY attached_at, rowid", (payment_id,)).fetchall()
        newest = atts[-1] if atts else None
        unsent = None
        if newest is not None and newest[3] is None and newest[2] is not None:
            unsent = Attachment(newest[0], newest[2])
        return Payment(id=row[0], value_units=row[1], status=row[2], attempts=row[3],
                       reference=row[4], payload=row[5], input_index=row[6],
                       change_index=row[7], backend=row[8], fee_nanos=row[9],
                       attachments=tuple(a[0] for a in atts),
                       last_attached_at=newest[1] if newest else None, unsent=unsent)

    # -- reports -------------------------------------------------------------------------

    @staticmethod
    def _owed_and_live(db: sqlite3.Connection) -> tuple[int, int]:
        """(nano-units ever owed, whole units paid or queued): two rows, however old the
        ledger. ``live_units`` changes only when a round queues units: a payment that
        ends without paying is queued again at once (no change)."""
        totals = dict(db.execute("SELECT key, value FROM running_totals WHERE key IN"
                                 " ('owed_nano_units', 'live_units')").fetchall())
        return int(totals["owed_nano_units"]), int(totals["live_units"])

    @staticmethod
    def _add_live(db: sqlite3.Connection, units: int) -> None:
        db.execute("UPDATE running_totals SET value = CAST(CAST(value AS INTEGER) + ? AS TEXT)"
                   " WHERE key = 'live_units'", (units,))

    def _reader(self) -> LedgerReader:
        """The reader on this connection: the one place that knows the columns' names."""
        return LedgerReader.over(self.db, self.path)

    def totals(self) -> dict[str, float | int]:
        """All-time totals (``reader.LedgerReader.totals``)."""
        return self._reader().totals()

    def unit(self, configured_backend: str | None) -> str:
        """The unit this ledger speaks (``reader.ledger_unit_of``)."""
        return ledger_unit_of(self.db, configured_backend)

    def report(self, unit: str | None = None) -> dict[str, object]:
        """Everything, in the shape ``p2p-energy ledger --json`` prints
        (``reader.LedgerReader.report``)."""
        return self._reader().report(unit)
