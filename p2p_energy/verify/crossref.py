"""The consumer's rounds against the producer's log (``verify --producer``): pure, no I/O.

A consumer priced by its producer's own meter (round entries version 2,
``core.entries.LinkedRoundEntry``) names, for each round priced from the
producer's figure (or disputed), the producer's production entry: its log's
origin, its index and its RFC 6962 leaf hash. ``References`` collects those
names while ``audit.Audit`` reads the consumer's log; ``Check`` then reads the
producer's log (streamed by ``run.verify_log``, which proves its entries in the
producer's signed tree) and checks each named entry:

- the producer's checkpoint holds that index, and the entry there has that
  leaf hash (so it is the very entry, byte for byte);
- it is a production entry, and its slot ``[k x slot_ms, (k + 1) x slot_ms)``
  holds the round's start;
- its ``producer_energy_uws`` and ``producer_metered_us`` are the figures the
  round names it with (``named_*``: for a round priced from the producer, the
  ones it was priced from, as ``LinkedRoundEntry.link_problems`` checks; for a
  disputed one, the figure its own was compared with).

The origin is checked as the references are collected: it must be the log the
``--producer`` key signs.

Memory: 80 bytes a reference in flat arrays, not one object each: a year of
60 s rounds (525,600) is about 45 MB at its peak, with neither log held.
"""

from __future__ import annotations

import bisect
from array import array

from ..core.entries import LinkedRoundEntry, ProductionEntry, parse_production
from .audit import Problems

HASH_BYTES = 32


class References:
    """The producer entries a consumer's rounds name, in the order of the consumer's log."""

    def __init__(self, origin: str) -> None:
        """``origin``: the producer's log (its verifier key's name)."""
        self.origin = origin
        self.producer_index = array("q")
        self.entry_index = array("q")  # the consumer's entry that names it
        self.round_id = array("q")
        self.start_utc_ms = array("q")
        self.energy_uws = array("q")
        self.metered_us = array("q")
        self.hashes = bytearray()  # 32 bytes each
        self.found = 0  # problems found (another origin named)
        # Rounds priced from the consumer's own channel after waiting: their starts, and
        # where they are (entry, round), to see whether the producer's log holds a figure
        # for their slot after all (it came late, or never reached the consumer).
        self.waited_start = array("q")
        self.waited_entry = array("q")
        self.waited_round = array("q")

    def __len__(self) -> int:
        return len(self.producer_index)

    def add(self, index: int, r: LinkedRoundEntry, problems: Problems) -> None:
        """Keep what consumer entry ``index`` (a round naming a producer entry) says."""
        if r.producer_origin != self.origin:
            self.found += 1
            problems.add(f"entry {index}", f"round {r.round_id}: names an entry of log"
                                           f" {r.producer_origin!r}, not of the producer's"
                                           f" log {self.origin!r}")
            return
        self.producer_index.append(r.producer_index)
        self.entry_index.append(index)
        self.round_id.append(r.round_id)
        self.start_utc_ms.append(r.start_utc_ms)
        self.energy_uws.append(r.named_energy_uws)
        self.metered_us.append(r.named_metered_us)
        self.hashes += bytes.fromhex(r.producer_leaf_hash)

    def add_waited(self, index: int, r: LinkedRoundEntry) -> None:
        """Keep where a round priced from the consumer's own channel after waiting is."""
        self.waited_start.append(r.start_utc_ms)
        self.waited_entry.append(index)
        self.waited_round.append(r.round_id)

    def order(self) -> array:
        """Positions of the references by producer index (their own order when, as a
        consumer priced in order writes them, it already is)."""
        p = self.producer_index
        if all(p[i] <= p[i + 1] for i in range(len(p) - 1)):
            return array("q", range(len(p)))
        return array("q", sorted(range(len(p)), key=p.__getitem__))


