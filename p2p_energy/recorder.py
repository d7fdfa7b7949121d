"""The recorder: commits closed rounds and checkpoints to the ledger, in order,
on its own thread.

A commit with ``synchronous=FULL`` waits for the disk (an fsync; on an SD card
sometimes hundreds of milliseconds, longer while the payer commits too). The
sampling loop hands its rounds here and goes straight back to sampling, so a
slow disk delays a ledger write, never a sample. The queue is in memory only
for the moment a commit takes; what was committed is never lost.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from .ledger import Ledger, RoundRecorded
from .metering import LivePower, RoundTotals
from .pricing import Quote

log = logging.getLogger(__name__)

RETRY_S = 1.0  # wait before writing again after the ledger refused a write


@dataclass(frozen=True)
class _Round:
    totals: RoundTotals
    quote: Quote


@dataclass(frozen=True)
class _Checkpoint:
    totals: RoundTotals
    live: LivePower | None = None


_STOP = object()


class Recorder:
    """Ordered ledger writes for the sampling loop. ``on_round`` runs after each commit."""

    def __init__(self, open_ledger: Callable[[], Ledger],
                 on_round: Callable[[RoundRecorded, RoundTotals, Quote], None]) -> None:
        self._open_ledger = open_ledger
        self._on_round = on_round
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._abandon = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def round(self, totals: RoundTotals, q: Quote) -> None:
        """Queue a closed round (never blocks)."""
        self._queue.put(_Round(totals, q))

    def checkpoint(self, totals: RoundTotals, live: LivePower | None = None) -> None:
        """Queue a checkpoint of the open round and the latest power (never blocks)."""
        self._queue.put(_Checkpoint(totals, live))

    def stop(self, timeout_s: float) -> bool:
        """Write everything queued, then end. True if all was written in time."""
        self._queue.put(_STOP)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self._abandon.set()
            return False
        return True

    def _run(self) -> None:
        ledger = self._open_ledger()
        try:
            while (item := self._queue.get()) is not _STOP:
                recorded = self._write(ledger, item)
                if recorded is not None and isinstance(item, _Round):
                    try:
                        self._on_round(recorded, item.totals, item.quote)
                    except Exception:
                        log.exception("after recording round %d", recorded.round_id)
        finally:
            ledger.close()

    def _write(self, ledger: Ledger, item: object) -> RoundRecorded | None:
        """Commit one item, retrying while the ledger refuses; a round is written once."""
        failures = 0
        while not self._abandon.is_set():
            try:
                if isinstance(item, _Round):
                    return ledger.record_round(item.totals, item.quote)
                assert isinstance(item, _Checkpoint)
                ledger.checkpoint(item.totals, item.live)
                return None
            except Exception:  # a loop boundary: the disk is full, the file went away...
                failures += 1
                if failures == 1:
                    log.exception("cannot write to the ledger; retrying every %g s", RETRY_S)
                self._abandon.wait(RETRY_S)
        if isinstance(item, _Round):
            t = item.totals
            log.error("round not recorded (ledger unwritable at stop): %.1f mW·s over %.1f s, "
                      "owed %.3f IOTA", t.consumer_mws, t.duration_s, item.quote.owed_iota)
        return None
