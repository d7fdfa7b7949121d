"""RFC 6962 Merkle tree hashes and proofs for the signed log: pure, no I/O.

What is implemented (RFC 9162 restates RFC 6962's tree with clearer algorithms;
both are cited):

- leaf hash SHA-256(0x00 || entry) and node hash SHA-256(0x01 || left || right):
  RFC 6962 section 2.1;
- the root (Merkle Tree Hash) of n leaves: RFC 6962 section 2.1;
- inclusion proofs (audit paths): RFC 6962 2.1.1, generated as RFC 9162 2.1.3.1
  and verified as RFC 9162 2.1.3.2;
- consistency proofs: RFC 6962 2.1.2, generated as RFC 9162 2.1.4.1 and
  verified as RFC 9162 2.1.4.2.

Where the hashes come from. A tree is read through a ``hash_at(level, index)``
function: the hash of the complete subtree of ``2**level`` leaves that starts at
leaf ``index * 2**level``. Every function here asks only for complete subtrees
that lie inside the tree it was given, so a store that keeps the hash of every
complete subtree answers each call with one lookup. ``stored_hash_index`` is Go
``golang.org/x/mod/sumdb/tlog``'s dense layout of those hashes (Crosby and
Wallach, "Efficient Data Structures for Tamper-Evident Logging", 3.3): about two
hashes per leaf, only ever appended. ``MemoryHashStore`` is that layout in a list;
the ledger can keep it in an SQLite table keyed by the index.

Costs for a tree of n leaves (reads are ``hash_at`` calls):

==========================  =====================  ====================
call                        reads                  SHA-256 computations
==========================  =====================  ====================
``new_stored_hashes``       <= log2 n (mean < 1)   <= 1 + log2 n (mean < 2)
``tree_hash``               <= 1 + log2 n          <= log2 n
``inclusion_proof``         <= 2 log2 n            <= 2 log2 n
``consistency_proof``       <= 2 log2 n            <= 2 log2 n
``verify_inclusion``        none                   <= log2 n
``verify_consistency``      none                   <= 2 log2 n
``Frontier.append``         none                   mean < 1
==========================  =====================  ====================

``Frontier`` holds at most log2 n hashes, so a verifier rebuilds the root of a
year of 60 s rounds (525,600 entries) streaming, in constant memory.

The empty tree's root is SHA-256 of the empty string (RFC 6962 2.1, and the
C2SP tlog-checkpoint form); Go's tlog uses 32 zero bytes for it instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

from ..errors import ProofError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

# hash_at(level, index): the hash of the complete subtree of 2**level leaves
# starting at leaf index * 2**level.
HashAt = Callable[[int, int], bytes]


def leaf_hash(entry: bytes) -> bytes:
    """The RFC 6962 (2.1) leaf hash of one entry: SHA-256(0x00 || entry)."""
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 6962 (2.1) interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """The k of RFC 6962 2.1: the largest power of two smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _read(hash_at: HashAt, level: int, index: int) -> bytes:
    h = hash_at(level, index)
    if len(h) != HASH_SIZE:
        raise ValueError(f"hash_at({level}, {index}) gave {len(h)} bytes, not {HASH_SIZE}")
    return h


def _complete_subtrees(lo: int, hi: int, hash_at: HashAt) -> list[bytes]:
    """The hashes of the complete subtrees that make up leaves [lo, hi), largest first.

    Requires ``lo`` to be a multiple of a power of two >= hi - lo, which holds
    for every range RFC 6962's recursion visits.
    """
    parts = []
    while lo < hi:
        level = (hi - lo).bit_length() - 1
        parts.append(_read(hash_at, level, lo >> level))
        lo += 1 << level
    return parts


def _fold(parts: Sequence[bytes]) -> bytes:
    """Join complete subtrees, largest first, into their Merkle Tree Hash (right to left)."""
    h = parts[-1]
    for left in reversed(parts[:-1]):
        h = node_hash(left, h)
    return h


def _subtree_hash(lo: int, hi: int, hash_at: HashAt) -> bytes:
    """MTH(D[lo:hi]) (RFC 6962 2.1) for a range RFC 6962's recursion visits."""
    return _fold(_complete_subtrees(lo, hi, hash_at))


def tree_hash(size: int, hash_at: HashAt) -> bytes:
    """The root hash (MTH, RFC 6962 2.1) of the first ``size`` leaves.

    At most 1 + log2(size) reads. Raises ValueError for a negative size.
    """
    if size < 0:
        raise ValueError(f"tree size {size} is negative")
    return EMPTY_ROOT if size == 0 else _subtree_hash(0, size, hash_at)


def inclusion_proof(index: int, size: int, hash_at: HashAt) -> list[bytes]:
    """The audit path PATH(index, D[size]) (RFC 9162 2.1.3.1), leaf to root.

    At most 2 log2(size) reads. Raises ValueError unless 0 <= index < size.
    """
    if not 0 <= index < size:
        raise ValueError(f"no leaf {index} in a tree of {size}")
    path = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _largest_power_of_two_below(hi - lo)
        if index < lo + k:
            path.append(_subtree_hash(lo + k, hi, hash_at))
            hi = lo + k
        else:
            path.append(_subtree_hash(lo, lo + k, hash_at))
            lo += k
    path.reverse()
    return path


