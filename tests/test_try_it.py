"""The README's try-it path: no config file, no Pi, short rounds, the dashboard and Home
Assistant's MQTT from the checkout; and the command line's manners (a closed pipe, a busy
port, a bad option value: one line or none).

Real parts: the CLI in its own process, a real Mosquitto broker, HTTP over a socket, the
ledger in SQLite under a private ``XDG_STATE_HOME``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest

from support.mosquitto_broker import Broker, Recorder, needs_mosquitto, wait_until


def _env(state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "JOURNAL_STREAM")}
    env["XDG_STATE_HOME"] = str(state)
    return env


def _cli(state: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "p2p_energy", *args], capture_output=True,
                          text=True, timeout=60, env=_env(state), **kwargs)


def _start(state: Path, log: Path, *args: str) -> subprocess.Popen:
    with log.open("a") as err:
        return subprocess.Popen([sys.executable, "-m", "p2p_energy", *args],
                                stdout=subprocess.DEVNULL, stderr=err, env=_env(state))


def _stop(proc: subprocess.Popen, log: Path) -> None:
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0, log.read_text()


@needs_mosquitto
def test_run_and_serve_simulated_with_options_alone(tmp_path: Path) -> None:
    """`run --simulate --round-s 2` and `serve --simulate --listen ... --mqtt ...`."""
    broker = Broker(tmp_path)
    broker.start()
    rec = Recorder(broker, "homeassistant/#", "p2p-energy/#")
    run_log, serve_log = tmp_path / "run.log", tmp_path / "serve.log"
    daemon = _start(tmp_path, run_log, "run", "--simulate", "--round-s", "2")
    serve = _start(tmp_path, serve_log, "serve", "--simulate", "--listen", "127.0.0.1:0",
                   "--mqtt", broker.url)
    try:
        wait_until("serve to listen", lambda: "on http://" in serve_log.read_text(), 20)
        url = re.search(r"on (http://127\.0\.0\.1:\d+/)", serve_log.read_text()).group(1)
        wait_until("a price per kWh on MQTT",
                   lambda: (rec.last("p2p-energy/price_kwh") or "None") != "None", 30)
        with urllib.request.urlopen(url, timeout=10) as r:
            page = r.read().decode()
    finally:
        _stop(serve, serve_log)
        _stop(daemon, run_log)
        rec.close()
        broker.stop()
    assert "<h1>p2p-energy</h1>" in page
    assert float(rec.last("p2p-energy/price_kwh")) > 0
    report = json.loads(_cli(tmp_path, "ledger", "--simulate", "--json").stdout)
    durations = [r["duration_s"] for r in report["rounds"]]
    # Rounds of 2 s aligned to the wall clock: the first is the rest of its slot.
    assert len(durations) >= 3 and 0 < durations[0] <= 2.0 + 0.05
    assert all(d == pytest.approx(2.0, abs=0.05) for d in durations[1:-1])
    assert (tmp_path / "p2p-energy" / "simulate.db").exists()  # where the README says


def test_a_busy_port_is_one_line_naming_the_key(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = _cli(tmp_path, "serve", "--simulate", "--listen", f"127.0.0.1:{port}")
    assert out.returncode == 1
    assert out.stderr == (f'p2p-energy: serve.listen = "127.0.0.1:{port}": cannot listen:'
                          " Address already in use\n")


@pytest.mark.parametrize(("args", "line"), [
    (["run", "--simulate", "--round-s", "0.5"],
     "p2p-energy: --round-s: round.length_s = 0.5: must be at least meter.sample_interval_s"
     " (1)"),
    (["serve", "--simulate", "--mqtt", "http://broker"],
     'p2p-energy: --mqtt: mqtt.broker = "http://broker": must be mqtt://host[:port] or'
     " mqtts://host[:port]"),
    (["serve", "--simulate", "--listen", "8080"],
     'p2p-energy: --listen: serve.listen = "8080": must be host:port, e.g. "127.0.0.1:8080"'
     ' or "[::1]:8080"'),
])
def test_a_bad_option_value_is_one_line(tmp_path: Path, args: list[str], line: str) -> None:
    out = _cli(tmp_path, *args)
    assert (out.returncode, out.stderr) == (2, line + "\n")


def test_a_broker_password_given_to_mqtt_is_never_repeated(tmp_path: Path) -> None:
    out = _cli(tmp_path, "serve", "--simulate", "--mqtt", "mqtt://bob:S3cretPw@broker.lan:1883")
    assert out.returncode == 2 and len(out.stderr.splitlines()) == 1, out.stderr
    assert out.stderr.startswith("p2p-energy: --mqtt: mqtt.broker: ")
    assert "S3cretPw" not in out.stderr + out.stdout and "bob" not in out.stderr


def _simulated_ledger(state: Path, rounds: int) -> float:
    """A ``--simulate`` ledger of ``rounds`` 10 s rounds ending now; returns the last end."""
    from p2p_energy.core.metering import RoundTotals
    from p2p_energy.core.pricing import Quote
    from p2p_energy.store.ledger import Ledger
    (state / "p2p-energy").mkdir(parents=True, exist_ok=True)
    led = Ledger(state / "p2p-energy" / "simulate.db")
    end = time.time()
    for i in range(rounds):
        t = end - (rounds - i) * 10.0
        led.record_round(RoundTotals(started_at=t, duration_s=10.0, metered_s=10.0,
                                     consumer_mws=500.0, producer_mws=5000.0, samples=10,
                                     expected_samples=10, ended_at=t + 10.0),
                         Quote(price=0.02, capped=False, owed_nano_units=10_000_000_000))
    led.close()
    return end


@pytest.mark.parametrize("args", [["ledger", "--simulate", "--csv"],
                                  ["ledger", "--simulate"],
                                  ["statement", "--simulate", "--day", "{today}"]])
def test_a_pipe_closed_early_ends_quietly(tmp_path: Path, args: list[str]) -> None:
    """`p2p-energy ... | head`: the reader is gone before we write; no traceback, no line."""
    end = _simulated_ledger(tmp_path, 50)
    today = datetime.fromtimestamp(end - 1).strftime("%Y-%m-%d")
    read_end, write_end = os.pipe()
    os.close(read_end)  # as `head` does once it has its lines
    try:
        out = subprocess.run([sys.executable, "-m", "p2p_energy",
                              *[a.replace("{today}", today) for a in args]],
                             stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60,
                             env=_env(tmp_path))
    finally:
        os.close(write_end)
    assert (out.returncode, out.stderr) == (1, "")


def test_the_ledger_table_names_its_units(tmp_path: Path) -> None:
    _simulated_ledger(tmp_path, 3)
    out = _cli(tmp_path, "ledger", "--simulate")
    header = out.stdout.splitlines()[1]
    assert "price IOTA/mW·s" in header and "owed IOTA" in header, out.stdout
    row = out.stdout.splitlines()[2].split()
    assert row[-3:-1] == ["0.02", "10.000"]  # under those headers
