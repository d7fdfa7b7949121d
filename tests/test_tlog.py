"""core.tlog against published RFC 6962 vectors and Go's golang.org/x/mod/sumdb/tlog."""

from __future__ import annotations

import hashlib
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2p_energy.core import tlog
from p2p_energy.errors import ProofError

from support import go_sumdb
from support.go_sumdb import unb64

# RFC 6962 test data as published with transparency-dev/merkle (testonly/constants.go
# and proof/verify_test.go), taken over from Certificate Transparency's tests.
LEAF_INPUTS = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f")]
ROOTS = [bytes.fromhex(h) for h in (
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")]
NODE_HASHES = [[bytes.fromhex(h) for h in level] for level in (
    ("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
     "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
     "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
     "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
     "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
     "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
     "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
     "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"),
    ("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
     "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
     "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
     "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
    ("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
     "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
    ("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",))]
# (leaf index, tree size, audit path); the source numbers leaves from 1.
INCLUSION_VECTORS = [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
CONSISTENCY_VECTORS = [
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]
MAX_SIZE = 130  # every (index, size) and (old, new) pair up to this size is checked


def leaves(n: int) -> list[bytes]:
    return [tlog.leaf_hash(b"entry %d" % i) for i in range(n)]


@pytest.fixture(scope="module")
def store() -> tlog.MemoryHashStore:
    return tlog.MemoryHashStore.from_leaves(leaves(MAX_SIZE))


@pytest.fixture(scope="module")
def vector_store() -> tlog.MemoryHashStore:
    return tlog.MemoryHashStore.from_leaves(map(tlog.leaf_hash, LEAF_INPUTS))


@pytest.fixture(scope="module")
def judge() -> go_sumdb.GoSumdb:
    return go_sumdb.judge()


# -- published vectors -----------------------------------------------------------------


def test_roots_of_the_published_vectors(vector_store: tlog.MemoryHashStore) -> None:
    hashes = [tlog.leaf_hash(x) for x in LEAF_INPUTS]
    for size, root in enumerate(ROOTS):
        assert tlog.tree_hash(size, vector_store.hash_at) == root
        assert tlog.root_from_leaves(hashes[:size]) == root


def test_every_complete_subtree_of_the_published_vectors(
        vector_store: tlog.MemoryHashStore) -> None:
    for level, row in enumerate(NODE_HASHES):
        for index, expected in enumerate(row):
            assert vector_store.hash_at(level, index) == expected


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION_VECTORS)
def test_published_inclusion_proofs(vector_store: tlog.MemoryHashStore, index: int, size: int,
                                    path: list[str]) -> None:
    proof = [bytes.fromhex(h) for h in path]
    assert tlog.inclusion_proof(index, size, vector_store.hash_at) == proof
    leaf = tlog.leaf_hash(LEAF_INPUTS[index])
    tlog.verify_inclusion(index, size, leaf, proof, ROOTS[size])


@pytest.mark.parametrize(("old", "new", "path"), CONSISTENCY_VECTORS)
def test_published_consistency_proofs(vector_store: tlog.MemoryHashStore, old: int, new: int,
                                      path: list[str]) -> None:
    proof = [bytes.fromhex(h) for h in path]
    assert tlog.consistency_proof(old, new, vector_store.hash_at) == proof
    tlog.verify_consistency(old, new, ROOTS[old], ROOTS[new], proof)


# -- Go's tlog as the judge ------------------------------------------------------------


def test_go_stores_the_same_hashes_in_the_same_places(judge: go_sumdb.GoSumdb,
                                                      store: tlog.MemoryHashStore) -> None:
    answer = judge.tree(leaves(MAX_SIZE))
    assert [unb64(h) for h in answer["stored"]] == store.hashes
    assert answer["stored_counts"] == [tlog.stored_hash_count(n) for n in range(MAX_SIZE + 1)]
    roots = [unb64(h) for h in answer["roots"]]
    assert roots[0] == bytes(32)  # Go's empty tree; RFC 6962's is SHA-256("")
    assert roots[1:] == [tlog.tree_hash(n, store.hash_at) for n in range(1, MAX_SIZE + 1)]


def test_go_checks_every_inclusion_proof_and_proves_the_same(
        judge: go_sumdb.GoSumdb, store: tlog.MemoryHashStore) -> None:
    cases = [(i, n, tlog.inclusion_proof(i, n, store.hash_at))
             for n in range(1, MAX_SIZE + 1) for i in range(n)]
    answer = judge.tree(leaves(MAX_SIZE), inclusion=cases)
    for (i, n, proof), verdict in zip(cases, answer["inclusion"], strict=True):
        assert verdict["err"] == "", (i, n)
        assert [unb64(h) for h in verdict["go_proof"] or []] == proof, (i, n)
        root = tlog.tree_hash(n, store.hash_at)
        tlog.verify_inclusion(i, n, store.hash_at(0, i), proof, root)


def test_go_checks_every_consistency_proof_and_proves_the_same(
        judge: go_sumdb.GoSumdb, store: tlog.MemoryHashStore) -> None:
    cases = [(m, n, tlog.consistency_proof(m, n, store.hash_at))
             for n in range(1, MAX_SIZE + 1) for m in range(1, n + 1)]
    answer = judge.tree(leaves(MAX_SIZE), consistency=cases)
    for (m, n, proof), verdict in zip(cases, answer["consistency"], strict=True):
        assert verdict["err"] == "", (m, n)
        assert [unb64(h) for h in verdict["go_proof"] or []] == proof, (m, n)
        tlog.verify_consistency(m, n, tlog.tree_hash(m, store.hash_at),
                                tlog.tree_hash(n, store.hash_at), proof)


def test_go_refuses_the_proofs_we_refuse(judge: go_sumdb.GoSumdb,
                                         store: tlog.MemoryHashStore) -> None:
    inclusion = [(i, n, flip(tlog.inclusion_proof(i, n, store.hash_at), k))
                 for n, i in ((2, 1), (7, 3), (64, 0), (130, 129)) for k in (0, 1)]
    consistency = [(m, n, flip(tlog.consistency_proof(m, n, store.hash_at), k))
                   for m, n in ((3, 7), (64, 130), (100, 129)) for k in (0, 1)]
    answer = judge.tree(leaves(MAX_SIZE), inclusion, consistency)
    assert all(v["err"] for v in answer["inclusion"] + answer["consistency"])


def flip(proof: list[bytes], k: int, bit: int = 0) -> list[bytes]:
    """The proof with bit ``bit`` of hash ``k`` (modulo its length) flipped."""
    proof = list(proof)
    k %= len(proof)
    h = bytearray(proof[k])
    h[bit // 8 % 32] ^= 1 << (bit % 8)
    proof[k] = bytes(h)
    return proof


# -- tampering, properties -------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.integers(2, MAX_SIZE), st.data())
def test_any_flipped_bit_in_an_inclusion_proof_is_refused(size: int, data: st.DataObject) -> None:
    store = tlog.MemoryHashStore.from_leaves(leaves(size))
    index = data.draw(st.integers(0, size - 1))
    proof = tlog.inclusion_proof(index, size, store.hash_at)
    bad = flip(proof, data.draw(st.integers(0, len(proof) - 1)), data.draw(st.integers(0, 255)))
    with pytest.raises(ProofError):
        tlog.verify_inclusion(index, size, store.hash_at(0, index), bad, store.root())


@settings(max_examples=300, deadline=None)
@given(st.integers(2, MAX_SIZE), st.data())
def test_any_flipped_bit_in_a_consistency_proof_is_refused(size: int,
                                                           data: st.DataObject) -> None:
    store = tlog.MemoryHashStore.from_leaves(leaves(size))
    old = data.draw(st.integers(1, size - 1))
    proof = tlog.consistency_proof(old, size, store.hash_at)
    bad = flip(proof, data.draw(st.integers(0, len(proof) - 1)), data.draw(st.integers(0, 255)))
    with pytest.raises(ProofError):
        tlog.verify_consistency(old, size, tlog.tree_hash(old, store.hash_at), store.root(), bad)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=40), st.data())
def test_any_flipped_bit_in_an_entry_is_refused(entries: list[bytes],
                                                data: st.DataObject) -> None:
    store = tlog.MemoryHashStore.from_leaves(map(tlog.leaf_hash, entries))
    index = data.draw(st.integers(0, len(entries) - 1))
    bit = data.draw(st.integers(0, len(entries[index]) * 8 - 1))
    changed = bytearray(entries[index])
    changed[bit // 8] ^= 1 << (bit % 8)
    proof = tlog.inclusion_proof(index, len(entries), store.hash_at)
    with pytest.raises(ProofError):
        tlog.verify_inclusion(index, len(entries), tlog.leaf_hash(bytes(changed)), proof,
                              store.root())


SIZES = [(0, 1), (5, 8), (6, 8), (7, 130), (0, 129)]


@pytest.mark.parametrize(("index", "size"), SIZES)
def test_corrupt_inclusion_probes_are_refused(store: tlog.MemoryHashStore, index: int,
                                              size: int) -> None:
    """The probes of transparency-dev/merkle's verifierCheck, each one refused."""
    leaf, root = store.hash_at(0, index), tlog.tree_hash(size, store.hash_at)
    proof = tlog.inclusion_proof(index, size, store.hash_at)
    tlog.verify_inclusion(index, size, leaf, proof, root)
    some = hashlib.sha256(b"some").digest()
    probes = [(index - 1, size, leaf, proof, root), (index + 1, size, leaf, proof, root),
              (index ^ 2, size, leaf, proof, root), (index, size * 2, leaf, proof, root),
              (index, size // 2, leaf, proof, root), (index, size, some, proof, root),
              (index, size, leaf, proof, tlog.EMPTY_ROOT), (index, size, leaf, proof, some),
              (index, size, leaf, [*proof, root], root), (index, size, leaf, [root, *proof], root),
              (index, size, leaf, [*proof, b""], root)]
    if proof:
        probes += [(index, size, leaf, proof[:-1], root),
                   (index, size, leaf, [proof[0], some, *proof[1:]], root)]
    for probe in probes:
        with pytest.raises(ProofError):
            tlog.verify_inclusion(*probe)


@pytest.mark.parametrize(("old", "new"), [(1, 2), (3, 7), (4, 8), (6, 8), (64, 130), (127, 128)])
def test_corrupt_consistency_probes_are_refused(store: tlog.MemoryHashStore, old: int,
                                                new: int) -> None:
    """The probes of transparency-dev/merkle's verifierConsistencyCheck, each one refused."""
    r1, r2 = tlog.tree_hash(old, store.hash_at), tlog.tree_hash(new, store.hash_at)
    proof = tlog.consistency_proof(old, new, store.hash_at)
    tlog.verify_consistency(old, new, r1, r2, proof)
    probes = [(old - 1, new, r1, r2, proof), (old + 1, new, r1, r2, proof),
              (old ^ 2, new, r1, r2, proof), (old, new * 2, r1, r2, proof),
              (old, new // 2, r1, r2, proof), (old, new, r2, r1, proof),
              (old, new, tlog.EMPTY_ROOT, r2, proof), (old, new, r1, tlog.EMPTY_ROOT, proof),
              (old, new, r1, r2, []), (old, new, r1, r2, [*proof, r1]),
              (old, new, r1, r2, [*proof, r2]), (old, new, r1, r2, [r1, *proof]),
              (old, new, r1, r2, [r2, *proof]), (old, new, r1, r2, [proof[0], *proof]),
              (old, new, r1, r2, proof[:-1]), (old, new, r1, r2, [*proof, b""])]
    for probe in probes:
        with pytest.raises(ProofError):
            tlog.verify_consistency(*probe)


def test_trivial_consistency() -> None:
    root, other = tlog.leaf_hash(b"a"), tlog.leaf_hash(b"b")
    tlog.verify_consistency(0, 0, tlog.EMPTY_ROOT, tlog.EMPTY_ROOT, [])
    tlog.verify_consistency(0, 5, tlog.EMPTY_ROOT, other, [])
    tlog.verify_consistency(3, 3, root, root, [])
    bad = [(0, 1, root, other, []),  # the empty tree's root is SHA-256 of nothing
           (3, 3, root, other, []), (3, 3, root, root, [root]), (0, 5, tlog.EMPTY_ROOT, other,
                                                                 [root]),
           (2, 1, root, other, []), (1, 0, root, tlog.EMPTY_ROOT, []),
           (1, 2, root, other, [])]
    for probe in bad:
        with pytest.raises(ProofError):
            tlog.verify_consistency(*probe)


def test_impossible_proof_requests_are_value_errors(store: tlog.MemoryHashStore) -> None:
    for index, size in ((0, 0), (5, 5), (-1, 3)):
        with pytest.raises(ValueError, match="no leaf"):
            tlog.inclusion_proof(index, size, store.hash_at)
    with pytest.raises(ValueError, match="no consistency proof"):
        tlog.consistency_proof(6, 5, store.hash_at)
    with pytest.raises(ValueError, match="not complete"):
        store.hash_at(1, MAX_SIZE // 2)  # leaves 130, 131: past the end
    with pytest.raises(ValueError, match="33 bytes"):
        tlog.tree_hash(3, lambda level, index: bytes(33))


# -- layout, frontier, costs -----------------------------------------------------------


def test_stored_hashes_go_where_the_index_says(store: tlog.MemoryHashStore) -> None:
    for level in range(8):
        for index in range(MAX_SIZE >> level):
            assert store.hashes[tlog.stored_hash_index(level, index)] == store.hash_at(level,
                                                                                       index)
    assert len(store.hashes) == tlog.stored_hash_count(MAX_SIZE)
    reader = tlog.stored_reader(store.hashes.__getitem__)
    assert tlog.tree_hash(77, reader) == tlog.tree_hash(77, store.hash_at)


def test_frontier_rebuilds_every_root_and_resumes(store: tlog.MemoryHashStore) -> None:
    frontier = tlog.Frontier()
    assert frontier.root() == tlog.EMPTY_ROOT
    for n in range(MAX_SIZE):
        frontier.append(store.hash_at(0, n))
        assert frontier.root() == tlog.tree_hash(n + 1, store.hash_at)
        assert len(frontier.hashes) == (n + 1).bit_count()
    saved = tlog.Frontier.from_hash_at(77, store.hash_at)
    resumed = tlog.Frontier.from_hashes(saved.size, saved.hashes)
    for n in range(77, MAX_SIZE):
        resumed.append(store.hash_at(0, n))
    assert resumed.root() == store.root()
    with pytest.raises(ValueError, match="3 hashes, not 2"):
        tlog.Frontier.from_hashes(7, saved.hashes[:2])


class CountingReader:
    """A tree of ``size`` leaves that is never built: hashes are made up; reads are counted."""

    def __init__(self, size: int) -> None:
        self.size, self.reads = size, 0

    def __call__(self, level: int, index: int) -> bytes:
        assert (index + 1) << level <= self.size, "read outside the tree"
        self.reads += 1
        return hashlib.sha256(b"%d/%d" % (level, index)).digest()


@pytest.mark.parametrize("size", [525_600, 2**19, 2**19 + 1, 2**40 - 3])
def test_documented_read_costs(size: int) -> None:
    log2 = math.ceil(math.log2(size))
    reader = CountingReader(size)
    tlog.tree_hash(size, reader)
    assert reader.reads <= 1 + log2
    for index in (0, 1, size // 3, size - 2, size - 1):
        reader.reads = 0
        tlog.inclusion_proof(index, size, reader)
        assert reader.reads <= 2 * log2
    for old in (1, 2, size // 3, size - 1):
        reader.reads = 0
        tlog.consistency_proof(old, size, reader)
        assert reader.reads <= 2 * log2
    reader.reads = 0
    tlog.new_stored_hashes(size - 1, bytes(32), reader)
    assert reader.reads <= log2
