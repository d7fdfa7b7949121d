"""The statement ``verify`` prints: what was verified, energy, owed, paid, outstanding.

For a consumer priced by its producer's meter: how many rounds were priced from
the producer's figures, disputed, or from the consumer's own channel after
waiting; with ``--producer``, the producer's log and whether the rounds'
references to it hold.

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


def _linked(t: Totals) -> list[str]:
    """What priced the rounds of a consumer linked to its producer's meter."""
    if not (t.linked_from_producer or t.linked_disputed or t.linked_own_after_wait):
        return []
    disputed = t.linked_disputed
    return [f"priced by the producer's meter: {_n(t.linked_from_producer, 'round')} from"
            f" its signed figures; {disputed} disputed (the two meters disagreed beyond the"
            f" band: {disputed - t.linked_disputed_own} priced from the producer's figure,"
            f" {t.linked_disputed_own} from the consumer's own channel);"
            f" {t.linked_own_after_wait} from the consumer's own channel after waiting for"
            " the producer's figure"]


def _producer(out: Outcome) -> list[str]:
    """The producer's log (``--producer``), and whether the cross-references hold."""
    p = out.producer
    assert p is not None
    cp = p.checkpoint
    if cp is None:
        return ["the producer's log does not check: its checkpoint is not signed by"
                " --producer-key; the cross-references were not checked"]
    lines = [f"producer's log {cp.origin}: {cp.size} entries in its signed checkpoint;"
             f" verified {_counts(p.run)} this run, {_counts(p.total)} in all",
             f"production: {watt_hours(p.total.production_energy_uws)} Wh in"
             f" {_n(p.total.productions, 'round')}"]
    if out.cross_problems:
        lines.append(f"cross-references: {out.cross_problems} problem(s), below")
    elif not p.problems:
        lines.append(f"cross-references hold: the {_n(out.run.links_checked, 'round')} of"
                     " this run naming a producer entry name one the producer's log holds,"
                     " of the round's slot, with the figures the round names it with")
    if out.late_rounds:
        shown = ", ".join(map(str, out.late_rounds[:10]))
        more = f" and {len(out.late_rounds) - 10} more" if len(out.late_rounds) > 10 else ""
        lines.append(f"note: {_n(len(out.late_rounds), 'round')} priced from the consumer's"
                     " own channel after waiting are of minutes the producer's log holds a"
                     " figure for (it came after their wait, or never reached the"
                     f" consumer): round {shown}{more}")
    unchecked = out.before.links_named - out.before.links_checked
    if unchecked:
        lines.append(f"  {_n(unchecked, 'round')} naming producer entries were verified"
                     " by earlier runs without --producer: not cross-checked")
    return lines


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
    lines += _linked(total)
    if out.producer is not None:
        lines += _producer(out)
    elif total.links_named > total.links_checked:
        lines.append(f"{_n(total.links_named, 'round')} naming a producer entry: not"
                     " checked in the producer's log (give --producer SOURCE --producer-key"
                     " KEY)")
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