def consistency_proof(old_size: int, new_size: int, hash_at: HashAt) -> list[bytes]:
    """PROOF(old_size, D[new_size]) (RFC 9162 2.1.4.1): the tree grew from old_size.

    Empty when old_size is 0 or equal to new_size. At most 2 log2(new_size)
    reads. Raises ValueError unless 0 <= old_size <= new_size.
    """
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to {new_size}")
    if old_size in (0, new_size):
        return []
    proof = []
    lo, hi, m, whole_old_tree = 0, new_size, old_size, True
    while m != hi - lo:
        k = _largest_power_of_two_below(hi - lo)
        if m <= k:
            proof.append(_subtree_hash(lo + k, hi, hash_at))
            hi = lo + k
        else:
            proof.append(_subtree_hash(lo, lo + k, hash_at))
            lo, m, whole_old_tree = lo + k, m - k, False
    if not whole_old_tree:
        # SUBPROOF(m, D[m], false): the old subtree's own hash; when it is the
        # whole old tree (b = true) the verifier already has it as the old root.
        proof.append(_subtree_hash(lo, hi, hash_at))
    proof.reverse()
    return proof


def _check_hashes(what: str, hashes: Iterable[bytes]) -> None:
    for i, h in enumerate(hashes):
        if len(h) != HASH_SIZE:
            raise ProofError(f"{what} [{i}] has {len(h)} bytes, not {HASH_SIZE}")


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root an audit path leads to from ``leaf`` at ``index`` (RFC 9162 2.1.3.2).

    Raises ProofError when the sizes are impossible or the path has the wrong length.
    """
    if not 0 <= index < size:
        raise ProofError(f"no leaf {index} in a tree of {size}")
    _check_hashes("leaf hash", [leaf])
    _check_hashes("inclusion proof", proof)
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError(f"inclusion proof for leaf {index} of {size} is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError(f"inclusion proof for leaf {index} of {size} is too short")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes],
                     root: bytes) -> None:
    """Check that ``leaf`` is leaf ``index`` of the tree of ``size`` with ``root``.

    RFC 9162 2.1.3.2. Raises ProofError when it is not.
    """
    _check_hashes("root", [root])
    if root_from_inclusion(index, size, leaf, proof) != root:
        raise ProofError(f"inclusion proof for leaf {index} does not lead to the root"
                         f" of size {size}")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> None:
    """Check that the tree of ``new_size`` extends the tree of ``old_size``.

    RFC 9162 2.1.4.2, plus its trivial cases: equal sizes need equal roots and
    an empty proof; size 0 needs the empty root and an empty proof. Raises
    ProofError otherwise.
    """
    _check_hashes("root", [old_root, new_root])
    _check_hashes("consistency proof", proof)
    if not 0 <= old_size <= new_size:
        raise ProofError(f"a log cannot shrink from {old_size} to {new_size} entries")
    if old_size == new_size or old_size == 0:
        _check_trivial_consistency(old_size, new_size, old_root, new_root, proof)
        return
    fr, sr, sn = _run_consistency(old_size, new_size, old_root, proof)
    if sn != 0:
        raise ProofError(f"consistency proof from {old_size} to {new_size} is too short")
    if fr != old_root:
        raise ProofError(f"consistency proof does not lead to the root of size {old_size}")
    if sr != new_root:
        raise ProofError(f"consistency proof does not lead to the root of size {new_size}")


def _check_trivial_consistency(old_size: int, new_size: int, old_root: bytes,
                               new_root: bytes, proof: Sequence[bytes]) -> None:
    if proof:
        raise ProofError(f"consistency proof from {old_size} to {new_size} must be empty")
    if old_size == 0 and old_root != EMPTY_ROOT:
        raise ProofError("the root of an empty log must be SHA-256 of nothing")
    if old_size == new_size and old_root != new_root:
        raise ProofError(f"two different roots for the same size {old_size}")


def _run_consistency(old_size: int, new_size: int, old_root: bytes,
                     proof: Sequence[bytes]) -> tuple[bytes, bytes, int]:
    """Steps 1 to 6 of RFC 9162 2.1.4.2 for 0 < old_size < new_size: (fr, sr, sn)."""
    if not proof:
        raise ProofError(f"consistency proof from {old_size} to {new_size} is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"consistency proof from {old_size} to {new_size} is too long")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr, sr, sn


# -- storing the tree ------------------------------------------------------------------


def stored_hash_index(level: int, index: int) -> int:
    """Where the hash ``hash_at(level, index)`` goes in Go tlog's dense layout.

    Go ``tlog.StoredHashIndex``: leaf n's hash comes right after the hashes of
    every subtree completed before it; each subtree's hash right after its last
    leaf's. O(1).
    """
    if level < 0 or index < 0:
        raise ValueError(f"no stored hash at level {level}, index {index}")
    last_leaf = ((index + 1) << level) - 1
    # Leaf n is stored at n + n//2 + n//4 + ... = 2n - popcount(n).
    return 2 * last_leaf - last_leaf.bit_count() + level


def stored_hash_count(size: int) -> int:
    """How many hashes the layout holds for a tree of ``size`` leaves (Go ``StoredHashCount``)."""
    if size <= 0:
        return 0
    last = size - 1
    trailing_ones = (~last & (last + 1)).bit_length() - 1
    return stored_hash_index(0, last) + 1 + trailing_ones


def new_stored_hashes(index: int, leaf: bytes, hash_at: HashAt) -> list[bytes]:
    """The hashes appending leaf ``index`` adds: its own, then each subtree it completes.

    Element j is the hash at (level j, index >> j); stored in Go's layout they
    go at ``stored_hash_index(0, index) + j``, straight after the hashes already
    stored (Go ``tlog.StoredHashesForRecordHash``). ``hash_at`` is read for the
    left siblings only: at most log2(index + 1) reads, fewer than one on average.
    """
    if index < 0:
        raise ValueError(f"leaf index {index} is negative")
    _check_hashes("leaf hash", [leaf])
    hashes, h = [leaf], leaf
    level = 0
    while (index >> level) & 1:
        h = node_hash(_read(hash_at, level, (index >> level) - 1), h)
        hashes.append(h)
        level += 1
    return hashes


def stored_reader(read_stored: Callable[[int], bytes]) -> HashAt:
    """A ``hash_at`` over Go's layout: ``read_stored(i)`` returns the hash stored at i."""
    def hash_at(level: int, index: int) -> bytes:
        return read_stored(stored_hash_index(level, index))
    return hash_at


