"""The checks ``verify`` makes of each entry, and the running totals: pure, no I/O.

``Audit.entry(index, data)`` reads one entry (``core.entries.parse_entry``)
and checks, in the order of the log:

- the opening (entry 0, and only there; p2p-energy always writes one): its
  figures agree with each other; they are where the carry chain and the totals
  start (the rounds a ledger recorded before it kept a log are summed up in
  it, on the consumer's word);

- rounds: every figure recomputed by the price rule (``round_problems``);
  round ids strictly increasing; the carry chain (a round's ``carry_in`` is
  the ``carry_out`` of the round before it, across runs); one unit for every
  entry;
- rounds priced by the producer's own meter (version 2, ``LinkedRoundEntry``):
  the rules among their own fields (``link_problems``); counted by whose
  figure priced them; the producer entry each names is collected for
  ``crossref`` (``verify --producer``), which checks it in the producer's log;
- payments: ``settles_rounds`` names only rounds recorded before it (in the
  log, or before it began: up to the opening's ``after_round_id``);
  no two executed payments with the same reference; with ``check_payment``
  (``wallet.receipts``), what the network shows of each executed payment.

``Chain`` (what the next entry is checked against) and ``Totals`` (what was
verified) are what ``state`` keeps between runs. Problems are one line each,
``entry N: ...`` with N the entry's index in the log (0-based, its leaf index).
Units: energy in uW·s, money in nano-units (1e-9 of the ledger unit the
entries name), payments' amounts in whole units.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Protocol

from ..core.entries import (
    DISPUTE_OWN,
    DISPUTE_PRODUCER,
    EXECUTED,
    FROM_PRODUCER,
    NANO,
    OWN_AFTER_WAIT,
    LinkedRoundEntry,
    OpeningEntry,
    PaymentEntry,
    ProductionEntry,
    RoundEntry,
    parse_entry,
    round_problems,
)
from ..errors import EntryError

if TYPE_CHECKING:
    from ..wallet.receipt import Receipt

MAX_PROBLEMS_KEPT = 1000  # shown; the rest are counted


def reference_key(reference: str) -> int:
    """A 128-bit digest of a payment reference: what the duplicate check keeps of it."""
    return int.from_bytes(hashlib.blake2b(reference.encode(), digest_size=16).digest(), "big")


@dataclass
class Chain:
    """What the next entry is checked against: the last round, the unit, and every
    executed payment's reference (``reference_key`` -> index of its entry)."""

    last_round_id: int = 0
    carry_out_nano_units: int | None = None  # None: no round yet
    unit: str | None = None
    references: dict[int, int] = field(default_factory=dict)
    opened: bool = False  # the opening entry was seen (entry 0)
    role: str | None = None  # "consumer" (round entries) or "producer" (production entries)
    last_end_utc_ms: int = 0  # where the last production round ended


@dataclass
class Totals:
    """Counts and sums of the entries verified."""

    entries: int = 0
    rounds: int = 0
    payments: int = 0  # payment entries, executed or failed
    executed_payments: int = 0
    consumer_energy_uws: int = 0
    owed_nano_units: int = 0
    paid_logged_units: int = 0  # executed payments' amounts, as the log says
    payments_checked: int = 0  # executed payments looked up on a network
    paid_seen_nano_units: int = 0  # what those moved to the producer, as the network shows
    productions: int = 0  # a producer's rounds
    production_energy_uws: int = 0
    productions_unsynchronized: int = 0  # closed while the meter's clock was not synchronised
    opening_owed_nano_units: int = 0  # owed by rounds from before the log (the opening says)
    opening_paid_units: int = 0  # paid before the log began (the opening says)
    # A consumer's rounds priced by the producer's own meter (round entries version 2):
    linked_from_producer: int = 0  # from the producer's signed figure, not disputed
    linked_disputed: int = 0  # the two meters disagreed beyond the band (both kinds)
    linked_disputed_own: int = 0  # of them, priced from the consumer's own channel
    linked_own_after_wait: int = 0  # no producer figure came: the consumer's own channel
    links_named: int = 0  # rounds naming a producer entry
    links_checked: int = 0  # of them, checked against the producer's log (--producer)

    def __add__(self, other: Totals) -> Totals:
        return Totals(**{f.name: getattr(self, f.name) + getattr(other, f.name)
                         for f in fields(self)})


