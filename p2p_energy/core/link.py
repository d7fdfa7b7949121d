"""The consumer's side of the producer's signed log: pure, no I/O, no clock.

Two jobs, both used by ``runtime.producer_link``:

- ``Follower`` accepts the producer's entries only as a signed checkpoint
  covers them, and only when that checkpoint extends the last one accepted:
  it keeps the frontier of the producer's tree (``tlog.Frontier``, at most
  log2 n hashes) as of the last accepted checkpoint, and appends the entries
  after it, in index order; a checkpoint whose root equals the frontier's root
  at its size is accepted, with every entry up to it. An altered entry (one
  byte), an entry the producer never logged, a checkpoint signed by another
  key or of another log, a history rewritten under the same key: none of them
  ever gives the signed root, so none is accepted. Entries that came before
  their checkpoint wait (a bounded number); the ones missing are named by
  ``missing`` (fetched from the producer's ``serve``).

- ``choose`` decides which figure prices a consumer round: the producer's
  signed production for its slot, checked against this meter's own channel
  when it is wired (``Band``: the two INA3221s' datasheet tolerance), or this
  meter's own after the owner's rules (``on_dispute``, ``after_wait``).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field

from ..errors import NoteError, ProofError
from . import tlog
from .entries import (
    DISPUTE_OWN,
    DISPUTE_PRODUCER,
    FROM_PRODUCER,
    OWN_AFTER_WAIT,
    ProductionEntry,
    band_agrees,
    comparable,
    parse_production,
)
from .note import Checkpoint, Verifier, open_checkpoint

AFTER_WAIT = ("wait", "own_channel")  # [producer] after_wait
ON_DISPUTE = ("producer", "own_channel")  # [producer] on_dispute

MAX_PENDING = 4096  # entries held ahead of the checkpoint that will cover them
MAX_CHECKPOINTS = 4096  # signed checkpoints held beyond the accepted size
# A production entry is about 250 bytes, the opening 200: a message on the link is
# never near this, and a hostile one cannot make the pending entries hold more than
# MAX_PENDING x this (8 MB on a Pi Zero).
MAX_LINK_ENTRY_BYTES = 2048
MAX_TAIL_BYTES = 8192  # a tail: an entry and at most 63 hashes, in JSON and base64


def encode_tail(index: int, entry: bytes, proof: list[bytes]) -> bytes:
    """The ``tail`` message: a log's last entry and its inclusion proof in the tree it ends
    (``{"index": i, "entry": base64, "proof": [base64, ...]}``)."""
    return json.dumps({"index": index, "entry": base64.b64encode(entry).decode(),
                       "proof": [base64.b64encode(h).decode() for h in proof]},
                      separators=(",", ":")).encode()


def decode_tail(data: bytes) -> tuple[int, bytes, list[bytes]]:
    """``(index, entry, proof)`` of a ``tail`` message. Raises ValueError for any other shape."""
    if len(data) > MAX_TAIL_BYTES:
        raise ValueError(f"over {MAX_TAIL_BYTES} bytes")
    try:
        obj = json.loads(data)
        index, entry, proof = obj["index"], obj["entry"], obj["proof"]
        if not isinstance(index, int) or isinstance(index, bool) or index < 0 \
                or not isinstance(proof, list) or len(proof) > 63:
            raise ValueError("not a tail")
        hashes = [base64.b64decode(h, validate=True) for h in proof]
        return index, base64.b64decode(entry, validate=True), hashes
    except (KeyError, TypeError, AttributeError, binascii.Error, UnicodeDecodeError,
            RecursionError) as err:  # [[[[...: deep nesting is not a tail either
        raise ValueError(f"not a tail: {type(err).__name__}") from None


@dataclass(frozen=True)
class Accepted:
    """A producer's entry, covered by a signed checkpoint that extends the last one."""

    index: int
    data: bytes
    leaf_hash: bytes
    production: ProductionEntry | None  # None: another kind (its opening entry)


