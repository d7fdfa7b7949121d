"""A consumer's signed log, built in memory with the core, served over HTTP as ``serve`` will.

``SignedLog`` makes a log the way the daemon does: round entries billed by the
price rule with the carry chained, payment entries, the RFC 6962 tree of their
leaf hashes (``MemoryHashStore``) and a checkpoint signed with a note key.
``LogServer`` publishes one on 127.0.0.1, exactly the endpoints of the spec:

- ``GET /log/checkpoint``: the signed note, ``text/plain``, bytes as signed;
- ``GET /log/entries?start=N&end=M``: ``{"entries": [base64, ...]}`` for N to
  M-1, at most ``page`` (1000) an answer, fewer at the end of the log; 404 for a
  start at or past its end, 400 for an end not above the start (as ``serve``);
- ``GET /log/proof/consistency?from=M&to=N`` and
  ``GET /log/proof/inclusion?index=I&size=S``: ``{"proof": [base64, ...]}``.

It is strict: a missing, repeated, non-decimal or out-of-range parameter, or
any other parameter, is HTTP 400; any other path 404; any other method 405.
Proofs come from the tree the checkpoint signed; the entries it serves are
``served``, a list a test may change (a byte, an entry left out) to play a
consumer that tampers with what it publishes. ``requests`` records every path.

    log = SignedLog()
    log.add_rounds(10)
    with LogServer(log) as server:
        p2p_energy_cli("verify", server.url, "--key", log.verifier_key, ...)
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

from p2p_energy.core import entries, note, tlog
from p2p_energy.core.entries import EXECUTED, PaymentEntry, RoundEntry

from .http_node import HttpNode, JsonHandler

ORIGIN = "consumer.example/p2p-energy"
SEED = bytes(range(32))  # a fixed test key: never a real one
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
ROUND_MS = 60_000
NANO = entries.NANO


class SignedLog:
    """A log of entries (bytes), their tree and the signer of its checkpoints."""

    def __init__(self, origin: str = ORIGIN, seed: bytes = SEED, unit: str = "µIOTA") -> None:
        self.signer = note.signer_from_seed(origin, seed)
        self.origin = origin
        self.unit = unit
        self.entries: list[bytes] = []
        self.store = tlog.MemoryHashStore()
        self.last_round: RoundEntry | None = None
        self.queued_since_payment: list[tuple[int, int]] = []  # (round id, queued units)
        self.payments = 0

    @property
    def verifier_key(self) -> str:
        return self.signer.verifier.key()

    def append(self, data: bytes) -> int:
        """Add one entry's bytes; returns its index."""
        self.entries.append(data)
        self.store.append(tlog.leaf_hash(data))
        return len(self.entries) - 1

    def next_round(self, consumer_uws: int | None = None, producer_uws: int = 2_400_000,
                   **changes: Any) -> RoundEntry:
        """The next round, billed by the rule and carried on from the last (not appended).
        The consumer's energy varies from round to round (so the carry does), unless
        given. ``changes`` replace fields after billing (to make a wrong one)."""
        prev = self.last_round
        round_id = prev.round_id + 1 if prev else 1
        if consumer_uws is None:
            consumer_uws = 3_600_000 + (round_id * 7919) % 100_000
        start = START_MS + (round_id - 1) * ROUND_MS
        draft = RoundEntry(round_id, start, start + ROUND_MS, self.unit, consumer_uws,
                           producer_uws, ROUND_MS * 1000, 10 * NANO, 10 * NANO,
                           prev.carry_out_nano_units if prev else 0, 0, 0, 0)
        bill = entries.recompute(draft)
        billed = replace(draft, owed_nano_units=bill.owed_nano_units,
                         queued_units=bill.queued_units,
                         carry_out_nano_units=bill.carry_out_nano_units)
        return replace(billed, **changes)

    def add_round(self, r: RoundEntry | None = None, **kwargs: Any) -> int:
        r = r or self.next_round(**kwargs)
        self.last_round = r
        self.queued_since_payment.append((r.round_id, r.queued_units))
        return self.append(entries.encode_round(r))

    def add_rounds(self, n: int, **kwargs: Any) -> None:
        for _ in range(n):
            self.add_round(**kwargs)

    def owed_units(self) -> int:
        """Whole units queued by the rounds since the last payment."""
        return sum(q for _, q in self.queued_since_payment)

    def add_payment(self, reference: str, recipient: str, amount_units: int | None = None, *,
                    backend: str = "iota", status: str = EXECUTED, fee_nanos: int = 2_000_000,
                    settles: tuple[tuple[int, int], ...] | None = None) -> int:
        """A payment of the rounds queued since the last one (or ``settles``)."""
        ids = [i for i, _ in self.queued_since_payment] or [1]
        amount = self.owed_units() if amount_units is None else amount_units
        self.payments += 1
        entry = PaymentEntry(self.payments, backend, reference, recipient, self.unit,
                             amount, fee_nanos,
                             settles or entries.round_ids_to_ranges(ids), status)
        self.queued_since_payment = []
        return self.append(entries.encode_payment(entry))

    def checkpoint(self) -> bytes:
        """The signed checkpoint of every entry appended so far."""
        cp = note.Checkpoint(self.origin, self.store.size, self.store.root())
        return note.sign_checkpoint(cp, self.signer)


