"""The payer: a worker thread that pays what the ledger says is owed.

It never talks to the sampling loop except through the ledger and a wake-up
event, so a slow or dead node can never delay a sample. One payment is in
flight at a time: while it is unconfirmed, its change cannot be spent, so
newly owed amounts wait in the ledger and go out together afterwards.

Order of a payment (each step committed before the next, so a crash at any
point resumes without paying twice or signing twice):
  claim queued -> prepare (sign) -> store Signed -> attach -> record the
  attachment id -> send -> poll status (record every attachment the network
  knows) -> promote, or attach again from the ledger's payload -> confirmed.
What differs between networks is the wallet's business (``wallet.base``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields

from ..config import WalletConfig
from ..errors import InsufficientBalance, LedgerError, NotPromotable, WalletError
from ..store.ledger import Ledger, Payment
from ..wallet.base import CONFIRMED, PENDING, Attachment, Wallet

log = logging.getLogger(__name__)

# A payer that dies is restarted after a wait that doubles with each death
# (from ``retry_min_s`` up to ``retry_max_s``). It gives up (the daemon exits
# non-zero and systemd restarts the whole service) only when it still dies after
# MAX_CAPPED_DEATHS waits at the cap and has kept dying for ``fatal_after_s``:
# a burst of odd answers never stops metering, a payer that cannot run does.
# A death-free stretch of ``2 * retry_max_s`` (at least ``fatal_after_s``) ends a streak.
MAX_CAPPED_DEATHS = 3
FATAL_AFTER_S = 600.0


@dataclass(frozen=True)
class PayerPolicy:
    """Intervals in seconds; ``start_index`` is the funded key index at first start;
    ``min_payment``: queued amounts wait until they add up to this many units.

    The keys it shares with ``[wallet]`` (same names) take their defaults from
    ``WalletConfig``; ``from_config`` copies them from a config.
    """

    start_index: int = WalletConfig.start_index
    poll_s: float = WalletConfig.poll_s
    promote_after_s: float = WalletConfig.promote_after_s
    reattach_after_s: float = WalletConfig.reattach_after_s
    retry_max_s: float = WalletConfig.retry_max_s
    retry_min_s: float = 1.0
    # WalletConfig's 0 means "the backend's default"; without a config, pay any amount.
    min_payment: int = 1
    fatal_after_s: float = FATAL_AFTER_S

    @classmethod
    def from_config(cls, wallet: WalletConfig) -> PayerPolicy:
        """The policy ``[wallet]`` sets: every field named as a ``wallet`` key."""
        shared = {f.name for f in fields(cls)} & {f.name for f in fields(WalletConfig)}
        return cls(**{name: getattr(wallet, name) for name in shared})


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
        self._short_since: float | None = None  # wall time the balance first fell short
        self._signed_step = False
        # Health, for sd_notify STATUS= (this process) and ``check`` (via the ledger).
        self.failing_since: float | None = None
        self.last_failure = ""
        self._health_dirty = False
        self.on_fatal: Callable[[str], None] = lambda reason: None

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
        """The payer thread: the work loop, restarted with backoff after an unexpected error.

        Metering never depends on it. A payer that keeps dying after its restart
        wait has reached ``retry_max_s`` (see ``MAX_CAPPED_DEATHS``) calls
        ``on_fatal`` (the daemon then exits non-zero).
        """
        streak: list[float] = []  # monotonic times of deaths without a long quiet between
        capped = 0  # deaths in the streak that came after a wait of retry_max_s
        logged: set[str] = set()
        while not self.stop_event.is_set():
            try:
                self._work()
                return
            except Exception as err:  # the loop boundary: anything not foreseen
                now = time.monotonic()
                if streak and now - streak[-1] > self._quiet_s():
                    streak, capped = [], 0
                streak.append(now)
                what = f"{type(err).__name__}: {err}"
                self._note_failure(f"payer crashed: {what}")
                dying_s = now - streak[0]
                if what not in logged:  # the traceback once; a repeat in one line
                    logged.add(what)
                    log.exception("payer stopped by an unexpected error (%d in %.0f s);"
                                  " restarting it; amounts stay owed in the ledger",
                                  len(streak), dying_s)
                else:
                    log.error("payer stopped again by the same error (%d in %.0f s): %s",
                              len(streak), dying_s, what)
                if capped >= MAX_CAPPED_DEATHS and dying_s >= self.policy.fatal_after_s:
                    self.on_fatal(f"the payer kept failing for {dying_s / 60:.0f} min"
                                  f" ({len(streak)} times, restarted every"
                                  f" {self.policy.retry_max_s:g} s at the end); last: {what}")
                    return
                self._failures += 1
                wait = self._restart_wait(len(streak))
                capped += wait >= self.policy.retry_max_s
                self.stop_event.wait(wait)

    def _restart_wait(self, deaths: int) -> float:
        """Seconds before restarting after the ``deaths``-th death of a streak (doubling)."""
        exponent = min(deaths - 1, 30)
        return min(self.policy.retry_min_s * 2**exponent, self.policy.retry_max_s)

    def _quiet_s(self) -> float:
        """How long without a death ends a streak."""
        return max(2 * self.policy.retry_max_s, self.policy.fatal_after_s)

    def _work(self) -> None:
        ledger = wallet = None
        try:
            ledger = self._open_ledger()
            wallet = self._open_wallet()  # PyOTA is imported here, off the sampling thread
            while not self.stop_event.is_set():
                self._wake.clear()  # before the step: a wake-up during it is kept
                delay = self.tick(ledger, wallet)
                self._wake.wait(delay)
        finally:
            for thing in (wallet, ledger):
                if thing is not None:
                    try:
                        thing.close()
                    except Exception:
                        log.debug("closing %s", type(thing).__name__, exc_info=True)

    # -- health --------------------------------------------------------------------------

    @property
    def failures(self) -> int:
        """Failed attempts in a row (0 when payments work)."""
        return self._failures

    def _note_failure(self, message: str) -> None:
        if self.failing_since is None:
            self.failing_since = self.wall()
        self.last_failure = message
        self._health_dirty = True  # written at the next step: one row, once per attempt

    def _note_success(self) -> None:
        if self.failing_since is not None:
            self.failing_since, self.last_failure = None, ""
            self._health_dirty = True

    def _save_health(self, ledger: Ledger) -> None:
        if self._health_dirty:
            ledger.set_health(self.failing_since, self._failures, self.last_failure)
            self._health_dirty = False

    # -- one step ------------------------------------------------------------------------

    def tick(self, ledger: Ledger, wallet: Wallet) -> float:
        """One step with failures handled (logged once, backed off); returns the wait."""
        self._signed_step = False
        self._save_health(ledger)
        try:
            delay = self.step(ledger, wallet)
        except WalletError as err:
            delay = self._failed(err)
        except LedgerError as err:
            log.error("ledger refused a payment step: %s", err)
            self._failures += 1
            self._note_failure(f"ledger: {err}")
            delay = self._backoff()
        else:
            if self._failures and self._short_since is None:
                log.info("payments working again after %d failed attempts", self._failures)
                self._failures, self._last_error = 0, ""
                self._note_success()
        self._save_health(ledger)
        return delay

    def step(self, ledger: Ledger, wallet: Wallet) -> float:
        """Do the next thing the ledger asks for; return how long to wait before the next."""
        flying = ledger.in_flight()
        if flying is not None:
            self._signed_step = True
            return self._follow(ledger, wallet, flying)
        queued = ledger.claim_queued(self.policy.min_payment)
        if queued is None:
            return self.policy.poll_s
        index = ledger.input_index(self.policy.start_index)
        try:
            signed = wallet.prepare(queued.value_units, index)
        except InsufficientBalance as err:
            ledger.record_failure(queued.id, str(err))
            if not self._short(queued, err, wallet.unit):
                self._failures += 1
                self._note_failure(f"insufficient balance: {err}")
                return self._backoff()
            # Pay what is there now; the rest stays queued for after a deposit.
            ledger.split_queued(queued.id, err.available)
            signed = wallet.prepare(err.available, index)
        except WalletError as err:  # nothing signed: it stays queued, tried again after a backoff
            ledger.record_failure(queued.id, str(err))
            raise
        ledger.store_signed(queued.id, signed, wallet.backend)
        if self._short_since is not None and signed.value == queued.value_units:
            log.info("balance sufficient again: paying all that is owed")
            self._short_since = None
        log.info("payment %d signed: %d %s from key index %d, change to %d, reference %s",
                 queued.id, signed.value, wallet.unit, signed.input_index, signed.change_index,
                 signed.reference)
        return 0.0  # attach and send it at once

    def _short(self, queued: Payment, err: InsufficientBalance, unit: str) -> bool:
        """Log a short balance once per episode; True if part of ``queued`` can be paid."""
        can_pay = self.policy.min_payment <= err.available < queued.value_units
        if self._short_since is None:
            self._short_since = self.wall()
            log.warning("insufficient balance: %s; %s", err,
                        f"paying the {err.available} {unit} there now, the rest after a deposit"
                        if can_pay else "payments wait for a deposit (amounts stay owed)")
        return can_pay

    def _follow(self, ledger: Ledger, wallet: Wallet, p: Payment) -> float:
        """Send, confirm, promote or attach again the one signed payment.

        The network is asked first, every time: an attachment whose send failed
        (or was cut short by a crash) may have got through all the same.
        """
        signed = p.signed
        assert signed is not None
        if not p.attachments:
            return self._attach(ledger, wallet, p)
        status = self._attempt(ledger, p, lambda: wallet.status(signed, p.attachments))
        found = ledger.record_seen(p.id, status.attachments)
        if found:
            log.info("payment %d: the network holds %d attachment(s) the ledger had not"
                     " recorded; recorded now", p.id, len(found))
        if status.state == CONFIRMED:
            ledger.mark_confirmed(p.id, status.fee_nanos)
            self._promoted_at.pop(p.id, None)
            log.info("payment %d confirmed: %d %s", p.id, p.value_units, wallet.unit)
            return 0.0
        if status.state != PENDING:  # failed or dead: it never pays
            again = ledger.mark_ended(p.id, status.state, status.detail, status.fee_nanos)
            log.warning("payment %d %s (%s): its %d %s are owed again (payment %d)",
                        p.id, status.state, status.detail or "no detail", p.value_units,
                        wallet.unit, again)
            return 0.0
        p = ledger.payment(p.id)
        if p.unsent is not None:  # recorded, and the network does not know it: send it
            return self._send_unsent(ledger, wallet, p, p.unsent)
        return self._help(ledger, wallet, p)

    def _send_unsent(self, ledger: Ledger, wallet: Wallet, p: Payment,
                     unsent: Attachment) -> float:
        """Send a recorded attachment, or give it up for a fresh one from the payload.

        A node refuses some attachments for good (IRI: an attachment timestamp
        older than its snapshot, proof of work below its MWM); one unsent for
        ``reattach_after_s`` is too old to be worth sending. Either way it is
        abandoned in the ledger and the signed transfer is attached again.
        """
        now = self.wall()
        age = now - (p.last_attached_at or now)
        if age < self.policy.reattach_after_s:
            try:
                return self._send(ledger, wallet, p, unsent)
            except WalletError as err:
                if err.retryable:
                    raise
                why = f"attachment refused: {err}"
        else:
            why = f"attachment unsent for {age:.0f} s"
        log.warning("payment %d: %s; attaching the same signed transfer again", p.id, why)
        ledger.abandon_attachment(p.id, unsent.id, why)
        return self._attach(ledger, wallet, ledger.payment(p.id))

    def _help(self, ledger: Ledger, wallet: Wallet, p: Payment) -> float:
        """A pending payment: promote it, or attach it again once it waited long enough."""
        signed = p.signed
        assert signed is not None
        now = self.wall()
        age = now - (p.last_attached_at or now)
        if age >= self.policy.reattach_after_s:
            log.warning("payment %d unconfirmed after %.0f s: attaching the same signed"
                        " transfer again", p.id, age)
            return self._attach(ledger, wallet, p)
        if age >= self.policy.promote_after_s and \
                now - self._promoted_at.get(p.id, 0.0) >= self.policy.promote_after_s:
            self._promoted_at[p.id] = now
            try:
                self._attempt(ledger, p, lambda: wallet.promote(signed, p.attachments))
                log.info("payment %d unconfirmed after %.0f s: promoted", p.id, age)
            except NotPromotable as err:
                log.info("payment %d cannot be promoted (%s): attaching it again", p.id, err)
                return self._attach(ledger, wallet, p)
        return self.policy.poll_s

    def _attach(self, ledger: Ledger, wallet: Wallet, p: Payment) -> float:
        """A new attachment from the ledger's payload: recorded, then sent."""
        signed = p.signed
        assert signed is not None
        attachment = self._attempt(ledger, p, lambda: wallet.attach(signed))
        ledger.record_attachment(p.id, attachment)
        return self._send(ledger, wallet, p, attachment)

    def _send(self, ledger: Ledger, wallet: Wallet, p: Payment, attachment: Attachment) -> float:
        self._attempt(ledger, p, lambda: wallet.send(attachment))
        ledger.mark_sent(p.id, attachment.id)
        number = ledger.payment(p.id).attachments.index(attachment.id) + 1
        log.info("payment %d sent: %d %s, reference %s (attachment %d)",
                 p.id, p.value_units, wallet.unit, p.reference, number)
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
        self._note_failure(message)
        key = f"{err.kind}: {err.node_message}" if err.kind else message  # a new reason: said
        if key != self._last_error:
            if err.retryable:
                log.warning("payment attempt failed, will retry (amounts stay owed): %s", message)
            elif self._signed_step:
                # Signed already: it can only ever be sent again, never signed anew.
                log.error("payment refused, will retry the same signed transfer (amounts"
                          " stay owed): %s", message)
            else:
                log.error("payment failed and is owed again in a later payment: %s", message)
            self._last_error = key
        return self._backoff()

    def _backoff(self) -> float:
        exponent = min(max(self._failures - 1, 0), 30)
        return min(self.policy.retry_min_s * 2**exponent, self.policy.retry_max_s)
