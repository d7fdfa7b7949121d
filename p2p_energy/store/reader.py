"""The ledger, read-only: what ``p2p-energy serve``, statements and ``ledger --csv`` show.

The file is opened with SQLite's ``mode=ro``: nothing done through this
connection can write to it. Reading is safe while the daemon writes: the
ledger is in WAL mode, so a reader sees the last committed state and never
blocks the writer. Nothing here migrates: a ledger the daemon has not
upgraded yet is read as it is (a table it lacks reads as empty), a newer one
is refused.

Times are epoch seconds; a round belongs to the period its ``ended_at`` falls
in. Energies are mW·s, amounts owed billionths of a ledger unit, payment values
whole ledger units; ``ledger_unit_of`` says which unit the ledger speaks. A
round with net negative consumption (sensor noise at zero load) counts as zero
energy, as it owes nothing.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from ..core.entries import DISPUTE_OWN, DISPUTE_PRODUCER, PRICED_FROM
from ..core.metering import LivePower
from ..core.note import parse_verifier
from ..core.pricing import NANO, carry_units
from ..errors import KeyFormatError, LedgerError
from ..wallet.base import UNIT_MEANING, ledger_unit, reference_key
from .common import iso, open_problem
from .producer_log import follow_state
from .schema import SCHEMA_VERSION


def _round_columns(owed: str, link: str) -> str:
    return ("id, started_at, ended_at, duration_s, metered_s, samples, expected_samples,"
            " failed_samples, consumer_mws, producer_mws, producer_avg_mw, price,"
            f" price_capped, {owed}, {link}")


def _round(r: tuple) -> RoundRow:
    """A row of ``_round_columns`` (its first 16 values)."""
    return RoundRow(*r[:12], bool(r[12]), r[13], bool(r[14]), r[15])


# Sums of priced rounds, by whose figure priced them (``core.entries.PRICED_FROM``).
def _priced_from_sums(has_link: bool) -> str:
    if not has_link:
        return ", ".join("0" for _ in PRICED_FROM)
    return ", ".join(f"COALESCE(SUM(priced_from = '{name}'), 0)" for name in PRICED_FROM)


# SUM(owed) overflows SQLite's 64-bit integers at 9.2e9 units owed (half a year of a
# 60 mW load at the night cap). Whole units and billionths are summed apart and put
# together in Python, exactly.
def _owed_sums(owed: str) -> str:
    return (f"COALESCE(SUM({owed} / 1000000000), 0),"
            f" COALESCE(SUM({owed} % 1000000000), 0)")


def _owed(whole_iota: int, rest_niota: int) -> int:
    return int(whole_iota) * 1_000_000_000 + int(rest_niota)


@dataclass(frozen=True, slots=True)
class RoundRow:
    id: int
    started_at: float
    ended_at: float
    duration_s: float
    metered_s: float
    samples: int
    expected_samples: int
    failed_samples: int
    consumer_mws: float
    producer_mws: float
    producer_avg_mw: float
    price: float  # ledger units per mW·s
    price_capped: bool
    owed_nano_units: int  # billionths of a ledger unit (column ``owed_nano_units``)
    # Waiting for the producer's figure ([producer]): closed, not priced (price and owed 0).
    waiting: bool = False
    # Whose figure priced it (``core.entries.PRICED_FROM``); None: this meter's own, unlinked.
    priced_from: str | None = None

    @property
    def consumer_avg_mw(self) -> float:
        return self.consumer_mws / self.metered_s if self.metered_s > 0 else 0.0


@dataclass(frozen=True, slots=True)
class PaymentRow:
    id: int
    value_units: int  # ledger units (column ``value_units``)
    status: str
    created_at: float
    sent_at: float | None
    confirmed_at: float | None
    attempts: int
    reference: str | None
    reference_kind: str  # "bundle_hash" (legacy API) or "digest" (today's network)
    fee_nanos: int
    last_error: str | None
    backend: str | None = None  # the backend that signed it (None: not signed)


@dataclass(frozen=True, slots=True)
class Sums:
    """Totals over the priced rounds of a period (or of all time): a round waiting for the
    producer's figure counts once it is priced (``Waiting`` counts those)."""

    rounds: int = 0
    consumer_mws: float = 0.0
    producer_mws: float = 0.0
    owed_nano_units: int = 0
    samples: int = 0
    expected_samples: int = 0
    failed_samples: int = 0
    last_end: float | None = None
    # Rounds by whose figure priced them, in the order of ``core.entries.PRICED_FROM``
    # (all 0 for an unlinked consumer, whose rounds its own channel prices).
    priced_from: tuple[int, ...] = (0,) * len(PRICED_FROM)

    def priced_by(self, name: str) -> int:
        """How many of the rounds ``name`` (one of ``PRICED_FROM``) priced."""
        return self.priced_from[PRICED_FROM.index(name)]

    @property
    def disputed(self) -> int:
        """Rounds whose producer's figure and this meter's differed beyond the band."""
        return self.priced_by(DISPUTE_PRODUCER) + self.priced_by(DISPUTE_OWN)


