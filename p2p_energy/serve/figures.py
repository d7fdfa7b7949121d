"""The figures every view shows, read from the ledger in one snapshot.

Totals come from the ledger, never from this process's memory, so they continue
across restarts of either process. Counters (energy, samples) include the open
round's last checkpoint, so they move within seconds, not once per round; a
high-water mark per process keeps them from ever stepping back (a round whose
net consumption came out below its checkpoint: sensor noise at zero load).

A round waiting for the producer's figure (``[producer]``) owes nothing until it
is priced: what pricing sets (owed, the producer's energy, the price, rounds
priced) counts it only then, so waiting never lowers a price or an average. The
consumer's energy and the samples, which pricing does not change, count it as
soon as it closes, as they counted it while it was open.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from datetime import tzinfo

from ..core.metering import LivePower
from ..store.reader import LedgerReader, PaidSums, PaymentRow, Sums, Waiting
from ..wallet.base import LEGACY_UNIT
from . import periods
from .periods import Period

MWS_PER_KWH = 3.6e9
MWS_PER_WH = 3.6e6


@dataclass(frozen=True)
class PeriodTotals:
    """What a period's rounds and confirmed payments add up to."""

    period: Period
    sums: Sums  # of the priced rounds
    paid: PaidSums
    # Rounds of the period waiting for the producer's figure: in ``sums`` once priced.
    waiting: Waiting = field(default_factory=Waiting)

    @property
    def average_price(self) -> float | None:
        """Ledger units per mW·s, weighted by energy (owed / energy); None without energy."""
        if self.sums.consumer_mws <= 0:
            return None
        return self.sums.owed_nano_units / 1e9 / self.sums.consumer_mws


def period_totals(reader: LedgerReader, period: Period) -> PeriodTotals:
    return PeriodTotals(period, reader.sums(period.start, period.end),
                        reader.paid(period.start, period.end),
                        reader.waiting(period.start, period.end))


@dataclass(frozen=True)
class Figures:
    """One consistent reading of the ledger at ``at`` (epoch s)."""

    at: float
    consumer_mws: float  # all time, with the open round; never decreases
    producer_mws: float
    samples: int  # taken, all time with the open round
    missed_samples: int  # expected but not taken (late ticks and failed reads)
    failed_samples: int
    rounds: int  # closed and priced
    owed_nano_units: int  # closed rounds
    paid_units: int  # confirmed payments
    fees_nanos: int
    last_round_end: float | None
    price: float | None  # the last closed round's, ledger units per mW·s
    price_capped: bool
    live: LivePower | None  # None when older than ``stale_after_s``
    live_seen: LivePower | None  # the last one, however old
    payments_by_status: dict[str, tuple[int, int]]
    last_payment: PaymentRow | None
    today: PeriodTotals
    month: PeriodTotals
    unit: str = LEGACY_UNIT  # the ledger's, as it records it now (``reader.ledger_unit_of``)
    # Closed rounds waiting for the producer's figure.
    waiting: Waiting = field(default_factory=Waiting)
    # All-time sums of the priced rounds (``priced_by``, ``disputed``).
    priced: Sums = field(default_factory=Sums)


def with_open_round(p: PeriodTotals, consumer_mws: float, producer_mws: float) -> PeriodTotals:
    """``p`` with the open round's energy (mW·s, already clamped at zero) added."""
    return replace(p, sums=replace(p.sums, consumer_mws=p.sums.consumer_mws + consumer_mws,
                                   producer_mws=p.sums.producer_mws + producer_mws))


class HighWater:
    """Per-process maxima, so that a counter never steps back. Thread-safe."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def __call__(self, key: str, value: float) -> float:
        with self._lock:
            value = max(value, self._seen.get(key, value))
            self._seen[key] = value
            return value


class AllTime:
    """All-time round totals, kept up to date by adding only the rounds since the last
    look: rounds are only ever appended, and a year of them takes a Pi Zero seconds
    to add up. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_id = 0
        self._sums = Sums()

    def __call__(self, reader: LedgerReader) -> Sums:
        with self._lock:
            if reader.last_round_id() < self._last_id:  # another ledger file: start over
                self._last_id, self._sums = 0, Sums()
            new, self._last_id = reader.sums_after(self._last_id)
            self._sums = add(self._sums, new)
            return self._sums


