"""Statements: ``p2p-energy statement --day | --month [--csv]`` and ``ledger --csv``.

A statement covers local days in ``[serve] timezone`` (the system's by
default): a day is midnight to midnight, 23 or 25 hours when daylight saving
time starts or ends. A round counts on the day it ended; a payment is paid on
the day it was confirmed. Amounts owed are exact: the ledger keeps billionths of its
unit. Amounts are in ledger units, the ledger's (``reader.ledger_unit_of``): IOTA
on the legacy network, µIOTA on today's (the CSV's columns: ``..._microiota``). Fees are
real IOTA on either.

A consumer priced from its producer's signed figures (``[producer]``): a round
waiting for the producer's figure is in no total until it is priced (the
statement says how many wait); in the rounds CSV its ``price`` is empty and its
``priced_from`` is ``waiting``. A priced round's ``priced_from`` says whose figure
priced it (``producer``, ``dispute_producer``, ``dispute_own_channel``,
``own_channel_after_wait``); empty: this meter's own channel, unlinked.
"""

from __future__ import annotations

import argparse
import csv
from dataclasses import dataclass
from datetime import tzinfo
from typing import TextIO

from ..config import Config
from ..core.entries import DISPUTE_OWN, OWN_AFTER_WAIT
from ..errors import P2PEnergyError
from ..store.ledger import iso
from ..store.reader import LedgerReader, PaymentRow
from ..wallet.base import LEGACY_UNIT, unit_slug
from . import periods
from .figures import MWS_PER_KWH, PeriodTotals, period_totals
from .page import energy, energy_unit, local

ROUND_FIELDS = ("id", "started_at", "ended_at", "duration_s", "metered_s", "samples",
                "expected_samples", "failed_samples", "consumer_mws", "producer_mws",
                "producer_avg_mw", "price", "price_capped", "owed_{u}", "consumer_metered_s",
                "producer_metered_s", "priced_from")
STATEMENT_FIELDS = ("period", "from", "to", "hours", "rounds", "energy_kwh", "produced_kwh",
                    "average_price_{u}_per_mws", "owed_{u}", "paid_{u}", "fees_iota",
                    "payments", "references")


def csv_header(fields: tuple[str, ...], unit: str) -> list[str]:
    """The columns with the ledger unit in their names: ``owed_iota``, ``owed_microiota``."""
    u = unit_slug(unit)
    return [f.format(u=u) for f in fields]


def exact_iota(niota: int) -> str:
    """Billionths as an exact decimal of the whole: 1500000000 -> 1.500000000."""
    sign = "-" if niota < 0 else ""
    whole, frac = divmod(abs(niota), 1_000_000_000)
    return f"{sign}{whole}.{frac:09d}"


@dataclass(frozen=True)
class Statement:
    totals: PeriodTotals
    days: list[PeriodTotals]  # a month's days ([] for a day)
    payments: list[PaymentRow]  # created or confirmed in the period


def make_statement(reader: LedgerReader, period: periods.Period, tz: tzinfo, *,
                   by_day: bool) -> Statement:
    with reader.snapshot():
        return Statement(
            totals=period_totals(reader, period),
            days=[period_totals(reader, d) for d in periods.days_of(period, tz)] if by_day
            else [],
            payments=reader.payments_between(period.start, period.end))


def _confirmed_in(payments: list[PaymentRow], p: periods.Period) -> list[PaymentRow]:
    return [x for x in payments if x.status == "confirmed" and x.confirmed_at is not None
            and p.start <= x.confirmed_at < p.end]


def csv_row(t: PeriodTotals, payments: list[PaymentRow], tz: tzinfo) -> list[str]:
    s, p = t.sums, t.period
    price = t.average_price
    paid = _confirmed_in(payments, p)
    return [p.label, local(p.start, tz, "%Y-%m-%dT%H:%M:%S%z"),
            local(p.end, tz, "%Y-%m-%dT%H:%M:%S%z"), f"{p.hours:g}", str(s.rounds),
            f"{s.consumer_mws / MWS_PER_KWH:.9f}", f"{s.producer_mws / MWS_PER_KWH:.9f}",
            "" if price is None else f"{price:.9g}", exact_iota(s.owed_nano_units),
            str(t.paid.value_units), exact_iota(t.paid.fee_nanos), str(t.paid.count),
            " ".join(x.reference or "" for x in paid)]


def write_csv(st: Statement, tz: tzinfo, out: TextIO, unit: str = LEGACY_UNIT) -> None:
    """One row per day (a month: every day, then the month's total); money in ``unit``."""
    w = csv.writer(out, lineterminator="\n")
    w.writerow(csv_header(STATEMENT_FIELDS, unit))
    for t in [*st.days, st.totals]:
        w.writerow(csv_row(t, st.payments, tz))


