"""End to end through the CLI in a subprocess: replay trace -> rounds -> dry-run payments."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.paying_daemon import assert_sampling_kept_up

RUN_S = 10.0
# The module-scoped rig is built once: under pytest-xdist its tests share one worker.
pytestmark = pytest.mark.xdist_group("cli_end_to_end")


def write_config(tmp: Path, name: str, trace_rows: list[str], latency_s: float = 0.0) -> Path:
    trace = tmp / f"{name}.csv"
    trace.write_text("t_s,consumer_mw,producer_mw\n" + "\n".join(trace_rows) + "\n")
    cfg = tmp / f"{name}.toml"
    cfg.write_text(f"""
[meter]
sensor = "replay"
replay_file = "{trace}"
sample_interval_s = 0.05
[round]
length_s = 1
checkpoint_s = 0.5
[wallet]
backend = "dry-run"
dry_run_latency_s = {latency_s}
poll_s = 0.1
[ledger]
path = "{tmp / (name + '.db')}"
""")
    cfg.chmod(0o600)
    return cfg


def cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "p2p_energy", *args], capture_output=True,
                          text=True, timeout=60, **kw)


def start(cfg: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "JOURNAL_STREAM")}
    return subprocess.Popen([sys.executable, "-m", "p2p_energy", "run", "-c", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def ledger_json(cfg: Path) -> dict:
    out = cli("ledger", "-c", str(cfg), "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three daemons side by side for RUN_S seconds, then SIGTERM."""
    tmp = tmp_path_factory.mktemp("e2e")
    cfgs = {
        "steady": write_config(tmp, "steady", ["0,50,500", "5,50,500"]),
        "dusk": write_config(tmp, "dusk", ["0,40,0", "5,40,0"]),
        "slow_payer": write_config(tmp, "slow_payer", ["0,50,500", "5,50,500"], latency_s=5.0),
    }
    procs = {name: start(cfg) for name, cfg in cfgs.items()}
    time.sleep(RUN_S)
    results = {}
    for name, proc in procs.items():
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        results[name] = (proc.returncode, err, ledger_json(cfgs[name]))
    return results


def test_sigterm_exits_zero_and_logs_rounds(runs):
    for name, (code, err, _) in runs.items():
        assert code == 0, f"{name}: {err}"
        assert "round 1:" in err and "Traceback" not in err


def test_energy_matches_power_times_covered_time(runs):
    _, _, report = runs["steady"]
    rounds = report["rounds"]
    covered = sum(r["duration_s"] for r in rounds)
    assert covered > RUN_S * 0.9
    energy = report["totals"]["consumer_mws"]
    assert energy == pytest.approx(50.0 * covered, rel=1e-3)
    assert sum(r["consumer_mws"] for r in rounds) == pytest.approx(energy)
    # Priced from whole µW·s and ms (the log's integers): a round of a few ms (the
    # last, cut short by the stop) is off by up to 0.5 ms over its length.
    assert all(r["price"] == pytest.approx(10.0 / 500.0, rel=0.05) for r in rounds)
    assert sum(r["price"] == pytest.approx(10.0 / 500.0, rel=1e-3) for r in rounds) \
        >= len(rounds) - 1


def test_paid_plus_queued_is_floor_of_owed(runs):
    for name, (_, _, report) in runs.items():
        t = report["totals"]
        assert t["paid_iota"] + t["queued_iota"] == math.floor(t["owed_iota"]), name
        assert 0 <= t["carry_iota"] < 1
        assert all(p["value_iota"] > 0 for p in report["payments"])


def test_dusk_applies_the_cap_without_error(runs):
    code, err, report = runs["dusk"]
    assert code == 0
    assert report["rounds"] and all(r["price_capped"] for r in report["rounds"])
    assert all(r["price"] == 10.0 for r in report["rounds"])
    assert "capped" in err


def test_slow_payer_loses_no_samples(runs):
    _, _, report = runs["slow_payer"]
    rounds = report["rounds"]
    assert assert_sampling_kept_up(rounds) >= RUN_S / 0.05 * 0.95
    statuses = {p["status"] for p in report["payments"]}
    assert "queued" in statuses  # payments were still waiting on the slow wallet


def test_ledger_text_report_and_version():
    out = cli("--version")
    assert out.returncode == 0 and "p2p-energy" in out.stdout


