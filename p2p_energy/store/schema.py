"""The ledger's schema: every change, in order, from the first released schema on.

``Ledger`` applies the steps a ledger lacks (``PRAGMA user_version`` counts those
it has), under the ledger's lock; ``reader`` reads a ledger of any of these
versions. Its own module so that both can know the version without importing
each other.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from ..wallet.base import ledger_unit

_SCHEMA_V1 = """
CREATE TABLE rounds (
    id INTEGER PRIMARY KEY,
    started_at REAL NOT NULL,
    ended_at REAL NOT NULL,
    duration_s REAL NOT NULL,
    metered_s REAL NOT NULL,
    samples INTEGER NOT NULL,
    expected_samples INTEGER NOT NULL,
    failed_samples INTEGER NOT NULL,
    consumer_mws REAL NOT NULL,
    producer_mws REAL NOT NULL,
    producer_avg_mw REAL NOT NULL,
    price REAL NOT NULL,
    price_capped INTEGER NOT NULL,
    owed_niota INTEGER NOT NULL CHECK (owed_niota >= 0)
);
CREATE TABLE payments (
    id INTEGER PRIMARY KEY,
    value_iota INTEGER NOT NULL CHECK (value_iota > 0),
    status TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'confirmed', 'failed')),
    created_at REAL NOT NULL,
    sent_at REAL,
    confirmed_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    bundle_hash TEXT UNIQUE,
    trytes TEXT,
    input_index INTEGER,
    change_index INTEGER
);
CREATE TABLE payment_rounds (
    payment_id INTEGER NOT NULL REFERENCES payments(id) ON DELETE CASCADE,
    round_id INTEGER NOT NULL REFERENCES rounds(id),
    PRIMARY KEY (payment_id, round_id)
);
CREATE TABLE tails (
    payment_id INTEGER NOT NULL REFERENCES payments(id),
    tail_hash TEXT NOT NULL,
    attached_at REAL NOT NULL,
    PRIMARY KEY (payment_id, tail_hash)
);
CREATE TABLE open_round (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    started_at REAL NOT NULL,
    duration_s REAL NOT NULL,
    metered_s REAL NOT NULL,
    consumer_mws REAL NOT NULL,
    producer_mws REAL NOT NULL,
    samples INTEGER NOT NULL,
    expected_samples INTEGER NOT NULL,
    failed_samples INTEGER NOT NULL,
    saved_at REAL NOT NULL
);
CREATE TABLE wallet_state (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


def _create_v1(db: sqlite3.Connection) -> None:
    for statement in _SCHEMA_V1.split(";"):
        if statement.strip():
            db.execute(statement)


def _v2_wallet_protocol(db: sqlite3.Connection) -> None:
    """Payments in backend-neutral words: a reference, a payload, attachments, a fee."""
    db.execute("ALTER TABLE payments RENAME COLUMN bundle_hash TO reference")
    db.execute("ALTER TABLE payments RENAME COLUMN trytes TO payload")
    db.execute("ALTER TABLE payments ADD COLUMN fee_nanos INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE payments ADD COLUMN backend TEXT")
    # Before v2 only the legacy API signed; the dry-run wallet's payloads say so.
    db.execute("UPDATE payments SET backend = CASE WHEN payload LIKE '[\"DRYRUN%'"
               " THEN 'dry-run' ELSE 'pyota' END WHERE reference IS NOT NULL")
    db.execute("ALTER TABLE tails RENAME TO attachments")
    db.execute("ALTER TABLE attachments RENAME COLUMN tail_hash TO attachment_id")
    db.execute("ALTER TABLE attachments ADD COLUMN data TEXT")
    db.execute("ALTER TABLE attachments ADD COLUMN sent_at REAL")
    db.execute("UPDATE attachments SET sent_at = attached_at")  # v1 recorded after sending


def _add_live_power(db: sqlite3.Connection) -> None:
    """The latest consumer and producer power, saved with every checkpoint; indexes
    for ``p2p-energy serve`` and statements, which ask for rounds and payments by time.

    Its own one-row table, not columns of ``open_round``: closing a round deletes
    the checkpoint, and the live figures must not vanish with it.
    """
    db.execute("CREATE TABLE live_power (id INTEGER PRIMARY KEY CHECK (id = 1),"
               " consumer_mw REAL NOT NULL, producer_mw REAL NOT NULL,"
               " sampled_at REAL NOT NULL, saved_at REAL NOT NULL)")
    db.execute("CREATE INDEX rounds_by_end ON rounds (ended_at)")
    db.execute("CREATE INDEX payments_by_confirmation ON payments (confirmed_at)")


def _add_channel_metered_s(db: sqlite3.Connection) -> None:
    """How long each channel was metered, in rounds and in the open-round checkpoint.

    A channel out of range (a saturated shunt) is missing for that channel only,
    so the consumer's and the producer's metered times may differ. Rows written
    before were metered on both channels together: both take ``metered_s``.
    """
    for table in ("rounds", "open_round"):
        for column in ("consumer_metered_s", "producer_metered_s"):
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} REAL NOT NULL DEFAULT 0")
        db.execute(f"UPDATE {table} SET consumer_metered_s = metered_s,"
                   " producer_metered_s = metered_s")


