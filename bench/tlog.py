"""What the signed log costs: append + sign per entry, and verifying a year of rounds.

1. Append + sign, per entry: encode a round entry, hash its leaf, store the new
   tree hashes (Go tlog's layout), compute the new root from stored hashes, sign
   a checkpoint. Once with the hashes in a list (the pure core's cost), once
   in an SQLite file with one transaction per entry, WAL and synchronous=FULL
   as the ledger commits (the cost of the disk here).
2. A year of 60 s rounds (525,600 entries): build it (entries to a file, a
   stored-hash tree, a signed checkpoint), then verify it in a fresh process as
   a neighbour would: open the checkpoint, parse every entry strictly,
   recompute every round's bill, rebuild the root streaming; time and peak RSS
   of that process. Plus a consistency proof from half a year to the year.

Prints figures, asserts nothing.

    uv run python bench/tlog.py [--entries 525600] [--appends 5000]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from p2p_energy.core import entries, note, tlog
from p2p_energy.core.entries import NANO, RoundEntry

ORIGIN = "bench.p2p-energy.example/meter"
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
ROUND_MS = 60_000


def rounds(n: int) -> Iterator[RoundEntry]:
    """``n`` consecutive rounds with a day's sun curve, billed by the rule (carry chained)."""
    carry = 0
    for i in range(n):
        start = START_MS + i * ROUND_MS
        sun = max(math.sin(((start / 3_600_000) % 24 - 6) / 12 * math.pi), 0.0)
        consumer_uws = 3_600_000 + (i * 7919) % 1_000_000
        producer_uws = int(800_000 * 60 * sun)
        _, _, owed = entries.price_round(consumer_uws, producer_uws, ROUND_MS * 1000, 10 * NANO,
                                         10 * NANO)
        queued, carry_out = divmod(carry + owed, NANO)
        yield RoundEntry(i + 1, start, start + ROUND_MS, "µIOTA", consumer_uws, producer_uws,
                         ROUND_MS * 1000, 10 * NANO, 10 * NANO, carry, owed, queued, carry_out)
        carry = carry_out


def append_in_memory(n: int, signer: note.Signer) -> float:
    """Seconds per append + sign with the stored hashes in a list."""
    store = tlog.MemoryHashStore()
    t0 = time.perf_counter()
    for entry in rounds(n):
        store.append(tlog.leaf_hash(entries.encode_round(entry)))
        root = tlog.tree_hash(store.size, store.hash_at)
        note.sign_checkpoint(note.Checkpoint(ORIGIN, store.size, root), signer)
    return (time.perf_counter() - t0) / n


