"""A legacy IOTA node (IRI JSON API) of our own on 127.0.0.1, for tests and manual runs.

The legacy network is retired, so every IOTA test talks to this node through the
real PyOTA client over HTTP. It speaks the API the way IRI did (``POST /``,
``X-IOTA-API-Version`` header, errors as non-200 with ``{"error": ...}``) and is
strict where IRI was: every stored bundle is checked (PyOTA's ``BundleValidator``,
the bundle hash recomputed from the essence with Kerl, Curl-P-81 proof of work,
the trunk/branch chain). It does real PoW in ``attachToTangle`` (use a low
``mwm``: 1-5). Balances move when a bundle confirms, once per bundle hash.

Like IRI, exactly one attachment of a bundle is ever included: when a bundle
confirms, one of its tails (the first attached, by default: ``include``) is
included and every other attachment, earlier or later, stays unconfirmed for
ever and is not promotable (``checkConsistency`` says the tail is not
consistent). A client that asks only about the tails it remembers can wait
for ever; ``findTransactions(bundles=[...])`` returns every attachment.

Faults for tests: ``node.set_fault(kind, commands=..., times=...)`` with ``kind``
one of ``FAULTS``, for every command or only some (e.g. only
``storeTransactions``); ``node.clear_fault()``. ``node.forget(bundle_hash)``
drops a pending bundle, as a node that never kept it (a restart, a prune).
``node.take_snapshot()`` makes it refuse every transaction attached before now,
as IRI refuses one whose attachment timestamp is below its snapshot's (or more
than two hours ahead of its clock): "Invalid transaction timestamp".

Manual use::

    cd tests && uv run python -m support.legacy_node --port 14265 --mwm 3 --confirm-delay 5 \
        --fund-seed SEED9...:0=1000
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

with warnings.catch_warnings():  # iota imports pkg_resources, which warns
    warnings.simplefilter("ignore")
    from iota import Bundle, BundleHash, Transaction, TransactionHash, TryteString
    from iota.crypto.addresses import AddressGenerator
    from iota.crypto.kerl import Kerl
    from iota.crypto.pycurl import Curl
    from iota.transaction.validator import BundleValidator
    from iota.trits import trits_from_int

from .http_node import HttpNode, JsonHandler

FAULTS = ("refuse", "hang", "http500", "garbage", "drop", "never_confirm", "answer")
TX_TRYTES = 2673
NULL_HASH = "9" * 81
MAX_TIMESTAMP = (3**27 - 1) // 2
MAX_FUTURE_MS = 2 * 3600 * 1000  # IRI: an attachment timestamp this far ahead is invalid
TOTAL_SUPPLY = (3**33 - 1) // 2
# Transaction layout (tryte offsets): fragment 0, address 2187, value 2268,
# obsolete tag 2295, timestamp 2322, indexes 2331/2340, bundle 2349, trunk 2430,
# branch 2511, tag 2592, attachment timestamps 2619-2646, nonce 2646.
_ESSENCE = slice(2187, 2349)
_CONTENT = slice(0, 2430)  # what a reattachment keeps: signature, essence, bundle hash
_LAST_BLOCK_TRIT = 7776  # PoW changes only the last 243-trit block (tag, timestamps, nonce)
_NONCE_TRIT = 7938


@dataclass
class Rejection:
    """A request the node refused because of what a bundle or transaction held."""

    command: str
    reason: str
    bundle_hash: str = ""


@dataclass
class BundleRecord:
    """One bundle hash the node accepted, with every attachment (tail) seen."""

    bundle_hash: str
    tails: list[str]
    changes: dict[str, int]  # address -> value moved (inputs negative)
    first_seen: float
    state: str = "pending"  # pending | confirmed | conflicting
    reason: str = ""
    included: str = ""  # the one tail a confirmation included


@dataclass
class _Attach:
    """One attachment of a bundle: transactions tail first, with their raw trytes."""

    txs: list[Transaction] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)


class NodeError(Exception):
    """Answered as HTTP 400 ``{"error": message}``."""


# -- hashing and proof of work -------------------------------------------------

def weight_of(hash_trytes: str) -> int:
    """Trailing zero trits of a transaction hash: its PoW weight magnitude."""
    weight = 0
    for trit in reversed(TryteString(hash_trytes).as_trits()):
        if trit:
            break
        weight += 1
    return weight


def curl_hash(trytes: str) -> str:
    """Curl-P-81 hash of transaction trytes (81 trytes)."""
    sponge = Curl()
    sponge.absorb(TryteString(trytes).as_trits())
    out: list[int] = []
    sponge.squeeze(out)
    return str(TryteString.from_trits(out))


def do_pow(trytes: str, mwm: int) -> tuple[str, str]:
    """Search a nonce so the Curl-P-81 hash ends in ``mwm`` zero trits.

    Returns (trytes with nonce, hash). The first 32 of 33 Curl blocks do not
    depend on the nonce, so the sponge state after them is computed once.
    """
    trits = TryteString(trytes).as_trits()
    base = Curl()
    base.absorb(trits[:_LAST_BLOCK_TRIT])
    tail_block = trits[_LAST_BLOCK_TRIT:_NONCE_TRIT]
    for n in itertools.count():
        nonce = trits_from_int(n, pad=81)
        sponge = Curl()
        sponge._state = base._state[:]  # resume after the nonce-free blocks
        sponge.absorb(tail_block + nonce)
        out: list[int] = []
        sponge.squeeze(out)
        digest = str(TryteString.from_trits(out))
        if weight_of(digest) >= mwm:
            return trytes[:2646] + str(TryteString.from_trits(nonce)), digest
    raise AssertionError("unreachable")


def bundle_hash_of(trytes: Iterable[str]) -> str:
    """Kerl over each transaction's essence (tail first), as the sender hashed the bundle."""
    sponge = Kerl()
    for raw in trytes:
        sponge.absorb(TryteString(raw[_ESSENCE]).as_trits())
    out = [0] * 243
    sponge.squeeze(out)
    return str(BundleHash.from_trits(out))


