"""The one transaction we build on today's IOTA network, in BCS, and its signature.

A transfer of ``amount_nanos`` to one receiver is a programmable transaction::

    inputs:   [Pure(u64 amount), Pure(address receiver)]
    commands: [SplitCoins(GasCoin, [Input(0)]), TransferObjects([Result(0)], Input(1))]

paid by one or more of the sender's coins as gas. With several gas coins the
network merges them into the first before it runs the commands ("gas
smashing"), so a payment larger than any one coin needs no MergeCoins command.

The BCS layout follows the Rust types in ``iota-types`` (``transaction.rs``):
``TransactionData::V1 { kind, sender, gas_data, expiration }``; enum variants
are ULEB128 indexes; integers little-endian; vectors ULEB128-length-prefixed;
addresses and object ids 32 bytes; object digests a ``Vec<u8>`` of 32 (so 33
bytes). The digest is blake2b-256 over ``b"TransactionData::" + bytes``, in
base58. A user signature signs blake2b-256(intent ``[0, 0, 0]`` + bytes) with
Ed25519 and is sent as base64 of ``0x00 || signature || public key``.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from .iota_keys import Keypair

INTENT_TRANSACTION = bytes([0, 0, 0])  # scope TransactionData, version V0, app Iota
MAX_GAS_COINS = 255  # protocol: max_gas_payment_objects is 256

# Enum variant indexes, as declared in iota-types.
TX_DATA_V1 = 0
KIND_PROGRAMMABLE = 0
CALL_ARG_PURE = 0
CMD_TRANSFER_OBJECTS, CMD_SPLIT_COINS = 1, 2
ARG_GAS_COIN, ARG_INPUT, ARG_RESULT = 0, 1, 2
EXPIRATION_NONE, EXPIRATION_EPOCH = 0, 1

# -- base58 (Bitcoin's alphabet, as IOTA's digests use) --------------------------

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}


def b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = _B58[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def b58decode(text: str) -> bytes:
    """Raises ``ValueError`` for a character outside the alphabet."""
    n = 0
    for c in text:
        if c not in _B58_INDEX:
            raise ValueError(f"{c!r} is not a base58 character")
        n = n * 58 + _B58_INDEX[c]
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


def digest_bytes(text: str) -> bytes:
    """A 32-byte object or transaction digest from its base58 text.

    Raises:
        ValueError: not base58, or not 32 bytes.
    """
    raw = b58decode(text)
    if len(raw) != 32:
        raise ValueError(f"digest {text!r} is {len(raw)} bytes, not 32")
    return raw


# -- a BCS writer for the shapes above ---------------------------------------------

class BcsWriter:
    """Appends BCS values to a buffer; ``bytes(writer)`` is the encoding."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def __bytes__(self) -> bytes:
        return bytes(self._buf)

    def uleb128(self, n: int) -> BcsWriter:
        if n < 0:
            raise ValueError("ULEB128 cannot encode a negative number")
        while True:
            byte, n = n & 0x7F, n >> 7
            self._buf.append(byte | (0x80 if n else 0))
            if not n:
                return self

    def u8(self, n: int) -> BcsWriter:
        self._buf += n.to_bytes(1, "little")
        return self

    def u16(self, n: int) -> BcsWriter:
        self._buf += n.to_bytes(2, "little")
        return self

    def u64(self, n: int) -> BcsWriter:
        self._buf += n.to_bytes(8, "little")  # OverflowError for n outside [0, 2**64)
        return self

    def fixed(self, data: bytes, size: int) -> BcsWriter:
        if len(data) != size:
            raise ValueError(f"expected {size} bytes, got {len(data)}")
        self._buf += data
        return self

    def vec_u8(self, data: bytes) -> BcsWriter:
        self.uleb128(len(data))
        self._buf += data
        return self


@dataclass(frozen=True)
class ObjectRef:
    """A coin object as a transaction names it: id, version, digest (all as the node shows)."""

    object_id: str  # 0x + 64 hex
    version: int
    digest: str  # base58


def _object_ref(w: BcsWriter, ref: ObjectRef) -> None:
    w.fixed(bytes.fromhex(ref.object_id[2:]), 32).u64(ref.version)
    w.vec_u8(digest_bytes(ref.digest))


def _argument(w: BcsWriter, kind: int, index: int | None = None) -> None:
    w.uleb128(kind)
    if index is not None:
        w.u16(index)


def transfer_bytes(*, sender: bytes, receiver: bytes, amount_nanos: int,
                   gas_coins: list[ObjectRef], gas_price: int, gas_budget: int,
                   expires_after_epoch: int | None = None) -> bytes:
    """BCS ``TransactionData`` paying ``amount_nanos`` to ``receiver``, gas from ``gas_coins``.

    ``expires_after_epoch``: validators refuse it once that epoch is over (None: never).

    Raises:
        ValueError: an amount that is not positive, no gas coin or too many, a
            malformed id, digest or address.
    """
    if amount_nanos <= 0:
        raise ValueError("the amount must be positive")
    if not 1 <= len(gas_coins) <= MAX_GAS_COINS:
        raise ValueError(f"between 1 and {MAX_GAS_COINS} gas coins, not {len(gas_coins)}")
    w = BcsWriter().uleb128(TX_DATA_V1).uleb128(KIND_PROGRAMMABLE)
    w.uleb128(2)  # inputs
    w.uleb128(CALL_ARG_PURE).vec_u8(bytes(BcsWriter().u64(amount_nanos)))
    w.uleb128(CALL_ARG_PURE).vec_u8(bytes(BcsWriter().fixed(receiver, 32)))
    w.uleb128(2)  # commands
    w.uleb128(CMD_SPLIT_COINS)
    _argument(w, ARG_GAS_COIN)
    w.uleb128(1)
    _argument(w, ARG_INPUT, 0)
    w.uleb128(CMD_TRANSFER_OBJECTS)
    w.uleb128(1)
    _argument(w, ARG_RESULT, 0)
    _argument(w, ARG_INPUT, 1)
    w.fixed(sender, 32)
    w.uleb128(len(gas_coins))  # gas_data.payment
    for ref in gas_coins:
        _object_ref(w, ref)
    w.fixed(sender, 32).u64(gas_price).u64(gas_budget)  # owner, price, budget
    if expires_after_epoch is None:
        w.uleb128(EXPIRATION_NONE)
    else:
        w.uleb128(EXPIRATION_EPOCH).u64(expires_after_epoch)
    return bytes(w)


def gas_price_of(tx_bytes: bytes) -> int:
    """The gas price of a transfer built by ``transfer_bytes`` with an expiry epoch:
    the u64 before the budget, both before the 9 bytes of ``Epoch(n)`` at the end.

    Raises:
        ValueError: the bytes do not end in an epoch expiration.
    """
    if len(tx_bytes) < 25 or tx_bytes[-9] != EXPIRATION_EPOCH:
        raise ValueError("not a transaction with an expiry epoch")
    return int.from_bytes(tx_bytes[-25:-17], "little")


def transaction_digest(tx_bytes: bytes) -> str:
    """The transaction's digest (base58), as the network names it."""
    return b58encode(hashlib.blake2b(b"TransactionData::" + tx_bytes, digest_size=32).digest())


def sign_transaction(keypair: Keypair, tx_bytes: bytes) -> str:
    """The serialized user signature: base64 of ``0x00 || Ed25519 signature || public key``."""
    message = hashlib.blake2b(INTENT_TRANSACTION + tx_bytes, digest_size=32).digest()
    return base64.b64encode(b"\x00" + keypair.sign(message) + keypair.public_key).decode()
