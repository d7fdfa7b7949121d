"""Reading back, from a fullnode's copy, the one transaction we build (``iota_tx``).

``iota_getTransactionBlock`` with ``showRawInput`` answers ``rawTransaction``:
base64 of the BCS ``SenderSignedData`` the node keeps (``iota-types``,
``transaction.rs``)::

    SenderSignedData        = a vector of exactly one SenderSignedTransaction
    SenderSignedTransaction = { intent_message: { intent: [0, 0, 0],
                                                  value: TransactionData },
                                tx_signatures: Vec<GenericSignature> }

with each ``GenericSignature`` a byte vector (flag || signature || public key).

``read_signed_transfer`` accepts only what ``iota_tx.transfer_bytes`` builds
and our wallet signs: one Ed25519 signature over a ``TransactionData::V1``
programmable transaction whose inputs are ``[Pure(u64 amount), Pure(address
receiver)]`` and whose commands are ``[SplitCoins(GasCoin, [Input(0)]),
TransferObjects([Result(0)], Input(1))]``, its gas paid by the sender's own
coins. The transaction's bytes are then built again with ``transfer_bytes``
from what was read and must be the same bytes. The digest is computed from
those bytes (``iota_tx.transaction_digest``): whoever asked the node for a
digest compares it. Pure: no I/O, no signature check (the digest does not
cover the signatures; the node's effects say the transaction executed).
"""

from __future__ import annotations

from dataclasses import dataclass

from .iota_tx import (
    ARG_GAS_COIN,
    ARG_INPUT,
    ARG_RESULT,
    CALL_ARG_PURE,
    CMD_SPLIT_COINS,
    CMD_TRANSFER_OBJECTS,
    EXPIRATION_EPOCH,
    EXPIRATION_NONE,
    INTENT_TRANSACTION,
    KIND_PROGRAMMABLE,
    MAX_GAS_COINS,
    TX_DATA_V1,
    ObjectRef,
    b58encode,
    transaction_digest,
    transfer_bytes,
)

ED25519_FLAG = 0
SIGNATURE_SIZE = 1 + 64 + 32  # flag || Ed25519 signature || public key
_ULEB_MAX = 2**32 - 1  # BCS lengths and variant indexes fit in a u32


@dataclass(frozen=True)
class ReadTransfer:
    """What one of our transfers moves, as its own bytes say."""

    digest: str  # of its TransactionData, base58
    sender: str  # 0x + 64 hex, lower case; also the gas owner
    receiver: str  # 0x + 64 hex, lower case
    amount_nanos: int


class _Reader:
    """Strict BCS reading: ``ValueError`` for a short read or a non-canonical ULEB128."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("the bytes end too early")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def uleb128(self) -> int:
        value = shift = 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                if shift and not byte:
                    raise ValueError("a ULEB128 number is not in its shortest form")
                if value > _ULEB_MAX:
                    raise ValueError("a ULEB128 number is larger than a u32")
                return value
            shift += 7
            if shift > 28:
                raise ValueError("a ULEB128 number is longer than a u32's")

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "little")

    def u64(self) -> int:
        return int.from_bytes(self.take(8), "little")

    def vec_u8(self) -> bytes:
        return self.take(self.uleb128())

    def expect(self, wanted: bytes, what: str) -> None:
        if self.take(len(wanted)) != wanted:
            raise ValueError(f"{what} is not the one a transfer of ours has")


def _enc(*values: int) -> bytes:
    """The ULEB128 bytes of small values (< 128): one byte each."""
    return bytes(values)


def _arg(kind: int, index: int | None = None) -> bytes:
    return _enc(kind) + (b"" if index is None else index.to_bytes(2, "little"))


# The fixed parts of a transfer of ours, in order (ULEB128 of values < 128 is one byte).
_HEAD = _enc(TX_DATA_V1, KIND_PROGRAMMABLE, 2, CALL_ARG_PURE, 8)  # ... then the u64 amount
_RECEIVER_INPUT = _enc(CALL_ARG_PURE, 32)  # ... then the 32-byte receiver
_COMMANDS = (_enc(2, CMD_SPLIT_COINS) + _arg(ARG_GAS_COIN) + _enc(1) + _arg(ARG_INPUT, 0)
             + _enc(CMD_TRANSFER_OBJECTS, 1) + _arg(ARG_RESULT, 0) + _arg(ARG_INPUT, 1))


def _read_transaction_data(r: _Reader) -> ReadTransfer:
    start = r.pos
    r.expect(_HEAD, "the start (version, kind, inputs)")
    amount = r.u64()
    r.expect(_RECEIVER_INPUT, "the second input")
    receiver = r.take(32)
    r.expect(_COMMANDS, "the commands")
    sender = r.take(32)
    count = r.uleb128()
    if not 1 <= count <= MAX_GAS_COINS:
        raise ValueError(f"it names {count} gas coins")
    coins = []
    for _ in range(count):
        object_id, version, digest = r.take(32), r.u64(), r.vec_u8()
        if len(digest) != 32:
            raise ValueError("a gas coin's digest is not 32 bytes")
        coins.append(ObjectRef("0x" + object_id.hex(), version, b58encode(digest)))
    if r.take(32) != sender:
        raise ValueError("its gas is not paid by its sender")
    price, budget = r.u64(), r.u64()
    expiration = r.uleb128()
    if expiration not in (EXPIRATION_NONE, EXPIRATION_EPOCH):
        raise ValueError(f"expiration variant {expiration} is not one of ours")
    epoch = r.u64() if expiration == EXPIRATION_EPOCH else None
    tx_bytes = r.data[start:r.pos]
    try:
        again = transfer_bytes(sender=sender, receiver=receiver, amount_nanos=amount,
                               gas_coins=coins, gas_price=price, gas_budget=budget,
                               expires_after_epoch=epoch)
    except (ValueError, OverflowError) as err:
        raise ValueError(f"it is not a transfer we would build ({err})") from None
    if again != tx_bytes:  # what was read is what transfer_bytes writes, byte for byte
        raise ValueError("it is not a transfer we would build")
    return ReadTransfer(transaction_digest(tx_bytes), "0x" + sender.hex(),
                        "0x" + receiver.hex(), amount)


def read_transfer(tx_bytes: bytes) -> ReadTransfer:
    """A transfer of ours from BCS ``TransactionData`` (no trailing bytes).

    Raises:
        ValueError: anything else; the message says what differs first.
    """
    r = _Reader(tx_bytes)
    transfer = _read_transaction_data(r)
    if r.pos != len(r.data):
        raise ValueError("bytes follow the transaction")
    return transfer


def read_signed_transfer(raw: bytes) -> ReadTransfer:
    """A transfer of ours from BCS ``SenderSignedData`` (a node's ``rawTransaction``).

    Raises:
        ValueError: anything else; the message says what differs first.
    """
    r = _Reader(raw)
    if r.uleb128() != 1:
        raise ValueError("it does not hold exactly one signed transaction")
    r.expect(INTENT_TRANSACTION, "the intent")
    transfer = _read_transaction_data(r)
    if r.uleb128() != 1:
        raise ValueError("it does not carry exactly one signature")
    signature = r.vec_u8()
    if len(signature) != SIGNATURE_SIZE or signature[0] != ED25519_FLAG:
        raise ValueError("its signature is not an Ed25519 one")
    if r.pos != len(r.data):
        raise ValueError("bytes follow the signature")
    return transfer
