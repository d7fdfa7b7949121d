"""The statement ``verify`` prints: what was verified, energy, owed, paid, outstanding.

Money is printed exactly, from nano-units (1e-9 of the ledger unit the entries
name): ``12.3456789`` µIOTA, trailing zeros dropped. Energy in Wh with three
decimals (1 Wh = 3.6e9 uW·s), rounded half to even.
"""

from __future__ import annotations

from fractions import Fraction

from ..core.entries import NANO
from .audit import Totals, logged_paid_nano_units
from .run import Outcome

UWS_PER_WH = 3_600_000_000


def units(nano_units: int) -> str:
    """An amount of nano-units as an exact decimal of units: 1500000000 -> "1.5"."""
    sign = "-" if nano_units < 0 else ""
    whole, frac = divmod(abs(nano_units), NANO)
    text = f"{whole}.{frac:09d}".rstrip("0").rstrip(".")
    return sign + text


def watt_hours(uws: int) -> str:
    """uW·s as Wh with three decimals: 3600000000 -> "1.000"."""
    milli = round(Fraction(uws, UWS_PER_WH // 1000))
    sign = "-" if milli < 0 else ""
    whole, frac = divmod(abs(milli), 1000)
    return f"{sign}{whole}.{frac:03d}"


def _n(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _counts(t: Totals) -> str:
    entries = "1 entry" if t.entries == 1 else f"{t.entries} entries"
    return f"{entries} ({_n(t.rounds, 'round')}, {_n(t.payments, 'payment')})"


def statement(out: Outcome, unit: str | None, network: str, address: str) -> list[str]:
    """The statement's lines (the problems are printed after them, by the caller).

    ``network``: what the payments were checked on ("" when no node was given);
    ``address``: the producer's address they were checked against ("" without).
    """
    cp = out.checkpoint
    if cp is None:
        return ["log: the checkpoint does not check; nothing else was looked at"]
    total, run = out.total, out.run
    lines = [f"log {cp.origin}: {cp.size} entries in its signed checkpoint",
             f"verified: {_counts(run)} this run (from entry {out.first_index});"
             f" {_counts(total)} in all"]
    unit = unit or "units"
    if total.productions:  # a producer's log
        lines.append(f"production: {watt_hours(total.production_energy_uws)} Wh in"
                     f" {_n(total.productions, 'round')}"
                     + (f" ({total.productions_unsynchronized} closed while the meter's clock"
                        " was not synchronised)" if total.productions_unsynchronized else ""))
    lines.append(f"consumer energy: {watt_hours(total.consumer_energy_uws)} Wh")
    owed = total.owed_nano_units + total.opening_owed_nano_units
    lines.append(f"owed: {units(owed)} {unit}")
    before = total.opening_paid_units * NANO
    if total.opening_owed_nano_units or before:
        lines.append(f"  of which before the log began (the consumer's ledger says, not"
                     f" checked): owed {units(total.opening_owed_nano_units)} {unit},"
                     f" paid {units(before)} {unit}")
    logged = logged_paid_nano_units(total)
    all_checked = total.payments_checked == total.executed_payments
    if network and all_checked:
        lines.append(f"paid as seen on the network: {units(total.paid_seen_nano_units)} {unit}"
                     f" ({_n(total.executed_payments, 'payment')} to {address}, checked on"
                     f" {network})")
        paid = total.paid_seen_nano_units + before
    else:
        lines.append(f"paid as the log says: {units(logged)} {unit}"
                     f" ({_n(total.executed_payments, 'executed payment')})")
        if total.payments_checked:
            lines.append(f"paid as seen on the network: {units(total.paid_seen_nano_units)}"
                         f" {unit} for the {total.payments_checked} of them checked on a"
                         " network; the others were not")
        else:
            lines.append("payments were not checked on the network (give --node URL and"
                         " --address ADDRESS)")
        paid = logged
    lines.append(f"outstanding: {units(owed - paid)} {unit} (owed less paid)")
    return lines
