"""Our BCS transfer transactions and signatures, judged by the IOTA SDK and our test node."""

from __future__ import annotations

import base64
import random
import secrets

import pytest

from p2p_energy.wallet import iota_keys, iota_tx
from p2p_energy.wallet.iota_tx import BcsWriter, ObjectRef

from support.iota_node import decode_transaction
from support.sdk_judge import judge


def _coin(rng: random.Random) -> ObjectRef:
    return ObjectRef("0x" + rng.randbytes(32).hex(), rng.randrange(1, 2**40),
                     iota_tx.b58encode(rng.randbytes(32)))


def _case(rng: random.Random, key: iota_keys.Keypair, amount: int, coins: int,
          expires: int | None = None) -> dict:
    receiver = "0x" + rng.randbytes(32).hex()
    gas = [_coin(rng) for _ in range(coins)]
    tx = iota_tx.transfer_bytes(sender=iota_keys.address_bytes(key.address),
                                receiver=iota_keys.address_bytes(receiver), amount_nanos=amount,
                                gas_coins=gas, gas_price=rng.choice([1000, 1234, 2**40]),
                                gas_budget=rng.randrange(10**6, 5 * 10**10),
                                expires_after_epoch=expires)
    return {"tx": tx, "receiver": receiver, "gas": gas, "amount": amount, "expires": expires,
            "signature": iota_tx.sign_transaction(key, tx)}


@pytest.mark.usefixtures("iota_sdk_judge")
def test_the_sdk_verifies_and_decodes_every_transfer_we_sign() -> None:
    rng = random.Random(9)
    key = iota_keys.generate()
    cases = [_case(rng, key, amount, coins, expires) for amount, coins, expires in [
        (1, 1, None), (1000, 1, 0), (123_456_000, 2, 7), (2**64 - 1, 3, 2**40),
        (10**9, 127, None), (5, 128, 300), (7, 255, None)]]
    verdicts = judge(transactions=[
        {"tx_bytes": base64.b64encode(c["tx"]).decode(), "signature": c["signature"],
         "secret": key.export()} for c in cases])["transactions"]
    for case, v in zip(cases, verdicts, strict=True):
        assert v["ok"], v
        assert v["signer"] == v["sender"] == v["gas_owner"] == key.address
        assert v["receiver"] == case["receiver"]
        assert int(v["amount"]) == case["amount"]
        assert v["split_from"] == "GasCoin"
        assert v["commands"] == ["SplitCoins", "TransferObjects"]
        assert v["expiration"] == ("None" if case["expires"] is None else "Epoch")
        assert v.get("expires_after_epoch") == (
            None if case["expires"] is None else str(case["expires"]))
        assert v["gas_coins"] == [[g.object_id, str(g.version), g.digest] for g in case["gas"]]
        assert v["digest"] == iota_tx.transaction_digest(case["tx"])
        # Ed25519 is deterministic: the SDK signing the same bytes gives our signature.
        assert v["sdk_signature"] == case["signature"]
        # Our test node reads the same transaction from the bytes.
        tx = decode_transaction(case["tx"])
        assert tx.sender == key.address and tx.gas_budget == int(v["gas_budget"])
        assert tx.expiration == case["expires"]
        assert [(g.object_id, g.version, g.digest) for g in tx.gas] == \
            [(g.object_id, g.version, g.digest) for g in case["gas"]]


@pytest.mark.usefixtures("iota_sdk_judge")
def test_the_sdk_refuses_a_signature_over_other_bytes_or_by_another_key() -> None:
    rng = random.Random(10)
    key, other = iota_keys.generate(), iota_keys.generate()
    good = _case(rng, key, 1000, 1)
    tampered = bytearray(good["tx"])
    tampered[10] ^= 1  # inside the amount: still a valid transaction, not the one signed
    by_other = iota_tx.sign_transaction(other, good["tx"])
    verdicts = judge(transactions=[
        {"tx_bytes": base64.b64encode(bytes(tampered)).decode(), "signature": good["signature"]},
        {"tx_bytes": base64.b64encode(good["tx"]).decode(), "signature": by_other},
    ])["transactions"]
    assert verdicts[0]["ok"] is False
    # Another key's signature verifies, but as that key's address, not the sender's.
    assert verdicts[1]["signer"] == other.address != verdicts[1]["sender"]


def test_uleb128_and_digest_encodings() -> None:
    for n, raw in [(0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16384, b"\x80\x80\x01")]:
        assert bytes(BcsWriter().uleb128(n)) == raw
    for data in [b"", b"\0\0\x01", secrets.token_bytes(32)]:
        assert iota_tx.b58decode(iota_tx.b58encode(data)) == data
    with pytest.raises(ValueError, match="not 32"):
        iota_tx.digest_bytes(iota_tx.b58encode(b"\x01" * 31))
    with pytest.raises(ValueError, match="base58"):
        iota_tx.digest_bytes("0OIl")


def test_refuses_what_it_cannot_build() -> None:
    args = dict(sender=bytes(32), receiver=bytes(32), gas_price=1000, gas_budget=10**7)
    coin = ObjectRef("0x" + "11" * 32, 1, iota_tx.b58encode(bytes(32)))
    with pytest.raises(ValueError, match="positive"):
        iota_tx.transfer_bytes(amount_nanos=0, gas_coins=[coin], **args)
    with pytest.raises(ValueError, match="gas coins"):
        iota_tx.transfer_bytes(amount_nanos=1, gas_coins=[], **args)


@pytest.mark.usefixtures("iota_sdk_judge")
def test_the_sdk_builds_the_same_bytes_from_the_same_transfer() -> None:
    """Our BCS writer against the SDK's transaction builder, byte for byte."""
    rng = random.Random(11)
    key = iota_keys.generate()
    cases = [_case(rng, key, amount, coins, expires) for amount, coins, expires in [
        (1, 1, None), (123_456_000, 2, 7), (2**64 - 1, 3, 2**40), (5, 128, 0)]]
    builds = judge(builds=[
        {"sender": key.address, "receiver": c["receiver"], "amount": str(c["amount"]),
         "gas_coins": [[g.object_id, g.version, g.digest] for g in c["gas"]],
         "gas_price": str(decode_transaction(c["tx"]).gas_price),
         "gas_budget": str(decode_transaction(c["tx"]).gas_budget),
         "expires_after_epoch": c["expires"]} for c in cases])["builds"]
    for case, built in zip(cases, builds, strict=True):
        assert "error" not in built, built
        assert base64.b64decode(built["tx_bytes"]) == case["tx"]
