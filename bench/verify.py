"""What ``p2p-energy verify`` costs the neighbour: a year of 60 s rounds, and a day after it.

1. Build a year: 525,600 round entries billed by the rule (carry chained), and a
   payment entry every 60 rounds (8,760), as an export file (``core.export``)
   with its signed checkpoint.
2. ``p2p-energy verify FILE --key K --state DIR`` in a fresh process, as the
   neighbour runs it: wall time and that process's peak RSS (its VmHWM).
3. A day later (1,440 more rounds and 24 payments, a new export of the whole log):
   the second run reads the year again to rebuild the old root, audits the day.
4. With ``--http``: the same year served over HTTP on 127.0.0.1 by the tests' log
   server (``tests/support/log_server.py``, in this process), verified from scratch.

Prints figures, asserts nothing. Targets: at most 60 s and 200 MB for step 2.

    uv run python bench/verify.py [--rounds 525600] [--http]
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from p2p_energy.core import entries, note, tlog
from p2p_energy.core.entries import NANO, PaymentEntry, RoundEntry
from p2p_energy.core.export import write_export

ORIGIN = "bench.p2p-energy.example/meter"
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
ROUND_MS = 60_000
PAY_EVERY = 60
RECEIVER = "0x" + "e1" * 32


def log_entries(first_round: int, rounds: int, carry: int) -> Iterator[bytes]:
    """Round entries from ``first_round`` on, with a day's sun curve, billed by the rule
    from ``carry``, and a payment of what they queued every 60 rounds. The last carry
    out is left in ``log_entries.carry``."""
    queued = 0
    for i in range(first_round, first_round + rounds):
        start = START_MS + (i - 1) * ROUND_MS
        sun = max(math.sin(((start / 3_600_000) % 24 - 6) / 12 * math.pi), 0.0)
        draft = RoundEntry(i, start, start + ROUND_MS, "µIOTA",
                           3_600_000 + (i * 7919) % 1_000_000, int(800_000 * 60 * sun),
                           ROUND_MS * 1000, 10 * NANO, 10 * NANO, carry, 0, 0, 0)
        bill = entries.recompute(draft)
        yield entries.encode_round(replace(draft, owed_nano_units=bill.owed_nano_units,
                                           queued_units=bill.queued_units,
                                           carry_out_nano_units=bill.carry_out_nano_units))
        carry = bill.carry_out_nano_units
        queued += bill.queued_units
        if i % PAY_EVERY == 0 and queued:
            settles = entries.round_ids_to_ranges(range(i - PAY_EVERY + 1, i + 1))
            reference = f"{i:044d}".replace("0", "A")  # a digest's form
            yield entries.encode_payment(PaymentEntry(
                i // PAY_EVERY, "iota", reference, RECEIVER, "µIOTA", queued, 2_000_000,
                settles, entries.EXECUTED))
            queued = 0
    log_entries.carry = carry  # type: ignore[attr-defined]


def export(path: Path, signer: note.Signer, data: list[bytes]) -> None:
    """The export file of ``data``, signed as the consumer signs its checkpoint."""
    root = tlog.root_from_leaves(map(tlog.leaf_hash, data))
    checkpoint = note.sign_checkpoint(note.Checkpoint(ORIGIN, len(data), root), signer)
    with open(path, "wb") as f:
        write_export(f, checkpoint, data)


# The command as its console script runs it, then its own peak RSS: Linux's VmHWM starts
# afresh at exec, where ru_maxrss of a child counts the pages it shared with this big
# parent between fork and exec.
_CHILD = """import sys
from p2p_energy.commands.cli import main
code = main(sys.argv[1:])
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(int(hwm.split()[1]) / 1024, file=sys.stderr)
sys.exit(code)
"""


def run_verify(source: str, key: str, state: Path) -> tuple[float, float, str]:
    """(seconds, peak RSS MB, second line) of ``p2p-energy verify`` in a fresh process."""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _CHILD, "verify", source, "--key", key,
                          "--state", str(state)], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"verify exited {out.returncode}: {out.stdout[-500:]}{out.stderr}")
    return seconds, float(out.stderr.split()[-1]), out.stdout.strip().splitlines()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=525_600)
    parser.add_argument("--http", action="store_true", help="also verify over HTTP")
    args = parser.parse_args()
    signer = note.signer_from_seed(ORIGIN, bytes(range(32)))
    key = signer.verifier.key()
    with tempfile.TemporaryDirectory(prefix="p2p-bench-verify-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        data = list(log_entries(1, args.rounds, 0))
        export(folder / "year.export", signer, data)
        built_s = time.perf_counter() - t0
        size_mb = (folder / "year.export").stat().st_size / 1e6
        print(f"built {len(data)} entries ({args.rounds} rounds, {len(data) - args.rounds}"
              f" payments), export {size_mb:.0f} MB, in {built_s:.0f} s")
        seconds, peak, line = run_verify(str(folder / "year.export"), key, folder / "state")
        print(f"verify the year from the export (fresh process): {seconds:.1f} s, peak RSS"
              f" {peak:.0f} MB  [{line}]")
        carry = log_entries.carry  # type: ignore[attr-defined]
        data += list(log_entries(args.rounds + 1, 1440, carry))
        export(folder / "day.export", signer, data)
        seconds, peak, line = run_verify(str(folder / "day.export"), key, folder / "state")
        print(f"verify a day more from a new export (the year read again): {seconds:.1f} s,"
              f" peak RSS {peak:.0f} MB  [{line}]")
        if args.http:
            http(data, signer, key, folder)


def http(data: list[bytes], signer: note.Signer, key: str, folder: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from support.log_server import LogServer, SignedLog

    log = SignedLog(origin=ORIGIN, seed=bytes(range(32)))
    log.entries = data
    log.store = tlog.MemoryHashStore.from_leaves(map(tlog.leaf_hash, data))
    with LogServer(log) as server:
        seconds, peak, line = run_verify(server.url, key, folder / "state-http")
    print(f"verify the year and a day over HTTP (fresh process; pages of 1000): {seconds:.1f} s,"
          f" peak RSS {peak:.0f} MB  [{line}]")


if __name__ == "__main__":
    main()