@dataclass
class Offer:
    """What one message gave: entries accepted now, and a problem to log (once per kind)."""

    accepted: list[Accepted] = field(default_factory=list)
    problem: str = ""
    kind: str = ""  # a short name of the problem, for logging once per episode


class Follower:
    """Follows one producer's log from a known state (``size``, ``frontier``)."""

    def __init__(self, verifier: Verifier, frontier: tlog.Frontier | None = None,
                 checkpoint: bytes = b"") -> None:
        self.verifier = verifier
        self.frontier = frontier or tlog.Frontier()
        self.checkpoint = checkpoint  # the last accepted checkpoint note (b"": none yet)
        self._pending: dict[int, bytes] = {}
        # Signed checkpoints beyond the accepted size, not reached yet: size -> (it, note).
        # A consumer back from days away gets the newest (retained) first, then every
        # one queued for it in order: each is reached as its entries arrive.
        self._checkpoints: dict[int, tuple[Checkpoint, bytes]] = {}
        self._tail: tuple[int, bytes, list[bytes]] | None = None  # to start from

    @property
    def size(self) -> int:
        return self.frontier.size

    @property
    def target(self) -> int:
        """The size of the newest signed checkpoint seen (at least the accepted size)."""
        return max(max(self._checkpoints, default=0), self.size)

    def missing(self) -> tuple[int, int] | None:
        """``(start, end)``: the first run of entries the newest checkpoint needs and no
        message brought; None when nothing is missing."""
        start = self.size
        while start < self.target and start in self._pending:
            start += 1
        if start >= self.target:
            return None
        end = start
        while end < self.target and end not in self._pending:
            end += 1
        return start, end

    def offer_entry(self, index: int, data: bytes) -> Offer:
        """An entry as a message brought it (not trusted until a checkpoint covers it)."""
        if index < self.size:
            return Offer()  # accepted before (a broker may deliver a message twice)
        if len(data) > MAX_LINK_ENTRY_BYTES:
            return Offer(problem=f"entry {index} of {len(data)} bytes: not a production"
                                 " entry", kind="size")
        if index >= self.size + MAX_PENDING:
            return Offer(problem=f"entry {index} is too far ahead of the {self.size} accepted"
                                 " (it will be fetched, or passed over)", kind="ahead")
        self._pending[index] = data
        return self._advance()

    def offer_checkpoint(self, note: bytes, *, retained: bool = False) -> Offer:
        """A checkpoint as a message brought it: accepted only if signed by the producer's
        key, for its log, and (once its entries are here) over exactly those entries.
        ``retained``: the broker's retained one, its newest (not one queued earlier)."""
        try:
            checkpoint = open_checkpoint(note, self.verifier)
        except NoteError as err:
            return Offer(problem=f"a checkpoint not signed by the producer's key: {err}",
                         kind="signature")
        if checkpoint.size < self.size:
            if retained:  # the producer's newest is shorter than what was accepted
                return Offer(problem=f"the producer's newest checkpoint holds"
                                     f" {checkpoint.size} entries, fewer than the"
                                     f" {self.size} accepted: its log was started again or"
                                     " rewritten (under the same key)", kind="rewound")
            return Offer()  # an older one, queued before
        if checkpoint.size == self.size:
            if checkpoint.root_hash != self.frontier.root():
                return Offer(problem=f"a signed checkpoint of size {checkpoint.size} with"
                                     " another root than the one accepted: the producer's"
                                     " log was rewritten", kind="fork")
            return Offer()
        self._checkpoints[checkpoint.size] = (checkpoint, note)
        if len(self._checkpoints) > MAX_CHECKPOINTS:  # the oldest beyond a gap go first
            del self._checkpoints[min(self._checkpoints)]
        offer = self._advance()
        if self.size == 0:  # nothing accepted yet: start from the tail, if it ends this one
            started = self._from_tail()
            later = self._advance()
            offer = Offer(offer.accepted + started.accepted + later.accepted,
                          offer.problem or started.problem or later.problem,
                          offer.kind or started.kind or later.kind)
        return offer

    def offer_tail(self, data: bytes) -> Offer:
        """A ``tail`` message: the last entry of the newest checkpoint and its inclusion
        proof. It starts the following (nothing accepted yet) at the checkpoint it ends,
        once that comes; later, it is kept for ``jump``."""
        try:
            index, entry, proof = decode_tail(data)
        except ValueError as err:
            return Offer(problem=f"a tail message: {err}", kind="tail")
        if index < self.size:
            return Offer()
        self._tail = (index, entry, proof)
        return self._from_tail() if self.size == 0 else Offer()

    def _from_tail(self, *, over_a_gap: bool = False) -> Offer:
        tail = self._tail
        if (self.size and not over_a_gap) or tail is None \
                or tail[0] + 1 not in self._checkpoints:
            return Offer()
        self._tail = None
        try:
            return self.bootstrap(tail[1], tail[2], over_a_gap=over_a_gap,
                                  size=tail[0] + 1)
        except ProofError as err:
            return Offer(problem=f"a tail message: {err}", kind="tail")

    def jump(self) -> Offer:
        """Go on past entries that will not come (``missing``, and nothing to fetch them
        from): from the tail of a signed checkpoint, as at a start. The entries in
        between are never read, so that this checkpoint extends the last accepted is not
        checked here (``verify --producer`` checks every entry a round names against the
        producer's whole log). Its ``problem`` says what was passed over."""
        gap = self.missing()
        if gap is None:
            return Offer()
        offer = self._from_tail(over_a_gap=True)
        if offer.accepted:
            later = self._advance()
            offer = Offer(offer.accepted + later.accepted, (
                f"the producer's entries from {gap[0]} on did not come and cannot be"
                f" fetched: following on from entry {offer.accepted[0].index}, the last"
                " of a signed checkpoint; the rounds of the slots in between are priced as"
                " after_wait says"), "jump")
        return offer

    def bootstrap(self, last_entry: bytes, proof: list[bytes], *,
                  over_a_gap: bool = False, size: int | None = None) -> Offer:
        """Start following a log that is already long (nothing accepted yet, or, with
        ``over_a_gap``, past entries that will not come), from a signed checkpoint (of
        ``size`` entries; the newest by default): its last entry and that entry's
        inclusion proof give its frontier (``frontier_from_last_leaf``); the entries
        before it are not read.

        Raises:
            ProofError: the proof does not give the signed root.
        """
        if self.size and not over_a_gap:
            return Offer()
        size = max(self._checkpoints, default=0) if size is None else size
        if size not in self._checkpoints:
            return Offer()
        c, note = self._checkpoints[size]
        leaf = tlog.leaf_hash(last_entry)
        self.frontier = frontier_from_last_leaf(c.size, leaf, proof, c.root_hash)
        self.checkpoint = note
        self._forget_below(self.size)
        return Offer(accepted=[Accepted(c.size - 1, last_entry, leaf, _production(last_entry))])

    def newest_checkpoint(self) -> Checkpoint | None:
        """The newest signed checkpoint seen and not reached yet."""
        return self._checkpoints[max(self._checkpoints)][0] if self._checkpoints else None

    def _forget_below(self, size: int) -> None:
        self._pending = {i: d for i, d in self._pending.items() if i >= size}
        self._checkpoints = {n: c for n, c in self._checkpoints.items() if n > size}

    def _advance(self) -> Offer:
        """Accept the entries up to the largest signed checkpoint they all reach and whose
        root they give; at the first checkpoint they do not give, drop them (they are
        missing again: fetched, or passed over)."""
        if not self._checkpoints:
            return Offer()
        candidate = tlog.Frontier.from_hashes(self.frontier.size, self.frontier.hashes)
        leaves: list[bytes] = []
        reached: tuple[tlog.Frontier, bytes] | None = None
        i, top = self.size, max(self._checkpoints)
        problem = ""
        while i < top and i in self._pending:
            leaf = tlog.leaf_hash(self._pending[i])
            leaves.append(leaf)
            candidate.append(leaf)
            i += 1
            if i in self._checkpoints:
                c, note = self._checkpoints[i]
                if candidate.root() != c.root_hash:
                    start = reached[0].size if reached else self.size
                    for j in range(start, i):  # the checkpoint stays: its entries are wrong
                        del self._pending[j]
                    problem = (f"entries {start} to {i - 1} do not give the root the producer"
                               f" signed for size {i}: at least one was altered on the way;"
                               " none is used")
                    break
                reached = (tlog.Frontier.from_hashes(candidate.size, candidate.hashes), note)
        if reached is None:
            return Offer(problem=problem, kind="root" if problem else "")
        accepted = []
        for j, leaf in zip(range(self.size, reached[0].size), leaves, strict=False):
            data = self._pending[j]
            accepted.append(Accepted(j, data, leaf, _production(data)))
        self.frontier, self.checkpoint = reached
        self._forget_below(self.size)
        return Offer(accepted=accepted, problem=problem, kind="root" if problem else "")