def text(st: Statement, tz: tzinfo, unit: str = LEGACY_UNIT) -> str:
    """The statement for a reader; amounts in ``unit`` (``ledger_unit``), fees in IOTA."""
    t, s = st.totals, st.totals.sums
    price = t.average_price
    lines = [
        f"statement for {t.period.label} ({periods.zone_name(tz)},"
        f" {local(t.period.start, tz, '%Y-%m-%d %H:%M %Z')} to"
        f" {local(t.period.end, tz, '%Y-%m-%d %H:%M %Z')}, {t.period.hours:g} h)",
        f"  energy used      {energy(s.consumer_mws)} in {s.rounds} rounds",
        f"  energy produced  {energy(s.producer_mws)}",
        "  average price    " + ("-" if price is None else
                                 f"{price:.6g} {unit}/mW·s"
                                 f" ({price * MWS_PER_KWH:,.0f} {unit}/kWh)"),
        f"  owed             {exact_iota(s.owed_nano_units)} {unit}",
        f"  paid             {t.paid.value_units} {unit} ({t.paid.count} payment(s) confirmed)",
        f"  fees             {exact_iota(t.paid.fee_nanos)} IOTA",
        *_link_lines(t),
    ]
    if st.days:
        name, mws_per = energy_unit(max((d.sums.consumer_mws for d in st.days), default=0.0))
        lines.append(f"  by day:       {name + ' used':>12}  {'owed ' + unit:>10}"
                     f"  {'paid ' + unit:>10}")
        lines += [f"    {d.period.label}  {d.sums.consumer_mws / mws_per:12.3f}"
                  f"  {d.sums.owed_nano_units / 1e9:10.3f}  {d.paid.value_units:10d}"
                  for d in st.days if d.sums.rounds or d.paid.count]
    lines.append("  payments:" if st.payments else "  payments: none")
    for p in st.payments:
        when = f"created {local(p.created_at, tz)}"
        if p.confirmed_at is not None:
            when += f", confirmed {local(p.confirmed_at, tz)}"
        ref = f"{p.reference_kind} {p.reference}" if p.reference else "not signed yet"
        lines.append(f"    #{p.id} {p.value_units} {unit} {p.status}, {when}: {ref}")
    return "\n".join(lines)


def _link_lines(t: PeriodTotals) -> list[str]:
    """Whose figures priced the rounds, the disputed ones, those still waiting."""
    s, lines = t.sums, []
    linked = sum(s.priced_from)
    if linked:
        own = s.priced_by(DISPUTE_OWN) + s.priced_by(OWN_AFTER_WAIT)
        lines.append(f"  priced from      the producer's signed figure: {linked - own} rounds,"
                     f" this meter's own channel: {own}")
    if s.disputed:
        lines.append(f"  disputed         {s.disputed} round(s): the producer's figure and"
                     " this meter's differed beyond the band")
    if t.waiting.rounds:
        lines.append(f"  waiting          {t.waiting.rounds} round(s) wait for the producer's"
                     " figure: in none of these totals until priced")
    return lines


def cmd_statement(cfg: Config, args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Print one statement. Raises P2PEnergyError (bad day or month, no ledger)."""
    import sys
    out = out or sys.stdout
    tz = periods.resolve_timezone(cfg.serve.timezone)
    try:
        period = (periods.parse_day(args.day, tz) if args.day else
                  periods.parse_month(args.month, tz))
    except ValueError as err:
        raise P2PEnergyError(f"--{'day' if args.day else 'month'}: {err}") from None
    with LedgerReader(cfg.ledger.path) as reader:
        st = make_statement(reader, period, tz, by_day=args.month is not None)
        unit = reader.unit(cfg.wallet.backend)
    if args.csv:
        write_csv(st, tz, out, unit)
    else:
        print(text(st, tz, unit), file=out)
    return 0


def write_rounds_csv(path: str, out: TextIO, unit: str = LEGACY_UNIT) -> None:
    """Every round of the ledger as CSV, streamed (times ISO 8601 UTC, owed exact in
    ``unit``)."""
    w = csv.writer(out, lineterminator="\n")
    w.writerow(csv_header(ROUND_FIELDS, unit))
    with LedgerReader(path) as reader:
        for r, consumer_s, producer_s in reader.iter_rounds_by_channel():
            w.writerow([r.id, iso(r.started_at), iso(r.ended_at), repr(r.duration_s),
                        repr(r.metered_s), r.samples, r.expected_samples, r.failed_samples,
                        repr(r.consumer_mws), repr(r.producer_mws), repr(r.producer_avg_mw),
                        "" if r.waiting else repr(r.price), int(r.price_capped),
                        exact_iota(r.owed_nano_units),
                        "" if consumer_s is None else repr(consumer_s),
                        "" if producer_s is None else repr(producer_s),
                        "waiting" if r.waiting else r.priced_from or ""])
