"""Does the meter keep its rhythm while the payer signs, on a Pi Zero 2's CPU budget?

Runs the real daemon (``p2p-energy run``) paying with PyOTA, inside a cgroup
(v1 ``cpu`` controller) that allows it 1 ms of CPU per 10 ms period: 10 % of
one core, the least a 10 ms CFS period allows, about what one core of a Pi
Zero 2 gives compared with this machine. The daemon reads an INA3221 through
the real smbus2 over the test suite's emulated i2c-dev (``tests/support/i2c_emulator.py``);
each emulated transfer sleeps for the time the bus would take at 100 kHz, with
the GIL released as a real ioctl releases it. Rounds of 10 s each owe ~10 IOTA,
so the payer is signing (pure-Python PyOTA) nearly all the time. The legacy
test node runs in this process, outside the cgroup (it plays the network).

For each rate (1 sample/s, the default, and 20 samples/s) it runs 60 s and
prints samples taken / expected, the worst lateness of a sample after its
deadline (from the daemon's own stop line), payments confirmed, and how often
the cgroup was throttled. Figures only, no pass/fail. Needs root (cgroup).

    sudo uv run python bench/pi_budget.py                 # ~2.5 minutes
    sudo uv run python bench/pi_budget.py --rates 20 --seconds 30 --quota-us 2000
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent / "tests"
CGROUP_ROOT = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 10_000
BUS_S_PER_MESSAGE = 0.00025  # ~2.5 bytes x 9 bits at 100 kHz: address, pointer or data
ROUND_S = 10.0
FUNDS_IOTA = 1_000_000


# -- the child: the daemon inside the cgroup ----------------------------------------------

def child(cfg: str, cgroup: str) -> None:
    """Join the cgroup first (so start-up is throttled too), then run the daemon."""
    Path(cgroup, "cgroup.procs").write_text(str(os.getpid()))
    sys.path.insert(0, str(TESTS))
    from smbus2 import smbus2 as smbus2_impl

    from support import i2c_emulator

    chip = i2c_emulator.INA3221Chip(shunt_ohms=(0.1, 0.1, 0.1))
    chip.set_input(1, current_ma=50.0 / 3.0, load_v=3.0)  # 50 mW consumer
    chip.set_input(2, current_ma=100.0, load_v=5.0)  # 500 mW producer: 10 IOTA a round
    adapter = i2c_emulator.FakeI2CAdapter({0x40: chip}, bus=1)
    with adapter.installed():
        fake_ioctl = smbus2_impl.ioctl

        def on_the_bus(fd: int, request: int, arg: object = 0, *rest: object) -> object:
            messages = getattr(arg, "nmsgs", 0) or 2  # an SMBus block read: write + read
            time.sleep(messages * BUS_S_PER_MESSAGE)  # the bus time, GIL released
            return fake_ioctl(fd, request, arg, *rest)
        smbus2_impl.ioctl = on_the_bus
        from p2p_energy.commands.cli import main
        sys.exit(main(["run", "-c", cfg]))


# -- the bench ------------------------------------------------------------------------------

def make_cgroup(quota_us: int) -> Path:
    if not CGROUP_ROOT.is_dir():
        sys.exit(f"{CGROUP_ROOT}: no cgroup v1 cpu controller here")
    group = CGROUP_ROOT / f"p2p-energy-bench-{os.getpid()}"
    group.mkdir()
    (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
    (group / "cpu.cfs_quota_us").write_text(str(quota_us))
    return group


def cpu_stat(group: Path) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in
                                   (group / "cpu.stat").read_text().splitlines())}


def write_config(tmp: Path, node_url: str, rate: float, backend: str = "pyota") -> Path:
    seed = tmp / "seed"
    from support.node_fixtures import PAYER_SEED, RECEIVER, TEST_MWM
    seed.write_text(PAYER_SEED + "\n")
    seed.chmod(0o600)
    cfg = tmp / f"bench-{rate:g}.toml"
    cfg.write_text(f"""
