"""The producer's log as this consumer followed it (``[producer]``): what was accepted.

Tables of schema step ``schema._add_producer_link``: ``producer_entries`` keeps
each production entry accepted from the producer, exactly as signed (for the
rounds it prices, and for anyone who asks which figure priced a round);
``ledger_meta`` keeps how far the producer's log was followed:

- ``producer_verifier``: the verifier key followed (another key starts again);
- ``producer_size``, ``producer_frontier``: the accepted tree's size and its
  frontier (``tlog.Frontier``, hex, comma-separated), to check the next
  checkpoint extends it;
- ``producer_checkpoint``: the last accepted checkpoint, as signed;
- ``producer_since_ms``: when this consumer first followed it (UTC ms); entries of
  rounds that ended before are not kept (a year-old producer's past prices nothing);
- ``producer_reached_ms``: the latest end of any production entry accepted, usable or
  not (UTC ms): the producer's log has passed every slot that ends before it.

Every function runs on the caller's connection; the writers inside its write
transaction, so entries and the state that accepted them commit together.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from ..core import tlog
from ..core.link import Accepted

_KEYS = ("producer_verifier", "producer_size", "producer_frontier", "producer_checkpoint",
         "producer_since_ms")
_ALL_KEYS = (*_KEYS, "producer_reached_ms")


@dataclass(frozen=True)
class FollowState:
    """How far this consumer followed its producer's log."""

    verifier_key: str
    frontier: tlog.Frontier
    checkpoint: bytes
    since_ms: int


@dataclass(frozen=True)
class StoredEntry:
    """A producer's production entry as accepted: its index, bytes and leaf hash."""

    index: int
    data: bytes
    leaf_hash: bytes


def follow_state(db: sqlite3.Connection) -> FollowState | None:
    """The state saved by ``save_accepted`` / ``start_following``; None: never followed."""
    meta = dict(db.execute(f"SELECT key, value FROM ledger_meta WHERE key IN"
                           f" ({', '.join('?' * len(_KEYS))})", _KEYS).fetchall())
    if "producer_verifier" not in meta:
        return None
    size = int(meta.get("producer_size", "0"))
    text = meta.get("producer_frontier", "")
    hashes = [bytes.fromhex(h) for h in text.split(",")] if text else []
    return FollowState(meta["producer_verifier"], tlog.Frontier.from_hashes(size, hashes),
                       meta.get("producer_checkpoint", "").encode(),
                       int(meta.get("producer_since_ms", "0")))


def start_following(db: sqlite3.Connection, verifier_key: str, now_ms: int) -> FollowState:
    """Follow the producer of ``verifier_key`` (kept as it was when it is the one followed
    already; from its log's start for another: its entries kept so far stay)."""
    state = follow_state(db)
    if state is not None and state.verifier_key == verifier_key:
        return state
    db.execute(f"DELETE FROM ledger_meta WHERE key IN ({', '.join('?' * len(_ALL_KEYS))})",
               _ALL_KEYS)
    db.executemany("INSERT OR REPLACE INTO ledger_meta (key, value) VALUES (?, ?)",
                   [("producer_verifier", verifier_key), ("producer_size", "0"),
                    ("producer_frontier", ""), ("producer_checkpoint", ""),
                    ("producer_since_ms", str(now_ms))])
    return FollowState(verifier_key, tlog.Frontier(), b"", now_ms)


def usable(a: Accepted) -> bool:
    """Whether an accepted entry can price a round (``ProductionEntry.prices_rounds``)."""
    return a.production is not None and a.production.prices_rounds


def save_accepted(db: sqlite3.Connection, producer_key: str, accepted: list[Accepted],
                  frontier: tlog.Frontier, checkpoint: bytes, since_ms: int) -> int:
    """Keep the production entries accepted that can price a round (``usable``, of rounds
    that ended after ``since_ms``) and the state that accepted them; returns how many
    were kept."""
    rows = [(producer_key, a.index, a.production.slot_ms, a.production.slot, a.data,
             a.leaf_hash) for a in accepted
            if usable(a) and a.production is not None and a.production.end_utc_ms > since_ms]
    db.executemany("INSERT INTO producer_entries (producer_key, idx, slot_ms, slot, data,"
                   " leaf_hash) VALUES (?, ?, ?, ?, ?, ?)", rows)
    ends = [a.production.end_utc_ms for a in accepted if a.production is not None]
    if ends:
        db.execute("INSERT INTO ledger_meta (key, value) VALUES ('producer_reached_ms', ?)"
                   " ON CONFLICT (key) DO UPDATE SET value = CAST(MAX(CAST(value AS INTEGER),"
                   " CAST(excluded.value AS INTEGER)) AS TEXT)", (str(max(ends)),))
    db.executemany("INSERT OR REPLACE INTO ledger_meta (key, value) VALUES (?, ?)",
                   [("producer_size", str(frontier.size)),
                    ("producer_frontier", ",".join(h.hex() for h in frontier.hashes)),
                    ("producer_checkpoint", checkpoint.decode())])
    return len(rows)


def entry_for_slot(db: sqlite3.Connection, producer_key: str, slot_ms: int,
                   slot: int) -> StoredEntry | None:
    """The producer's first accepted entry for ``slot`` (rounds of ``slot_ms``), if any."""
    row = db.execute("SELECT idx, data, leaf_hash FROM producer_entries WHERE producer_key = ?"
                     " AND slot_ms = ? AND slot = ? ORDER BY idx LIMIT 1",
                     (producer_key, slot_ms, slot)).fetchone()
    return StoredEntry(row[0], bytes(row[1]), bytes(row[2])) if row else None


def reached_ms(db: sqlite3.Connection) -> int | None:
    """How far in time the producer's accepted entries reach (``producer_reached_ms``)."""
    row = db.execute("SELECT value FROM ledger_meta WHERE key = 'producer_reached_ms'"
                     ).fetchone()
    return int(row[0]) if row else None
