"""IotaWallet against our JSON-RPC test node; every signed transaction judged by the IOTA SDK."""

from __future__ import annotations

import json
import logging

import pytest

from p2p_energy.errors import InsufficientBalance, WalletError
from p2p_energy.wallet.base import CONFIRMED, DEAD, FAILED, PENDING
from p2p_energy.wallet.iota_wallet import NANOS_PER_UNIT, IotaWallet

from iota_fixtures import FUNDS_NANOS, PAYER_KEY, RECEIVER, iota_wallet, judged
from iota_node import IotaNode


def _pay(wallet: IotaWallet, value: int):
    signed = wallet.prepare(value, 0)
    attachment = wallet.attach(signed)
    wallet.send(attachment)
    return signed, wallet.status(signed, [attachment.id])


@pytest.mark.usefixtures("iota_sdk_judge")
def test_pays_exactly_the_value_in_micro_iota_and_reports_the_fee(iota_node: IotaNode) -> None:
    wallet = iota_wallet(iota_node)
    signed, status = _pay(wallet, 123_456)
    assert status.state == CONFIRMED and status.attachments == (signed.reference,)
    assert iota_node.paid_to(RECEIVER) == {signed.reference: 123_456 * NANOS_PER_UNIT}
    fee = iota_node.executed[signed.reference].fee_nanos
    assert status.fee_nanos == fee > 0
    assert iota_node.balance(PAYER_KEY.address) == FUNDS_NANOS - 123_456_000 - fee
    [verdict] = judged([signed.payload])
    assert verdict["ok"] and verdict["signer"] == verdict["sender"] == PAYER_KEY.address
    assert verdict["receiver"] == RECEIVER and verdict["amount"] == "123456000"
    assert verdict["digest"] == signed.reference
    assert verdict["sdk_signature"] == json.loads(signed.payload)["signature"]
    assert iota_node.rejected == []


@pytest.mark.usefixtures("iota_sdk_judge")
def test_budget_comes_from_the_dry_run_with_a_margin(iota_node: IotaNode) -> None:
    wallet = iota_wallet(iota_node, gas_margin=2.0)
    signed = wallet.prepare(1000, 0)
    assert iota_node.method_names() == ["iotax_getCoins", "iotax_getReferenceGasPrice",
                                        "iota_dryRunTransactionBlock"]
    dry = wallet.rpc.call("iota_dryRunTransactionBlock", json.loads(signed.payload)["tx_bytes"])
    used = dry["effects"]["gasUsed"]
    expected = 2 * (int(used["computationCost"]) + int(used["storageCost"]))
    assert json.loads(signed.payload)["budget_nanos"] == expected
    assert judged([signed.payload])[0]["gas_budget"] == str(expected)


@pytest.mark.usefixtures("iota_sdk_judge")
def test_several_coins_are_merged_as_gas_and_pages_are_followed() -> None:
    node = IotaNode(page_size=2)
    ids = [node.fund(PAYER_KEY.address, 400_000_000) for _ in range(5)]  # 5 x 0.4 IOTA
    with node:
        wallet = iota_wallet(node)
        assert len(wallet.coins()) == 5
        signed, status = _pay(wallet, 1_500_000)  # 1.5 IOTA: needs four coins
        assert status.state == CONFIRMED
        gas = json.loads(signed.payload)["gas_coins"]
        assert len(gas) == 4 and {g[0] for g in gas} <= set(ids)
        assert node.paid_to(RECEIVER) == {signed.reference: 1_500_000_000}
        assert len(node.coins_of(PAYER_KEY.address)) == 2  # three merged away
        assert judged([signed.payload])[0]["gas_coins"] == [[g[0], str(g[1]), g[2]] for g in gas]


