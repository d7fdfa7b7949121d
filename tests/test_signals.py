"""SIGTERM sets the stop event even when it lands while the main thread holds the
event's own lock (inside ``Event.wait``): a handler that called ``event.set()`` there
waited for that lock for ever, and the daemon ignored SIGTERM."""

from __future__ import annotations

import subprocess
import sys

# Holds the event's internal lock, as Event.wait does, while SIGTERM arrives.
_SCRIPT = """
import os, signal, sys, threading
event = threading.Event()
if sys.argv[1] == "fixed":
    from p2p_energy.signals import stop_on_signals
    stop_on_signals(event)
else:  # the handler as it was
    signal.signal(signal.SIGTERM, lambda *_: event.set())
with event._cond:
    os.kill(os.getpid(), signal.SIGTERM)  # the handler runs here, the lock held
    for _ in range(1000):
        pass
print("stopped" if event.wait(10) else "not stopped", flush=True)
"""


def _run(which: str) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run([sys.executable, "-c", _SCRIPT, which], capture_output=True,
                              text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return None  # deadlocked


def test_sigterm_sets_the_event_though_the_main_thread_holds_its_lock() -> None:
    out = _run("fixed")
    assert out is not None and out.stdout.strip() == "stopped", out


def test_the_old_handler_deadlocks_there() -> None:
    """The case above is real: the old handler never returns (the test would prove
    nothing if it did)."""
    assert _run("old") is None