def add(a: Sums, b: Sums) -> Sums:
    ends = [t for t in (a.last_end, b.last_end) if t is not None]
    return Sums(a.rounds + b.rounds, a.consumer_mws + b.consumer_mws,
                a.producer_mws + b.producer_mws, a.owed_nano_units + b.owed_nano_units,
                a.samples + b.samples, a.expected_samples + b.expected_samples,
                a.failed_samples + b.failed_samples, max(ends) if ends else None,
                tuple(x + y for x, y in zip(a.priced_from, b.priced_from, strict=True)))


def read_figures(reader: LedgerReader, tz: tzinfo, *, stale_after_s: float,
                 high_water: HighWater, all_time: AllTime | None = None,
                 now: float | None = None, backend: str | None = None) -> Figures:
    """Everything the dashboard, /metrics and MQTT show, from one read transaction.

    ``backend`` is the configured ``wallet.backend``: its unit is the ledger's while the
    ledger records none (``reader.ledger_unit_of``)."""
    now = time.time() if now is None else now
    with reader.snapshot():
        # Read each time (one row): run records its backend's unit as it starts, so it
        # changes under a running serve when the ledger was new or the owner switched.
        unit = reader.unit(backend)
        total = all_time(reader) if all_time is not None else reader.sums()
        w = reader.waiting()
        paid = reader.paid()
        open_round = reader.open_round()
        live = reader.live_power()
        last = reader.last_round()
        recent = reader.payments(1)
        status = reader.by_status()
        today = period_totals(reader, periods.today(now, tz))
        month = period_totals(reader, periods.this_month(now, tz))
    # Clamped as each round is in the sums: a counter that dips across a restart of
    # this process (whose HighWater starts again) would read as a reset downstream.
    o_mws = max(open_round.consumer_mws, 0.0) if open_round else 0.0
    o_prod = max(open_round.producer_mws, 0.0) if open_round else 0.0
    o_samples = open_round.samples if open_round else 0
    o_expected = open_round.expected_samples if open_round else 0
    o_failed = open_round.failed_samples if open_round else 0
    # Rounds waiting for the producer's figure: this meter's own figures, which pricing
    # leaves as they are, count in the all-time counters as the open round's do.
    ends = [t for t in (total.last_end, w.newest_end) if t is not None]
    # Judged by when the daemon saved it: a reading's own time is on the daemon's clock
    # as of its start, and a Pi without a clock chip may have set the time since.
    fresh = live is not None and now - live[1] <= stale_after_s
    # Today and this month count the open round's energy as all time does (it will end
    # today: a round counts on the day it ends); what it owes comes when it closes.
    today, month = (with_open_round(p, o_mws, o_prod) for p in (today, month))
    return Figures(
        at=now,
        consumer_mws=high_water("consumer_mws", total.consumer_mws + w.consumer_mws + o_mws),
        producer_mws=high_water("producer_mws", total.producer_mws + o_prod),
        samples=int(high_water("samples", total.samples + w.samples + o_samples)),
        missed_samples=int(high_water("missed", total.expected_samples + w.expected_samples
                                      + o_expected - total.samples - w.samples - o_samples)),
        failed_samples=int(high_water("failed", total.failed_samples + w.failed_samples
                                      + o_failed)),
        rounds=total.rounds, owed_nano_units=total.owed_nano_units, paid_units=paid.value_units,
        fees_nanos=paid.fee_nanos, last_round_end=max(ends) if ends else None,
        price=last.price if last else None, price_capped=bool(last and last.price_capped),
        live=live[0] if live and fresh else None, live_seen=live[0] if live else None,
        payments_by_status=status, last_payment=recent[0] if recent else None,
        today=today, month=month, unit=unit, waiting=w, priced=total)


class LedgerSource:
    """What every view reads through: the ledger file, the owner's time zone, the
    configured ``wallet.backend`` (whose unit a ledger that records none speaks), and one
    high-water mark for the whole process. Each caller opens its own reader; the
    ledger's unit comes with each reading (``Figures.unit``), never from start-up."""

    def __init__(self, path: str, tz: tzinfo, *, stale_after_s: float,
                 backend: str | None = None) -> None:
        self.path = path
        self.tz = tz
        self.backend = backend
        self.stale_after_s = stale_after_s
        self.high_water = HighWater()
        self.all_time = AllTime()

    def open(self) -> LedgerReader:
        """A new read-only connection. Raises LedgerError (no ledger yet, unreadable)."""
        return LedgerReader(self.path)

    def figures(self, reader: LedgerReader, now: float | None = None) -> Figures:
        return read_figures(reader, self.tz, stale_after_s=self.stale_after_s,
                            high_water=self.high_water, all_time=self.all_time, now=now,
                            backend=self.backend)