def test_short_funds_say_what_can_be_paid_now(iota_node: IotaNode) -> None:
    wallet = iota_wallet(iota_node)
    with pytest.raises(InsufficientBalance) as err:
        wallet.prepare(FUNDS_NANOS // NANOS_PER_UNIT, 0)
    assert err.value.kind == "insufficient balance" and err.value.retryable
    assert 0 < err.value.available < FUNDS_NANOS // NANOS_PER_UNIT
    assert "needs 10.000000000 IOTA plus" in str(err.value)
    _, status = _pay(wallet, err.value.available)
    assert status.state == CONFIRMED
    assert iota_node.rejected == []


def test_resending_after_a_lost_answer_executes_once(iota_node: IotaNode) -> None:
    wallet = iota_wallet(iota_node)
    signed = wallet.prepare(5000, 0)
    attachment = wallet.attach(signed)
    iota_node.set_fault("lost", methods={"iota_executeTransactionBlock"}, times=1)
    with pytest.raises(WalletError) as err:
        wallet.send(attachment)
    assert err.value.kind == "unreachable"
    assert signed.reference in iota_node.executed  # it ran; the answer was lost
    wallet.send(attachment)  # the same bytes again: the node answers the same effects
    wallet.promote(signed, [attachment.id])
    assert wallet.status(signed, [attachment.id]).state == CONFIRMED
    assert iota_node.paid_to(RECEIVER) == {signed.reference: 5_000_000}
    assert iota_node.rejected == []


def test_unsent_transaction_is_pending_until_a_coin_moves_then_dead(iota_node: IotaNode) -> None:
    wallet = iota_wallet(iota_node)
    signed = wallet.prepare(5000, 0)
    pending = wallet.status(signed, [signed.reference])
    assert pending.state == PENDING and pending.attachments == ()  # the node knows none
    [coin] = json.loads(signed.payload)["gas_coins"]
    iota_node.spend_elsewhere(coin[0])
    status = wallet.status(signed, [])
    assert status.state == DEAD and status.attachments == ()
    assert f"gas coin {coin[0]} is at version {coin[1] + 1}" in status.detail
    # Sending the dead transaction is refused by the node, and not raised: status decides.
    wallet.send(wallet.attach(signed))
    assert "not available for consumption" in iota_node.rejected[-1][1]
    assert wallet.status(signed, []).state == DEAD
    assert iota_node.paid_to(RECEIVER) == {}


def test_executed_transaction_is_not_dead_though_its_coin_moved(iota_node: IotaNode) -> None:
    wallet = iota_wallet(iota_node)
    _, status = _pay(wallet, 5000)
    assert status.state == CONFIRMED  # its own execution moved the coin: still confirmed


def test_executed_with_failure_is_failed_with_its_fee(iota_node: IotaNode) -> None:
    wallet = iota_wallet(iota_node, gas_margin=0.5)  # a budget below the real cost
    signed, status = _pay(wallet, 5000)
    assert status.state == FAILED and "InsufficientGas" in status.detail
    assert status.fee_nanos == iota_node.executed[signed.reference].fee_nanos > 0
    assert iota_node.paid_to(RECEIVER) == {}
    assert iota_node.balance(PAYER_KEY.address) == FUNDS_NANOS - status.fee_nanos


def test_gas_above_the_cap_waits(iota_node: IotaNode) -> None:
    wallet = iota_wallet(iota_node, max_budget_nanos=3_000_000)
    with pytest.raises(WalletError, match=r"gas budget of \d+ nanos, more than") as err:
        wallet.prepare(5000, 0)
    assert err.value.retryable and err.value.kind == "gas too high"


@pytest.mark.parametrize(("fault", "kind"), [
    ("http500", "HTTP 500"), ("rpc_error", "JSON-RPC error"), ("garbage", "garbage"),
    ("hang", "timeout"), ("refuse", "unreachable")])
def test_node_failures_are_one_line_retryable_errors(iota_node: IotaNode, fault: str,
                                                     kind: str) -> None:
    wallet = iota_wallet(iota_node, timeout_s=0.5)
    iota_node.set_fault(fault)
    for step in (lambda: wallet.prepare(1000, 0), wallet.balance_nanos,
                 wallet.chain_identifier):
        with pytest.raises(WalletError) as err:
            step()
        assert err.value.kind == kind and err.value.retryable
        assert "\n" not in str(err.value) and iota_node.url in str(err.value)
    iota_node.clear_fault()
    _, status = _pay(wallet, 1000)
    assert status.state == CONFIRMED


def test_send_refusals_are_logged_once(iota_node: IotaNode, caplog) -> None:
    wallet = iota_wallet(iota_node)
    signed = wallet.prepare(5000, 0)
    [coin] = json.loads(signed.payload)["gas_coins"]
    iota_node.spend_elsewhere(coin[0])
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            wallet.send(wallet.attach(signed))
    assert len([r for r in caplog.records if "refused" in r.getMessage()]) == 1


def test_check_helpers(iota_node: IotaNode) -> None:
    wallet = iota_wallet(iota_node)
    assert wallet.chain_identifier() == "70322e65"
    assert wallet.latest_checkpoint() >= 1
    assert wallet.balance_nanos() == FUNDS_NANOS
    assert wallet.reference_gas_price() == 1000
    fee = wallet.estimate_fee_nanos(200_000)
    assert 1_000_000 < fee < 3_000_000
    assert iota_node.executed == {}  # nothing was signed or sent
    assert PAYER_KEY.address in wallet.describe() and "5eed" not in wallet.describe()


def test_a_malformed_coin_is_a_garbage_answer_not_a_crash(iota_node: IotaNode) -> None:
    [coin] = iota_node.coins_of(PAYER_KEY.address)
    coin.digest = "0OIl"  # not base58: no transaction could name it
    with pytest.raises(WalletError, match=r"iotax_getCoins: .* unexpected shape") as err:
        iota_wallet(iota_node).prepare(1000, 0)
    assert err.value.kind == "garbage" and err.value.retryable
