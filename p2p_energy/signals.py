"""SIGTERM and SIGINT set a ``threading.Event``, without a lock in the signal handler.

A Python signal handler runs in the main thread between two bytecodes. If that
thread is inside ``event.wait()`` at the moment it holds the event's internal
lock (``Event.wait`` holds it until ``Condition.wait`` lets go), a handler that
calls ``event.set()`` waits for that same lock for ever: the daemon then ignores
every later SIGTERM (seen: a ``run`` still alive an hour after SIGTERM, its three
threads waiting on futexes). So the handler does nothing; the C-level handler
writes the signal's number to a pipe (``signal.set_wakeup_fd``), and a small
thread reading that pipe sets the event, once the main thread has let go.
"""

from __future__ import annotations

import os
import signal
import threading

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _ignore(signum: int, frame: object) -> None:
    """The Python-level handler: nothing (the wakeup fd carries the signal)."""


def stop_on_signals(event: threading.Event) -> None:
    """From now on SIGTERM and SIGINT set ``event``. Main thread only; once per process."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    for signum in STOP_SIGNALS:
        signal.signal(signum, _ignore)
    wanted = {int(s) for s in STOP_SIGNALS}

    def watch() -> None:
        while True:
            received = os.read(read_fd, 64)
            if not received:
                return
            if wanted & set(received):
                event.set()

    threading.Thread(target=watch, name="signals", daemon=True).start()
