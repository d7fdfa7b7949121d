"""``p2p-energy`` in a subprocess, stopped when a condition holds: for tests of the CLI.

    out = p2p_energy_cli("run", "-c", cfg, until=lambda: rounds_written(ledger))
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping


def p2p_energy_cli(*args: str, until: Callable[[], bool] | None = None,
                   env: Mapping[str, str] | None = None,
                   limit_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    """``p2p-energy ARGS`` until it exits, or, with ``until``, until that holds (then
    stopped by SIGTERM, as systemd stops it); ``limit_s`` at most either way. The
    process is never left running, whatever fails."""
    env = {k: v for k, v in (env or os.environ).items()
           if k not in ("NOTIFY_SOCKET", "JOURNAL_STREAM")}
    proc = subprocess.Popen([sys.executable, "-m", "p2p_energy", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + limit_s
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if until is not None and until():
                proc.send_signal(signal.SIGTERM)
                break
            time.sleep(0.1)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