def _production(data: bytes) -> ProductionEntry | None:
    """None: signed by the producer but no production entry: it never prices a round."""
    entry = parse_production(data)
    return None if isinstance(entry, str) else entry


def frontier_from_last_leaf(size: int, leaf: bytes, proof: list[bytes],
                            root: bytes) -> tlog.Frontier:
    """The frontier of a tree of ``size`` from its last leaf and that leaf's RFC 6962
    inclusion proof, checked against ``root``.

    The audit path of the last leaf is the list of complete subtrees to its left
    (bottom-up): the first ``t`` (``2**t`` the smallest subtree, the lowest 1 bit of
    ``size``) join the leaf into that subtree; the rest are the larger ones.

    Raises:
        ProofError: the proof does not give ``root``.
    """
    if size < 1 or tlog.root_from_inclusion(size - 1, size, leaf, proof) != root:
        raise ProofError(f"the inclusion proof of entry {size - 1} does not give the signed"
                         f" root of size {size}")
    t = (size & -size).bit_length() - 1
    h = leaf
    for sibling in proof[:t]:
        h = tlog.node_hash(sibling, h)
    hashes = [*reversed(proof[t:]), h]
    return tlog.Frontier.from_hashes(size, hashes)


# -- which figure prices a round -------------------------------------------------------


