"""A wallet that moves no tokens: it records the transfer it would make.

Used by ``--simulate``, by tests and by anyone trying the daemon without a
node. ``latency_s`` makes each network step take that long, to show that the
meter never waits for the payer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from .addresses import iota_address
from .base import (
    CONFIRMED,
    LEGACY_UNIT,
    OK,
    PENDING,
    Attachment,
    Backend,
    Position,
    Report,
    Signed,
    Status,
    Wallet,
    no_rule,
)

log = logging.getLogger(__name__)

_TRYTES = "9ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _fake_hash(text: str) -> str:
    """81 trytes derived from ``text``: stable, unique enough for a ledger key."""
    digest = hashlib.sha384(text.encode()).digest()
    return "".join(_TRYTES[b % 27] for b in (digest * 2)[:81])


class DryRunWallet:
    """Signs nothing and sends nothing; every payment that was sent confirms at once.

    Its "network" is this object: after a restart, a payment left in flight is
    attached and sent again (after ``reattach_after_s``), as from a node that lost it.
    """

    backend = "dry-run"
    unit = LEGACY_UNIT

    def __init__(self, receiver: str = "", latency_s: float = 0.0) -> None:
        self.receiver = receiver
        self.latency_s = latency_s
        self.sent: list[Signed] = []
        self.network: dict[str, str] = {}  # attachment id -> reference, once sent
        self._stop = threading.Event()  # close() cuts a latency wait short
        self._counter = 0

    def _wait(self) -> None:
        if self.latency_s > 0:
            self._stop.wait(self.latency_s)

    def prepare(self, value: int, input_index: int) -> Signed:
        if value <= 0:
            raise ValueError("refusing a zero-value transfer")
        self._counter += 1
        reference = _fake_hash(f"{value}:{input_index}:{self._counter}:{id(self)}")
        payload = json.dumps([f"DRYRUN{reference}", value])
        return Signed(reference, payload, value, input_index, input_index + 1, self.receiver)

    def attach(self, signed: Signed) -> Attachment:
        self._wait()
        self._counter += 1
        return Attachment(_fake_hash(f"attach:{signed.reference}:{self._counter}"),
                          json.dumps([signed.reference, signed.payload, signed.value,
                                      signed.input_index, signed.change_index]))

    def send(self, attachment: Attachment) -> None:
        self._wait()
        reference, payload, value, input_index, change_index = json.loads(attachment.data)
        signed = Signed(reference, payload, value, input_index, change_index)
        self.network[attachment.id] = reference
        if signed not in self.sent:
            self.sent.append(signed)
            log.info("dry run: would send %d IOTA to %s (reference %s)", value,
                     self.receiver or "the receiver", reference[:12])

    def status(self, signed: Signed, known: Sequence[str]) -> Status:
        """Confirmed once any attachment was sent (by this wallet: it keeps no state)."""
        self._wait()
        held = tuple(a for a, ref in self.network.items() if ref == signed.reference)
        return Status(CONFIRMED if held else PENDING, held)

    def promote(self, signed: Signed, known: Sequence[str]) -> None:
        self._wait()

    def describe(self) -> str:
        return f"dry-run wallet (latency {self.latency_s:g} s, no tokens move)"

    def close(self) -> None:
        self._stop.set()


def _opener(cfg: Any) -> Callable[[], Wallet]:
    w = cfg.wallet
    return lambda: DryRunWallet(receiver=w.receiver, latency_s=w.dry_run_latency_s)


def _check(cfg: Any, report: Report, position: Position) -> None:
    report(OK, "wallet: dry-run (no node, no tokens move)")


# The legacy unit and defaults: what it simulates is a payment on the legacy network.
BACKEND = Backend(
    name="dry-run", unit=LEGACY_UNIT, reference_key="bundle_hash",
    node_url="http://127.0.0.1:14265", min_payment=1, needs_receiver=False,
    receiver=iota_address, seed_rule=no_rule, opener=_opener, check=_check)
