"""The recorder: commits closed rounds and checkpoints to the ledger, in order,
on its own thread.

A commit with ``synchronous=FULL`` waits for the disk (an fsync; on an SD card
sometimes hundreds of milliseconds, longer while the payer commits too). The
sampling loop hands its rounds here and goes straight back to sampling, so a
slow disk delays a ledger write, never a sample. The queue is in memory only
for the moment a commit takes; what was committed is never lost.

A write the ledger refuses is retried while the refusal may pass (the file is
locked, the disk is busy or full) for up to ``GIVE_UP_S``; one that can never
succeed (a value SQLite cannot hold, a broken invariant) is not retried. Either
way the round is logged with its figures, ``on_fatal`` makes the daemon exit
non-zero, and the items after it are still written: one bad write never blocks
the queue. Opening the ledger is retried the same way; a ledger that cannot be
opened at all is fatal, and every round queued for it is logged with its figures.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..core.metering import LivePower, RoundTotals
from ..core.pricing import Quote
from ..errors import LedgerError
from ..store.ledger import Ledger, RoundRecorded

log = logging.getLogger(__name__)

RETRY_S = 1.0  # wait before writing again after the ledger refused a write
GIVE_UP_S = 60.0  # a write refused this long is given up (and the daemon exits)


@dataclass(frozen=True)
class _Round:
    totals: RoundTotals
    quote: Quote


@dataclass(frozen=True)
class _Production:
    totals: RoundTotals
    length_s: float
    clock: str


@dataclass(frozen=True)
class _Waiting:
    totals: RoundTotals


@dataclass(frozen=True)
class _Checkpoint:
    totals: RoundTotals
    live: LivePower | None = None


_STOP = object()


class Recorder:
    """Ordered ledger writes for the sampling loop. ``on_round`` runs after each commit."""

    def __init__(self, open_ledger: Callable[[], Ledger],
                 on_round: Callable[[RoundRecorded, RoundTotals, Quote | None], None], *,
                 on_fatal: Callable[[str], None] = lambda reason: None,
                 give_up_s: float = GIVE_UP_S) -> None:
        self._open_ledger = open_ledger
        self._on_round = on_round
        self._on_fatal = on_fatal
        self._give_up_s = give_up_s
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._abandon = threading.Event()
        self._unwritten = 0  # rounds given up (logged with their figures, never recorded)
        self._drained = False  # the thread reached the stop marker

    def start(self) -> None:
        self._thread.start()

    def round(self, totals: RoundTotals, q: Quote) -> None:
        """Queue a closed round (never blocks)."""
        self._queue.put(_Round(totals, q))

    def production(self, totals: RoundTotals, length_s: float, clock: str) -> None:
        """Queue a producer's closed round (never blocks)."""
        self._queue.put(_Production(totals, length_s, clock))

    def waiting(self, totals: RoundTotals) -> None:
        """Queue a closed round that waits for the producer's figure (never blocks)."""
        self._queue.put(_Waiting(totals))

    def checkpoint(self, totals: RoundTotals, live: LivePower | None = None) -> None:
        """Queue a checkpoint of the open round and the latest power (never blocks)."""
        self._queue.put(_Checkpoint(totals, live))

    def stop(self, timeout_s: float) -> bool:
        """Write everything queued, then end. True if every round was written in time
        (False: still writing, a round was given up, or the thread died)."""
        self._queue.put(_STOP)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self._abandon.set()
            return False
        return self._drained and self._unwritten == 0

    def _run(self) -> None:
        ledger, why = self._open()
        try:
            while (item := self._queue.get()) is not _STOP:
                if ledger is None:
                    self._give_up(item, why)
                    continue
                recorded = self._write(ledger, item)
                if recorded is not None and isinstance(item, _Round | _Production | _Waiting):
                    try:
                        self._on_round(recorded, item.totals, getattr(item, "quote", None))
                    except Exception:
                        log.exception("after recording round %d", recorded.round_id)
            self._drained = True
        finally:
            if ledger is not None:
                ledger.close()

    def _open(self) -> tuple[Ledger | None, str]:
        """The ledger, opened while the refusal may pass (as a write is retried), or
        (None, why) once given up: fatal, and what was queued is logged, not lost silently."""
        started = time.monotonic()
        failures = 0
        while not self._abandon.is_set():
            try:
                return self._open_ledger(), ""
            except (LedgerError, sqlite3.OperationalError, OSError) as err:
                failures += 1
                if failures == 1:
                    log.error("cannot open the ledger (%s); retrying every %g s for up to %g s",
                              err, RETRY_S, self._give_up_s)
                if time.monotonic() - started >= self._give_up_s:
                    why = f"the ledger could not be opened for {self._give_up_s:g} s: {err}"
                    break
                self._abandon.wait(RETRY_S)
            except Exception as err:  # the loop boundary: an open that can never succeed
                log.exception("cannot open the ledger")
                why = f"the ledger could not be opened: {type(err).__name__}: {err}"
                break
        else:
            why = "the ledger could not be opened before the stop"
        self._on_fatal(why)
        return None, why

    def _write(self, ledger: Ledger, item: object) -> RoundRecorded | None:
        """Commit one item, retrying while the refusal may pass; a round is written once."""
        started = time.monotonic()
        failures = 0
        while not self._abandon.is_set():
            try:
                if isinstance(item, _Round):
                    return ledger.record_round(item.totals, item.quote)
                if isinstance(item, _Production):
                    return ledger.record_production(item.totals, item.length_s, item.clock)
                if isinstance(item, _Waiting):
                    return ledger.record_waiting_round(item.totals)
                assert isinstance(item, _Checkpoint)
                ledger.checkpoint(item.totals, item.live)
                return None
            except (sqlite3.OperationalError, OSError) as err:  # locked, busy, disk full, I/O
                failures += 1
                if failures == 1:
                    log.exception("cannot write to the ledger; retrying every %g s for up to"
                                  " %g s", RETRY_S, self._give_up_s)
                if time.monotonic() - started >= self._give_up_s:
                    return self._give_up(item, f"the ledger refused writes for "
                                               f"{self._give_up_s:g} s: {err}")
                self._abandon.wait(RETRY_S)
            except Exception as err:  # the loop boundary: a write that can never succeed
                log.exception("cannot write to the ledger")
                return self._give_up(item, f"{type(err).__name__}: {err}")
        return self._give_up(item, "ledger unwritable at stop")

    def _give_up(self, item: object, why: str) -> None:
        if isinstance(item, _Round):
            t, q = item.totals, item.quote
            log.error("round not recorded (%s): %.6g s from %.3f, %.6g mW·s used, producer avg"
                      " %.6g mW, price %.6g IOTA/mW·s, owed %d nano-IOTA, samples %d/%d",
                      why, t.duration_s, t.started_at, t.consumer_mws, t.producer_avg_mw,
                      q.price, q.owed_nano_units, t.samples, t.expected_samples)
            self._unwritten += 1
            self._on_fatal(f"a round could not be recorded: {why}")
        elif isinstance(item, _Production | _Waiting):
            t = item.totals
            log.error("round not recorded (%s): %.6g s from %.3f, consumer %.6g mW·s,"
                      " producer %.6g mW·s over %.6g s, samples %d/%d", why, t.duration_s,
                      t.started_at, t.consumer_mws if isinstance(item, _Waiting) else 0.0,
                      t.producer_mws, t.producer_metered_s or 0.0, t.samples,
                      t.expected_samples)
            self._unwritten += 1
            self._on_fatal(f"a round could not be recorded: {why}")
        else:
            log.error("checkpoint not saved (%s)", why)
        return None
