"""One run of ``verify``: the checkpoint, the history, the new entries, the root.

1. The checkpoint's signature by the neighbour's key (``core.note``).
2. With a state from an earlier run (``state``): the log must extend what was
   verified then. A smaller tree, the same size with another root, or a tree
   that does not extend the old one (HTTP: a consistency proof; an export: the
   root of its first old-size entries, rebuilt) is "history rewritten", and
   nothing else is looked at.
3. The entries after the verified ones (all of them the first time), streamed:
   each checked by ``audit.Audit`` (payments also on the network, with
   ``receipts``) and its leaf hash appended to the frontier kept in the state.
4. The frontier's root must be the checkpoint's; when it is not, the first
   entry that differs is named (``locate``; HTTP only).

``verify_with_producer`` (``--producer``) verifies the consumer's log so,
collecting the producer entries its rounds name (``crossref.References``),
then the producer's log so, giving every entry it reads and proves to
``crossref.Check``; entries a reference names that were verified by an earlier
run are read again: by inclusion proof (HTTP, up to ``MAX_PROVEN`` of them) or
by reading the log from its start (an export, or more of them).

Memory: one page of entries (HTTP) or one line (export) at a time, the frontier
and its snapshots, the digest of each executed payment's reference, and with
``--producer`` 81 bytes for each round naming a producer entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..core.note import Checkpoint, Verifier, open_checkpoint
from ..core.tlog import (
    EMPTY_ROOT,
    Frontier,
    leaf_hash,
    root_from_inclusion,
    verify_consistency,
)
from ..errors import NoteError, NoteSignatureError, ProofError, SourceError, VerifyError
from ..wallet.receipt import Receipts
from . import state as state_mod
from .audit import Audit, Chain, Problems, Totals
from .crossref import Check, References
from .locate import Snapshots, first_differing_entry
from .sources import HttpSource, Source

MAX_PROVEN = 256  # earlier entries named, read one by one with an inclusion proof each


@dataclass
class Outcome:
    """What a run found. ``new_state`` is what to save, None when nothing changed."""

    problems: Problems = field(default_factory=Problems)
    checkpoint: Checkpoint | None = None
    state_dir: Path | None = None
    before: Totals = field(default_factory=Totals)  # verified by earlier runs
    run: Totals = field(default_factory=Totals)  # verified by this one
    first_index: int = 0  # the first entry this run verified
    unit: str | None = None  # the ledger unit the entries name
    new_state: state_mod.State | None = None
    producer: Outcome | None = None  # --producer: the producer's log, as verified
    cross_problems: int = 0  # --producer: problems of the cross-references
    # --producer: rounds priced from the consumer's own channel after waiting, of slots the
    # producer's entries read this run hold a figure for (a note, not a problem)
    late_rounds: list[int] = field(default_factory=list)

    @property
    def saves(self) -> list[tuple[Path, state_mod.State]]:
        """The states to save (folder, state) once nothing is wrong."""
        return [(o.state_dir, o.new_state) for o in (self, self.producer)
                if o is not None and o.state_dir is not None and o.new_state is not None]

    @property
    def total(self) -> Totals:
        return self.before + self.run


def verify_with_producer(source: Source, verifier: Verifier, state_dir: Path | None,
                         receipts: Receipts | None, producer: Source,
                         producer_verifier: Verifier,
                         producer_state_dir: Path | None) -> Outcome:
    """Verify the consumer's log, the producer's log, and that each of the consumer's
    rounds naming a producer entry names one the producer's log holds as it says
    (``crossref``). The cross-reference problems name the consumer's entries; the
    producer's log's own are in ``.producer``. Raises what ``verify_log`` raises.
    """
    refs = References(producer_verifier.name)
    out = verify_log(source, verifier, state_dir, receipts, references=refs)
    check = Check(refs, out.problems)
    out.producer = verify_log(producer, producer_verifier, producer_state_dir, None,
                              check=check)
    if out.producer.checkpoint is not None:
        check.finish(out.producer.checkpoint.size)
    elif len(refs):
        check.found += 1
        out.problems.add("cross-references", f"{len(refs)} rounds name producer entries;"
                                             " none was checked: the producer's checkpoint"
                                             " does not check")
    out.run.links_checked += check.checked
    out.cross_problems = refs.found + check.found
    out.late_rounds = check.late
    if out.new_state is not None:
        out.new_state.totals = out.total
    return out


def verify_log(source: Source, verifier: Verifier, state_dir: Path | None,
               receipts: Receipts | None, *, references: References | None = None,
               check: Check | None = None) -> Outcome:
    """Verify the log ``source`` holds against ``verifier``; see the module docstring.

    ``state_dir``: where the state is kept (None: the default folder of the
    log's origin). Nothing is saved here. ``references``: where the rounds'
    producer entries are collected; ``check``: given every entry read and proven
    (and the earlier ones it names read again).

    Raises:
        SourceError: the source cannot be read, or is not a log.
        VerifyError: the state folder is unusable or another log's.
        WalletError: a payment's network cannot be asked.
    """
    out = Outcome()
    note = source.checkpoint()
    try:
        checkpoint = open_checkpoint(note, verifier)
    except NoteSignatureError as err:
        out.problems.add("checkpoint", str(err))
        return out
    except NoteError as err:
        raise SourceError(f"{source.where}: not a log: its checkpoint: {err}") from None
    out.checkpoint = checkpoint
    out.state_dir = state_dir or state_mod.default_root() / state_mod.origin_folder_name(
        checkpoint.origin)
    old = state_mod.load(out.state_dir)
    if old is not None and old.origin != checkpoint.origin:
        raise VerifyError(f"{out.state_dir}: the state of log {old.origin!r}, not of"
                          f" {checkpoint.origin!r}: give another --state")
    if source.count is not None and source.count != checkpoint.size:
        out.problems.add("checkpoint", f"the export holds {source.count} entries, its signed"
                                       f" checkpoint {checkpoint.size}")
        return out
    rebuild = False
    if old is not None:
        out.before, out.unit = old.totals, old.chain.unit
        if not _extends(source, checkpoint, old, out.problems):
            return out
        wanted = check.wanted(old.size) if check is not None else []
        if wanted and isinstance(source, HttpSource) and len(wanted) <= MAX_PROVEN:
            _read_proven(source, checkpoint, wanted, check, out.problems)
        else:
            rebuild = bool(wanted)
        if checkpoint.size == old.size and not rebuild:
            return out  # nothing new; the state stays as it is
    frontier, chain = _start(source, old, out.problems, rebuild, check)
    if out.problems or (old is not None and checkpoint.size == old.size):
        return out
    out.first_index = frontier.size
    audit = Audit(chain, out.problems, receipts.check if receipts is not None else None,
                  references)
    snapshots = Snapshots(frontier)
    end = _stream(source, checkpoint.size, frontier, audit, snapshots, check)
    out.run, out.unit = audit.run, chain.unit
    if end < checkpoint.size:
        out.problems.add(f"entry {end}", f"missing: {source.where} gives no entry {end} (nor"
                                         f" any after it); its checkpoint holds"
                                         f" {checkpoint.size}")
    elif frontier.root() != checkpoint.root_hash:
        _name_the_difference(source, checkpoint, snapshots, out)
    if not out.problems:
        out.new_state = state_mod.State(checkpoint.origin, note, frontier, chain, out.total)
    return out


def _extends(source: Source, checkpoint: Checkpoint, old: state_mod.State,
             problems: Problems) -> bool:
    """Whether the checkpoint's tree extends the one verified before (HTTP: by a
    consistency proof; an export's prefix is rebuilt in ``_start``)."""
    rewritten = (f"history rewritten: the log now has {checkpoint.size} entries, where"
                 f" {old.size} were verified before")
    if checkpoint.size < old.size:
        problems.add("checkpoint", rewritten)
        return False
    if checkpoint.size == old.size:
        if checkpoint.root_hash != old.root:
            problems.add("checkpoint", f"history rewritten: {old.size} entries as before,"
                                       " with another root")
            return False
        return True
    if source.has_proofs:
        try:
            verify_consistency(old.size, checkpoint.size, old.root, checkpoint.root_hash,
                               source.consistency(old.size, checkpoint.size))
        except ProofError as err:
            problems.add("checkpoint", f"history rewritten: its {checkpoint.size} entries do"
                                       f" not extend the {old.size} verified before ({err})")
            return False
    return True


def _read_proven(source: HttpSource, checkpoint: Checkpoint, wanted: list[int],
                 check: Check, problems: Problems) -> None:
    """Give ``check`` the earlier entries it names, each proven in the signed tree by
    its inclusion proof."""
    for index in wanted:
        data = next(iter(source.entries(index, index + 1)), None)
        if data is None:
            continue  # not given: ``check`` counts it
        leaf = leaf_hash(data)
        try:
            root = root_from_inclusion(index, checkpoint.size, leaf,
                                       source.inclusion(index, checkpoint.size))
        except ProofError as err:
            root, why = b"", str(err)
        else:
            why = "its inclusion proof leads to another root"
        if root != checkpoint.root_hash:
            problems.add(f"entry {index}", f"not the entry the checkpoint signed: {why}")
            continue
        check.entry(index, data, leaf)


def _start(source: Source, old: state_mod.State | None, problems: Problems,
           rebuild: bool = False, check: Check | None = None) -> tuple[Frontier, Chain]:
    """The frontier and chain the new entries continue from. An export's first
    old-size entries (any source's, with ``rebuild``) are read again, given to
    ``check``, and must rebuild the old root."""
    if old is None:
        return Frontier(), Chain()
    if source.has_proofs and not rebuild:
        return old.frontier, old.chain
    frontier = Frontier()
    for index, data in enumerate(source.entries(0, old.size)):
        leaf = leaf_hash(data)
        frontier.append(leaf)
        if check is not None:
            check.entry(index, data, leaf)
    if frontier.size == old.size and frontier.root() == old.root:
        return frontier, old.chain
    problems.add("checkpoint", f"history rewritten: its first {old.size} entries are not"
                               " those verified before")
    return frontier, old.chain


def _stream(source: Source, size: int, frontier: Frontier, audit: Audit,
            snapshots: Snapshots, check: Check | None = None) -> int:
    """Audit and hash entries from ``frontier.size`` on; returns the size reached."""
    index = frontier.size
    for data in source.entries(index, size):
        audit.entry(index, data)
        leaf = leaf_hash(data)
        frontier.append(leaf)
        if check is not None:
            check.entry(index, data, leaf)
        snapshots.note(frontier)
        index += 1
    return index


def _name_the_difference(source: Source, checkpoint: Checkpoint, snapshots: Snapshots,
                         out: Outcome) -> None:
    start, size = out.first_index, checkpoint.size
    index = None
    if source.has_proofs:
        index = first_differing_entry(source, size, checkpoint.root_hash, snapshots)
    if index is not None:
        out.problems.add(f"entry {index}", "not the entry the checkpoint signed: the entries"
                                           " up to it lead to the signed root, with it they"
                                           " do not")
        return
    why = ("an export holds no proofs to tell which one differs" if not source.has_proofs
           else "the source's proofs do not tell which one differs")
    if size == 0 and checkpoint.root_hash != EMPTY_ROOT:
        why = "a log of no entries has the root of nothing"
    out.problems.add(f"entries {start}-{size - 1}" if size else "checkpoint",
                     f"they do not lead to the checkpoint's root; {why}")