def test_bad_config_is_one_line_and_exit_2(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[round]\nlength_s = -1\n")
    out = cli("run", "-c", str(cfg))
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1
    assert str(cfg) in out.stderr and "round.length_s" in out.stderr


def test_missing_ledger_is_exit_1(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[ledger]\npath = "{tmp_path / "none.db"}"\n')
    out = cli("ledger", "-c", str(cfg))
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1


# `run` locks its ledger before it opens the sensor: without a path of its own it would
# take /var/lib/p2p-energy/ledger.db.lock, and another test running beside it (another
# pytest-xdist worker, or anyone's daemon on this machine) would make it "in use".
OWN_LEDGER = "[ledger]\npath = \"{ledger}\"\n"


@pytest.mark.parametrize("args, body, code", [
    (["bogus"], None, 2),
    (["run", "--nope"], None, 2),
    ([], None, 2),
    (["run", "-c", "{cfg}"], "[wallet]\nbackend = \"pyota\"\n", 2),  # no receiver
    (["run", "-c", "{cfg}"], "[meter]\nsensor = \"replay\"\nreplay_file = \"/nonexistent.csv\"\n"
                             "[wallet]\nbackend = \"dry-run\"\n" + OWN_LEDGER, 2),
    (["run", "-c", "{cfg}"], "[ledger]\npath = \"/proc/nope/l.db\"\n[meter]\n"
                             "sensor = \"simulated\"\n[wallet]\nbackend = \"dry-run\"\n", 1),
    (["run", "-c", "{cfg}"], "[meter]\ni2c_bus = 250\n[wallet]\nbackend = \"dry-run\"\n"
                             + OWN_LEDGER, 1),
    (["ledger", "-c", "{cfg}"], "[ledger]\npath = \"{junk}\"\n", 1),
    (["check", "-c", "{cfg}"], "[meter]\ni2c_bus = 250\n[wallet]\nbackend = \"dry-run\"\n", 1),
])
def test_every_error_path_is_one_line_with_its_exit_code(tmp_path, args, body, code):
    cfg, junk = tmp_path / "c.toml", tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 100)
    if body is not None:
        cfg.write_text(body.replace("{junk}", str(junk))
                       .replace("{ledger}", str(tmp_path / "ledger.db")))
    out = cli(*[a.replace("{cfg}", str(cfg)) for a in args])
    assert out.returncode == code
    errors = [line for line in out.stderr.splitlines() if " INFO " not in line]
    if args and args[0] == "check":
        assert "FAIL" in out.stdout and "i2c-250" in out.stdout
    else:
        assert len(errors) == 1 and errors[0].startswith("p2p-energy: "), out.stderr
    assert "Traceback" not in out.stderr


def test_pyota_is_not_imported_before_the_payer_opens_the_wallet(tmp_path):
    """Start-up stays fast: building the daemon for a PyOTA config imports no `iota`."""
    seed = tmp_path / "seed"
    seed.write_text("A" * 81)
    seed.chmod(0o600)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[wallet]\nseed_file = "{seed}"\nreceiver = "{"B" * 80 + "9"}"\n'
                   '[meter]\nsensor = "simulated"\n')
    code = ("import sys\n"
            "from p2p_energy import config\n"
            "from p2p_energy.commands import cli\n"
            "from p2p_energy.runtime import build, daemon\n"
            f"cfg = config.load({str(cfg)!r})\n"
            "build.build_sensor(cfg); opener = build.wallet_opener(cfg)\n"
            "assert 'iota' not in sys.modules, 'iota imported at start-up'\n"
            "opener()\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_a_second_run_on_the_same_ledger_is_refused_and_readers_still_read(tmp_path):
    cfg = write_config(tmp_path, "one", ["0,50,500", "5,50,500"])
    first = start(cfg)
    try:
        db = tmp_path / "one.db"
        deadline = time.monotonic() + 20
        while not (db.exists() and ledger_json(cfg)["rounds"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        lock = tmp_path / "one.db.lock"
        assert lock.read_text().strip() == str(first.pid)
        second = cli("run", "-c", str(cfg))
        assert second.returncode == 1
        assert second.stderr.splitlines() == [
            f"p2p-energy: {db}: in use by another p2p-energy (pid {first.pid}); refusing to run"
            " beside it (stop it first, e.g. systemctl stop p2p-energy)"]
        assert lock.read_text().strip() == str(first.pid)  # the refused run changed nothing
        assert ledger_json(cfg)["rounds"]  # readers take no lock
        check = cli("check", "-c", str(cfg))
        assert f"ok   ledger {db}" in check.stdout, check.stdout
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=30)
    assert first.returncode == 0, err
    again = start(cfg)  # the lock died with the process: no stale lock
    try:
        time.sleep(1.5)
        assert again.poll() is None
    finally:
        again.send_signal(signal.SIGTERM)
        again.communicate(timeout=30)
    assert again.returncode == 0
