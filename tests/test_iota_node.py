"""Our IOTA test node is as strict as a fullnode: what it refuses, and how it charges gas."""

from __future__ import annotations

import base64

import pytest

from p2p_energy.errors import RpcError, WalletError
from p2p_energy.wallet import iota_keys, iota_tx
from p2p_energy.wallet.iota_rpc import RpcClient

from support.iota_fixtures import FUNDS_NANOS, PAYER_KEY, RECEIVER
from support.iota_node import COMPUTATION_UNITS, STORAGE_PER_OBJECT, IotaNode
from support.sdk_judge import judge

OTHER_KEY = iota_keys.Keypair(bytes.fromhex("07" * 32))


def coin_ref(node: IotaNode, owner: str = PAYER_KEY.address) -> iota_tx.ObjectRef:
    [coin] = node.coins_of(owner)
    return iota_tx.ObjectRef(coin.object_id, coin.version, coin.digest)


def transfer(node: IotaNode, *, key=PAYER_KEY, sender=None, gas=None, amount=1000,
             price=1000, budget=5_000_000, expires=None) -> bytes:
    return iota_tx.transfer_bytes(
        sender=iota_keys.address_bytes(sender or key.address),
        receiver=iota_keys.address_bytes(RECEIVER), amount_nanos=amount,
        gas_coins=gas or [coin_ref(node)], gas_price=price, gas_budget=budget,
        expires_after_epoch=expires)


def execute(rpc: RpcClient, tx: bytes, key=PAYER_KEY, signature: str | None = None):
    return rpc.call("iota_executeTransactionBlock", base64.b64encode(tx).decode(),
                    [signature or iota_tx.sign_transaction(key, tx)], {"showEffects": True},
                    "WaitForLocalExecution")


@pytest.fixture
def rpc(iota_node: IotaNode) -> RpcClient:
    return RpcClient(iota_node.url, 2.0)


def test_executes_once_bumps_versions_and_charges_gas(iota_node, rpc) -> None:
    before = coin_ref(iota_node)
    tx = transfer(iota_node, amount=123)
    answer = execute(rpc, tx)
    fee = COMPUTATION_UNITS * 1000 + 2 * STORAGE_PER_OBJECT - int(STORAGE_PER_OBJECT * 0.99)
    assert answer["effects"]["status"] == {"status": "success"}
    assert answer["digest"] == iota_tx.transaction_digest(tx)
    after = coin_ref(iota_node)
    assert after.version == before.version + 1 and after.digest != before.digest
    assert iota_node.balance(PAYER_KEY.address) == FUNDS_NANOS - 123 - fee
    assert iota_node.balance(RECEIVER) == 123
    again = execute(rpc, tx)
    assert (again["digest"], again["effects"]) == (answer["digest"], answer["effects"])
    assert iota_node.balance(RECEIVER) == 123  # the same transaction again moved nothing
    stale = transfer(iota_node, gas=[before], amount=5)
    with pytest.raises(RpcError, match="is not available for consumption"):
        execute(rpc, stale)


@pytest.mark.parametrize(("make", "reason"), [
    (lambda n: (transfer(n), OTHER_KEY), "signer 0x.* is not the sender"),
    (lambda n: (transfer(n, key=OTHER_KEY, sender=PAYER_KEY.address), OTHER_KEY),
     "is not the sender"),
    (lambda n: (transfer(n, gas=[iota_tx.ObjectRef("0x" + "99" * 32, 1, iota_tx.b58encode(
        bytes(32)))]), PAYER_KEY), "Could not find the referenced object"),
    (lambda n: (transfer(n, gas=[iota_tx.ObjectRef(coin_ref(n).object_id, 1, iota_tx.b58encode(
        bytes(32)))]), PAYER_KEY), "Invalid object digest"),
    (lambda n: (transfer(n, budget=FUNDS_NANOS + 1), PAYER_KEY), "lower than the needed"),
    (lambda n: (transfer(n, budget=999_999), PAYER_KEY), "lower than min"),
    (lambda n: (transfer(n, price=999), PAYER_KEY), "under reference gas price"),
    (lambda n: ((n.next_epoch(), transfer(n, expires=0))[-1], PAYER_KEY),
     "Transaction expired at epoch 0"),
])
def test_refuses_what_a_fullnode_refuses(iota_node, rpc, make, reason) -> None:
    tx, key = make(iota_node)
    with pytest.raises(RpcError, match=reason) as err:
        execute(rpc, tx, key)
    assert err.value.code == -32002 and iota_node.executed == {}


def test_refuses_bytes_it_cannot_read_and_signatures_over_other_bytes(iota_node, rpc) -> None:
    tx = transfer(iota_node)
    for bad, reason in [(tx + b"\0", "trailing bytes"), (tx[:-3], "unexpected end"),
                        (b"\x01" + tx[1:], "unknown TransactionData variant")]:
        with pytest.raises(RpcError, match=reason):
            execute(rpc, bad, signature=iota_tx.sign_transaction(PAYER_KEY, tx))
    other = transfer(iota_node, amount=2)
    with pytest.raises(RpcError, match="signature does not verify"):
        execute(rpc, other, signature=iota_tx.sign_transaction(PAYER_KEY, tx))
    with pytest.raises(RpcError, match="not base64"):
        rpc.call("iota_executeTransactionBlock", "***", ["x"])
    assert iota_node.executed == {}


def test_a_split_larger_than_the_coin_executes_as_a_failure(iota_node, rpc) -> None:
    tx = transfer(iota_node, amount=FUNDS_NANOS - 1_000_000, budget=2_000_000)
    answer = execute(rpc, tx)
    assert answer["effects"]["status"]["status"] == "failure"
    assert iota_node.balance(RECEIVER) == 0 and iota_node.balance(PAYER_KEY.address) < FUNDS_NANOS