def append_in_sqlite(n: int, signer: note.Signer, path: Path) -> tuple[float, float]:
    """Seconds per append + sign, each entry its own durable SQLite transaction:
    (in all, of which before COMMIT). The ledger will add the log's part to the
    round's own transaction, so the part before COMMIT is what the log adds."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE entries (idx INTEGER PRIMARY KEY, data BLOB NOT NULL)")
    db.execute("CREATE TABLE tree_hashes (idx INTEGER PRIMARY KEY, hash BLOB NOT NULL)")
    db.execute("CREATE TABLE checkpoint (id INTEGER PRIMARY KEY CHECK (id = 1), note BLOB)")

    def read(i: int) -> bytes:
        return db.execute("SELECT hash FROM tree_hashes WHERE idx = ?", (i,)).fetchone()[0]
    hash_at = tlog.stored_reader(read)
    inside = 0.0
    t0 = time.perf_counter()
    for size, entry in enumerate(rounds(n), start=1):
        t1 = time.perf_counter()
        data = entries.encode_round(entry)
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO entries VALUES (?, ?)", (size - 1, data))
        new = tlog.new_stored_hashes(size - 1, tlog.leaf_hash(data), hash_at)
        first = tlog.stored_hash_index(0, size - 1)
        db.executemany("INSERT INTO tree_hashes VALUES (?, ?)",
                       ((first + j, h) for j, h in enumerate(new)))
        root = tlog.tree_hash(size, hash_at)
        signed = note.sign_checkpoint(note.Checkpoint(ORIGIN, size, root), signer)
        db.execute("INSERT OR REPLACE INTO checkpoint VALUES (1, ?)", (signed,))
        inside += time.perf_counter() - t1
        db.execute("COMMIT")
    seconds = (time.perf_counter() - t0) / n
    db.close()
    return seconds, inside / n


def build_year(n: int, signer: note.Signer, folder: Path) -> dict[str, float]:
    """Write ``n`` entries (one per line) and the signed checkpoint; time the parts."""
    t0 = time.perf_counter()
    store = tlog.MemoryHashStore()
    size_bytes = 0
    with open(folder / "entries", "wb") as out:
        for entry in rounds(n):
            data = entries.encode_round(entry)  # canonical JSON: no raw newline inside
            out.write(data + b"\n")
            size_bytes += len(data)
            store.append(tlog.leaf_hash(data))
    root = store.root()
    (folder / "checkpoint").write_bytes(
        note.sign_checkpoint(note.Checkpoint(ORIGIN, n, root), signer))
    built_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    half = n // 2
    proof = tlog.consistency_proof(half, n, store.hash_at)
    tlog.verify_consistency(half, n, tlog.tree_hash(half, store.hash_at), root, proof)
    proof_s = time.perf_counter() - t0
    return {"build_s": built_s, "bytes_per_entry": size_bytes / n, "proof_s": proof_s,
            "proof_hashes": len(proof), "stored_hashes": len(store.hashes)}


def verify_year(folder: Path, verifier_key: str) -> dict[str, float]:
    """The neighbour's side, in this process: all of it checked, streaming."""
    t0 = time.perf_counter()
    verifier = note.parse_verifier(verifier_key)
    checkpoint = note.open_checkpoint((folder / "checkpoint").read_bytes(), verifier)
    frontier = tlog.Frontier()
    problems = 0
    with open(folder / "entries", "rb") as f:
        for line in f:
            data = line[:-1]
            entry = entries.parse_entry(data)
            if isinstance(entry, RoundEntry):
                problems += len(entries.round_problems(entry))
            frontier.append(tlog.leaf_hash(data))
    ok = frontier.size == checkpoint.size and frontier.root() == checkpoint.root_hash
    return {"verify_s": time.perf_counter() - t0, "entries": frontier.size,
            "root_matches": ok, "problems": problems, "peak_rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """This process's peak resident memory. Linux's VmHWM starts afresh at exec;
    ru_maxrss does not (a child of a big parent would report the parent's size)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=525_600)
    parser.add_argument("--appends", type=int, default=5_000)
    parser.add_argument("--verify", nargs=2, metavar=("FOLDER", "VERIFIER_KEY"),
                        help=argparse.SUPPRESS)  # the child process of part 2
    args = parser.parse_args()
    if args.verify:
        print(json.dumps(verify_year(Path(args.verify[0]), args.verify[1])))
        return
    signer = note.parse_signer(note.signer_key(ORIGIN, bytes(range(32))))
    per_entry = append_in_memory(args.appends, signer)
    print(f"append + sign, hashes in memory:    {per_entry * 1e3:.3f} ms per entry"
          f" ({args.appends} entries)")
    with tempfile.TemporaryDirectory(prefix="p2p-bench-tlog-") as tmp:
        per_entry, before_commit = append_in_sqlite(args.appends, signer,
                                                    Path(tmp) / "log.sqlite")
        print(f"append + sign, SQLite transaction: {per_entry * 1e3:.3f} ms per entry, of which"
              f" {before_commit * 1e3:.3f} ms before COMMIT (WAL, synchronous=FULL,"
              f" {args.appends} entries)")
        built = build_year(args.entries, signer, Path(tmp))
        print(f"build {args.entries} round entries:   {built['build_s']:.1f} s;"
              f" {built['bytes_per_entry']:.0f} bytes per round entry;"
              f" {built['stored_hashes']} stored hashes")
        print(f"consistency proof {args.entries // 2} -> {args.entries}:"
              f" {built['proof_hashes']} hashes, made and checked in"
              f" {built['proof_s'] * 1e3:.2f} ms")
        child = subprocess.run([sys.executable, __file__, "--verify", tmp,
                                signer.verifier.key()], capture_output=True, check=True)
        v = json.loads(child.stdout)
        print(f"verify {v['entries']} entries (fresh process): {v['verify_s']:.1f} s,"
              f" peak RSS {v['peak_rss_mb']:.0f} MB; root matches: {v['root_matches']};"
              f" problems: {v['problems']}")


if __name__ == "__main__":
    main()
