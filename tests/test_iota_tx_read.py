"""Reading our transfers back from a node's ``rawTransaction``: strict, and judged by the SDK."""

from __future__ import annotations

import base64
import random

import pytest

from p2p_energy.wallet import iota_keys, iota_tx
from p2p_energy.wallet.iota_tx_read import read_signed_transfer, read_transfer

from support.iota_node import decode_transaction
from support.sdk_judge import judge

KEY = iota_keys.Keypair(bytes.fromhex("42" * 32))


def _transfer(rng: random.Random, *, amount: int = 1234, coins: int = 1,
              expires: int | None = 5) -> tuple[bytes, str, list[iota_tx.ObjectRef]]:
    receiver = "0x" + rng.randbytes(32).hex()
    gas = [iota_tx.ObjectRef("0x" + rng.randbytes(32).hex(), rng.randrange(1, 2**40),
                             iota_tx.b58encode(rng.randbytes(32))) for _ in range(coins)]
    tx = iota_tx.transfer_bytes(sender=iota_keys.address_bytes(KEY.address),
                                receiver=iota_keys.address_bytes(receiver), amount_nanos=amount,
                                gas_coins=gas, gas_price=rng.choice([1000, 2**40]),
                                gas_budget=rng.randrange(10**6, 5 * 10**10),
                                expires_after_epoch=expires)
    return tx, receiver, gas


def signed(tx: bytes, signature: bytes | None = None) -> bytes:
    """BCS ``SenderSignedData`` of ``tx`` with one signature, as a fullnode keeps it."""
    sig = signature if signature is not None else base64.b64decode(
        iota_tx.sign_transaction(KEY, tx))
    return b"\x01" + iota_tx.INTENT_TRANSACTION + tx + b"\x01" + bytes([len(sig)]) + sig


@pytest.mark.parametrize(("amount", "coins", "expires"), [
    (1, 1, None), (123_456_000, 2, 7), (2**64 - 1, 3, 2**40), (5, 128, 0)])
def test_reads_back_every_transfer_we_build(amount: int, coins: int, expires) -> None:
    tx, receiver, _ = _transfer(random.Random(amount), amount=amount, coins=coins,
                                expires=expires)
    for read in (read_transfer(tx), read_signed_transfer(signed(tx))):
        assert (read.digest, read.sender, read.receiver, read.amount_nanos) == (
            iota_tx.transaction_digest(tx), KEY.address, receiver, amount)


@pytest.mark.usefixtures("iota_sdk_judge")
def test_reads_what_the_sdk_builds_and_the_sdk_reads_it_the_same() -> None:
    """The SDK builds the same transfer (its own bytes), and parses the SenderSignedData
    we read: same digest, sender, receiver and amount on both sides."""
    rng = random.Random(3)
    shapes = [(1, 1, None), (77_000, 2, 9), (2**64 - 1, 5, 2**40)]
    amounts = [a for a, _, _ in shapes]
    cases = [_transfer(rng, amount=a, coins=c, expires=e) for a, c, e in shapes]
    decoded = [decode_transaction(tx) for tx, _, _ in cases]  # the test node's own reader
    builds = judge(builds=[
        {"sender": KEY.address, "receiver": receiver, "amount": str(amount),
         "gas_coins": [[g.object_id, g.version, g.digest] for g in gas],
         "gas_price": str(d.gas_price), "gas_budget": str(d.gas_budget),
         "expires_after_epoch": d.expiration}
        for (_, receiver, gas), d, amount in zip(cases, decoded, amounts, strict=True)])["builds"]
    raws = [signed(base64.b64decode(b["tx_bytes"])) for b in builds]
    verdicts = judge(signed=[base64.b64encode(r).decode() for r in raws])["signed"]
    for (tx, receiver, _), raw, sdk in zip(cases, raws, verdicts, strict=True):
        ours = read_signed_transfer(raw)
        assert sdk["ok"], sdk
        assert sdk["transactions"] == 1 and sdk["intent"] == ["TransactionData", "V0", "Iota"]
        assert base64.b64decode(sdk["tx_bytes"]) == tx  # the SDK built our very bytes
        assert (ours.digest, ours.sender, ours.receiver, str(ours.amount_nanos)) == (
            sdk["digest"], sdk["sender"], sdk["receiver"], sdk["amount"])
        assert ours.digest == iota_tx.transaction_digest(tx) and ours.receiver == receiver


