"""The payer: a worker thread that pays what the ledger says is owed.

It never talks to the sampling loop except through the ledger and a wake-up
event, so a slow or dead node can never delay a sample. One bundle is in
flight at a time: while it is unconfirmed, its change cannot be spent, so
newly owed amounts wait in the ledger and go out together afterwards.

Order of a payment (each step committed before the next, so a crash at any
point resumes without paying twice or signing twice):
  claim queued -> prepare (sign) -> store signed trytes -> broadcast -> record
  tail -> poll inclusion (promote, reattach the same trytes) -> confirmed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import LedgerError, WalletError
from .ledger import Ledger, Payment
from .wallet.base import Wallet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PayerPolicy:
    """Intervals in seconds; ``start_index`` is the funded key index at first start."""

    start_index: int = 0
    poll_s: float = 10.0
    promote_after_s: float = 60.0
    reattach_after_s: float = 300.0
    retry_max_s: float = 300.0
    retry_min_s: float = 1.0


class Payer:
    """Pays owed amounts from the ledger through a ``Wallet``. Runs in its own thread."""

    def __init__(self, open_ledger: Callable[[], Ledger], open_wallet: Callable[[], Wallet],
                 policy: PayerPolicy, *, wall: Callable[[], float] = time.time) -> None:
        self._open_ledger = open_ledger
        self._open_wallet = open_wallet
        self.policy = policy
        self.wall = wall
        self.stop_event = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0
        self._last_error = ""
        self._promoted_at: dict[int, float] = {}

    # -- thread control ------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="payer", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Something new is owed: look at the ledger now rather than at the next poll."""
        self._wake.set()

    def ask_to_stop(self) -> None:
        """Let the worker finish its current step and end (does not wait)."""
        self.stop_event.set()
        self._wake.set()

    def stop(self, grace_s: float) -> bool:
        """Ask the worker to stop; wait up to ``grace_s``. True if it stopped in time.

        Every step is committed before the next one starts, so a worker still
        inside a network call when the process exits loses nothing.
        """
        self.ask_to_stop()
        if self._thread is None:
            return True
        self._thread.join(grace_s)
        return not self._thread.is_alive()

    def run(self) -> None:
        ledger = wallet = None
        try:
            ledger = self._open_ledger()
            wallet = self._open_wallet()  # PyOTA is imported here, off the sampling thread
            while not self.stop_event.is_set():
                delay = self.tick(ledger, wallet)
                self._wake.wait(delay)
                self._wake.clear()
        except Exception:
            log.exception("payer stopped by an unexpected error; payments wait in the ledger")
        finally:
            if wallet is not None:
                wallet.close()
            if ledger is not None:
                ledger.close()

    # -- one step ------------------------------------------------------------------------

    def tick(self, ledger: Ledger, wallet: Wallet) -> float:
        """One step with failures handled (logged once, backed off); returns the wait."""
        try:
            delay = self.step(ledger, wallet)
        except WalletError as err:
            return self._failed(err)
        except LedgerError as err:
            log.error("ledger refused a payment step: %s", err)
            return self._backoff()
        if self._failures:
            log.info("payments working again after %d failed attempts", self._failures)
            self._failures, self._last_error = 0, ""
        return delay

    def step(self, ledger: Ledger, wallet: Wallet) -> float:
        """Do the next thing the ledger asks for; return how long to wait before the next."""
        flying = ledger.in_flight()
        if flying is not None:
            return self._follow(ledger, wallet, flying)
        queued = ledger.claim_queued()
        if queued is None:
            return self.policy.poll_s
        index = ledger.input_index(self.policy.start_index)
        try:
            bundle = wallet.prepare(queued.value_iota, index, index + 1)
        except WalletError as err:
            ledger.record_failure(queued.id, str(err), final=not err.retryable)
            raise
        ledger.store_signed(queued.id, bundle)
        log.info("payment %d signed: %d IOTA from key index %d, bundle %s",
                 queued.id, queued.value_iota, index, bundle.bundle_hash)
        return 0.0  # broadcast it at once

    def _follow(self, ledger: Ledger, wallet: Wallet, p: Payment) -> float:
        """Broadcast, confirm, promote or reattach the one signed payment."""
        signed = p.signed
        assert signed is not None
        if not p.tails:
            tail = self._attempt(ledger, p, lambda: wallet.broadcast(signed))
            ledger.record_attach(p.id, tail)
            log.info("payment %d sent: %d IOTA, bundle %s", p.id, p.value_iota, p.bundle_hash)
            return self.policy.poll_s
        if self._attempt(ledger, p, lambda: wallet.is_confirmed(list(p.tails))):
            ledger.mark_confirmed(p.id)
            self._promoted_at.pop(p.id, None)
            log.info("payment %d confirmed: %d IOTA", p.id, p.value_iota)
            return 0.0
        now = self.wall()
        age = now - (p.last_attached_at or now)
        reattach = age >= self.policy.reattach_after_s
        if not reattach and (age >= self.policy.promote_after_s and now - self._promoted_at.get(
                p.id, 0.0) >= self.policy.promote_after_s):
            self._promoted_at[p.id] = now
            try:
                self._attempt(ledger, p, lambda: wallet.promote(p.tails[-1]))
                log.info("payment %d unconfirmed after %.0f s: promoted", p.id, age)
            except WalletError as err:
                if err.retryable:
                    raise
                log.info("payment %d cannot be promoted (%s): reattaching it", p.id, err)
                reattach = True
        if reattach:
            tail = self._attempt(ledger, p, lambda: wallet.reattach(p.tails[-1]))
            ledger.record_attach(p.id, tail)
            log.warning("payment %d unconfirmed after %.0f s: reattached the same bundle "
                        "(attachment %d)", p.id, age, len(p.tails) + 1)
        return self.policy.poll_s

    @staticmethod
    def _attempt(ledger: Ledger, p: Payment, call: Callable):  # type: ignore[type-arg]
        try:
            return call()
        except WalletError as err:
            ledger.record_failure(p.id, str(err))
            raise

    # -- failures ------------------------------------------------------------------------

    def _failed(self, err: WalletError) -> float:
        self._failures += 1
        message = str(err)
        key = err.kind or message
        if key != self._last_error:
            if err.retryable:
                log.warning("payment attempt failed, will retry (amounts stay owed): %s", message)
            else:
                log.error("payment failed and is owed again in a later payment: %s", message)
            self._last_error = key
        return self._backoff()

    def _backoff(self) -> float:
        exponent = min(max(self._failures - 1, 0), 30)
        return min(self.policy.retry_min_s * 2**exponent, self.policy.retry_max_s)