class Check:
    """Checks the named entries as the producer's log gives them, in index order.

    ``entry`` is called with each entry read and proven (any index; those not
    named cost a comparison); ``finish`` names what was never reached.
    """

    def __init__(self, refs: References, problems: Problems) -> None:
        self.refs = refs
        self.problems = problems
        self._order = refs.order()
        self._next = 0  # the position in ``_order`` of the lowest reference not checked
        self.checked = 0  # references compared with the producer's entry
        self.found = 0  # problems found
        self._skipped = 0  # references passed over: their entry was not read
        self._waited = sorted(zip(refs.waited_start, refs.waited_round, strict=True))
        self.late: list[int] = []  # rounds that waited for a slot the producer's log holds

    def _add(self, where: str, text: str) -> None:
        self.found += 1
        self.problems.add(where, text)

    def wanted(self, below: int) -> list[int]:
        """The distinct producer indexes under ``below`` that references name."""
        p, out = self.refs.producer_index, []
        for pos in self._order:
            index = p[pos]
            if index >= below:
                break
            if not out or out[-1] != index:
                out.append(index)
        return out

    def entry(self, index: int, data: bytes, leaf: bytes) -> None:
        """The producer's entry ``index`` (its bytes and RFC 6962 leaf hash)."""
        if self._waited:
            self._late(data)
        p, order = self.refs.producer_index, self._order
        while self._next < len(order) and p[order[self._next]] < index:
            self._next += 1  # its entry was not read: ``finish`` counts it
            self._skipped += 1
        start = self._next
        if start == len(order) or p[order[start]] != index:
            return  # not named
        production = parse_production(data)
        while start < len(order) and p[order[start]] == index:
            self._one(order[start], index, leaf, production)
            start += 1
        self._next = start

    def _late(self, data: bytes) -> None:
        """Rounds that waited in vain for the slot of this producer entry, if it could
        price one (a note for the reader, not a problem: it may have come late)."""
        production = parse_production(data)
        if isinstance(production, str) or not production.prices_rounds:
            return
        lo = production.slot * production.slot_ms
        i = bisect.bisect_left(self._waited, (lo, -1))
        while i < len(self._waited) and self._waited[i][0] < lo + production.slot_ms:
            self.late.append(self._waited[i][1])
            i += 1

    def _one(self, pos: int, index: int, leaf: bytes,
             production: ProductionEntry | str) -> None:
        refs = self.refs
        where = f"entry {refs.entry_index[pos]}"
        said = f"round {refs.round_id[pos]}: producer entry {index}"
        self.checked += 1
        named = bytes(refs.hashes[pos * HASH_BYTES:(pos + 1) * HASH_BYTES])
        if named != leaf:
            self._add(where, f"{said} has leaf hash {leaf.hex()} in the producer's"
                                     f" log, not {named.hex()} as the round says")
            return
        if isinstance(production, str):
            self._add(where, f"{said} is not a production entry ({production})")
            return
        if not production.prices_rounds:
            self._add(where, f"{said} prices no round: it metered"
                             f" {production.producer_metered_us} µs, its clock"
                             f" {production.clock}")
        start = refs.start_utc_ms[pos]
        k, slot_ms = production.slot, production.slot_ms
        if not k * slot_ms <= start < (k + 1) * slot_ms:
            self._add(where, f"{said} is of slot [{k * slot_ms}, {(k + 1) * slot_ms})"
                                     f" ms, which does not hold the round's start"
                                     f" ({start} ms)")
        if (refs.energy_uws[pos], refs.metered_us[pos]) != (
                production.producer_energy_uws, production.producer_metered_us):
            self._add(where, f"{said} says {production.producer_energy_uws} µW·s"
                                     f" over {production.producer_metered_us} µs; the round"
                                     f" names it with {refs.energy_uws[pos]} µW·s over"
                                     f" {refs.metered_us[pos]} µs")

    def finish(self, size: int) -> None:
        """After the producer's log (``size``: its signed checkpoint's). Names each
        reference past ``size``; counts in one line those whose entry was not read (the
        producer's log did not give it: its own problems say why)."""
        refs, p = self.refs, self.refs.producer_index
        unread = self._skipped
        for pos in self._order[self._next:]:
            index = p[pos]
            if index >= size:
                self._add(f"entry {refs.entry_index[pos]}",
                                  f"round {refs.round_id[pos]}: names producer entry {index};"
                                  f" the producer's log holds {size} (its signed checkpoint)")
            else:
                unread += 1
        if unread:
            self._add("cross-references", f"{unread} rounds name producer entries"
                                                  f" the producer's log did not give")