class LogServer(HttpNode):
    """Serves ``log`` (its checkpoint and tree as they are when ``publish`` is called)."""

    NAME = "log-server"

    def __init__(self, log: SignedLog, *, page: int = 1000,
                 keep_alive_s: float | None = None) -> None:
        self._init_http(port=0, hang_s=5.0)
        self.page = page
        if keep_alive_s is not None:  # HTTP/1.1, a connection idle this long is closed
            self.handler = type("KeepAlive", (_Handler,), {"protocol_version": "HTTP/1.1",
                                                           "timeout": keep_alive_s})
        self.connections = 0
        self.requests: list[str] = []
        self.publish(log)

    def publish(self, log: SignedLog) -> None:
        """Serve the log as it is now: a fresh checkpoint, its tree, its entries."""
        with self._lock:
            self.note = log.checkpoint()
            self.size = log.store.size
            self.tree = log.store
            self.served = list(log.entries)

    def handle(self, path: str, query: dict[str, list[str]]) -> tuple[int, bytes, str]:
        """(status, body, content type) for one GET."""
        with self._lock:
            self.requests.append(path + ("?" + "&".join(f"{k}={v[0]}" for k, v in
                                                         query.items()) if query else ""))
            if path == "/log/checkpoint":
                _params(query)
                return 200, self.note, "text/plain; charset=utf-8"
            if path == "/log/entries":
                start, end = _params(query, "start", "end")
                if end <= start:
                    raise BadRequest("end must be above start")
                if start >= len(self.served):  # as serve answers it
                    return 404, b"no entry from there\n", "text/plain"
                end = min(end, start + self.page, len(self.served))
                page = [base64.b64encode(e).decode() for e in self.served[start:end]]
                return 200, json.dumps({"entries": page}).encode(), "application/json"
            if path == "/log/proof/consistency":
                old, new = _params(query, "from", "to")
                if not old <= new <= self.size:
                    raise BadRequest(f"no consistency proof from {old} to {new} in a log of"
                                     f" {self.size}")
                return _proof(tlog.consistency_proof(old, new, self.tree.hash_at))
            if path == "/log/proof/inclusion":
                index, size = _params(query, "index", "size")
                if not index < size <= self.size:
                    raise BadRequest(f"no leaf {index} in a log of {size}")
                return _proof(tlog.inclusion_proof(index, size, self.tree.hash_at))
            return 404, b"not found\n", "text/plain"


class BadRequest(Exception):
    pass


def _params(query: dict[str, list[str]], *names: str) -> list[int]:
    if set(query) != set(names) or any(len(query[n]) != 1 for n in names):
        raise BadRequest(f"want exactly the parameters {', '.join(names) or 'none'}")
    values = []
    for n in names:
        text = query[n][0]
        if not text.isdigit() or not text.isascii() or (text != "0" and text[0] == "0"):
            raise BadRequest(f"{n} {text!r} is not a decimal number")
        values.append(int(text))
    return values


def _proof(hashes: list[bytes]) -> tuple[int, bytes, str]:
    body = json.dumps({"proof": [base64.b64encode(h).decode() for h in hashes]})
    return 200, body.encode(), "application/json"


class _Handler(JsonHandler):
    node: LogServer

    def setup(self) -> None:
        super().setup()
        with self.node._lock:
            self.node.connections += 1

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        try:
            query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
            status, body, kind = self.node.handle(parts.path, query)
        except (BadRequest, ValueError) as err:
            status, body, kind = 400, f"{err}\n".encode(), "text/plain"
        self._send_raw(status, body, kind)

    def do_POST(self) -> None:
        self._send_raw(405, b"method not allowed\n", "text/plain")


LogServer.handler = _Handler
