"""The ledger, read-only: what ``p2p-energy serve``, statements and ``ledger --csv`` show.

The file is opened with SQLite's ``mode=ro``: nothing done through this
connection can write to it. Reading is safe while the daemon writes: the
ledger is in WAL mode, so a reader sees the last committed state and never
blocks the writer. Nothing here migrates: a ledger the daemon has not
upgraded yet is read as it is (a table it lacks reads as empty), a newer one
is refused.

Times are epoch seconds; a round belongs to the period its ``ended_at`` falls
in. Energies are mW·s, amounts owed nano-IOTA, payment values whole ledger
units. A round with net negative consumption (sensor noise at zero load)
counts as zero energy, as it owes nothing.
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

from ..core.metering import LivePower
from ..errors import LedgerError
from ..wallet.base import reference_key
from .ledger import SCHEMA_VERSION, open_problem

_ROUND_COLUMNS = ("id, started_at, ended_at, duration_s, metered_s, samples, expected_samples,"
                  " failed_samples, consumer_mws, producer_mws, producer_avg_mw, price,"
                  " price_capped, owed_niota")


# SUM(owed_niota) overflows SQLite's 64-bit integers at 9.2e9 IOTA owed (half a year
# of a 60 mW load at the night cap). Whole IOTA and nano-IOTA remainders are summed
# apart and put together in Python, exactly.
_OWED_SUMS = ("COALESCE(SUM(owed_niota / 1000000000), 0),"
              " COALESCE(SUM(owed_niota % 1000000000), 0)")


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
    price: float  # IOTA per mW·s
    price_capped: bool
    owed_niota: int

    @property
    def consumer_avg_mw(self) -> float:
        return self.consumer_mws / self.metered_s if self.metered_s > 0 else 0.0


@dataclass(frozen=True, slots=True)
class PaymentRow:
    id: int
    value_iota: int
    status: str
    created_at: float
    sent_at: float | None
    confirmed_at: float | None
    attempts: int
    reference: str | None
    reference_kind: str  # "bundle_hash" (legacy API) or "digest" (today's network)
    fee_nanos: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class Sums:
    """Totals over the rounds of a period (or of all time)."""

    rounds: int = 0
    consumer_mws: float = 0.0
    producer_mws: float = 0.0
    owed_niota: int = 0
    samples: int = 0
    expected_samples: int = 0
    failed_samples: int = 0
    last_end: float | None = None


@dataclass(frozen=True, slots=True)
class PaidSums:
    """Payments confirmed in a period (count, value), and the network fees of the
    period's payments, confirmed or failed (a failed transfer's fee is spent too)."""

    count: int = 0
    value_iota: int = 0
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
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            self._tables = {r[0] for r in self.db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            payment_columns = {r[1] for r in self.db.execute("PRAGMA table_info(payments)")}
        except sqlite3.Error as err:
            self.db.close()
            raise self._error(f"cannot read ledger: {open_problem(self.path, err)}",
                              "the ledger cannot be read (see the serve log)") from None
        if version == 0 or "rounds" not in self._tables:
            self.db.close()
            raise self._error("not a ledger yet (has the daemon started?)")
        if version > SCHEMA_VERSION:
            self.db.close()
            raise self._error(f"ledger schema {version} is newer than this program"
                              f" understands ({SCHEMA_VERSION}): upgrade p2p-energy")
        self._depth = 0
        self._fee = "fee_nanos" if "fee_nanos" in payment_columns else "0"
        self._payment_select = _payment_select(payment_columns)

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
        return [RoundRow(*r[:12], bool(r[12]), r[13]) for r in self.db.execute(
            f"SELECT {_ROUND_COLUMNS} FROM rounds WHERE ended_at >= ? AND ended_at < ?"
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
                f"SELECT {_ROUND_COLUMNS} FROM rounds WHERE ended_at >= ? AND ended_at < ?"
                " AND (ended_at, id) > (?, ?) ORDER BY ended_at, id LIMIT ?",
                (max(start, after_end), end, after_end, after_id, limit)):
            yield RoundRow(*r[:12], bool(r[12]), r[13])

    def last_round(self) -> RoundRow | None:
        r = self.db.execute(f"SELECT {_ROUND_COLUMNS} FROM rounds ORDER BY id DESC LIMIT 1"
                            ).fetchone()
        return RoundRow(*r[:12], bool(r[12]), r[13]) if r else None

    def iter_rounds(self) -> Iterator[RoundRow]:
        """Every round, oldest first, one at a time (for exports of any size)."""
        for r in self.db.execute(f"SELECT {_ROUND_COLUMNS} FROM rounds ORDER BY id"):
            yield RoundRow(*r[:12], bool(r[12]), r[13])

    def iter_rounds_by_channel(self) -> Iterator[tuple[RoundRow, float | None, float | None]]:
        """Every round, oldest first, with how long each channel was metered in it
        (consumer, producer; s); None for both in a ledger from before they were kept."""
        columns = {r[1] for r in self.db.execute("PRAGMA table_info(rounds)")}
        kept = "consumer_metered_s" in columns
        extra = ", consumer_metered_s, producer_metered_s" if kept else ", NULL, NULL"
        for r in self.db.execute(f"SELECT {_ROUND_COLUMNS}{extra} FROM rounds ORDER BY id"):
            yield RoundRow(*r[:12], bool(r[12]), r[13]), r[14], r[15]

    def sums(self, start: float | None = None, end: float | None = None) -> Sums:
        """Totals of the rounds that ended in [start, end) (all rounds by default).

        A round's energy below zero (sensor noise on an idle channel) counts as zero,
        so that totals only ever grow as rounds are added: they are counters.
        """
        lo = float("-inf") if start is None else start
        hi = float("inf") if end is None else end
        r = self.db.execute(
            f"SELECT COUNT(*), COALESCE(SUM(MAX(consumer_mws, 0)), 0),"
            f" COALESCE(SUM(MAX(producer_mws, 0)), 0), {_OWED_SUMS},"
            " COALESCE(SUM(samples), 0), COALESCE(SUM(expected_samples), 0),"
            " COALESCE(SUM(failed_samples), 0), MAX(ended_at)"
            " FROM rounds WHERE ended_at >= ? AND ended_at < ?", (lo, hi)).fetchone()
        return Sums(int(r[0]), float(r[1]), float(r[2]), _owed(r[3], r[4]), int(r[5]),
                    int(r[6]), int(r[7]), r[8])

    def sums_after(self, round_id: int) -> tuple[Sums, int]:
        """Totals of the rounds with an id above ``round_id``, and the highest id (rounds
        are only ever appended, so all-time totals can be kept up to date from here)."""
        r = self.db.execute(
            f"SELECT COUNT(*), COALESCE(SUM(MAX(consumer_mws, 0)), 0),"
            f" COALESCE(SUM(MAX(producer_mws, 0)), 0), {_OWED_SUMS},"
            " COALESCE(SUM(samples), 0), COALESCE(SUM(expected_samples), 0),"
            " COALESCE(SUM(failed_samples), 0), MAX(ended_at), MAX(id)"
            " FROM rounds WHERE id > ?", (round_id,)).fetchone()
        return (Sums(int(r[0]), float(r[1]), float(r[2]), _owed(r[3], r[4]), int(r[5]),
                     int(r[6]), int(r[7]), r[8]), int(r[9] or round_id))

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
            "SELECT COUNT(*), COALESCE(SUM(value_iota), 0) FROM payments"
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
            "SELECT confirmed_at, value_iota FROM payments WHERE status = 'confirmed'"
            " AND confirmed_at >= ? AND confirmed_at < ? ORDER BY confirmed_at",
            (start, end))]

    def by_status(self) -> dict[str, tuple[int, int]]:
        """status -> (number of payments, their value)."""
        return {r[0]: (int(r[1]), int(r[2])) for r in self.db.execute(
            "SELECT status, COUNT(*), COALESCE(SUM(value_iota), 0) FROM payments"
            " GROUP BY status")}

    @staticmethod
    def _payment(r: tuple) -> PaymentRow:
        backend = r[10]
        return PaymentRow(id=r[0], value_iota=r[1], status=r[2], created_at=r[3],
                          sent_at=r[4], confirmed_at=r[5], attempts=r[6], reference=r[7],
                          reference_kind=reference_key(backend),
                          fee_nanos=int(r[8] or 0), last_error=r[9])


def _payment_select(columns: set[str]) -> str:
    """The one place that knows the payments table's column names, old and new.

    The wallet protocol v2 renamed ``bundle_hash`` to ``reference`` and added
    ``fee_nanos`` and ``backend``; a ledger of either shape reads the same.
    """
    reference = "reference" if "reference" in columns else "bundle_hash"
    fee = "fee_nanos" if "fee_nanos" in columns else "0"
    backend = "backend" if "backend" in columns else "NULL"
    return ("SELECT id, value_iota, status, created_at, sent_at, confirmed_at, attempts,"
            f" {reference}, {fee}, last_error, {backend} FROM payments")