@dataclass(frozen=True)
class Band:
    """How far two meters of the same panel may disagree (average power over a round):
    ``|a - b| <= ppm x 1e-6 x the larger + uw`` (``core.entries.band_agrees``)."""

    ppm: int
    uw: int

    @classmethod
    def from_config(cls, tolerance_pct: float, tolerance_mw: float) -> Band:
        return cls(round(tolerance_pct * 10_000), round(tolerance_mw * 1000))


def average_mw(energy_uws: int, metered_us: int) -> float:
    """Average power over the metered time, for showing (µW·s / µs is W; x 1000 for mW)."""
    return 1000 * energy_uws / metered_us if metered_us > 0 else 0.0


@dataclass(frozen=True)
class Choice:
    """The figure a round is priced from (``energy_uws`` over ``metered_us``) and why."""

    priced_from: str  # one of core.entries.PRICED_FROM
    energy_uws: int
    metered_us: int


def choose(own_uws: int, own_us: int, production: ProductionEntry | None, *,
           band: Band, on_dispute: str) -> Choice:
    """Which figure prices a round. ``production``: the producer's entry for its slot
    (None once it is given up on: this meter's own). Figures that do not cover nearly
    the same time (``comparable``; ``own_us`` 0: not wired) are not compared: the
    producer's stands."""
    if production is None:
        return Choice(OWN_AFTER_WAIT, own_uws, own_us)
    theirs = Choice(FROM_PRODUCER, production.producer_energy_uws,
                    production.producer_metered_us)
    if not comparable(own_us, production.producer_metered_us) or band_agrees(
            own_uws, own_us, production.producer_energy_uws, production.producer_metered_us,
            band.ppm, band.uw):
        return theirs
    if on_dispute == "own_channel":
        return Choice(DISPUTE_OWN, own_uws, own_us)
    return Choice(DISPUTE_PRODUCER, theirs.energy_uws, theirs.metered_us)