def _add_health_index_totals(db: sqlite3.Connection) -> None:
    """Payer health for ``check``; a history of key index changes; exact running totals."""
    db.execute("CREATE TABLE payer_health (id INTEGER PRIMARY KEY CHECK (id = 1),"
               " failing_since REAL, failures INTEGER NOT NULL DEFAULT 0, last_error TEXT,"
               " updated_at REAL NOT NULL)")
    db.execute("CREATE TABLE wallet_events (id INTEGER PRIMARY KEY, at REAL NOT NULL,"
               " kind TEXT NOT NULL, old_index INTEGER, new_index INTEGER NOT NULL,"
               " note TEXT NOT NULL DEFAULT '')")
    # Sums SQLite's 64-bit SUM() could overflow, kept exactly as decimal text.
    db.execute("CREATE TABLE running_totals (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    owed = sum(r[0] for r in db.execute("SELECT owed_niota FROM rounds"))
    db.execute("INSERT INTO running_totals VALUES ('owed_niota', ?)", (str(owed),))


def _recount_running_totals(db: sqlite3.Connection) -> None:
    """The owed total counted again from the rounds, exactly.

    A read command of the release before this one upgraded the ledger without
    the lock, while the older daemon went on recording rounds without adding
    them to ``running_totals``: those amounts were never queued. Recounted here,
    under the lock, the next round queues them.
    """
    owed = sum(r[0] for r in db.execute("SELECT owed_niota FROM rounds"))
    db.execute("INSERT OR REPLACE INTO running_totals VALUES ('owed_niota', ?)", (str(owed),))


def _units_by_name(db: sqlite3.Connection) -> None:
    """Amounts named by what they are, and the ledger's unit recorded in it.

    ``owed_niota`` held billionths of a ledger unit and ``value_iota`` whole ledger
    units: IOTA on the legacy network, micro-IOTA on today's (``wallet.base``). They
    become ``owed_nano_units`` and ``value_units``; the running total's key follows,
    counted again from the rounds (exact, as ``_recount_running_totals``).
    ``ledger_meta`` holds ``unit`` (see ``reader.ledger_unit_of``): here the unit of
    the backend that signed the newest payment, none while nothing was ever signed;
    from then on ``run`` records its backend's (``Ledger.record_unit``).

    Renames only what still has its old name, so that it can run again on a ledger
    it already changed (every row is kept either way).
    """
    for table, old, new in (("rounds", "owed_niota", "owed_nano_units"),
                            ("payments", "value_iota", "value_units")):
        if old in {r[1] for r in db.execute(f"PRAGMA table_info({table})")}:
            db.execute(f"ALTER TABLE {table} RENAME COLUMN {old} TO {new}")
    owed = sum(r[0] for r in db.execute("SELECT owed_nano_units FROM rounds"))
    db.execute("DELETE FROM running_totals WHERE key IN ('owed_niota', 'owed_nano_units')")
    db.execute("INSERT INTO running_totals VALUES ('owed_nano_units', ?)", (str(owed),))
    db.execute("CREATE TABLE IF NOT EXISTS ledger_meta"
               " (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    newest = db.execute("SELECT backend FROM payments WHERE reference IS NOT NULL"
                        " AND backend IS NOT NULL ORDER BY id DESC LIMIT 1").fetchone()
    if newest is not None:
        record_unit(db, newest[0])


_SIGNED_LOG_TABLES = (
    """CREATE TABLE IF NOT EXISTS log_entries (
        idx INTEGER PRIMARY KEY CHECK (idx >= 0),
        data BLOB NOT NULL,
        round_id INTEGER UNIQUE REFERENCES rounds(id),
        payment_id INTEGER)""",
    """CREATE TABLE IF NOT EXISTS log_hashes (
        id INTEGER PRIMARY KEY CHECK (id >= 0),
        hash BLOB NOT NULL CHECK (length(hash) = 32))""",
    """CREATE TABLE IF NOT EXISTS log_checkpoint (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        size INTEGER NOT NULL,
        note BLOB NOT NULL)""",
)


def _add_signed_log(db: sqlite3.Connection) -> None:
    """The signed log's tables (``signed_log``), and each payment's recipient as signed.

    The log itself starts when ``run`` first opens the ledger with the meter's key
    (``LogWriter.bind``): rounds recorded before that are not in it.
    """
    for statement in _SIGNED_LOG_TABLES:
        db.execute(statement)  # not executescript: it would commit the step half done
    if "recipient" not in {r[1] for r in db.execute("PRAGMA table_info(payments)")}:
        db.execute("ALTER TABLE payments ADD COLUMN recipient TEXT")


def _constant_cost_rounds(db: sqlite3.Connection) -> None:
    """What recording a round reads no longer grows with the ledger's age.

    ``live_units`` (running_totals): the whole units of payments queued, sent or
    confirmed, counted here once and kept by ``Ledger`` from then on, instead of
    a sum over every payment at every round; an index on ``payment_rounds
    (round_id)`` finds the newest round a live payment covers without reading
    them all. Before this, a year of 60 s rounds took about 0.2 s per round here.
    """
    live = db.execute("SELECT COALESCE(SUM(value_units), 0) FROM payments"
                      " WHERE status IN ('queued', 'sent', 'confirmed')").fetchone()[0]
    db.execute("INSERT OR REPLACE INTO running_totals VALUES ('live_units', ?)", (str(live),))
    db.execute("CREATE INDEX IF NOT EXISTS payment_rounds_by_round"
               " ON payment_rounds (round_id)")


def _add_producer_link(db: sqlite3.Connection) -> None:
    """A consumer priced by its producer's own meter (``[producer]``, ``producer_link``).

    ``rounds.waiting``: 1 while a closed round waits for the producer's figure (recorded,
    not priced: it owes nothing yet, and is not in the signed log until priced);
    ``rounds.priced_from`` and ``producer_index``: whose figure priced it (NULL: this
    meter's own, unlinked). ``producer_entries``: the producer's production entries
    accepted (covered by a checkpoint signed by its key that extends the last one),
    exactly as signed; ``ledger_meta`` keys ``producer_*`` hold how far its log was
    followed (its size, frontier and last accepted checkpoint).
    """
    columns = {r[1] for r in db.execute("PRAGMA table_info(rounds)")}
    for name, kind in (("waiting", "INTEGER NOT NULL DEFAULT 0"), ("priced_from", "TEXT"),
                       ("producer_index", "INTEGER")):
        if name not in columns:
            db.execute(f"ALTER TABLE rounds ADD COLUMN {name} {kind}")
    db.execute("CREATE INDEX IF NOT EXISTS rounds_waiting ON rounds (id) WHERE waiting = 1")
    # Keyed by the producer's verifier key, not its log's name: a producer that made a new
    # key under the same name starts a new log, at index 0 again.
    db.execute("CREATE TABLE IF NOT EXISTS producer_entries (producer_key TEXT NOT NULL,"
               " idx INTEGER NOT NULL, slot_ms INTEGER NOT NULL, slot INTEGER NOT NULL,"
               " data BLOB NOT NULL, leaf_hash BLOB NOT NULL, PRIMARY KEY (producer_key, idx))")
    db.execute("CREATE INDEX IF NOT EXISTS producer_entries_by_slot"
               " ON producer_entries (producer_key, slot_ms, slot, idx)")


def record_unit(db: sqlite3.Connection, backend: str) -> None:
    """The ledger speaks the unit of ``backend`` from now on."""
    db.execute("INSERT OR REPLACE INTO ledger_meta (key, value) VALUES ('unit', ?)",
               (ledger_unit(backend),))


# Schema changes, in order: step i takes a ledger from version i to i + 1. A new
# change is a new function appended here; a step, once released, never changes,
# so a ledger written by any earlier version opens with nothing lost.
_MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _create_v1,
    _v2_wallet_protocol,
    _add_live_power,
    _add_channel_metered_s,
    _add_health_index_totals,
    _recount_running_totals,
    _units_by_name,
    _add_signed_log,
    _constant_cost_rounds,
    _add_producer_link,
)
SCHEMA_VERSION = len(_MIGRATIONS)
