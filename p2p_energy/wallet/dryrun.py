"""A wallet that moves no tokens: it records the transfer it would make.

Used by ``--simulate``, by tests and by anyone trying the daemon without a
node. ``latency_s`` makes each network step take that long, to show that the
meter never waits for the payer.
"""

from __future__ import annotations

import hashlib
import logging
import threading

from .base import SignedBundle

log = logging.getLogger(__name__)

_TRYTES = "9ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _fake_hash(text: str) -> str:
    """81 trytes derived from ``text``: stable, unique enough for a ledger key."""
    digest = hashlib.sha384(text.encode()).digest()
    return "".join(_TRYTES[b % 27] for b in (digest * 2)[:81])


class DryRunWallet:
    """Signs nothing and sends nothing; every bundle confirms at once."""

    def __init__(self, receiver: str = "", latency_s: float = 0.0) -> None:
        self.receiver = receiver
        self.latency_s = latency_s
        self.sent: list[SignedBundle] = []
        self._stop = threading.Event()  # close() cuts a latency wait short
        self._counter = 0

    def _wait(self) -> None:
        if self.latency_s > 0:
            self._stop.wait(self.latency_s)

    def prepare(self, value_iota: int, input_index: int, change_index: int) -> SignedBundle:
        if value_iota <= 0:
            raise ValueError("refusing a zero-value transfer")
        self._counter += 1
        text = f"{value_iota}:{input_index}:{change_index}:{self._counter}:{id(self)}"
        bundle_hash = _fake_hash(text)
        return SignedBundle(bundle_hash, (f"DRYRUN{bundle_hash}",), value_iota,
                            input_index, change_index)

    def broadcast(self, bundle: SignedBundle) -> str:
        self._wait()
        self.sent.append(bundle)
        log.info("dry run: would send %d IOTA to %s (bundle %s)", bundle.value_iota,
                 self.receiver or "the receiver", bundle.bundle_hash[:12])
        return _fake_hash("tail:" + bundle.bundle_hash + str(len(self.sent)))

    def is_confirmed(self, tails: list[str]) -> bool:
        self._wait()
        return bool(tails)

    def promote(self, tail: str) -> None:
        self._wait()

    def reattach(self, tail: str) -> str:
        self._wait()
        return _fake_hash("reattach:" + tail)

    def describe(self) -> str:
        return f"dry-run wallet (latency {self.latency_s:g} s, no tokens move)"

    def close(self) -> None:
        self._stop.set()
