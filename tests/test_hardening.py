"""No core dumps of a process that holds a key: the daemon as started by hand."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def _core_limit(pid: int) -> str:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max core file size"):
            return " ".join(line.split()[4:6])
    raise AssertionError("no core limit line")


def test_the_running_daemon_allows_no_core(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "JOURNAL_STREAM")}
    env["XDG_STATE_HOME"] = str(tmp_path)
    # Started with cores allowed, as an owner's shell may be (soft limit up to the hard).
    proc = subprocess.Popen(
        ["bash", "-c", f'ulimit -c "$(ulimit -H -c)" && exec {sys.executable} -m p2p_energy'
                       " run --simulate"], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "p2p-energy" / "simulate.db").exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        assert _core_limit(proc.pid) == "0 0"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


def test_no_core_dumps_makes_the_process_not_dumpable() -> None:
    probe = ("import ctypes; from p2p_energy.commands.hardening import no_core_dumps;"
             " libc = ctypes.CDLL(None); before = libc.prctl(3, 0, 0, 0, 0);"
             " no_core_dumps(); print(before, libc.prctl(3, 0, 0, 0, 0))")  # PR_GET_DUMPABLE
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=30, check=True)
    assert out.stdout.split() == ["1", "0"]