[meter]
sensor = "ina3221"
sample_interval_s = {1.0 / rate}
[round]
length_s = {ROUND_S}
checkpoint_s = 10.0
[wallet]
backend = "{backend}"
node_url = "{node_url}"
seed_file = "seed"
receiver = "{RECEIVER}"
min_weight_magnitude = {TEST_MWM}
timeout_s = 120.0
poll_s = 1.0
promote_after_s = 60.0
reattach_after_s = 120.0
retry_max_s = 5.0
[ledger]
path = "{tmp / f'bench-{rate:g}.db'}"
""")
    cfg.chmod(0o600)
    return cfg


def run_one(rate: float, seconds: float, quota_us: int, backend: str) -> dict[str, object]:
    from support.legacy_node import LegacyNode
    from support.node_fixtures import PAYER_SEED, TEST_MWM

    with tempfile.TemporaryDirectory(prefix="p2p-energy-bench-") as name, \
            LegacyNode(mwm=TEST_MWM, confirm_delay_s=1.0) as node:
        tmp = Path(name)
        node.fund_seed(PAYER_SEED, 0, FUNDS_IOTA)
        cfg = write_config(tmp, node.url, rate, backend)
        group = make_cgroup(quota_us)
        log = tmp / "daemon.log"
        try:
            with log.open("w") as err:
                proc = subprocess.Popen(
                    [sys.executable, str(Path(__file__).resolve()), "--child", str(cfg),
                     "--cgroup", str(group)], stdout=subprocess.DEVNULL, stderr=err)
            started = time.monotonic()
            while "metering with" not in log.read_text():
                if proc.poll() is not None or time.monotonic() - started > 120:
                    sys.exit(f"the daemon did not start:\n{log.read_text()}")
                time.sleep(0.05)
            before = cpu_stat(group)
            time.sleep(seconds)
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
            after = cpu_stat(group)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            group.rmdir()
        text = log.read_text()
        stop = re.search(r"sampling: (\d+) samples taken, (\d+) missed, (\d+) failed; "
                         r"worst lateness ([\d.]+) ms", text)
        if code != 0 or stop is None:
            sys.exit(f"the daemon ended with {code}:\n{text}")
        db = sqlite3.connect(tmp / f"bench-{rate:g}.db")
        confirmed, paid = db.execute("SELECT COUNT(*), COALESCE(SUM(value_iota), 0) FROM"
                                     " payments WHERE status = 'confirmed'").fetchone()
        signed = db.execute("SELECT COUNT(*) FROM payments WHERE reference IS NOT NULL"
                            ).fetchone()[0]
        db.close()
        taken, missed, failed = int(stop[1]), int(stop[2]), int(stop[3])
        periods = after["nr_periods"] - before["nr_periods"]
        throttled = after["nr_throttled"] - before["nr_throttled"]
        return {"rate": rate, "taken": taken, "expected": taken + missed, "failed": failed,
                "worst_ms": float(stop[4]), "signed": signed, "confirmed": confirmed,
                "paid": paid, "throttled": throttled / periods if periods else 0.0,
                "tracebacks": text.count("Traceback")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", default="1,20", help="samples per second (default 1,20)")
    parser.add_argument("--seconds", type=float, default=60.0, help="per rate (default 60)")
    parser.add_argument("--quota-us", type=int, default=1000,
                        help=f"CPU microseconds per {PERIOD_US} us period (default 1000)")
    parser.add_argument("--wallet", default="pyota", choices=("pyota", "dry-run"),
                        help="dry-run: the same without signing, for comparison")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--cgroup", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.cgroup)
        return
    if os.geteuid() != 0:
        sys.exit("needs root: it makes a cgroup under /sys/fs/cgroup/cpu")
    sys.path.insert(0, str(TESTS))
    print(f"cgroup cpu quota {args.quota_us} us per {PERIOD_US} us "
          f"({args.quota_us / PERIOD_US:.0%} of one core); rounds of {ROUND_S:g} s, "
          f"wallet {args.wallet}; {args.seconds:g} s per rate", flush=True)
    for rate in (float(r) for r in args.rates.split(",")):
        r = run_one(rate, args.seconds, args.quota_us, args.wallet)
        print(f"{rate:>5g}/s: samples {r['taken']}/{r['expected']} taken"
              f" ({r['expected'] - r['taken']} missed, {r['failed']} failed reads),"
              f" worst lateness {r['worst_ms']:.1f} ms; payments signed {r['signed']},"
              f" confirmed {r['confirmed']} ({r['paid']} IOTA); throttled in"
              f" {r['throttled']:.0%} of periods; tracebacks {r['tracebacks']}", flush=True)


if __name__ == "__main__":
    main()