class MemoryHashStore:
    """Go tlog's stored-hash layout in a list: ``hashes[stored_hash_index(l, i)]``.

    What the ledger keeps in SQLite, held in memory (tests, benchmarks, small
    logs): about 2 x 32 bytes of hash per leaf, plus Python's object overhead.
    """

    def __init__(self) -> None:
        self.hashes: list[bytes] = []
        self.size = 0

    @classmethod
    def from_leaves(cls, leaves: Iterable[bytes]) -> MemoryHashStore:
        """A store holding these leaf hashes, in order. O(n)."""
        store = cls()
        for leaf in leaves:
            store.append(leaf)
        return store

    def append(self, leaf: bytes) -> list[bytes]:
        """Add the next leaf hash; return the hashes stored for it."""
        new = new_stored_hashes(self.size, leaf, self.hash_at)
        self.hashes.extend(new)
        self.size += 1
        return new

    def hash_at(self, level: int, index: int) -> bytes:
        """The complete subtree (level, index); ValueError when not complete in this tree."""
        if level < 0 or index < 0 or (index + 1) << level > self.size:
            raise ValueError(f"subtree ({level}, {index}) is not complete in a tree of"
                             f" {self.size}")
        return self.hashes[stored_hash_index(level, index)]

    def root(self) -> bytes:
        """The root of the whole tree."""
        return tree_hash(self.size, self.hash_at)


class Frontier:
    """The right edge of a tree: the roots of its complete subtrees, largest first.

    One hash per 1 bit of ``size`` (at most log2 n), so appending a year of
    leaves and taking the root needs constant memory. A verifier that kept the
    frontier of the size it last checked continues from there.
    """

    def __init__(self) -> None:
        self._hashes: list[bytes] = []
        self.size = 0

    @classmethod
    def from_hashes(cls, size: int, hashes: Sequence[bytes]) -> Frontier:
        """A frontier saved earlier: what the ``hashes`` property gave at ``size``."""
        if size < 0 or len(hashes) != size.bit_count():
            raise ValueError(f"a frontier of size {size} has {max(size, 0).bit_count()}"
                             f" hashes, not {len(hashes)}")
        _check_hashes("frontier hash", hashes)
        frontier = cls()
        frontier._hashes, frontier.size = list(hashes), size
        return frontier

    @classmethod
    def from_hash_at(cls, size: int, hash_at: HashAt) -> Frontier:
        """The frontier of the first ``size`` leaves of a stored tree (log2 n reads)."""
        if size < 0:
            raise ValueError(f"tree size {size} is negative")
        return cls.from_hashes(size, _complete_subtrees(0, size, hash_at))

    @property
    def hashes(self) -> tuple[bytes, ...]:
        return tuple(self._hashes)

    def append(self, leaf: bytes) -> None:
        """Add the next leaf hash (each trailing 1 bit of size joins two subtrees)."""
        h, n = leaf, self.size
        while n & 1:
            h = node_hash(self._hashes.pop(), h)
            n >>= 1
        self._hashes.append(h)
        self.size += 1

    def root(self) -> bytes:
        """The root hash (MTH) of the leaves appended so far."""
        return _fold(self._hashes) if self._hashes else EMPTY_ROOT


def root_from_leaves(leaves: Iterable[bytes]) -> bytes:
    """The root hash (MTH, RFC 6962 2.1) of these leaf hashes, streaming. O(n), log n memory."""
    frontier = Frontier()
    for leaf in leaves:
        frontier.append(leaf)
    return frontier.root()