@dataclass
class Problems:
    """Problem lines, the first ``MAX_PROBLEMS_KEPT`` kept, all counted."""

    lines: list[str] = field(default_factory=list)
    count: int = 0

    def add(self, where: str, text: str) -> None:
        """``where``: "entry N", "checkpoint", ..."""
        self.count += 1
        if len(self.lines) < MAX_PROBLEMS_KEPT:
            self.lines.append(f"{where}: {text}")

    def __bool__(self) -> bool:
        return self.count > 0


class Collects(Protocol):
    """Where the producer entries rounds name are kept (``crossref.References``)."""

    def add(self, index: int, r: LinkedRoundEntry, problems: Problems) -> None: ...

    def add_waited(self, index: int, r: LinkedRoundEntry) -> None: ...


class Audit:
    """Checks entries in log order, continuing from ``chain``; counts into ``run``.

    ``check_payment``: asked about each executed payment (raises what it raises:
    ``WalletError`` when its network cannot be asked).
    """

    def __init__(self, chain: Chain, problems: Problems,
                 check_payment: Callable[[PaymentEntry], Receipt] | None = None,
                 references: Collects | None = None) -> None:
        """``references``: where the producer entries the rounds name are collected
        (``crossref``; None: they are counted, not collected)."""
        self.chain = chain
        self.run = Totals()
        self.problems = problems
        self._check_payment = check_payment
        self._references = references

    def entry(self, index: int, data: bytes) -> None:
        """Check the entry at ``index`` (its bytes as the log holds them)."""
        self.run.entries += 1
        where = f"entry {index}"
        try:
            entry = parse_entry(data)
        except EntryError as err:
            self.problems.add(where, f"not an entry of this log: {err}")
            return
        if isinstance(entry, ProductionEntry):
            self._production(where, entry)
            return
        self._unit(where, entry.unit)
        if isinstance(entry, OpeningEntry):
            self._opening(index, where, entry)
            return
        if isinstance(entry, RoundEntry):
            self._round(where, entry)
            if isinstance(entry, LinkedRoundEntry):
                self._linked(index, where, entry)
        else:
            self._payment(index, where, entry)

    def _role(self, where: str, role: str) -> None:
        """One log is one meter's: a consumer's rounds or a producer's, never both."""
        if self.chain.role is None:
            self.chain.role = role
        elif role != self.chain.role:
            self.problems.add(where, f"a {role}'s round in a {self.chain.role}'s log")

    def _production(self, where: str, r: ProductionEntry) -> None:
        """A producer's round: ids increase, one slot each (``parse_entry`` checked it), no
        more metered time than it spans, and no overlap with the round before it while the
        meter's clock says it is synchronised."""
        chain = self.chain
        self._role(where, "producer")
        span_us = (r.end_utc_ms - r.start_utc_ms) * 1000
        if r.producer_metered_us > span_us + 1000:  # its times are rounded to the ms
            self.problems.add(where, f"round {r.round_id}: {r.producer_metered_us} µs metered"
                                     f" in a round of {span_us} µs")
        if r.clock == "synchronized" and r.start_utc_ms < chain.last_end_utc_ms:
            self.problems.add(where, f"round {r.round_id} starts at {r.start_utc_ms} ms, before"
                                     f" the round before it ended ({chain.last_end_utc_ms} ms)")
        chain.last_end_utc_ms = r.end_utc_ms
        if r.round_id <= chain.last_round_id:
            self.problems.add(where, f"round {r.round_id} comes after round"
                                     f" {chain.last_round_id}: round ids must increase")
        chain.last_round_id = max(chain.last_round_id, r.round_id)
        self.run.productions += 1
        self.run.production_energy_uws += max(r.producer_energy_uws, 0)
        self.run.productions_unsynchronized += r.clock != "synchronized"

    def _opening(self, index: int, where: str, o: OpeningEntry) -> None:
        chain = self.chain
        if index != 0 or chain.opened:
            self.problems.add(where, "an opening entry: a log opens once, at entry 0")
            return
        for problem in o.problems():
            self.problems.add(where, problem)
        chain.opened = True
        chain.last_round_id = o.after_round_id
        chain.carry_out_nano_units = o.carry_nano_units
        self.run.opening_owed_nano_units += o.owed_nano_units
        self.run.opening_paid_units += o.paid_units

    def _unit(self, where: str, unit: str) -> None:
        if self.chain.unit is None:
            self.chain.unit = unit
        elif unit != self.chain.unit:
            self.problems.add(where, f"in {unit}, where the entries before it are in"
                                     f" {self.chain.unit}")

    def _round(self, where: str, r: RoundEntry) -> None:
        chain = self.chain
        self._role(where, "consumer")
        for problem in round_problems(r):
            self.problems.add(where, problem)
        if r.round_id <= chain.last_round_id:
            self.problems.add(where, f"round {r.round_id} comes after round"
                                     f" {chain.last_round_id}: round ids must increase")
        if chain.carry_out_nano_units is not None \
                and r.carry_in_nano_units != chain.carry_out_nano_units:
            self.problems.add(where, f"round {r.round_id}: carry_in_nano_units is"
                                     f" {r.carry_in_nano_units}, the round before it ended"
                                     f" with carry_out_nano_units {chain.carry_out_nano_units}")
        chain.last_round_id = max(chain.last_round_id, r.round_id)
        chain.carry_out_nano_units = r.carry_out_nano_units
        self.run.rounds += 1
        self.run.consumer_energy_uws += r.consumer_energy_uws
        self.run.owed_nano_units += r.owed_nano_units

    def _linked(self, index: int, where: str, r: LinkedRoundEntry) -> None:
        """A round priced by the producer's meter: its own rules (``link_problems``), the
        counts, and the producer entry it names kept for ``crossref``."""
        for problem in r.link_problems():
            self.problems.add(where, problem)
        run = self.run
        run.linked_from_producer += r.priced_from == FROM_PRODUCER
        run.linked_disputed += r.priced_from in (DISPUTE_PRODUCER, DISPUTE_OWN)
        run.linked_disputed_own += r.priced_from == DISPUTE_OWN
        run.linked_own_after_wait += r.priced_from == OWN_AFTER_WAIT
        if r.priced_from == OWN_AFTER_WAIT and self._references is not None:
            self._references.add_waited(index, r)
        if r.producer_index >= 0:
            run.links_named += 1
            if self._references is not None and r.producer_leaf_hash:  # else: link_problems
                self._references.add(index, r, self.problems)

    def _payment(self, index: int, where: str, p: PaymentEntry) -> None:
        self.run.payments += 1
        last = p.settles_rounds[-1][1] if p.settles_rounds else 0
        # Without an opening (a log p2p-energy did not write), a payment before the log's
        # first round can only settle rounds from before the log began: not judged.
        if (self.chain.opened or self.chain.last_round_id) and last > self.chain.last_round_id:
            self.problems.add(where, f"payment {p.payment_id} settles round {last}, which the"
                                     " log has not recorded before it (last round"
                                     f" {self.chain.last_round_id})")
        if p.status != EXECUTED:
            return
        self.run.executed_payments += 1
        self.run.paid_logged_units += p.amount_units
        key = reference_key(p.reference)
        first = self.chain.references.setdefault(key, index)
        if first != index:
            self.problems.add(where, f"payment {p.payment_id}: reference {p.reference} was"
                                     f" paid already, in entry {first}")
        if self._check_payment is None:
            return
        receipt = self._check_payment(p)
        for problem in receipt.problems:
            self.problems.add(where, problem)
        if receipt.arrived_nano_units is not None:
            self.run.payments_checked += 1
            if first == index:  # the same transaction counts once
                self.run.paid_seen_nano_units += receipt.arrived_nano_units


def logged_paid_nano_units(totals: Totals) -> int:
    """What the executed payments paid, as the log says, in nano-units (with what the
    opening says was paid before the log began)."""
    return (totals.paid_logged_units + totals.opening_paid_units) * NANO
