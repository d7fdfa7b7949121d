"""``p2p-energy run`` and ``serve`` as processes, for the tests of the signed log.

    run_until(cfg, tmp, 10)      # run until the log holds 10 entries, then SIGTERM
    serve = start("serve", cfg, tmp / "serve.log"); url = serve_url(tmp / "serve.log")
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from p2p_energy.store.signed_log import LogView

from .mosquitto_broker import wait_until


def write_config(tmp: Path, *, extra: str = "", round_s: float = 0.3) -> Path:
    """A replay sensor (sun, a cloud, sun), the dry-run wallet, ``round_s`` rounds, the
    ledger ``tmp/ledger.db`` and serve on an ephemeral port; ``extra`` TOML at the end."""
    trace = tmp / "trace.csv"
    trace.write_text("t_s,consumer_mw,producer_mw\n0,60,400\n3,75,20\n6,60,400\n")
    cfg = tmp / "c.toml"
    cfg.write_text(f"""
[meter]
sensor = "replay"
replay_file = "{trace}"
sample_interval_s = 0.05
[round]
length_s = {round_s}
checkpoint_s = 0.5
[wallet]
backend = "dry-run"
receiver = "{'A' * 81}"
poll_s = 0.05
[ledger]
path = "{tmp / 'ledger.db'}"
[serve]
enabled = true
listen = "127.0.0.1:0"
{extra}""")
    cfg.chmod(0o600)
    return cfg


def env() -> dict[str, str]:
    """This environment without systemd's sockets (a test's daemon must not notify them)."""
    return {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "JOURNAL_STREAM")}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "p2p_energy", *args], capture_output=True,
                          text=True, timeout=120, env=env())


def start(command: str, cfg: Path, log: Path) -> subprocess.Popen:
    """``p2p-energy COMMAND -c CFG`` in the background, its stderr appended to ``log``."""
    with log.open("a") as err:
        return subprocess.Popen([sys.executable, "-m", "p2p_energy", command, "-c", str(cfg)],
                                stdout=subprocess.DEVNULL, stderr=err, env=env())


def log_size(db: Path) -> int:
    """Entries in the signed log of the ledger ``db`` (0 while there is none)."""
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return LogView(conn).size()
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def run_until(cfg: Path, tmp: Path, entries_at_least: int, limit_s: float = 60.0) -> None:
    """``run`` until the log of ``tmp/ledger.db`` holds that many entries; then stopped as
    systemd stops it, which must end it with exit 0."""
    proc = start("run", cfg, tmp / "run.log")
    try:
        wait_until("log entries", lambda: log_size(tmp / "ledger.db") >= entries_at_least,
                   limit_s)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, (tmp / "run.log").read_text()


def serve_url(log: Path) -> str:
    """The http://127.0.0.1:PORT a ``serve`` writing to ``log`` listens on (no slash)."""
    found: list[str] = []

    def listening() -> bool:
        found[:] = re.findall(r"on (http://127\.0\.0\.1:\d+)/", log.read_text())
        return bool(found)
    wait_until("serve to listen", listening, 20)
    return found[0]