def test_answers_by_digest_and_pages_coins() -> None:
    node = IotaNode(page_size=2)
    for _ in range(5):
        node.fund(PAYER_KEY.address, 10)
    with node:
        rpc = RpcClient(node.url, 2.0)
        first = rpc.call("iotax_getCoins", PAYER_KEY.address, None, None, 50)
        assert len(first["data"]) == 2 and first["hasNextPage"]
        with pytest.raises(RpcError, match="Could not find the referenced transaction"):
            rpc.call("iota_getTransactionBlock", iota_tx.b58encode(bytes(32)))
        with pytest.raises(WalletError, match="not JSON-RPC"):
            node.set_fault("garbage", times=1)
            rpc.call("iota_getChainIdentifier")


def test_balance_changes_are_shown_as_a_fullnode_derives_them(iota_node, rpc) -> None:
    """``showBalanceChanges``: each owner's net change of IOTA (BalanceChange: owner,
    coinType, amount as decimal text), zeros left out: the receiver gets the amount, the
    sender pays it and the fee; a failure moves only the fee."""
    tx = transfer(iota_node, amount=4321)
    digest = execute(rpc, tx)["digest"]
    options = {"showEffects": True, "showBalanceChanges": True}
    answer = rpc.call("iota_getTransactionBlock", digest, options)
    fee = iota_node.executed[digest].fee_nanos
    assert answer["balanceChanges"] == sorted([
        {"owner": {"AddressOwner": PAYER_KEY.address}, "coinType": "0x2::iota::IOTA",
         "amount": str(-4321 - fee)},
        {"owner": {"AddressOwner": RECEIVER}, "coinType": "0x2::iota::IOTA", "amount": "4321"},
    ], key=lambda c: c["owner"]["AddressOwner"])
    assert "balanceChanges" not in rpc.call("iota_getTransactionBlock", digest,
                                            {"showEffects": True})
    failing = transfer(iota_node, amount=4321, budget=1_000_000)  # below the cost: fails
    digest = execute(rpc, failing)["digest"]
    answer = rpc.call("iota_getTransactionBlock", digest, options)
    assert answer["effects"]["status"]["status"] == "failure"
    assert answer["balanceChanges"] == [
        {"owner": {"AddressOwner": PAYER_KEY.address}, "coinType": "0x2::iota::IOTA",
         "amount": str(-iota_node.executed[digest].fee_nanos)}]
    with pytest.raises(RpcError, match="expected a boolean for showBalanceChanges"):
        rpc.call("iota_getTransactionBlock", digest, {"showBalanceChanges": "yes"})
    with pytest.raises(RpcError, match="Could not find the referenced transaction"):
        rpc.call("iota_getTransactionBlock", iota_tx.b58encode(bytes(32)), options)


@pytest.mark.usefixtures("iota_sdk_judge")
def test_raw_input_is_the_sender_signed_data_a_fullnode_keeps(iota_node, rpc) -> None:
    """``showRawInput``: base64 BCS ``SenderSignedData``, as the SDK parses it: one signed
    transaction, the transaction's intent, our very bytes and signature."""
    tx = transfer(iota_node, amount=999)
    signature = iota_tx.sign_transaction(PAYER_KEY, tx)
    digest = execute(rpc, tx, signature=signature)["digest"]
    raw = rpc.call("iota_getTransactionBlock", digest, {"showRawInput": True})["rawTransaction"]
    [sdk] = judge(signed=[raw])["signed"]
    assert sdk["ok"], sdk
    assert (sdk["transactions"], sdk["intent"]) == (1, ["TransactionData", "V0", "Iota"])
    assert (base64.b64decode(sdk["tx_bytes"]), sdk["digest"], sdk["signatures"]) == (
        tx, digest, [signature])
    assert (sdk["sender"], sdk["receiver"], sdk["amount"]) == (PAYER_KEY.address, RECEIVER,
                                                               "999")


def test_pruned_versions_leave_the_balance_changes_out_with_an_error(iota_node, rpc) -> None:
    """As ``read_api.rs``: balance changes come from the coins' versions the transaction
    read and wrote; once pruned, ``balanceChanges`` is left out and ``errors`` says why.
    The effects and the transaction's bytes are still served; a failure (gas only) keeps
    its balance changes."""
    options = {"showEffects": True, "showBalanceChanges": True, "showRawInput": True}
    paid = execute(rpc, transfer(iota_node, amount=4321))["digest"]
    failed = execute(rpc, transfer(iota_node, amount=1, budget=1_000_000))["digest"]
    before = rpc.call("iota_getTransactionBlock", paid, options)
    assert "errors" not in before and len(before["balanceChanges"]) == 2
    iota_node.prune_history()
    after = rpc.call("iota_getTransactionBlock", paid, options)
    assert "balanceChanges" not in after
    [error] = after["errors"]
    assert error.startswith("Cannot retrieve balance changes: Error checking transaction"
                            " input objects: Could not find the referenced object 0x")
    assert (after["effects"], after["rawTransaction"]) == (before["effects"],
                                                           before["rawTransaction"])
    gas_only = rpc.call("iota_getTransactionBlock", failed, options)
    assert "errors" not in gas_only
    assert gas_only["balanceChanges"] == [
        {"owner": {"AddressOwner": PAYER_KEY.address}, "coinType": "0x2::iota::IOTA",
         "amount": str(-iota_node.executed[failed].fee_nanos)}]