def _tryte_int(n: int) -> str:
    return str(TryteString.from_trits(trits_from_int(n, pad=27)))


def attach(trytes: list[str], trunk: str, branch: str, mwm: int,
           now_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> list[str]:
    """IRI's attachToTangle: ``trytes`` head first; returns them tail first.

    The first transaction given (the head) approves ``trunk`` and ``branch``;
    each following one has the previous one's hash as trunk and ``trunk`` as
    branch, so the tail leads through the bundle to the head.
    """
    return [t for t, _ in _attach_pairs(trytes, trunk, branch, mwm, now_ms)]


def _attach_pairs(trytes: list[str], trunk: str, branch: str, mwm: int,
                  now_ms: Callable[[], int]) -> list[tuple[str, str]]:
    done: list[tuple[str, str]] = []
    prev = ""
    for raw in trytes:
        tag = raw[2592:2619]
        if set(tag) == {"9"}:
            tag = raw[2295:2322]  # IRI copies the obsolete tag when no tag is set
        fields = (prev or trunk) + (trunk if prev else branch) + tag + _tryte_int(now_ms()) \
            + _tryte_int(0) + _tryte_int(MAX_TIMESTAMP) + "9" * 27
        powed, prev = do_pow(raw[:2430] + fields, mwm)
        done.append((powed, prev))
    return done[::-1]


@lru_cache(maxsize=8)
def genesis(mwm: int) -> tuple[str, str]:
    """(trytes, hash) of the one-transaction bundle every node starts from.

    Tips must be real transactions: PyOTA's ``replay_bundle`` follows trunks until
    it meets another bundle, and fails on a hash the node does not know.
    """
    from iota import Address, ProposedBundle, ProposedTransaction, Tag
    bundle = ProposedBundle([ProposedTransaction(address=Address("GENESIS"), value=0,
                                                 tag=Tag("GENESIS"), timestamp=1)])
    bundle.finalize()
    [(trytes, digest)] = _attach_pairs([str(bundle[0].as_tryte_string())], NULL_HASH,
                                       NULL_HASH, mwm, lambda: 0)
    return trytes, digest


def history_transaction(address: str, mwm: int) -> tuple[str, str]:
    """(trytes, hash) of a zero-value transaction at ``address``, attached to the genesis.

    For ``LegacyNode.add_history``: ~0.4 s each (PoW in pure Python), so a bench
    makes many in worker processes.
    """
    from iota import Address, ProposedBundle, ProposedTransaction, Tag
    bundle = ProposedBundle([ProposedTransaction(address=Address(address), value=0,
                                                 tag=Tag("HISTORY"))])
    bundle.finalize()
    root = genesis(mwm)[1]
    [(trytes, digest)] = _attach_pairs([str(bundle[0].as_tryte_string())], root, root, mwm,
                                       lambda: int(time.time() * 1000))
    return trytes, digest


@lru_cache(maxsize=256)
def address_of(seed: str, index: int, security_level: int = 2) -> str:
    """The 81-tryte address of ``seed`` at ``index`` (cached: ~0.2 s each)."""
    gen = AddressGenerator(seed, security_level=security_level, checksum=False)
    return str(gen.get_addresses(index, 1)[0])


# -- the node ------------------------------------------------------------------

class LegacyNode(HttpNode):
    """State and API of the test node; ``start()`` serves it over HTTP (``http_node``).

    ``mwm``: minimum weight magnitude of every stored transaction.
    ``confirm_delay_s``: a bundle confirms this long after it was first seen
    (``None``: only ``confirm_all()`` confirms). ``hang_s``: how long a ``hang``
    fault holds a request (released early by ``clear_fault``/``stop``).
    """

    FAULTS = FAULTS
    PASSIVE_FAULTS = frozenset({"refuse", "never_confirm"})
    NAME = "legacy-node"

    def __init__(self, *, mwm: int = 3, confirm_delay_s: float | None = None,
                 hang_s: float = 30.0, port: int = 0, include: str = "first",
                 clock: Callable[[], float] = time.monotonic) -> None:
        if include not in ("first", "last"):
            raise ValueError("include must be 'first' or 'last'")
        self.include = include
        self.mwm = mwm
        self.confirm_delay_s = confirm_delay_s
        self._init_http(port=port, hang_s=hang_s)
        self.clock = clock
        self.rejected: list[Rejection] = []
        self.bundles: dict[str, BundleRecord] = {}
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.milestone_index = 1
        self._balances: dict[str, int] = {}
        self._spent: set[str] = set()
        self._spent_confirmed: set[str] = set()
        self._signers: dict[str, set[str]] = {}
        self._trytes: dict[str, str] = {}
        self._txs: dict[str, Transaction] = {}
        self._tips: list[str] = []
        self._hashes: dict[str, str] = {}
        self._tail_of: dict[str, str] = {}  # transaction hash -> its attachment's tail
        self._content_ok: set[tuple[str, ...]] = set()
        self._rejected_keys: set[tuple[str, ...]] = set()
        self._rng = random.Random(1)
        self.snapshot_ms = 0  # attachments made before this (epoch ms) are refused
        trytes, self.genesis_hash = genesis(mwm)
        self._trytes[self.genesis_hash] = trytes
        self._txs[self.genesis_hash] = Transaction.from_tryte_string(
            trytes, hash_=TransactionHash(self.genesis_hash))
        self._tips.append(self.genesis_hash)

    # -- test controls

    def fund(self, address: str, amount_iota: int) -> None:
        """Add confirmed balance to ``address`` (81 trytes, or 90 with checksum)."""
        with self._lock:
            addr = address[:81]
            self._balances[addr] = self._balances.get(addr, 0) + amount_iota

    def fund_seed(self, seed: str, index: int, amount_iota: int,
                  security_level: int = 2) -> str:
        """Fund the address of ``seed`` at ``index``; returns that address."""
        addr = address_of(seed, index, security_level)
        self.fund(addr, amount_iota)
        return addr

    def balance(self, address: str) -> int:
        """Confirmed balance of ``address``."""
        with self._lock:
            self._confirm_due()
            return self._balances.get(address[:81], 0)

    def set_fault(self, kind: str, *, commands: Iterable[str] | None = None,
                  times: int | None = None, answer: Any = None) -> None:
        """Misbehave from now on: ``kind`` in ``FAULTS``.

        ``commands``: only for these API commands (default: all).
        ``times``: only for this many matching requests (default: until cleared).
        ``refuse`` closes the listening socket (connection refused) until cleared.
        ``answer`` sends ``answer`` (valid JSON of any shape) with HTTP 200 instead.
        """
        self._set_fault(kind, commands, times, answer)

    def add_history(self, attached: Iterable[tuple[str, str]], *,
                    spent: Iterable[str] = ()) -> None:
        """Give a seed a long past without paying for it (benches).

        Stores ``history_transaction`` results (checked like any transaction, their
        hashes trusted so that storing 200 of them takes no minutes) and marks the
        ``spent`` addresses as spent from, as their signed inputs would have.
        Balances do not move: ``fund`` the address that holds the funds now.
        """
        with self._lock:
            for trytes, digest in attached:
                self._hashes[trytes] = digest
                self._receive("storeTransactions", [trytes])
            self._spent.update(a[:81] for a in spent)

    def confirm_all(self) -> None:
        """Confirm every pending bundle now (unless a ``never_confirm`` fault is set)."""
        with self._lock:
            self._confirm_due(force=True)

    def forget(self, bundle_hash: str) -> None:
        """Drop a pending bundle and every attachment of it, as if never received."""
        with self._lock:
            rec = self.bundles.get(bundle_hash)
            if rec is None or rec.state != "pending":
                raise ValueError(f"no pending bundle {bundle_hash}")
            del self.bundles[bundle_hash]
            gone = {h for h, t in self._txs.items() if str(t.bundle_hash) == bundle_hash}
            for h in gone:
                del self._txs[h], self._trytes[h], self._tail_of[h]
            self._tips = [t for t in self._tips if t not in gone] or [self.genesis_hash]
            spenders = {a for a, v in rec.changes.items() if v < 0}
            for addr in spenders:
                self._signers.get(addr, set()).discard(bundle_hash)
                if not self._signers.get(addr):
                    self._spent.discard(addr)
            self._content_ok = {c for c in self._content_ok if c[0][2349:2430] != bundle_hash}

    def take_snapshot(self) -> None:
        """From now on refuse transactions attached before now (IRI's snapshot timestamp)."""
        with self._lock:
            self.snapshot_ms = int(time.time() * 1000)

    def addresses_signed_by_more_than_one_bundle(self) -> dict[str, set[str]]:
        """Input addresses whose key signed two different bundles (key reuse)."""
        with self._lock:
            return {a: set(b) for a, b in self._signers.items() if len(b) > 1}

    def is_spent(self, address: str) -> bool:
        with self._lock:
            return address[:81] in self._spent

    def command_names(self) -> list[str]:
        """The API commands received so far, in order."""
        return [name for name, _ in self.requests]

    # -- confirmation

    def _confirm_due(self, *, force: bool = False) -> None:
        if self._fault is not None and self._fault.kind == "never_confirm":
            return
        now = self.clock()
        for rec in sorted(self.bundles.values(), key=lambda r: r.first_seen):
            if rec.state != "pending":
                continue
            due = self.confirm_delay_s is not None and now >= rec.first_seen + self.confirm_delay_s
            if force or due:
                self._confirm(rec)

    def _confirm(self, rec: BundleRecord) -> None:
        for addr, value in rec.changes.items():
            reason = ""
            if value < 0 and addr in self._spent_confirmed:
                reason = f"double spend: {addr} was already spent by a confirmed bundle"
            elif value < 0 and self._balances.get(addr, 0) + value < 0:
                reason = f"overdraft: {addr} holds {self._balances.get(addr, 0)} i"
            if reason:
                rec.state, rec.reason = "conflicting", reason
                self.rejected.append(Rejection("confirm", reason, rec.bundle_hash))
                return
        for addr, value in rec.changes.items():
            self._balances[addr] = self._balances.get(addr, 0) + value
            if value < 0:
                self._spent_confirmed.add(addr)
        rec.state = "confirmed"
        rec.included = rec.tails[0] if self.include == "first" else rec.tails[-1]
        self.milestone_index += 1

    # -- API commands

    def handle(self, command: str, req: dict[str, Any]) -> dict[str, Any]:
        """Answer one API command; raises ``NodeError`` for a 400 answer."""
        method = getattr(self, "_cmd_" + command, None) if command.isalnum() else None
        if method is None:
            raise NodeError(f"Command [{command}] is unknown")
        with self._lock:
            self.requests.append((command, req))
            self._confirm_due()
        return method(req)

    def _cmd_getNodeInfo(self, req: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            ms = self._milestone()
            return {"appName": "p2p-energy-legacy-test-node", "appVersion": "1.8.6-test",
                    "latestMilestone": ms, "latestMilestoneIndex": self.milestone_index,
                    "latestSolidSubtangleMilestone": ms,
                    "latestSolidSubtangleMilestoneIndex": self.milestone_index,
                    "milestoneStartIndex": 0, "neighbors": 0, "packetsQueueSize": 0,
                    "time": int(time.time() * 1000), "tips": len(self._tips),
                    "transactionsToRequest": 0, "features": [],
                    "coordinatorAddress": NULL_HASH, "duration": 0}

    def _milestone(self) -> str:
        return _tryte_int(self.milestone_index).ljust(81, "9")

    def _cmd_getBalances(self, req: dict[str, Any]) -> dict[str, Any]:
        addresses = _hashes(req, "addresses", 81, allow_checksum=True)
        with self._lock:
            return {"balances": [str(self._balances.get(a, 0)) for a in addresses],
                    "references": [self._milestone()],
                    "milestoneIndex": self.milestone_index, "duration": 0}

    def _cmd_wereAddressesSpentFrom(self, req: dict[str, Any]) -> dict[str, Any]:
        addresses = _hashes(req, "addresses", 81, allow_checksum=True)
        with self._lock:
            return {"states": [a in self._spent for a in addresses], "duration": 0}

    def _cmd_findTransactions(self, req: dict[str, Any]) -> dict[str, Any]:
        fields = {"addresses": (lambda t: str(t.address), 81),
                  "bundles": (lambda t: str(t.bundle_hash), 81),
                  "tags": (lambda t: str(t.tag), 27),
                  "approvees": (lambda t: str(t.trunk_transaction_hash), 81)}
        terms = {k: v for k, v in req.items() if k in fields}
        if not terms:
            raise NodeError("Invalid parameters: no search values")
        with self._lock:
            found = set(self._txs)
            for key, _ in terms.items():
                get, size = fields[key]
                wanted = {w.ljust(size, "9") for w in _hashes(req, key, size,
                                                               allow_checksum=key == "addresses")}
                match = {h for h, t in self._txs.items() if get(t) in wanted}
                if key == "approvees":
                    match |= {h for h, t in self._txs.items()
                              if str(t.branch_transaction_hash) in wanted}
                found &= match
            return {"hashes": sorted(found), "duration": 0}

    def _cmd_getTrytes(self, req: dict[str, Any]) -> dict[str, Any]:
        hashes = _hashes(req, "hashes", 81)
        with self._lock:
            return {"trytes": [self._trytes.get(h, "9" * TX_TRYTES) for h in hashes],
                    "duration": 0}

    def _cmd_getInclusionStates(self, req: dict[str, Any]) -> dict[str, Any]:
        hashes = _hashes(req, "transactions", 81)
        with self._lock:
            return {"states": [self._included(h) for h in hashes], "duration": 0}

    def _included(self, h: str) -> bool:
        """Only the transactions of the one attachment a confirmation included."""
        if h == self.genesis_hash:
            return True
        tx = self._txs.get(h)
        rec = self.bundles.get(str(tx.bundle_hash)) if tx is not None else None
        return rec is not None and rec.state == "confirmed" and self._tail_of[h] == rec.included

    def _cmd_checkConsistency(self, req: dict[str, Any]) -> dict[str, Any]:
        tails = _hashes(req, "tails", 81)
        with self._lock:
            for h in tails:
                tx = self._txs.get(h)
                if tx is None:
                    return {"state": False, "duration": 0,
                            "info": f"tails are not solid (missing a referenced tx): {h}"}
                if tx.current_index != 0:
                    raise NodeError(f"Invalid transaction, not a tail: {h}")
                rec = self.bundles.get(str(tx.bundle_hash))
                if rec is not None and rec.state == "conflicting":
                    return {"state": False, "duration": 0,
                            "info": f"tails are not consistent (bundle is invalid): {h}"}
                if rec is not None and rec.state == "confirmed" and rec.included != h:
                    # Another attachment spent the inputs: this one would spend them again.
                    return {"state": False, "duration": 0,
                            "info": "tails are not consistent (would lead to inconsistent "
                                    f"ledger state or below max depth): {h}"}
            return {"state": True, "info": "", "duration": 0}

    def _cmd_getTransactionsToApprove(self, req: dict[str, Any]) -> dict[str, Any]:
        depth = req.get("depth")
        if isinstance(depth, bool) or not isinstance(depth, int) or not 0 < depth <= 15:
            raise NodeError("Invalid depth input")
        with self._lock:
            reference = req.get("reference")
            if reference is not None and reference not in self._txs:
                raise NodeError(f"Reference transaction not found: {reference}")
            tips = self._tips[-20:] or [self.genesis_hash]
            trunk = self._rng.choice(tips)
            branch = reference or self._rng.choice(tips)
            return {"trunkTransaction": trunk, "branchTransaction": branch, "duration": 0}

    def _cmd_attachToTangle(self, req: dict[str, Any]) -> dict[str, Any]:
        trunk = _one_hash(req, "trunkTransaction")
        branch = _one_hash(req, "branchTransaction")
        mwm = req.get("minWeightMagnitude")
        if isinstance(mwm, bool) or not isinstance(mwm, int) or not 0 < mwm <= 243:
            raise NodeError("Invalid minWeightMagnitude input")
        trytes = _trytes_list(req)
        done = _attach_pairs(trytes, trunk, branch, mwm, lambda: int(time.time() * 1000))
        with self._lock:
            for powed, digest in done:
                self._hashes[powed] = digest
                if weight_of(digest) < self.mwm:
                    # IRI checks the result against its own MWM.
                    raise NodeError("Invalid transaction hash")
        return {"trytes": [t for t, _ in done], "duration": 0}

    def _cmd_interruptAttachingToTangle(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"duration": 0}

    def _cmd_broadcastTransactions(self, req: dict[str, Any]) -> dict[str, Any]:
        self._receive("broadcastTransactions", _trytes_list(req))
        return {"duration": 0}

    def _cmd_storeTransactions(self, req: dict[str, Any]) -> dict[str, Any]:
        self._receive("storeTransactions", _trytes_list(req))
        return {"duration": 0}

    # -- receiving transactions

    def _hash(self, trytes: str) -> str:
        h = self._hashes.get(trytes)
        if h is None:
            h = self._hashes[trytes] = curl_hash(trytes)
        return h

    def _receive(self, command: str, trytes: list[str]) -> None:
        """Check and store whole bundles; any problem rejects the whole request."""
        with self._lock:
            hashes = [self._hash(t) for t in trytes]
            if all(h in self._trytes for h in hashes):
                return  # already stored (broadcast and store carry the same trytes)
            key = tuple(sorted(hashes))
            try:
                attachments = self._check(trytes, hashes)
            except NodeError as err:
                if key not in self._rejected_keys:
                    self._rejected_keys.add(key)
                    bundle = trytes[0][2349:2430] if trytes else ""
                    self.rejected.append(Rejection(command, str(err), bundle))
                raise
            for att in attachments:
                self._store(att)

    def _check(self, trytes: list[str], hashes: list[str]) -> list[_Attach]:
        by_hash: dict[str, tuple[str, Transaction]] = {}
        for raw, h in zip(trytes, hashes, strict=True):
            if weight_of(h) < self.mwm:
                raise NodeError(f"Invalid transaction hash: weight {weight_of(h)} "
                                f"below minimum weight magnitude {self.mwm}")
            tx = Transaction.from_tryte_string(raw, hash_=TransactionHash(h))
            if not self.snapshot_ms <= tx.attachment_timestamp <= time.time() * 1000 \
                    + MAX_FUTURE_MS:
                raise NodeError("Invalid transaction timestamp")
            by_hash[h] = raw, tx
        attachments: list[_Attach] = []
        for raw, tail in [v for v in by_hash.values() if v[1].current_index == 0]:
            att, tx = _Attach([tail], [raw]), tail
            while tx.current_index < tx.last_index:
                nxt_raw, nxt = by_hash.get(str(tx.trunk_transaction_hash), ("", None))
                if nxt is None or nxt.bundle_hash != tail.bundle_hash \
                        or nxt.current_index != tx.current_index + 1:
                    raise NodeError(f"Incomplete or broken bundle {tail.bundle_hash}: "
                                    f"transaction {tx.current_index + 1} is not its trunk")
                att.txs.append(nxt)
                att.raw.append(nxt_raw)
                tx = nxt
            attachments.append(att)
        if {str(t.hash) for a in attachments for t in a.txs} != set(by_hash):
            raise NodeError("Incomplete bundle: transactions without their tail")
        for att in attachments:
            self._check_bundle(att)
        return attachments

    def _check_bundle(self, att: _Attach) -> None:
        txs = att.txs
        head_trunk = txs[-1].trunk_transaction_hash
        for tx in txs[:-1]:
            if tx.branch_transaction_hash != head_trunk:
                raise NodeError(f"Invalid bundle {tx.bundle_hash}: branch of transaction "
                                f"{tx.current_index} is not the head's trunk")
        for tx in txs:
            if abs(tx.value) > TOTAL_SUPPLY:
                raise NodeError(f"Invalid transaction value: {tx.value}")
            if tx.value != 0 and tx.address.as_trits()[-1] != 0:
                raise NodeError(f"Invalid address {tx.address}: last trit of a value "
                                "transaction's address must be 0")
        content = tuple(raw[_CONTENT] for raw in att.raw)
        if content in self._content_ok:
            return  # a reattachment of a bundle already checked
        claimed = str(txs[0].bundle_hash)
        actual = bundle_hash_of(att.raw)
        if actual != claimed:
            # BundleValidator does not recompute the hash: a value changed after
            # signing (still summing to zero) passes it and is only caught here.
            raise NodeError(f"Invalid bundle hash: the essence hashes to {actual}, "
                            f"not {claimed}")
        errors = BundleValidator(Bundle(txs)).errors
        if errors:
            raise NodeError(f"Invalid bundle {claimed}: {'; '.join(errors)}")
        self._content_ok.add(content)

    def _store(self, att: _Attach) -> None:
        txs = att.txs
        bundle_hash = str(txs[0].bundle_hash)
        for tx, raw in zip(txs, att.raw, strict=True):
            h = str(tx.hash)
            self._trytes[h] = raw
            self._txs[h] = tx
            self._tail_of[h] = str(txs[0].hash)
            for approved in (str(tx.trunk_transaction_hash), str(tx.branch_transaction_hash)):
                if approved in self._tips:
                    self._tips.remove(approved)
        self._tips.append(str(txs[0].hash))
        rec = self.bundles.get(bundle_hash)
        if rec is None:
            changes: dict[str, int] = {}
            for tx in txs:
                if tx.value:
                    addr = str(tx.address)
                    changes[addr] = changes.get(addr, 0) + tx.value
            rec = self.bundles[bundle_hash] = BundleRecord(bundle_hash, [], changes,
                                                           self.clock())
        rec.tails.append(str(txs[0].hash))
        for addr, value in rec.changes.items():
            if value < 0:
                self._spent.add(addr)
                self._signers.setdefault(addr, set()).add(bundle_hash)


# -- request validation helpers --------------------------------------------------

_ALPHABET = frozenset("9ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _is_trytes(s: object, sizes: tuple[int, ...]) -> bool:
    return isinstance(s, str) and len(s) in sizes and set(s) <= _ALPHABET


def _hashes(req: dict[str, Any], key: str, size: int, *,
            allow_checksum: bool = False) -> list[str]:
    values = req.get(key)
    sizes = (size, size + 9) if allow_checksum else (size,)
    if size == 27:
        sizes = tuple(range(1, 28))
    if not isinstance(values, list) or not all(_is_trytes(v, sizes) for v in values):
        raise NodeError(f"Invalid {key} input")
    return [v[:size] for v in values]


def _one_hash(req: dict[str, Any], key: str) -> str:
    value = req.get(key)
    if not _is_trytes(value, (81,)):
        raise NodeError(f"Invalid {key} input")
    return value


def _trytes_list(req: dict[str, Any]) -> list[str]:
    values = req.get("trytes")
    if not isinstance(values, list) or not values \
            or not all(_is_trytes(v, (TX_TRYTES,)) for v in values):
        raise NodeError("Invalid trytes input")
    return values


# -- HTTP -------------------------------------------------------------------------

class _Handler(JsonHandler):
    node: LegacyNode

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if not self.headers.get("X-IOTA-API-Version"):
            return self._send(400, {"error": "Invalid API Version"})
        try:
            req = json.loads(body)
        except ValueError:
            return self._send(400, {"error": "Invalid JSON in request"})
        if not isinstance(req, dict) or not isinstance(req.get("command"), str):
            return self._send(400, {"error": "COMMAND parameter has not been specified "
                                             "in the request."})
        command = req.pop("command")
        taken = self.node._take_fault(command)
        fault = taken.kind if taken is not None else None
        if taken is not None and fault == "answer":
            with self.node._lock:
                self.node.requests.append((command, req))
            return self._send_raw(200, json.dumps(taken.answer).encode(), "application/json")
        if fault == "hang":
            self.node._release.wait(self.node.hang_s)
        elif fault == "http500":
            msg = "fault injected: internal error"
            return self._send(500, {"error": msg, "exception": msg})
        elif fault == "garbage":
            return self._send_raw(200, b"<html><body>502 Bad Gateway</body></html>\n",
                                  "text/html")
        elif fault == "drop" and command in ("broadcastTransactions", "storeTransactions"):
            return self._send(200, {"duration": 0})
        try:
            answer = self.node.handle(command, req)
        except NodeError as err:
            return self._send(400, {"error": str(err), "duration": 0})
        except Exception as err:  # a bug in the node: say so like IRI would
            return self._send(500, {"exception": f"{type(err).__name__}: {err}"})
        self._send(200, answer)


LegacyNode.handler = _Handler


# -- command line -------------------------------------------------------------------

def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=14265)
    parser.add_argument("--mwm", type=int, default=3, help="minimum weight magnitude")
    parser.add_argument("--confirm-delay", type=float, default=5.0,
                        help="seconds until an accepted bundle confirms")
    parser.add_argument("--fund", action="append", default=[], metavar="ADDRESS=IOTA")
    parser.add_argument("--fund-seed", action="append", default=[],
                        metavar="SEED:INDEX=IOTA")
    parser.add_argument("--security-level", type=int, default=2)
    args = parser.parse_args(argv)
    node = LegacyNode(mwm=args.mwm, confirm_delay_s=args.confirm_delay, port=args.port)
    for item in args.fund:
        address, amount = item.split("=")
        node.fund(address, int(amount))
    for item in args.fund_seed:
        where, amount = item.split("=")
        seed, index = where.split(":")
        addr = node.fund_seed(seed, int(index), int(amount), args.security_level)
        print(f"funded {addr} with {amount} i")
    node.serve_until_interrupted("legacy IOTA test node", f"mwm {node.mwm}")


if __name__ == "__main__":
    main()
