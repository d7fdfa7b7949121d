"""The daemon as systemd runs it: sd_notify over a real datagram socket, and a secret seed."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.legacy_node import LegacyNode
from support.node_fixtures import PAYER_SEED, RECEIVER, TEST_MWM


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NOTIFY_SOCKET", "JOURNAL_STREAM", "WATCHDOG_USEC", "WATCHDOG_PID",
                        "CREDENTIALS_DIRECTORY")}
    env.update(extra)
    return env


def replay_config(tmp: Path, wallet: str, mode: int = 0o600) -> Path:
    trace = tmp / "trace.csv"
    trace.write_text("t_s,consumer_mw,producer_mw\n0,400,100\n5,400,100\n")
    cfg = tmp / "config.toml"
    cfg.write_text(f"""
[meter]
sensor = "replay"
replay_file = "{trace}"
sample_interval_s = 0.05
[round]
length_s = 1
[ledger]
path = "{tmp / 'ledger.db'}"
[wallet]
{wallet}
""")
    cfg.chmod(mode)
    return cfg


def test_notify_ready_status_watchdog_then_stopping(tmp_path):
    sock_path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(10)
    cfg = replay_config(tmp_path, 'backend = "dry-run"')
    proc = subprocess.Popen(
        [sys.executable, "-m", "p2p_energy", "run", "-c", str(cfg)],
        env=clean_env(NOTIFY_SOCKET=sock_path, WATCHDOG_USEC="1000000"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    got: list[str] = []
    try:
        deadline = time.monotonic() + 15
        # Until the second round's status: the first is the rest of its wall-clock slot,
        # which may be over in a moment.
        while time.monotonic() < deadline and sum(m.startswith("STATUS=") for m in got) < 2:
            got.append(sock.recv(4096).decode())
        proc.send_signal(signal.SIGTERM)
        while "STOPPING=1" not in got:
            got.append(sock.recv(4096).decode())
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
        sock.close()
    assert got[0] == "READY=1"
    kinds = [m.split("=")[0] for m in got]
    assert kinds.index("WATCHDOG") < kinds.index("STATUS")  # fed from the loop, first tick on
    status = next(m for m in got if m.startswith("STATUS="))
    assert "price" in status and "owed" in status
    assert got[-1] == "STOPPING=1"
    assert kinds.count("WATCHDOG") >= 2  # every half interval, not only once


@pytest.fixture
def paying_node():
    node = LegacyNode(mwm=TEST_MWM, confirm_delay_s=0.5).start()
    node.fund_seed(PAYER_SEED, 0, 10_000)
    yield node
    node.stop()


def test_the_seed_never_appears_in_output_or_ledger(tmp_path, paying_node):
    """Run everything with a known seed, then search every byte we produced for it."""
    seed_file = tmp_path / "seed"
    seed_file.write_text(PAYER_SEED + "\n")
    seed_file.chmod(0o600)
    wallet = (f'backend = "pyota"\nnode_url = "{paying_node.url}"\nseed_file = "{seed_file}"\n'
              f'receiver = "{RECEIVER}"\nmin_weight_magnitude = {TEST_MWM}\ntimeout_s = 5\n'
              'poll_s = 0.2')
    cfg = replay_config(tmp_path, wallet)
    outputs: list[str] = []

    def cli(*args: str) -> subprocess.CompletedProcess:
        out = subprocess.run([sys.executable, "-m", "p2p_energy", *args], env=clean_env(),
                             capture_output=True, text=True, timeout=120)
        outputs.extend([out.stdout, out.stderr])
        return out

    proc = subprocess.Popen([sys.executable, "-m", "p2p_energy", "run", "-v", "-c", str(cfg)],
                            env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and paying_node.balance(RECEIVER) == 0:
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    outputs.extend([out, err])
    assert proc.returncode == 0, err
    assert paying_node.balance(RECEIVER) > 0, "no payment was made: the test would prove nothing"
    assert "DEBUG" in err or "sample:" in err  # the most verbose output was searched

    assert cli("check", "-c", str(cfg)).returncode == 0
    assert cli("ledger", "-c", str(cfg), "--json").returncode == 0
    cli("ledger", "-c", str(cfg))
    # Error paths that handle the seed: a shared seed file, a seed in a shared config,
    # a malformed seed, a misspelt key holding the seed.
    seed_file.chmod(0o644)
    assert cli("check", "-c", str(cfg)).returncode in (1, 2)
    seed_file.chmod(0o600)
    for body, mode in ((f'[wallet]\nseed = "{PAYER_SEED}"\n', 0o644),
                       (f'[wallet]\nseed = "{PAYER_SEED[:-1]}a"\n', 0o600),
                       (f'[wallet]\nsed = "{PAYER_SEED}"\n', 0o600)):
        bad = tmp_path / "bad.toml"
        bad.write_text(body)
        bad.chmod(mode)
        out = cli("run", "-c", str(bad))
        assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1

    everything = "\n".join(outputs)
    assert PAYER_SEED not in everything and PAYER_SEED[:40] not in everything
    for f in tmp_path.glob("ledger.db*"):
        data = f.read_bytes()
        assert PAYER_SEED.encode() not in data and PAYER_SEED[:40].encode() not in data


def test_watchdog_is_fed_while_waiting_for_a_slow_sample(tmp_path):
    """sample_interval_s may be up to 3600 s; WatchdogSec=30s must not kill the waiting loop."""
    sock_path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(10)
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[meter]\nsensor = "simulated"\nsample_interval_s = 60\n'
                   f'[round]\nlength_s = 600\n[wallet]\nbackend = "dry-run"\n'
                   f'[ledger]\npath = "{tmp_path / "ledger.db"}"\n')
    watchdog_s = 1.0
    proc = subprocess.Popen(
        [sys.executable, "-m", "p2p_energy", "run", "-c", str(cfg)],
        env=clean_env(NOTIFY_SOCKET=sock_path, WATCHDOG_USEC=str(int(watchdog_s * 1e6))),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    fed: list[float] = []
    try:
        assert sock.recv(4096) == b"READY=1"
        ready_at = time.monotonic()
        while time.monotonic() < ready_at + 4 * watchdog_s:
            if sock.recv(4096) == b"WATCHDOG=1":
                fed.append(time.monotonic())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
        sock.close()
    # One sample in the whole window, yet systemd hears from us at half the timeout.
    gaps = [b - a for a, b in zip([ready_at, *fed], fed, strict=False)]
    assert len(fed) >= 6, gaps
    assert max(gaps) < watchdog_s, gaps
