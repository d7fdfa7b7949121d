"""An IOTA fullnode (Move-based network, JSON-RPC 2.0) of our own on 127.0.0.1, for tests.

It holds coin objects (id, version, digest, balance, owner) and answers the
methods our wallet and ``check`` use, as a real fullnode does:
``iotax_getCoins`` (paged), ``iotax_getBalance``, ``iotax_getReferenceGasPrice``,
``iota_getChainIdentifier``, ``iota_getLatestCheckpointSequenceNumber``,
``iota_dryRunTransactionBlock``, ``iota_executeTransactionBlock``,
``iota_getTransactionBlock`` (with ``showEffects``, ``showRawInput`` and
``showBalanceChanges``), ``iota_getObject``, ``iota_multiGetObjects``,
``iota_tryGetPastObject``.

It is strict where the network is: it decodes the BCS ``TransactionData``
itself (its own reader, not the wallet's writer) and refuses any byte it does
not understand or trailing bytes; it verifies the Ed25519 signature over the
intent message and that the key's address is the sender; every gas coin must
exist, belong to the sender and be named at its current version and digest
(a stale version is refused: a signed transaction can execute at most once);
the gas price must be at least the reference price and the budget at least the
minimum and covered by the gas coins. Execution smashes the gas coins into the
first, splits and transfers, charges computation + storage - rebate, bumps
every changed object to one new version (Lamport) and a new digest. A budget
too small for the cost, or a split larger than the coin, executes with status
``failure``: nothing moves, but the gas is charged, as on the network.
Executing a transaction that has already executed answers its effects again.

``showRawInput`` answers ``rawTransaction`` as a fullnode does: base64 of the
BCS ``SenderSignedData`` (the one signed transaction: intent ``[0, 0, 0]``,
the ``TransactionData``, the signatures), not of the bare ``TransactionData``.

It keeps every version of every coin (``iota_tryGetPastObject``) and can be
made to forget, as a pruning or lagging node does: ``forget(digest)`` stops
serving a transaction (``Could not find the referenced transaction``, and
executing its bytes again is refused, its coins having moved), and
``prune_history()`` drops the past versions of objects (``VersionNotFound``).
Balance changes are derived from those versions, as a fullnode derives them
(``balance_changes.rs``: the coins at the versions the transaction read, and
at the versions it wrote); once a successful transaction's are pruned,
``showBalanceChanges`` leaves ``balanceChanges`` out and says why in
``errors`` (``Cannot retrieve balance changes: ...``), as ``read_api.rs``
does. A failed one needs no object (its only change is the gas).

A lie no real node tells, for tests only: ``lie_about_bytes(digest, other)``
answers ``showRawInput`` of ``digest`` with the bytes of ``other``.

Faults: ``node.set_fault(kind, methods=..., times=...)`` with ``kind`` in
``FAULTS``: ``refuse`` (connection refused), ``hang``, ``http500``,
``rpc_error`` (a JSON-RPC error), ``garbage`` (an HTML page), ``lost`` (the
request is carried out, then the connection is dropped without an answer),
``hang_answer`` (carried out, then the answer is held until the fault clears).

Manual use::

    cd tests && uv run python -m support.iota_node --port 9000 --fund 0xADDRESS=5000000000
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import nacl.exceptions
import nacl.signing

from .http_node import HttpNode, JsonHandler

FAULTS = ("refuse", "hang", "http500", "rpc_error", "garbage", "lost", "hang_answer")
IOTA_COIN = "0x2::iota::IOTA"
CHAIN_ID = "70322e65"
REFERENCE_GAS_PRICE = 1000
COMPUTATION_UNITS = 1000  # a transfer's computation, in gas units (the minimum bucket)
MIN_BUDGET_UNITS = 1000
MAX_BUDGET = 50_000_000_000
STORAGE_PER_OBJECT = 988_000  # nanos of storage fund deposit per stored coin object
REBATE_RATE = 0.99  # the share of an object's deposit refunded when it changes
MAX_GAS_COINS = 256
MAX_MULTI_GET = 50  # QUERY_MAX_RESULT_LIMIT: a fullnode refuses more ids in one call
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
NOT_FOUND = "Could not find the referenced transaction"
DELETED_DIGEST = "7gyGAp71YXQRoxmFBaHxofQXAipvgHyBKPyxmdSJxyvz"  # OBJECT_DIGEST_DELETED
INVALID_PARAMS, TX_REJECTED = -32602, -32002


class NodeError(Exception):
    """Answered as a JSON-RPC error."""

    def __init__(self, message: str, code: int = INVALID_PARAMS) -> None:
        self.code = code
        super().__init__(message)


def b58(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = _B58[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def unb58(text: str) -> bytes:
    n = 0
    for c in text:
        i = _B58.find(c)
        if i < 0:
            raise NodeError(f"invalid base58 digest {text!r}")
        n = n * 58 + i
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


def address_of_key(public_key: bytes) -> str:
    return "0x" + hashlib.blake2b(public_key, digest_size=32).hexdigest()


# -- a BCS reader for TransactionData (written apart from the wallet's writer) --------

class Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise NodeError("Deserialization error: unexpected end of transaction bytes")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def uleb(self) -> int:
        value = shift = 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                if byte == 0 and shift:
                    raise NodeError("Deserialization error: non-canonical ULEB128")
                return value
            shift += 7
            if shift > 28:
                raise NodeError("Deserialization error: ULEB128 too long")

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "little")

    def u64(self) -> int:
        return int.from_bytes(self.take(8), "little")

    def address(self) -> str:
        return "0x" + self.take(32).hex()

    def bytes_(self) -> bytes:
        return self.take(self.uleb())

    def vec(self, item: Any) -> list[Any]:
        return [item() for _ in range(self.uleb())]

    def variant(self, names: tuple[str, ...], what: str) -> str:
        i = self.uleb()
        if i >= len(names):
            raise NodeError(f"Deserialization error: unknown {what} variant {i}")
        return names[i]

    def end(self) -> None:
        if self.pos != len(self.data):
            raise NodeError("Deserialization error: trailing bytes after the transaction")


@dataclass(frozen=True)
class Ref:
    object_id: str
    version: int
    digest: str


@dataclass
class Tx:
    """A decoded programmable transaction, restricted to what coins can do."""

    sender: str
    inputs: list[tuple[str, Any]]  # ("pure", bytes) | ("object", Ref)
    commands: list[tuple[str, Any]]
    gas: list[Ref]
    gas_owner: str
    gas_price: int
    gas_budget: int
    expiration: int | None


def _argument(r: Reader) -> tuple[str, Any]:
    kind = r.variant(("GasCoin", "Input", "Result", "NestedResult"), "Argument")
    if kind == "GasCoin":
        return (kind, None)
    if kind == "NestedResult":
        return (kind, (r.u16(), r.u16()))
    return (kind, r.u16())


def _ref(r: Reader) -> Ref:
    object_id = r.address()
    version = r.u64()
    digest = r.bytes_()
    if len(digest) != 32:
        raise NodeError("Deserialization error: an object digest must be 32 bytes")
    return Ref(object_id, version, b58(digest))


def decode_transaction(data: bytes) -> Tx:
    """Decode BCS ``TransactionData``; refuse what a coin-only node cannot run."""
    r = Reader(data)
    r.variant(("V1",), "TransactionData")
    kind = r.variant(("ProgrammableTransaction", "Genesis", "ConsensusCommitPrologueV1",
                      "AuthenticatorStateUpdateV1", "EndOfEpochTransaction",
                      "RandomnessStateUpdate"), "TransactionKind")
    if kind != "ProgrammableTransaction":
        raise NodeError(f"{kind} transactions cannot be submitted by users")

    def call_arg() -> tuple[str, Any]:
        k = r.variant(("Pure", "Object"), "CallArg")
        if k == "Pure":
            return ("pure", r.bytes_())
        if r.variant(("ImmOrOwnedObject", "SharedObject", "Receiving"), "ObjectArg") \
                != "ImmOrOwnedObject":
            raise NodeError("this test node holds no shared or receiving objects")
        return ("object", _ref(r))

    def command() -> tuple[str, Any]:
        k = r.variant(("MoveCall", "TransferObjects", "SplitCoins", "MergeCoins", "Publish",
                       "MakeMoveVec", "Upgrade"), "Command")
        if k == "TransferObjects":
            return (k, (r.vec(lambda: _argument(r)), _argument(r)))
        if k in ("SplitCoins", "MergeCoins"):
            return (k, (_argument(r), r.vec(lambda: _argument(r))))
        raise NodeError(f"this test node runs no {k} command")

    inputs = r.vec(call_arg)
    commands = r.vec(command)
    sender = r.address()
    gas = r.vec(lambda: _ref(r))
    owner, price, budget = r.address(), r.u64(), r.u64()
    expiration = None if r.variant(("None", "Epoch"), "TransactionExpiration") == "None" \
        else r.u64()
    r.end()
    return Tx(sender, inputs, commands, gas, owner, price, budget, expiration)


def transaction_digest(data: bytes) -> str:
    return b58(hashlib.blake2b(b"TransactionData::" + data, digest_size=32).digest())


# -- state ------------------------------------------------------------------------------

@dataclass
class Coin:
    object_id: str
    version: int
    digest: str
    balance: int
    owner: str
    previous_tx: str
    storage_rebate: int = int(STORAGE_PER_OBJECT * REBATE_RATE)

    def ref(self) -> dict[str, Any]:
        return {"objectId": self.object_id, "version": self.version, "digest": self.digest}


@dataclass
class Executed:
    digest: str
    tx: Tx
    tx_bytes: str
    signatures: list[str]
    effects: dict[str, Any]
    checkpoint: int
    fee_nanos: int
    success: bool
    transfers: dict[str, int] = field(default_factory=dict)  # receiver -> nanos


class IotaNode(HttpNode):
    """State and API of the test node; ``start()`` serves it over HTTP (``http_node``)."""

    FAULTS = FAULTS
    NAME = "iota-node"

    def __init__(self, *, hang_s: float = 30.0, port: int = 0, page_size: int = 50,
                 gas_price: int = REFERENCE_GAS_PRICE) -> None:
        self._init_http(port=port, hang_s=hang_s)
        self.page_size = page_size
        self.gas_price = gas_price
        self.coins: dict[str, Coin] = {}
        self.deleted: dict[str, Coin] = {}
        self.executed: dict[str, Executed] = {}  # every executed transaction (the truth)
        self.forgotten: set[str] = set()  # executed, but no longer served (pruned)
        self.raw_lies: dict[str, str] = {}  # digest -> whose bytes showRawInput gives
        self.between_objects: Callable[[str], None] | None = None  # see multiGetObjects
        # object id -> version -> what the object was at that version (None: deleted there)
        self.history: dict[str, dict[int, Coin | None]] = {}
        self.rejected: list[tuple[str, str]] = []  # (method, reason)
        self.requests: list[tuple[str, list[Any]]] = []
        self.checkpoint = 1
        self.epoch = 0
        self._epoch_starts: list[tuple[int, int]] = [(0, 0)]  # (checkpoint, epoch it begins)

    # -- test controls

    def fund(self, address: str, nanos: int) -> str:
        """A new coin of ``nanos`` owned by ``address``; returns its object id."""
        with self._lock:
            coin = Coin("0x" + secrets.token_hex(32), 1, b58(secrets.token_bytes(32)), nanos,
                        address.lower(), b58(secrets.token_bytes(32)))
            self.coins[coin.object_id] = coin
            self._remember(coin)
            return coin.object_id

    def balance(self, address: str) -> int:
        with self._lock:
            return sum(c.balance for c in self.coins.values() if c.owner == address.lower())

    def coins_of(self, address: str) -> list[Coin]:
        with self._lock:
            return sorted((c for c in self.coins.values() if c.owner == address.lower()),
                          key=lambda c: c.object_id)

    def spend_elsewhere(self, object_id: str) -> None:
        """Another transaction (say, from the same key on another machine) uses the coin."""
        with self._lock:
            coin = self.coins[object_id]
            coin.version += 1
            coin.digest = b58(secrets.token_bytes(32))
            coin.previous_tx = b58(secrets.token_bytes(32))
            self._remember(coin)

    def forget(self, digest: str) -> None:
        """Stop serving an executed transaction, as a node that pruned it (or a replica
        that lags) does: not found by digest; its bytes sent again are refused."""
        with self._lock:
            assert digest in self.executed, digest
            self.forgotten.add(digest)

    def prune_history(self) -> None:
        """Forget every past version of every object (a pruning node): only the live
        versions (and the deletions) stay answerable."""
        with self._lock:
            for object_id, versions in self.history.items():
                live = self.coins.get(object_id)
                self.history[object_id] = {v: c for v, c in versions.items()
                                           if c is None or (live is not None
                                                            and v == live.version)}

    def lie_about_bytes(self, digest: str, other: str) -> None:
        """Test-only (no real node does this): answer ``showRawInput`` of ``digest`` with
        the ``rawTransaction`` of the executed transaction ``other``."""
        with self._lock:
            assert digest in self.executed and other in self.executed, (digest, other)
            self.raw_lies[digest] = other

    def _remember(self, coin: Coin) -> None:
        self.history.setdefault(coin.object_id, {})[coin.version] = replace(coin)

    def paid_to(self, address: str) -> dict[str, int]:
        """Digest -> nanos transferred to ``address`` by each successful transaction."""
        with self._lock:
            return {d: e.transfers.get(address.lower(), 0) for d, e in self.executed.items()
                    if e.success and e.transfers.get(address.lower())}

    def set_fault(self, kind: str, *, methods: Iterable[str] | None = None,
                  times: int | None = None) -> None:
        """Misbehave from now on: ``kind`` in ``FAULTS``, for ``methods`` (default: all),
        ``times`` requests (default: until ``clear_fault``)."""
        self._set_fault(kind, methods, times)

    def method_names(self) -> list[str]:
        return [m for m, _ in self.requests]

    def next_epoch(self, gas_price: int | None = None) -> None:
        """End the epoch (a new checkpoint starts the next), perhaps with a new gas price."""
        with self._lock:
            self.epoch += 1
            self.checkpoint += 1
            self._epoch_starts.append((self.checkpoint, self.epoch))
            if gas_price is not None:
                self.gas_price = gas_price

    # -- JSON-RPC methods

    def handle(self, method: str, params: list[Any]) -> Any:
        fn = getattr(self, "_rpc_" + method, None)
        if fn is None:
            raise NodeError(f"Method not found: {method}", code=-32601)
        if method == "iota_multiGetObjects":  # one object at a time, as a fullnode reads
            return fn(*params)
        with self._lock:
            return fn(*params)

    def _rpc_iota_getChainIdentifier(self) -> str:
        return CHAIN_ID

    def _rpc_iota_getLatestCheckpointSequenceNumber(self) -> str:
        return str(self.checkpoint)

    def _rpc_iota_getCheckpoint(self, sequence: str) -> dict[str, Any]:
        if not isinstance(sequence, str) or not sequence.isdigit() \
                or not 0 <= int(sequence) <= self.checkpoint:
            raise NodeError(f"Could not find the referenced checkpoint {sequence!r}")
        number = int(sequence)
        epoch = max((e for c, e in self._epoch_starts if c <= number), default=0)
        return {"sequenceNumber": sequence, "epoch": str(epoch),
                "digest": b58(hashlib.blake2b(sequence.encode(), digest_size=32).digest()),
                "timestampMs": str(int(time.time() * 1000)), "transactions": []}

    def _rpc_iotax_getReferenceGasPrice(self) -> str:
        return str(self.gas_price)

    def _rpc_iotax_getBalance(self, owner: str, coin_type: str | None = None) -> dict[str, Any]:
        mine = [c for c in self.coins.values() if c.owner == _address(owner)]
        if coin_type not in (None, IOTA_COIN):
            mine = []
        return {"coinType": coin_type or IOTA_COIN, "coinObjectCount": len(mine),
                "totalBalance": str(sum(c.balance for c in mine)), "lockedBalance": {}}

    def _rpc_iotax_getCoins(self, owner: str, coin_type: str | None = None,
                            cursor: str | None = None, limit: int | None = None
                            ) -> dict[str, Any]:
        mine = sorted((c for c in self.coins.values() if c.owner == _address(owner)),
                      key=lambda c: c.object_id)
        if coin_type not in (None, IOTA_COIN):
            mine = []
        if cursor is not None:
            mine = [c for c in mine if c.object_id > _address(cursor)]
        size = min(limit or self.page_size, self.page_size)
        page, more = mine[:size], len(mine) > size
        return {"data": [{"coinType": IOTA_COIN, "coinObjectId": c.object_id,
                          "version": str(c.version), "digest": c.digest,
                          "balance": str(c.balance), "previousTransaction": c.previous_tx}
                         for c in page],
                "nextCursor": page[-1].object_id if page else None, "hasNextPage": more}

    def _rpc_iota_getObject(self, object_id: str, options: Any = None) -> dict[str, Any]:
        oid = _address(object_id)
        coin = self.coins.get(oid)
        if coin is not None:
            return {"data": _object_data(coin, options)}
        gone = self.deleted.get(oid)
        if gone is not None:
            return {"error": {"code": "deleted", "object_id": oid,
                              "version": str(gone.version), "digest": gone.digest}}
        return {"error": {"code": "notExists", "object_id": oid}}

    def _rpc_iota_multiGetObjects(self, ids: list[str], options: Any = None) -> list[Any]:
        """Each object read apart (not a snapshot): ``between_objects(object_id)``, if
        set, runs after each read, as another request landing in between would."""
        if not isinstance(ids, list):
            raise NodeError("Invalid params: object ids must be a list")
        if len(ids) > MAX_MULTI_GET:
            raise NodeError(f"Invalid params: size limit exceeded: {MAX_MULTI_GET}")
        out = []
        for object_id in ids:
            with self._lock:
                out.append(self._rpc_iota_getObject(object_id, options))
            if self.between_objects is not None:
                self.between_objects(object_id)
        return out

    def _rpc_iota_tryGetPastObject(self, object_id: str, version: int,
                                   options: Any = None) -> dict[str, Any]:
        """An object as it was at ``version`` (the shapes of the SDK's ``ObjectRead``)."""
        oid = _address(object_id)
        if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version < 2**64:
            raise NodeError(f"Invalid params: version {version!r} is not a u64")
        versions = self.history.get(oid)
        if versions is None:
            return {"status": "ObjectNotExists", "details": oid}
        latest = max(versions) if versions else 0
        live = self.coins.get(oid) or self.deleted.get(oid)
        if live is not None:
            latest = max(latest, live.version)
        if version > latest:
            return {"status": "VersionTooHigh", "details": {
                "object_id": oid, "asked_version": str(version), "latest_version": str(latest)}}
        if version not in versions:
            return {"status": "VersionNotFound", "details": [oid, str(version)]}
        coin = versions[version]
        if coin is None:
            return {"status": "ObjectDeleted", "details": {
                "objectId": oid, "version": str(version), "digest": DELETED_DIGEST}}
        return {"status": "VersionFound", "details": _object_data(coin, options)}

    def _rpc_iota_getTransactionBlock(self, digest: str, options: Any = None) -> dict[str, Any]:
        if not isinstance(digest, str) or len(unb58(digest)) != 32:
            raise NodeError(f"Invalid params: {digest!r} is not a transaction digest")
        e = self.executed.get(digest)
        if e is None or digest in self.forgotten:
            raise NodeError(f"{NOT_FOUND} [TransactionDigest({digest})].")
        return self._response(e, options)

    def _response(self, e: Executed, options: Any) -> dict[str, Any]:
        show = _response_options(options)
        out: dict[str, Any] = {"digest": e.digest, "checkpoint": str(e.checkpoint),
                               "timestampMs": str(int(time.time() * 1000))}
        if show.get("showEffects"):
            out["effects"] = e.effects
        if show.get("showRawInput"):
            out["rawTransaction"] = sender_signed_data(self.executed[self.raw_lies.get(
                e.digest, e.digest)])
        if show.get("showBalanceChanges"):
            gone = self._pruned_input_of(e)
            if gone is None:
                out["balanceChanges"] = balance_changes(e)
            else:  # read_api.rs: the error goes to "errors", balanceChanges stays out
                object_id, version = gone
                out.setdefault("errors", []).append(
                    "Cannot retrieve balance changes: Error checking transaction input"
                    f" objects: Could not find the referenced object {object_id} at version"
                    f" Some({version})")
        return out

    def _pruned_input_of(self, e: Executed) -> tuple[str, int] | None:
        """The first (object id, version) the balance changes of ``e`` need and this node
        no longer holds, or None. A fullnode reads the coins at the versions the
        transaction read (``modifiedAtVersions``) and at those it wrote (created,
        mutated); for a failure it reads none (the gas alone changed)."""
        if not e.success:
            return None
        needed = [(m["objectId"], int(m["sequenceNumber"]))
                  for m in e.effects["modifiedAtVersions"]]
        needed += [(c["reference"]["objectId"], int(c["reference"]["version"]))
                   for c in e.effects["created"] + e.effects["mutated"]]
        for object_id, version in needed:
            if self.history.get(object_id, {}).get(version) is None:
                return object_id, version
        return None

    def _rpc_iota_dryRunTransactionBlock(self, tx_bytes: str) -> dict[str, Any]:
        raw = _b64(tx_bytes, "tx_bytes")
        tx = decode_transaction(raw)
        self._check_inputs(tx)
        effects, *_ = self._execute(tx, transaction_digest(raw), apply=False)
        return {"effects": effects, "events": [], "objectChanges": [], "balanceChanges": [],
                "input": {}}

    def _rpc_iota_executeTransactionBlock(self, tx_bytes: str, signatures: list[str],
                                          options: Any = None, request_type: Any = None
                                          ) -> dict[str, Any]:
        raw = _b64(tx_bytes, "tx_bytes")
        digest = transaction_digest(raw)
        tx = decode_transaction(raw)
        if not isinstance(signatures, list) or len(signatures) != 1:
            raise self._reject("executeTransactionBlock",
                               "Expected exactly one signature from the sender")
        self._check_signature(tx, raw, signatures[0])
        done = self.executed.get(digest)
        if done is not None and digest not in self.forgotten:
            # already executed: a fullnode answers its effects again
            return self._response(done, options) | {"confirmedLocalExecution": True}
        try:
            self._check_inputs(tx)
        except NodeError as err:
            raise self._reject("executeTransactionBlock", str(err)) from None
        effects, fee, success, transfers = self._execute(tx, digest, apply=True)
        self.checkpoint += 1
        e = self.executed[digest] = Executed(digest, tx, tx_bytes, list(signatures), effects,
                                             self.checkpoint, fee, success, transfers)
        return self._response(e, options) | {"confirmedLocalExecution": True}

    # -- checks and execution

    def _reject(self, method: str, reason: str) -> NodeError:
        self.rejected.append((method, reason))
        return NodeError("Transaction validator signing failed due to issues with transaction"
                         f" inputs, please review the errors and try again: {reason}",
                         code=TX_REJECTED)

    def _check_signature(self, tx: Tx, raw: bytes, signature: str) -> None:
        sig = _b64(signature, "signature")
        if len(sig) != 97 or sig[0] != 0:
            raise self._reject("executeTransactionBlock",
                               "Invalid user signature: expected flag 0x00 (Ed25519), "
                               "64 bytes of signature and a 32-byte public key")
        public_key = sig[65:]
        message = hashlib.blake2b(bytes([0, 0, 0]) + raw, digest_size=32).digest()
        try:
            nacl.signing.VerifyKey(public_key).verify(message, sig[1:65])
        except (nacl.exceptions.BadSignatureError, ValueError):
            raise self._reject("executeTransactionBlock",
                               "Invalid user signature: signature does not verify") from None
        if address_of_key(public_key) != tx.sender:
            raise self._reject("executeTransactionBlock",
                               f"Invalid user signature: signer {address_of_key(public_key)}"
                               f" is not the sender {tx.sender}")

    def _check_inputs(self, tx: Tx) -> None:
        if tx.expiration is not None and tx.expiration < self.epoch:
            raise NodeError(f"Transaction expired at epoch {tx.expiration}")
        if tx.gas_owner != tx.sender:
            raise NodeError("Sponsored transactions are not supported by this test node")
        if not 1 <= len(tx.gas) <= MAX_GAS_COINS:
            raise NodeError(f"Gas payment must name 1 to {MAX_GAS_COINS} coins")
        if len({r.object_id for r in tx.gas}) != len(tx.gas):
            raise NodeError("Mutable object used more than once in gas payment")
        if tx.gas_price < self.gas_price:
            raise NodeError(f"Gas price {tx.gas_price} under reference gas price "
                            f"(RGP) {self.gas_price}")
        if tx.gas_budget < MIN_BUDGET_UNITS * tx.gas_price:
            raise NodeError(f"Gas budget {tx.gas_budget} is lower than min "
                            f"{MIN_BUDGET_UNITS * tx.gas_price}")
        if tx.gas_budget > MAX_BUDGET:
            raise NodeError(f"Gas budget {tx.gas_budget} is higher than max {MAX_BUDGET}")
        refs = tx.gas + [v for k, v in tx.inputs if k == "object"]
        for ref in refs:
            coin = self.coins.get(ref.object_id)
            if coin is None:
                if ref.object_id in self.deleted:
                    raise NodeError(f"Object {ref.object_id} was deleted")
                raise NodeError(f"Could not find the referenced object {ref.object_id}")
            if coin.owner != tx.sender:
                raise NodeError(f"Object {ref.object_id} is not owned by the sender")
            if ref.version != coin.version:
                raise NodeError(f"Object ID {ref.object_id} Version {ref.version} Digest "
                                f"{ref.digest} is not available for consumption, current "
                                f"version: {coin.version}")
            if ref.digest != coin.digest:
                raise NodeError(f"Invalid object digest for {ref.object_id}: expected "
                                f"{coin.digest}, got {ref.digest}")
        total = sum(self.coins[r.object_id].balance for r in tx.gas)
        if total < tx.gas_budget:
            raise NodeError(f"Balance of gas object {total} is lower than the needed amount:"
                            f" {tx.gas_budget}")

    def _run(self, tx: Tx, gas_value: int) -> tuple[dict[str, int], int, str]:
        """Run the commands on coin values; returns (receiver -> nanos, gas coin after,
        error). Only SplitCoins from the gas coin and TransferObjects of split results."""
        results: dict[int, list[int]] = {}
        transfers: dict[str, int] = {}

        def pure(arg: tuple[str, Any], size: int) -> bytes:
            if arg[0] != "Input" or arg[1] >= len(tx.inputs) or tx.inputs[arg[1]][0] != "pure":
                raise NodeError("this test node takes only pure inputs as values")
            raw = tx.inputs[arg[1]][1]
            if len(raw) != size:
                raise NodeError(f"Invalid pure argument: expected {size} bytes")
            return raw

        for i, (kind, body) in enumerate(tx.commands):
            if kind == "SplitCoins":
                coin, amounts = body
                if coin[0] != "GasCoin":
                    raise NodeError("this test node splits only the gas coin")
                values = [int.from_bytes(pure(a, 8), "little") for a in amounts]
                if sum(values) > gas_value:
                    return {}, gas_value, (f"InsufficientCoinBalance in command {i}")
                gas_value -= sum(values)
                results[i] = values
            elif kind == "TransferObjects":
                objects, to = body
                receiver = "0x" + pure(to, 32).hex()
                for obj in objects:
                    if obj[0] == "Result" and obj[1] in results and len(results[obj[1]]) == 1:
                        value = results.pop(obj[1])[0]
                    elif obj[0] == "NestedResult" and obj[1][0] in results:
                        value = results[obj[1][0]][obj[1][1]]
                    else:
                        raise NodeError("this test node transfers only split coins")
                    transfers[receiver] = transfers.get(receiver, 0) + value
            else:
                raise NodeError(f"this test node runs no {kind} command")
        if results:
            return {}, gas_value, "UnusedValueWithoutDrop"
        return transfers, gas_value, ""

    def _execute(self, tx: Tx, digest: str, *, apply: bool
                 ) -> tuple[dict[str, Any], int, bool, dict[str, int]]:
        gas = [self.coins[r.object_id] for r in tx.gas]
        total = sum(c.balance for c in gas)
        # The gas coin lends the transaction its balance less the budget.
        transfers, left, error = self._run(tx, total - tx.gas_budget)
        computation = COMPUTATION_UNITS * tx.gas_price
        storage = STORAGE_PER_OBJECT * (1 + len(transfers))
        rebate = sum(c.storage_rebate for c in gas)
        if not error and computation + storage > tx.gas_budget:
            error, transfers = "InsufficientGas", {}
        if error:  # nothing moves; the gas is charged (up to the budget)
            storage = STORAGE_PER_OBJECT
            computation = min(computation, tx.gas_budget)
            left = total - tx.gas_budget
        fee = computation + storage - rebate
        gas_after = left + tx.gas_budget - fee
        if not error:
            gas_after = total - sum(transfers.values()) - fee
        version = max(c.version for c in gas) + 1
        owner = {"AddressOwner": tx.sender}
        status = {"status": "success"} if not error else {"status": "failure", "error": error}
        created, deleted = [], []
        gas_ref = {"objectId": gas[0].object_id, "version": version,
                   "digest": b58(secrets.token_bytes(32))}
        if apply:
            first = gas[0]
            for c in gas[1:]:
                del self.coins[c.object_id]
                self.deleted[c.object_id] = c
                c.version = version
                self.history[c.object_id][version] = None
                deleted.append(c.ref())
            first.version, first.digest = version, gas_ref["digest"]
            first.balance, first.previous_tx = gas_after, digest
            first.storage_rebate = int(STORAGE_PER_OBJECT * REBATE_RATE)
            self._remember(first)
            for receiver, value in transfers.items():
                coin = Coin("0x" + secrets.token_hex(32), version, b58(secrets.token_bytes(32)),
                            value, receiver, digest)
                self.coins[coin.object_id] = coin
                self._remember(coin)
                created.append({"owner": {"AddressOwner": receiver}, "reference": coin.ref()})
        effects = {
            "messageVersion": "v1", "status": status, "executedEpoch": str(self.epoch),
            "gasUsed": {"computationCost": str(computation),
                        "computationCostBurned": str(computation),
                        "storageCost": str(storage), "storageRebate": str(rebate),
                        "nonRefundableStorageFee": "0"},
            "modifiedAtVersions": [{"objectId": c.object_id, "sequenceNumber": str(r.version)}
                                   for c, r in zip(gas, tx.gas, strict=True)],
            "transactionDigest": digest, "created": created,
            "mutated": [{"owner": owner, "reference": gas_ref}], "deleted": deleted,
            "gasObject": {"owner": owner, "reference": gas_ref},
        }
        return effects, fee, not error, transfers


RESPONSE_OPTIONS = ("showInput", "showRawInput", "showEffects", "showEvents",
                    "showObjectChanges", "showBalanceChanges", "showRawEffects")


def _response_options(options: Any) -> dict[str, bool]:
    """``IotaTransactionBlockResponseOptions`` as a fullnode reads it: null or an object
    whose known fields are booleans (serde: a wrong type is invalid params; unknown
    fields are ignored)."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise NodeError("Invalid params: options must be an object")
    for name in RESPONSE_OPTIONS:
        if name in options and not isinstance(options[name], bool):
            raise NodeError(f"Invalid params: invalid type: {options[name]!r}, expected a"
                            f" boolean for {name}")
    return {name: options.get(name, False) for name in RESPONSE_OPTIONS}


def balance_changes(e: Executed) -> list[dict[str, Any]]:
    """The ``balanceChanges`` of a transaction, as a fullnode derives them from its effects:
    the net change of each owner's IOTA coins (``BalanceChange``: owner, coinType, amount as
    a decimal i128), zeros left out, sorted by owner. The sender pays the transfers and
    the fee (a failure only the fee); each receiver gets what was transferred to it."""
    net: dict[str, int] = {e.tx.sender: -e.fee_nanos}
    for receiver, value in e.transfers.items():
        net[e.tx.sender] -= value
        net[receiver] = net.get(receiver, 0) + value
    return [{"owner": {"AddressOwner": owner}, "coinType": IOTA_COIN, "amount": str(amount)}
            for owner, amount in sorted(net.items()) if amount]


def _uleb(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def sender_signed_data(e: Executed) -> str:
    """``rawTransaction`` of ``e``: base64 of BCS ``SenderSignedData``, a vector of one
    ``SenderSignedTransaction { intent_message: { intent [0, 0, 0], value:
    TransactionData }, tx_signatures: Vec<GenericSignature> }``, each signature a byte
    vector (``iota-types``, ``transaction.rs``; what ``read_api.rs`` serializes)."""
    signatures = [base64.b64decode(s) for s in e.signatures]
    raw = (_uleb(1) + bytes([0, 0, 0]) + base64.b64decode(e.tx_bytes) + _uleb(len(signatures))
           + b"".join(_uleb(len(s)) + s for s in signatures))
    return base64.b64encode(raw).decode()


def _object_data(coin: Coin, options: Any) -> dict[str, Any]:
    """``IotaObjectData`` of a coin: what the options ask for, and only that."""
    if options is not None and not isinstance(options, dict):
        raise NodeError("Invalid params: options must be an object")
    show = options or {}
    data: dict[str, Any] = {"objectId": coin.object_id, "version": str(coin.version),
                            "digest": coin.digest}
    if show.get("showType"):
        data["type"] = f"0x2::coin::Coin<{IOTA_COIN}>"
    if show.get("showPreviousTransaction"):
        data["previousTransaction"] = coin.previous_tx
    if show.get("showContent"):
        data["content"] = {"dataType": "moveObject", "type": f"0x2::coin::Coin<{IOTA_COIN}>",
                           "hasPublicTransfer": True,
                           "fields": {"balance": str(coin.balance),
                                      "id": {"id": coin.object_id}}}
    return data


def _address(text: Any) -> str:
    if not isinstance(text, str) or not text.startswith("0x") or len(text) != 66:
        raise NodeError(f"Invalid params: {text!r} is not a 0x + 64 hex address")
    try:
        bytes.fromhex(text[2:])
    except ValueError:
        raise NodeError(f"Invalid params: {text!r} is not a 0x + 64 hex address") from None
    return text.lower()


def _b64(text: Any, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, TypeError):
        raise NodeError(f"Invalid params: {what} is not base64") from None


# -- HTTP ---------------------------------------------------------------------------------

class _Handler(JsonHandler):
    node: IotaNode

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        try:
            req = json.loads(body)
        except ValueError:
            return self._send(200, {"jsonrpc": "2.0", "id": None,
                                    "error": {"code": -32700, "message": "Parse error"}})
        if not isinstance(req, dict) or req.get("jsonrpc") != "2.0" \
                or not isinstance(req.get("method"), str) or "id" not in req \
                or not isinstance(req.get("params", []), list):
            return self._send(200, {"jsonrpc": "2.0", "id": None,
                                    "error": {"code": -32600, "message": "Invalid request"}})
        method, rid, params = req["method"], req["id"], req.get("params", [])
        with self.node._lock:
            self.node.requests.append((method, params))  # as received, faulted or not
        taken = self.node._take_fault(method)
        fault = taken.kind if taken is not None else None
        if fault == "hang":
            self.node._release.wait(self.node.hang_s)
        elif fault == "http500":
            return self._send_raw(500, b"Internal Server Error", "text/plain")
        elif fault == "rpc_error":
            return self._send(200, {"jsonrpc": "2.0", "id": rid, "error": {
                "code": -32000, "message": "fault injected: server is busy"}})
        elif fault == "garbage":
            return self._send_raw(200, b"<html><body>502 Bad Gateway</body></html>\n",
                                  "text/html")
        try:
            result = self.node.handle(method, params)
        except NodeError as err:
            return self._send(200, {"jsonrpc": "2.0", "id": rid,
                                    "error": {"code": err.code, "message": str(err)}})
        except TypeError as err:  # wrong number of params
            return self._send(200, {"jsonrpc": "2.0", "id": rid, "error": {
                "code": INVALID_PARAMS, "message": f"Invalid params: {err}"}})
        if fault == "lost":  # done, but the answer never arrives
            self.close_connection = True
            return
        if fault == "hang_answer":  # done; the answer comes late (or to a dead client)
            self.node._release.wait(self.node.hang_s)
        self._send(200, {"jsonrpc": "2.0", "id": rid, "result": result})


IotaNode.handler = _Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--fund", action="append", default=[], metavar="0xADDRESS=NANOS")
    args = parser.parse_args(argv)
    node = IotaNode(port=args.port)
    for item in args.fund:
        address, nanos = item.split("=")
        node.fund(address, int(nanos))
    node.serve_until_interrupted("IOTA test node", "JSON-RPC")


if __name__ == "__main__":
    main()
