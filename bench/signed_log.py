"""What the signed log costs the daemon and serve, through the real ledger and HTTP.

1. Per round, while building a big ledger: ``record_round`` at a quarter, half
   and all of it, without fsync (what a round reads must not grow with age).
2. Per round: ``Ledger.record_round`` with the log (entry, tree hashes,
   signed checkpoint, in the round's transaction) against without, on the disk
   of ``--dir`` (WAL, synchronous=FULL as the daemon runs). The difference is
   what the log adds to each round; the entry's size in bytes.
3. ``serve``: a ledger of ``--rounds`` logged rounds (made on /dev/shm, quick),
   served by ``p2p-energy serve`` on 127.0.0.1; the time of ``/log/entries``
   pages of 1000 at the start, middle and end, of ``/log/checkpoint`` and of
   the proofs, over real HTTP (median of 20 each).

Prints figures, asserts nothing.

    uv run python bench/signed_log.py [--rounds 100000] [--dir /var/tmp]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from p2p_energy.core import note
from p2p_energy.core.metering import RoundTotals
from p2p_energy.core.pricing import NANO, PriceRule, quote_round
from p2p_energy.store.ledger import Ledger
from p2p_energy.store.signed_log import LogView, LogWriter

RULE = PriceRule(10 * NANO, 10 * NANO)
T0 = 1_796_515_200.0


def round_at(i: int) -> RoundTotals:
    start = T0 + 60 * i
    return RoundTotals(started_at=start, duration_s=60, metered_s=60,
                       consumer_mws=3600 + (i * 7919) % 1000, producer_mws=24_000 + i % 977,
                       samples=60, expected_samples=60, ended_at=start + 60)


def record(led: Ledger, i: int) -> None:
    r = round_at(i)
    led.record_round(r, quote_round(r.consumer_mws, r.producer_mws, r.producer_metered_s or 60,
                                    RULE))


def per_round(folder: Path, n: int, signer: note.Signer) -> None:
    for label, writer in (("without the log", None), ("with the log", LogWriter(signer))):
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            led = Ledger(Path(tmp) / "l.db", log=writer)
            for i in range(20):  # warm up
                record(led, i)
            t = time.perf_counter()
            for i in range(20, 20 + n):
                record(led, i)
            each = (time.perf_counter() - t) / n
            size = LogView(led.db).entries(0, 1)
            led.close()
        print(f"record_round {label:16}: {each * 1e3:.3f} ms per round ({n} rounds, {folder})")
    print(f"round entry: {len(size[0])} bytes")


def build(path: Path, n: int, signer: note.Signer) -> None:
    led = Ledger(path, log=LogWriter(signer))
    led.db.execute("PRAGMA synchronous=OFF")  # no fsync: what a round reads, not the disk
    marks = {n // 4, n // 2, n - 1}
    for i in range(n):
        if i in marks:
            t = time.perf_counter()
            record(led, i)
            print(f"record_round at round {i + 1:>7}: {(time.perf_counter() - t) * 1e3:.3f} ms"
                  " (the cost must not grow with the ledger's age)")
        else:
            record(led, i)
    led.close()


def serve_figures(path: Path, n: int) -> None:
    cfg = path.with_suffix(".toml")
    cfg.write_text(f'[ledger]\npath = "{path}"\n[serve]\nenabled = true\n'
                   'listen = "127.0.0.1:0"\n')
    err = path.with_suffix(".log")
    with err.open("w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "p2p_energy", "serve", "-c", str(cfg)],
                                stdout=subprocess.DEVNULL, stderr=f)
    try:
        url = ""
        for _ in range(200):
            found = re.findall(r"on (http://127\.0\.0\.1:\d+)/", err.read_text())
            if found:
                url = found[0]
                break
            time.sleep(0.05)
        size, mid = n, n // 2
        routes = {"checkpoint": "/log/checkpoint",
                  "entries 0-999": "/log/entries?start=0&end=1000",
                  f"entries {mid}+1000": f"/log/entries?start={mid}&end={mid + 1000}",
                  f"entries {size - 1000}+1000": f"/log/entries?start={size - 1000}&end={size}",
                  "inclusion proof": f"/log/proof/inclusion?index={size // 3}&size={size}",
                  "consistency proof": f"/log/proof/consistency?from={size // 3}&to={size}"}
        for name, route in routes.items():
            times, length = [], 0
            for _ in range(20):
                t = time.perf_counter()
                with urllib.request.urlopen(url + route, timeout=30) as r:
                    length = len(r.read())
                times.append(time.perf_counter() - t)
            print(f"serve {name:24}: {statistics.median(times) * 1e3:6.1f} ms median,"
                  f" {max(times) * 1e3:6.1f} ms worst, {length} bytes")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=100_000)
    parser.add_argument("--appends", type=int, default=300)
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"))
    args = parser.parse_args()
    signer = note.signer_from_seed("bench.example/p2p-energy/00000000", os.urandom(32))
    per_round(args.dir, args.appends, signer)
    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else args.dir
    with tempfile.TemporaryDirectory(dir=shm) as tmp:
        path = Path(tmp) / "ledger.db"
        t = time.perf_counter()
        build(path, args.rounds, signer)
        print(f"built a ledger of {args.rounds} logged rounds in"
              f" {time.perf_counter() - t:.0f} s: {path.stat().st_size / 1e6:.0f} MB")
        serve_figures(path, args.rounds)


if __name__ == "__main__":
    main()