@dataclass(frozen=True, slots=True)
class Waiting:
    """Closed rounds waiting for the producer's figure (``[producer]``): recorded, not
    priced; they owe nothing until priced, in order, as its figures arrive."""

    rounds: int = 0
    oldest_end: float | None = None  # epoch s: the oldest one's end
    newest_end: float | None = None
    consumer_mws: float = 0.0  # this meter's own figures: pricing them changes none of these
    samples: int = 0
    expected_samples: int = 0
    failed_samples: int = 0


@dataclass(frozen=True, slots=True)
class ProducerFollow:
    """How far this consumer followed its producer's signed log (``store.producer_log``)."""

    verifier_key: str
    origin: str  # the verifier key's name: the producer's log origin
    size: int  # entries of its log accepted under its signed checkpoints
    since: float  # epoch s: when this consumer first followed it


@dataclass(frozen=True, slots=True)
class PaidSums:
    """Payments confirmed in a period (count, value), and the network fees of the
    period's payments, confirmed or failed (a failed transfer's fee is spent too)."""

    count: int = 0
    value_units: int = 0
    fee_nanos: int = 0


@dataclass(frozen=True, slots=True)
class OpenRound:
    """The open round's last checkpoint."""

    started_at: float
    duration_s: float
    consumer_mws: float
    producer_mws: float
    samples: int
    expected_samples: int
    failed_samples: int
    saved_at: float


