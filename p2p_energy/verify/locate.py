"""Which entry is not the one the checkpoint signed, when the root does not match.

A root names no entry, but consistency proofs do the bisecting: the first
``m`` entries served are the signed tree's first ``m`` leaves exactly when the
proof from ``m`` to the checkpoint's size leads from their root to the signed
root (RFC 9162 2.1.4.2). That holds up to the first entry that differs and for
no size after it, so a binary search finds it. Roots of earlier sizes come from
``Snapshots``, frontiers kept every ``SNAPSHOT_EVERY`` leaves while the entries
streamed (a year: 129 of at most 19 hashes each); the block that holds the
first difference is fetched again and bisected leaf by leaf. About
log2(n) + 1 proofs and one block of entries. A dishonest proof can only make a
size look bad, never good: the entry named is then too early, never a good one
after the bad.

Only a source with proofs (HTTP) is bisected; an export holds none.
"""

from __future__ import annotations

from collections.abc import Callable

from ..core.tlog import Frontier, leaf_hash, verify_consistency
from ..errors import ProofError, SourceError
from .sources import Source

SNAPSHOT_EVERY = 4096


def _copy(frontier: Frontier) -> Frontier:
    return Frontier.from_hashes(frontier.size, frontier.hashes)


class Snapshots:
    """Frontiers at the start and every ``SNAPSHOT_EVERY`` leaves after, in order."""

    def __init__(self, start: Frontier) -> None:
        self.items = [_copy(start)]

    def note(self, frontier: Frontier) -> None:
        """Call after each append."""
        if frontier.size % SNAPSHOT_EVERY == 0 and frontier.size > self.items[-1].size:
            self.items.append(_copy(frontier))


def first_differing_entry(source: Source, size: int, root: bytes,
                          snapshots: Snapshots) -> int | None:
    """The index of the first entry the source serves that is not the signed tree's leaf.

    ``size``, ``root``: the signed checkpoint's; the first snapshot is known to be
    the signed tree's prefix. None when it cannot be told (the source fails, or
    serves the block differently now).
    """
    def good(m: int, m_root: bytes) -> bool:
        if m == size:
            return m_root == root
        try:
            verify_consistency(m, size, m_root, root, source.consistency(m, size))
        except ProofError:
            return False
        return True

    try:
        return _bisect(source, size, snapshots.items, good)
    except SourceError:
        return None


def _bisect(source: Source, size: int, snaps: list[Frontier],
            good: Callable[[int, bytes], bool]) -> int | None:
    lo, hi = 0, len(snaps)  # snaps[lo] good; snaps[hi] (or the whole tree) bad
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if good(snaps[mid].size, snaps[mid].root()):
            lo = mid
        else:
            hi = mid
    start = snaps[lo].size
    end = snaps[hi].size if hi < len(snaps) else size
    frontier, roots = _copy(snaps[lo]), [snaps[lo].root()]
    for data in source.entries(start, end):
        frontier.append(leaf_hash(data))
        roots.append(frontier.root())
    # roots[k] is the root of the first start + k entries; roots[0] is good.
    lo, hi = 0, len(roots)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if good(start + mid, roots[mid]):
            lo = mid
        else:
            hi = mid
    if hi == len(roots):
        return None  # every prefix fetched again is good: served differently this time
    return start + lo  # its first start + lo entries are good, with the next one not
