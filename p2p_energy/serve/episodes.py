"""One log line per episode: what a client (or a broker) can repeat must not flood the journal.

The first event of a kind is logged at its level; more of that kind go to DEBUG
until none has come for ``quiet_s``; the next one starts a new episode, and its
line says how many the last episode had.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable


class Episodes:
    """Rate-limits log lines by kind (a fixed word, never text from a client). Thread-safe."""

    def __init__(self, logger: logging.Logger, *, quiet_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.log = logger
        self.quiet_s = quiet_s
        self.clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}  # kind -> monotonic time of its last event
        self._count: dict[str, int] = {}  # kind -> events in its current episode

    def note(self, kind: str, level: int, msg: str, *args: object,
             exc_info: bool = False) -> bool:
        """Log ``msg % args`` at ``level`` if it starts an episode of ``kind``, else at
        DEBUG. Returns True if it started one."""
        with self._lock:
            now = self.clock()
            last = self._last.get(kind)
            self._last[kind] = now
            if last is not None and now - last < self.quiet_s:
                self._count[kind] += 1
                starts, before = False, 0
            else:
                starts, before = True, self._count.get(kind, 0)
                self._count[kind] = 1
        if not starts:
            self.log.debug(msg, *args)
            return False
        tail = f" (the last time: {before} in a row)" if before > 1 else ""
        self.log.log(level, f"{msg}; more like it at DEBUG until none for %.0f s{tail}",
                     *args, self.quiet_s, exc_info=exc_info)
        return True
