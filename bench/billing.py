"""Does slow payment ever cost metering? Energy billed / used and IOTA paid / owed.

Runs the real daemon (simulated sensor, dry-run wallet, real SQLite ledger) at
a compressed time scale, once per payment latency, and prints:
- billed/used: energy in the ledger's rounds / the exact integral of the
  simulated load over the time the rounds cover (goal >= 0.9999);
- samples taken / due;
- paid+queued vs floor(owed) right at stop (goal: equal), and paid / floor(owed)
  once the payer has drained the queue afterwards (goal: exactly 1).

    uv run python bench/billing.py            # about 50 s
    uv run python bench/billing.py --scale 0.05 --seconds 20
"""

from __future__ import annotations

import argparse
import math
import tempfile
import threading
import time
from pathlib import Path

from p2p_energy import config
from p2p_energy.runtime.daemon import Daemon
from p2p_energy.runtime.payer import Payer, PayerPolicy
from p2p_energy.sensors.simulated import SimulatedSensor
from p2p_energy.store.ledger import Ledger
from p2p_energy.wallet.dryrun import DryRunWallet

LATENCIES_S = (0.0, 5.0, 20.0, 60.0)  # real-time payment latencies


def exact_energy_mws(sensor: SimulatedSensor, span_s: float, steps: int = 200_000) -> float:
    """Simpson's rule on the simulated load: the energy that was really used."""
    steps += steps % 2
    h = span_s / steps
    total = sensor.consumer_mw(0.0) + sensor.consumer_mw(span_s)
    for i in range(1, steps):
        total += (4 if i % 2 else 2) * sensor.consumer_mw(i * h)
    return total * h / 3


def one_run(latency_s: float, scale: float, seconds: float, workdir: Path) -> dict:
    path = str(workdir / f"latency{latency_s:g}.db")
    cfg = config.build({"meter": {"sensor": "simulated", "sample_interval_s": 1.0 * scale},
                        "round": {"length_s": 60.0 * scale, "checkpoint_s": 10.0 * scale},
                        "wallet": {"backend": "dry-run"}}, source="bench")
    policy = PayerPolicy(poll_s=10.0 * scale, retry_min_s=1.0 * scale)
    open_wallet = lambda: DryRunWallet(latency_s=latency_s * scale)  # noqa: E731
    # The simulated day is compressed by the same scale as everything else.
    sensor = SimulatedSensor(day_s=600.0 * scale * 10)
    payer = Payer(lambda: Ledger(path), open_wallet, policy)
    daemon = Daemon(cfg, sensor, path, payer)
    threading.Timer(seconds, daemon.request_stop).start()
    daemon.run()
    ledger = Ledger(path)
    report = ledger.report()
    covered = sum(r["duration_s"] for r in report["rounds"])
    used = exact_energy_mws(sensor, covered)
    t = report["totals"]
    at_stop = (t["paid_iota"] + t["queued_iota"], math.floor(t["owed_iota"]))
    drain, wallet = Payer(lambda: ledger, open_wallet, policy), open_wallet()
    deadline = time.monotonic() + 30
    while ledger.totals()["paid_iota"] < at_stop[1] and time.monotonic() < deadline:
        drain.tick(ledger, wallet)
    t = ledger.totals()
    ledger.close()
    return {"latency": latency_s, "billed_over_used": t["consumer_mws"] / used,
            "samples": (sum(r["samples"] for r in report["rounds"]),
                        sum(r["expected_samples"] for r in report["rounds"])),
            "at_stop": at_stop, "paid_over_owed": t["paid_iota"] / max(at_stop[1], 1),
            "rounds": len(report["rounds"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.01,
                    help="seconds of bench time per real second (default 0.01)")
    ap.add_argument("--seconds", type=float, default=12.0, help="wall time per latency run")
    args = ap.parse_args()
    print(f"time scale {args.scale:g} (1 s sample -> {args.scale:g} s), {args.seconds:g} s per run,"
          " runs in parallel")
    with tempfile.TemporaryDirectory() as tmp:
        results: list[dict] = []
        threads = [threading.Thread(target=lambda lat=lat: results.append(
            one_run(lat, args.scale, args.seconds, Path(tmp)))) for lat in LATENCIES_S]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    print(f"{'latency (real s)':>16} {'rounds':>6} {'billed/used':>12} {'samples':>13}"
          f" {'paid+queued = floor(owed) at stop':>34} {'paid/owed after drain':>22}")
    for r in sorted(results, key=lambda r: r["latency"]):
        taken, due = r["samples"]
        pq, fl = r["at_stop"]
        print(f"{r['latency']:>16g} {r['rounds']:>6} {r['billed_over_used']:>12.6f}"
              f" {taken:>6}/{due:<6} {f'{pq} = {fl}' + ('' if pq == fl else '  MISMATCH'):>34}"
              f" {r['paid_over_owed']:>22.6f}")


if __name__ == "__main__":
    main()