class LedgerReader:
    """A read-only connection to the ledger. Not shared between threads.

    Raises:
        LedgerError: the file is missing, not a ledger (yet), or newer than this program.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._check_file()
        uri = "file:" + quote(str(Path(self.path).absolute())) + "?mode=ro"
        try:
            self.db = sqlite3.connect(uri, uri=True, timeout=10.0, isolation_level=None)
        except sqlite3.Error as err:
            raise self._error(f"cannot open ledger: {open_problem(self.path, err)}",
                              "the ledger cannot be opened (see the serve log)") from None
        try:
            self._inspect()
        except BaseException:
            self.db.close()
            raise

    @classmethod
    def over(cls, db: sqlite3.Connection, path: str) -> LedgerReader:
        """A reader on a connection ``Ledger`` holds (never closed by the reader).

        Raises:
            LedgerError: as the constructor.
        """
        reader = cls.__new__(cls)
        reader.path, reader.db = str(path), db
        reader._inspect()
        return reader

    def _inspect(self) -> None:
        """Learn the schema's names (any version this program can read)."""
        try:
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            self._tables = {r[0] for r in self.db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            payment_columns = {r[1] for r in self.db.execute("PRAGMA table_info(payments)")}
            round_columns = {r[1] for r in self.db.execute("PRAGMA table_info(rounds)")}
        except sqlite3.Error as err:
            raise self._error(f"cannot read ledger: {open_problem(self.path, err)}",
                              "the ledger cannot be read (see the serve log)") from None
        if version == 0 or "rounds" not in self._tables:
            raise self._error("not a ledger yet (has the daemon started?)")
        if version > SCHEMA_VERSION:
            raise self._error(f"ledger schema {version} is newer than this program"
                              f" understands ({SCHEMA_VERSION}): upgrade p2p-energy")
        self._depth = 0
        self._fee = "fee_nanos" if "fee_nanos" in payment_columns else "0"
        self._value = "value_units" if "value_units" in payment_columns else "value_iota"
        self._payment_select = _payment_select(payment_columns)
        self._owed = "owed_nano_units" if "owed_nano_units" in round_columns else "owed_niota"
        has_link = "waiting" in round_columns  # schema step _add_producer_link
        self._has_link = has_link
        self._rounds = _round_columns(self._owed, "waiting, priced_from" if has_link
                                      else "0, NULL")
        self._owed_sums = _owed_sums(self._owed)
        self._priced = "waiting = 0" if has_link else "1"  # a round waiting owes 0 as yet
        self._priced_from = _priced_from_sums(has_link)
        self._by_channel = ("consumer_metered_s, producer_metered_s"
                            if "consumer_metered_s" in round_columns else "NULL, NULL")

    def _check_file(self) -> None:
        """A regular file, or none yet: SQLite would wait forever on a FIFO."""
        try:
            mode = os.stat(self.path).st_mode
        except FileNotFoundError:
            raise self._error("no ledger yet (has the daemon started?)") from None
        except OSError as err:
            raise self._error(f"cannot open ledger: {err.strerror or err}",
                              "the ledger cannot be opened (see the serve log)") from None
        if not stat.S_ISREG(mode):
            raise self._error("not a regular file: ledger.path must name the ledger's file",
                              "the ledger path does not name a file (see the serve log)")

    def _error(self, reason: str, public: str = "") -> LedgerError:
        """A LedgerError naming the file; ``public`` (or ``reason``) says why without it."""
        return LedgerError(f"{self.path}: {reason}", reason=public or reason)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> LedgerReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def snapshot(self) -> Iterator[LedgerReader]:
        """Several reads that see one committed state (one read transaction; nests)."""
        self._depth += 1
        if self._depth == 1:
            self.db.execute("BEGIN")
        try:
            yield self
        finally:
            self._depth -= 1
            if self._depth == 0:
                self.db.execute("COMMIT")

    # -- rounds --------------------------------------------------------------------------

    def rounds(self, start: float, end: float, limit: int = 1_000_000) -> list[RoundRow]:
        """Rounds that ended in [start, end), oldest first, at most ``limit``."""
        return [_round(r) for r in self.db.execute(
            f"SELECT {self._rounds} FROM rounds WHERE ended_at >= ? AND ended_at < ?"
            " ORDER BY ended_at, id LIMIT ?", (start, end, limit))]

    def rounds_page(self, start: float, end: float, after: tuple[float, int] | None,
                    limit: int) -> Iterator[RoundRow]:
        """Rounds that ended in [start, end), oldest first (by ``ended_at``, then id), from
        just after the round ``after`` = (ended_at, id) on, at most ``limit``: one page,
        one row at a time, so that no page is ever all in memory."""
        after_end, after_id = after if after is not None else (start, -1)
        # The first bound is the cursor's too, so that the index is entered there rather
        # than at ``start``: a page deep in a year costs as little as the first.
        for r in self.db.execute(
                f"SELECT {self._rounds} FROM rounds WHERE ended_at >= ? AND ended_at < ?"
                " AND (ended_at, id) > (?, ?) ORDER BY ended_at, id LIMIT ?",
                (max(start, after_end), end, after_end, after_id, limit)):
            yield _round(r)

    def last_round(self) -> RoundRow | None:
        """The newest priced round (rounds waiting for the producer's figure come after it:
        they are priced in order)."""
        r = self.db.execute(f"SELECT {self._rounds} FROM rounds WHERE {self._priced}"
                            " ORDER BY id DESC LIMIT 1").fetchone()
        return _round(r) if r else None

    def iter_rounds(self) -> Iterator[RoundRow]:
        """Every round, oldest first, one at a time (for exports of any size)."""
        for r in self.db.execute(f"SELECT {self._rounds} FROM rounds ORDER BY id"):
            yield _round(r)

    def iter_rounds_by_channel(self) -> Iterator[tuple[RoundRow, float | None, float | None]]:
        """Every round, oldest first, with how long each channel was metered in it
        (consumer, producer; s); None for both in a ledger from before they were kept."""
        for r in self.db.execute(
                f"SELECT {self._rounds}, {self._by_channel} FROM rounds ORDER BY id"):
            yield _round(r), r[16], r[17]

    def sums(self, start: float | None = None, end: float | None = None) -> Sums:
        """Totals of the priced rounds that ended in [start, end) (all by default).

        A round's energy below zero (sensor noise on an idle channel) counts as zero,
        so that totals only ever grow as rounds are added: they are counters. A round
        waiting for the producer's figure counts once priced (``waiting``).
        """
        lo = float("-inf") if start is None else start
        hi = float("inf") if end is None else end
        r = self.db.execute(
            f"SELECT {self._sums_columns()}, MAX(ended_at)"
            f" FROM rounds WHERE ended_at >= ? AND ended_at < ? AND {self._priced}",
            (lo, hi)).fetchone()
        return self._sums_of(r)

    def sums_after(self, round_id: int) -> tuple[Sums, int]:
        """Totals of the priced rounds with an id above ``round_id``, and the highest id
        among them. Rounds are only ever appended, and those waiting for the producer's
        figure are the newest (they are priced in order, and no round is priced while
        an older one waits), so all-time totals can be kept up to date from here."""
        r = self.db.execute(
            f"SELECT {self._sums_columns()}, MAX(ended_at), MAX(id)"
            f" FROM rounds WHERE id > ? AND {self._priced}", (round_id,)).fetchone()
        return self._sums_of(r), int(r[-1] or round_id)

    def _sums_columns(self) -> str:
        return (f"COUNT(*), COALESCE(SUM(MAX(consumer_mws, 0)), 0),"
                f" COALESCE(SUM(MAX(producer_mws, 0)), 0), {self._owed_sums},"
                " COALESCE(SUM(samples), 0), COALESCE(SUM(expected_samples), 0),"
                f" COALESCE(SUM(failed_samples), 0), {self._priced_from}")

    @staticmethod
    def _sums_of(r: tuple) -> Sums:
        n = len(PRICED_FROM)
        return Sums(int(r[0]), float(r[1]), float(r[2]), _owed(r[3], r[4]), int(r[5]),
                    int(r[6]), int(r[7]), r[8 + n], tuple(int(x) for x in r[8:8 + n]))

    # -- rounds waiting for the producer's figure ([producer]) ----------------------------

    def waiting(self, start: float | None = None, end: float | None = None) -> Waiting:
        """The rounds that ended in [start, end) (all by default) and wait for the
        producer's figure. Read through the partial index ``rounds_waiting``: as many rows
        as wait, however old the ledger; none in a ledger from before the link."""
        if not self._has_link:
            return Waiting()
        lo = float("-inf") if start is None else start
        hi = float("inf") if end is None else end
        r = self.db.execute(
            "SELECT COUNT(*), MIN(ended_at), MAX(ended_at),"
            " COALESCE(SUM(MAX(consumer_mws, 0)), 0), COALESCE(SUM(samples), 0),"
            " COALESCE(SUM(expected_samples), 0), COALESCE(SUM(failed_samples), 0)"
            " FROM rounds INDEXED BY rounds_waiting WHERE waiting = 1"
            " AND ended_at >= ? AND ended_at < ?", (lo, hi)).fetchone()
        return Waiting(int(r[0]), r[1], r[2], float(r[3]), int(r[4]), int(r[5]), int(r[6]))

    def producer_follow(self) -> ProducerFollow | None:
        """How far this consumer followed its producer's log; None: it never has (or the
        ledger is from before the link)."""
        if "ledger_meta" not in self._tables:
            return None
        state = follow_state(self.db)  # the one reader of those keys
        if state is None or not state.verifier_key:
            return None
        key = state.verifier_key
        try:
            origin = parse_verifier(key).name
        except KeyFormatError:
            origin = key.split("+", 1)[0]
        return ProducerFollow(key, origin, state.frontier.size, state.since_ms / 1000)

    def last_round_id(self) -> int:
        return int(self.db.execute("SELECT COALESCE(MAX(id), 0) FROM rounds").fetchone()[0])

    # -- the open round ------------------------------------------------------------------

    def open_round(self) -> OpenRound | None:
        row = self.db.execute(
            "SELECT started_at, duration_s, consumer_mws, producer_mws, samples,"
            " expected_samples, failed_samples, saved_at FROM open_round WHERE id = 1").fetchone()
        return OpenRound(*row) if row else None

    def live_power(self) -> tuple[LivePower, float] | None:
        """The latest power the daemon checkpointed, and when it saved it (epoch s, this
        machine's clock); None before its first checkpoint."""
        if "live_power" not in self._tables:  # the daemon has not upgraded the ledger yet
            return None
        row = self.db.execute("SELECT consumer_mw, producer_mw, sampled_at, saved_at"
                              " FROM live_power WHERE id = 1").fetchone()
        return (LivePower(*row[:3]), row[3]) if row else None

    # -- payments ------------------------------------------------------------------------

    def payments(self, limit: int = 50) -> list[PaymentRow]:
        """The newest ``limit`` payments, newest first."""
        return [self._payment(r) for r in self.db.execute(
            f"{self._payment_select} ORDER BY id DESC LIMIT ?", (limit,))]

    def payments_between(self, start: float, end: float) -> list[PaymentRow]:
        """Payments created or confirmed in [start, end), oldest first."""
        return [self._payment(r) for r in self.db.execute(
            f"{self._payment_select} WHERE (created_at >= ? AND created_at < ?)"
            " OR (confirmed_at >= ? AND confirmed_at < ?) ORDER BY id",
            (start, end, start, end))]

    def paid(self, start: float | None = None, end: float | None = None) -> PaidSums:
        """Payments confirmed in [start, end) (all time by default), and the fees of
        payments that ended then (a failed one counts when it was last sent)."""
        lo = float("-inf") if start is None else start
        hi = float("inf") if end is None else end
        count, value = self.db.execute(
            f"SELECT COUNT(*), COALESCE(SUM({self._value}), 0) FROM payments"
            " WHERE status = 'confirmed' AND confirmed_at >= ? AND confirmed_at < ?",
            (lo, hi)).fetchone()
        fees = self.db.execute(
            f"SELECT COALESCE(SUM({self._fee}), 0) FROM payments WHERE status IN"
            " ('confirmed', 'failed') AND COALESCE(confirmed_at, sent_at, created_at) >= ?"
            " AND COALESCE(confirmed_at, sent_at, created_at) < ?", (lo, hi)).fetchone()[0]
        return PaidSums(int(count), int(value), int(fees))

    def confirmations(self, start: float, end: float) -> list[tuple[float, int]]:
        """(confirmed_at, value) of every payment confirmed in [start, end), in time order."""
        return [(r[0], r[1]) for r in self.db.execute(
            f"SELECT confirmed_at, {self._value} FROM payments WHERE status = 'confirmed'"
            " AND confirmed_at >= ? AND confirmed_at < ? ORDER BY confirmed_at",
            (start, end))]

    def by_status(self) -> dict[str, tuple[int, int]]:
        """status -> (number of payments, their value)."""
        return {r[0]: (int(r[1]), int(r[2])) for r in self.db.execute(
            f"SELECT status, COUNT(*), COALESCE(SUM({self._value}), 0) FROM payments"
            " GROUP BY status")}

    # -- the ledger's unit ----------------------------------------------------------------

    def unit(self, configured_backend: str | None) -> str:
        """The unit this ledger speaks (``ledger_unit_of``)."""
        return ledger_unit_of(self.db, configured_backend)

    # -- everything, for ``ledger --json`` -----------------------------------------------

    def totals(self) -> dict[str, float | int]:
        """All-time totals: energy (mW·s), owed (ledger units, exact running total),
        paid (sent or confirmed) and queued (whole units), the carry, fees (nanos)."""
        with self.snapshot():
            owed = self._owed_total()
            sums = {status: value for status, (_n, value) in self.by_status().items()}
            energy = self.db.execute(
                "SELECT COALESCE(SUM(consumer_mws), 0) FROM rounds").fetchone()[0]
            fees = self.db.execute(
                f"SELECT COALESCE(SUM({self._fee}), 0) FROM payments").fetchone()[0]
        paid = sums.get("sent", 0) + sums.get("confirmed", 0)
        queued = sums.get("queued", 0)
        return {"consumer_mws": energy, "owed_iota": owed / NANO, "paid_iota": paid,
                "queued_iota": queued, "carry_iota": carry_units(owed, paid + queued),
                "fees_nanos": int(fees)}

    def _owed_total(self) -> int:
        """Billionths of a unit owed: the running total, else counted from the rounds."""
        if "running_totals" in self._tables:
            row = self.db.execute("SELECT value FROM running_totals WHERE key IN"
                                  " ('owed_nano_units', 'owed_niota')").fetchone()
            if row is not None:
                return int(row[0])
        return self.sums().owed_nano_units

    def report(self, unit: str | None = None) -> dict[str, object]:
        """Everything, in the shape ``p2p-energy ledger --json`` prints.

        Each round and payment carries its amount under its old name (``owed_iota``,
        ``value_iota``) and under a unit-neutral one (``owed_units``, ``value_units``),
        both in ledger units. With ``unit`` (``ledger_unit_of``) the report names it
        (``unit``, ``unit_meaning``) and the totals carry unit-neutral names too.
        """
        with self.snapshot():
            rounds = [{
                "id": r.id, "started_at": iso(r.started_at), "ended_at": iso(r.ended_at),
                "duration_s": r.duration_s, "metered_s": r.metered_s, "samples": r.samples,
                "expected_samples": r.expected_samples, "failed_samples": r.failed_samples,
                "consumer_mws": r.consumer_mws, "producer_avg_mw": r.producer_avg_mw,
                "price": r.price, "price_capped": r.price_capped,
                "owed_iota": r.owed_nano_units / NANO, "owed_units": r.owed_nano_units / NANO,
                "consumer_metered_s": consumer_s, "producer_metered_s": producer_s,
                "waiting": r.waiting, "priced_from": r.priced_from}
                for r, consumer_s, producer_s in self.iter_rounds_by_channel()]
            waiting = self.waiting()
            links: dict[int, list[int]] = {}
            for pid, rid in self.db.execute(
                    "SELECT payment_id, round_id FROM payment_rounds ORDER BY round_id"):
                links.setdefault(pid, []).append(rid)
            attachments = self._attachment_counts()
            payments = [{
                "id": p.id, "round_ids": links.get(p.id, []), "value_iota": p.value_units,
                "value_units": p.value_units, "status": p.status, p.reference_kind: p.reference,
                "backend": p.backend, "fee_nanos": p.fee_nanos, "attempts": p.attempts,
                "created_at": iso(p.created_at), "sent_at": iso(p.sent_at),
                "confirmed_at": iso(p.confirmed_at), "last_error": p.last_error,
                "attachments": attachments.get(p.id, 0)}
                for p in map(self._payment, self.db.execute(
                    f"{self._payment_select} ORDER BY id"))]
            totals = self.totals()
            events = self.wallet_events()
        report: dict[str, object] = {}
        if unit is not None:
            report |= {"unit": unit, "unit_meaning": UNIT_MEANING[unit]}
            totals |= {"owed_units": totals["owed_iota"], "paid_units": totals["paid_iota"],
                       "queued_units": totals["queued_iota"],
                       "carry_units": totals["carry_iota"]}
        return report | {"rounds": rounds, "payments": payments, "totals": totals,
                         "waiting": {"rounds": waiting.rounds,
                                     "oldest_ended_at": iso(waiting.oldest_end)},
                         "wallet_events": events}

    def _attachment_counts(self) -> dict[int, int]:
        table = ("attachments" if "attachments" in self._tables else
                 "tails" if "tails" in self._tables else None)
        if table is None:
            return {}
        return {r[0]: int(r[1]) for r in self.db.execute(
            f"SELECT payment_id, COUNT(*) FROM {table} GROUP BY payment_id")}

    def wallet_events(self) -> list[dict[str, object]]:
        """Key index changes made by the owner, oldest first."""
        if "wallet_events" not in self._tables:
            return []
        return [{"at": iso(r[0]), "kind": r[1], "old_index": r[2], "new_index": r[3],
                 "note": r[4]} for r in self.db.execute(
                     "SELECT at, kind, old_index, new_index, note FROM wallet_events ORDER BY id")]

    @staticmethod
    def _payment(r: tuple) -> PaymentRow:
        backend = r[10]
        return PaymentRow(id=r[0], value_units=r[1], status=r[2], created_at=r[3],
                          sent_at=r[4], confirmed_at=r[5], attempts=r[6], reference=r[7],
                          reference_kind=reference_key(backend),
                          fee_nanos=int(r[8] or 0), last_error=r[9], backend=backend)


def ledger_unit_at(path: str | Path, configured_backend: str | None) -> str:
    """``ledger_unit_of`` the ledger file at ``path``; while there is no ledger to read
    there yet, the unit of ``configured_backend``."""
    try:
        with LedgerReader(path) as reader:
            return reader.unit(configured_backend)
    except LedgerError:
        return ledger_unit(configured_backend)


def ledger_unit_of(db: sqlite3.Connection, configured_backend: str | None) -> str:
    """Which unit the ledger on ``db`` speaks: the one rule for ``ledger``, ``check``,
    ``serve``, statements, ``/metrics`` and MQTT.

    The unit recorded in the ledger (``ledger_meta``): ``run`` records its
    backend's as it starts, since the amounts it writes (prices, owed, payments)
    are in that unit; the upgrade to schema 7 recorded the unit of the backend
    that signed the newest payment. A ledger that records none (not upgraded
    yet, or never run since) speaks the unit of ``configured_backend``
    (``wallet.backend``).
    """
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "ledger_meta" in tables:
        row = db.execute("SELECT value FROM ledger_meta WHERE key = 'unit'").fetchone()
        if row is not None:
            return str(row[0])
    return ledger_unit(configured_backend)


def _payment_select(columns: set[str]) -> str:
    """The one place that knows the payments table's column names, old and new.

    The wallet protocol v2 renamed ``bundle_hash`` to ``reference`` and added
    ``fee_nanos`` and ``backend``; schema 7 renamed ``value_iota`` to
    ``value_units``. A ledger of any of these shapes reads the same.
    """
    reference = "reference" if "reference" in columns else "bundle_hash"
    fee = "fee_nanos" if "fee_nanos" in columns else "0"
    backend = "backend" if "backend" in columns else "NULL"
    value = "value_units" if "value_units" in columns else "value_iota"
    return (f"SELECT id, {value}, status, created_at, sent_at, confirmed_at, attempts,"
            f" {reference}, {fee}, last_error, {backend} FROM payments")
