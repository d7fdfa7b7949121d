"""What `p2p-energy serve` costs per request, on a ledger of a year of 60 s rounds.

Builds the ledger in a temporary folder (rows written straight with SQL, as the
daemon would have over a year), then times in this process, read-only as serve
reads: the figures every view shows, the dashboard page, /metrics, a month's
statement; and the peak memory of this process. Then starts a real `serve` on
loopback and has eight clients at once each read every round of the year from
/api/rounds?from=0 (following "next" page by page): the peak memory (RSS) of
that serve process, the goal being at most 150 MB. Prints figures, asserts nothing.

    uv run python bench/serve.py [--days 365] [--round-s 60] [--clients 8]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from zoneinfo import ZoneInfo

from p2p_energy.serve import page, periods
from p2p_energy.serve.figures import LedgerSource
from p2p_energy.serve.metrics import registry
from p2p_energy.serve.statement import make_statement
from p2p_energy.store.ledger import Ledger
from p2p_energy.store.reader import LedgerReader

TZ = ZoneInfo("Europe/Berlin")


def build(path: Path, days: int, round_s: float, now: float) -> int:
    Ledger(path).close()  # the schema, as the daemon makes it
    db = sqlite3.connect(path)
    n = int(days * 86400 / round_s)
    start = now - n * round_s

    def rows():
        for i in range(n):
            t = start + i * round_s
            sun = max(math.sin(((t / 3600) % 24 - 6) / 12 * math.pi), 0.0)
            prod = 800 * sun
            price = 10 / prod if prod > 1 else 10.0
            cons = 60.0 * round_s
            yield (t, t + round_s, round_s, round_s, 60, 60, 0, cons, prod * round_s, prod,
                   price, int(prod <= 1), round(cons * price * 1e9))
    db.executemany("INSERT INTO rounds (started_at, ended_at, duration_s, metered_s, samples,"
                   " expected_samples, failed_samples, consumer_mws, producer_mws,"
                   " producer_avg_mw, price, price_capped, owed_niota)"
                   " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows())
    db.executemany("INSERT INTO payments (value_iota, status, created_at, confirmed_at,"
                   " reference, backend) VALUES (?, 'confirmed', ?, ?, ?, 'pyota')",
                   ((1000, start + k * 3600, start + k * 3600 + 30, f"B{k:08d}".ljust(81, "9"))
                    for k in range(int(days * 24))))
    db.commit()
    db.close()
    return n


def timed(what: str, fn, repeat: int = 5) -> None:
    fn()  # warm: the page cache, as on a running Pi
    best = min(_once(fn) for _ in range(repeat))
    print(f"{what:46} {best * 1000:8.1f} ms")


def _once(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def peak_rss_mb(pid: int) -> float:
    """The peak resident memory of process ``pid`` so far (VmHWM), MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M).group(1)) / 1024


def read_all_rounds(url: str) -> tuple[int, int]:
    """Every round from /api/rounds?from=0, page by page: (rounds, pages)."""
    path, rounds, pages = "api/rounds?from=0", 0, 0
    while path:
        with urllib.request.urlopen(url + path.lstrip("/"), timeout=300) as r:
            page = json.loads(r.read())
        rounds, pages = rounds + len(page["rounds"]), pages + 1
        path = page.get("next")
    return rounds, pages


def bench_http(ledger: Path, tmp: Path, clients: int) -> None:
    """A real serve on loopback; ``clients`` read the whole year at once."""
    cfg = tmp / "serve.toml"
    cfg.write_text(f'[ledger]\npath = "{ledger}"\n[serve]\nenabled = true\n'
                   'listen = "127.0.0.1:0"\ntimezone = "Europe/Berlin"\n')
    log = tmp / "serve.log"
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "JOURNAL_STREAM")}
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "p2p_energy", "serve", "-c", str(cfg)],
                                stderr=err, stdout=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 30
        while not (m := re.search(r"on (http://127\.0\.0\.1:\d+/)", log.read_text())):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"serve did not start: {log.read_text()}")
            time.sleep(0.1)
        url = m.group(1)
        urllib.request.urlopen(url + "api/totals", timeout=60).read()
        print(f"{'serve at rest (peak RSS)':46} {peak_rss_mb(proc.pid):8.1f} MB")
        got: list[tuple[int, int]] = []
        started = time.perf_counter()
        threads = [threading.Thread(target=lambda: got.append(read_all_rounds(url)))
                   for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took_s = time.perf_counter() - started
        rounds, pages = got[0] if got else (0, 0)
        print(f"{clients} clients x every round via /api/rounds   {took_s:8.1f} s"
              f"  ({rounds:,} rounds in {pages} pages each)")
        print(f"{'serve peak RSS, ' + str(clients) + ' /api/rounds at once':46}"
              f" {peak_rss_mb(proc.pid):8.1f} MB  (goal: <= 150 MB)")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--round-s", type=float, default=60.0)
    ap.add_argument("--clients", type=int, default=8)
    args = ap.parse_args()
    now = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.db"
        n = build(path, args.days, args.round_s, now)
        print(f"ledger: {n:,} rounds ({args.days} days of {args.round_s:g} s),"
              f" {path.stat().st_size / 1e6:.0f} MB")
        source = LedgerSource(str(path), TZ, stale_after_s=35)
        reader = LedgerReader(path)
        reg = registry(source)
        from prometheus_client import generate_latest

        def dashboard(day: periods.Period | None = None) -> None:
            with reader.snapshot():
                f = source.figures(reader)
                window = day or periods.Period("last 24 hours", f.at - 86400, f.at)
                page.render(page.collect(reader, f, TZ, window, day is None))

        month = periods.this_month(now, TZ)
        timed("figures (totals, today, month, live)", lambda: source.figures(reader))
        timed("dashboard page, last 24 h", dashboard)
        timed("dashboard page, a day 180 days ago", lambda: dashboard(
            periods.day(periods.local_date(now - 180 * 86400, TZ), TZ)))
        timed("/metrics", lambda: generate_latest(reg))
        timed("statement, this month by day", lambda: make_statement(reader, month, TZ,
                                                                     by_day=True))
        reader.close()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{'peak memory of this process (RSS)':46} {rss:8.1f} MB")
        bench_http(path, Path(tmp), args.clients)


if __name__ == "__main__":
    main()