def _shapes() -> list[tuple[str, bytes, str]]:
    """(what, bytes, why refused): one thing changed each, from a transfer of ours."""
    rng = random.Random(5)
    tx, _, _ = _transfer(rng, expires=None)
    sig = base64.b64decode(iota_tx.sign_transaction(KEY, tx))
    good = signed(tx)
    pure_amount = tx.index(bytes([0, 8])) + 2
    commands = tx.index(bytes([2, 2, 0, 1, 1, 0, 0]))  # 2 commands, SplitCoins(GasCoin, ..
    sender = tx.index(iota_keys.address_bytes(KEY.address))
    gas_owner = tx.index(iota_keys.address_bytes(KEY.address), sender + 32 + 1 + 32 + 8 + 33)

    def at(i: int, new: bytes, old: int = 1) -> bytes:
        return signed(tx[:i] + new + tx[i + old:], sig)

    return [
        ("TransactionData V2", at(0, b"\x01"), "the start"),
        ("not programmable", at(1, b"\x01"), "the start"),
        ("three inputs", at(2, b"\x03"), "the start"),
        ("a 4-byte amount", at(pure_amount - 1, b"\x04"), "the start"),
        ("split from Input(0)", at(commands + 2, b"\x01\x00\x00"), "the commands"),
        ("MergeCoins", at(commands + 1, b"\x03"), "the commands"),
        ("transfer NestedResult(0, 0)", at(commands + 9, b"\x03\x00\x00\x00\x00", 3),
         "the commands"),
        ("transfer to Input(0)", at(commands + 13, b"\x00"), "the commands"),
        ("sponsored", at(gas_owner, bytes(32), 32), "not paid by its sender"),
        ("no gas coin", at(sender + 32, b"\x00", 1 + 32 + 8 + 33), "0 gas coins"),
        ("gas count not in its shortest form", at(sender + 32, b"\x81\x00"), "shortest form"),
        ("expiration ValidDuring", at(len(tx) - 1, b"\x02"), "expiration variant 2"),
        ("a zero amount", signed(tx.replace(tx[pure_amount:pure_amount + 8], bytes(8), 1), sig),
         "not a transfer we would build"),
        ("cut short", good[:-1], "end too early"),
        ("a byte more", good + b"\x00", "bytes follow the signature"),
        ("two transactions", b"\x02" + good[1:], "exactly one signed transaction"),
        ("a personal message's intent", b"\x01\x03" + good[2:], "the intent"),
        ("two signatures", good[:-(len(sig) + 2)] + b"\x02" + bytes([len(sig)]) + sig
         + bytes([len(sig)]) + sig, "exactly one signature"),
        ("a secp256k1 signature", good[:-len(sig)] + b"\x01" + sig[1:], "not an Ed25519"),
        ("nothing", b"", "end too early"),
    ]


@pytest.mark.parametrize(("raw", "why"), [(raw, why) for _, raw, why in _shapes()],
                         ids=[what for what, _, _ in _shapes()])
def test_refuses_any_other_shape(raw: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        read_signed_transfer(raw)


def test_whatever_it_accepts_is_those_very_bytes() -> None:
    """Each byte of a transfer changed to other values: either refused, or read as the
    transfer whose bytes they are (its digest theirs, and built again the same)."""
    tx, _, _ = _transfer(random.Random(8), coins=2)
    accepted = 0
    for i in range(len(tx)):
        for value in {tx[i] ^ 0x01, tx[i] ^ 0x80, 0x00, 0xFF} - {tx[i]}:
            changed = tx[:i] + bytes([value]) + tx[i + 1:]
            try:
                read = read_transfer(changed)
            except ValueError:
                continue
            accepted += 1
            assert read.digest == iota_tx.transaction_digest(changed)
    assert accepted > len(tx)  # the amount, addresses, coins, price, budget vary freely
