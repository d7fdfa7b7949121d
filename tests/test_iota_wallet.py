"""IotaWallet against our JSON-RPC test node; every signed transaction judged by the IOTA SDK."""

from __future__ import annotations

import json
import logging

import pytest

from p2p_energy.errors import InsufficientBalance, WalletError
from p2p_energy.wallet.base import CONFIRMED, DEAD, FAILED, PENDING
from p2p_energy.wallet.iota_wallet import DEAD_AFTER_S, NANOS_PER_UNIT, IotaWallet

from support.iota_fixtures import FUNDS_NANOS, PAYER_KEY, RECEIVER, iota_wallet, judged
from support.iota_node import IotaNode


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
    # Sending the dead transaction is refused by the node: nothing was sent; status decides.
    with pytest.raises(WalletError) as err:
        wallet.send(wallet.attach(signed))
    assert err.value.kind == "refused" and err.value.retryable
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


def test_a_refused_send_raises_with_the_nodes_reason(iota_node: IotaNode) -> None:
    """Refused means not sent: the payer must not count it as paid (its log says it once)."""
    wallet = iota_wallet(iota_node)
    signed = wallet.prepare(5000, 0)
    iota_node.next_epoch(gas_price=2000)
    for _ in range(2):
        with pytest.raises(WalletError, match="under reference gas price") as err:
            wallet.send(wallet.attach(signed))
        assert err.value.kind == "refused" and err.value.retryable
    assert iota_node.executed == {}


def _lose_answer(node: IotaNode, wallet: IotaWallet, value: int):
    """Execute a payment whose answer is lost; returns its Signed."""
    signed = wallet.prepare(value, 0)
    node.set_fault("lost", methods={"iota_executeTransactionBlock"}, times=1)
    with pytest.raises(WalletError):
        wallet.send(wallet.attach(signed))
    assert signed.reference in node.executed
    return signed


def test_a_transaction_that_ran_is_confirmed_though_the_node_no_longer_serves_it(
        iota_node: IotaNode, caplog) -> None:
    """Execute applied, answer lost, digest pruned: its coin's history says it ran."""
    wallet = iota_wallet(iota_node)
    signed = _lose_answer(iota_node, wallet, 5000)
    iota_node.forget(signed.reference)
    with pytest.raises(WalletError) as err:  # sent again: refused, its coin has moved
        wallet.send(wallet.attach(signed))
    assert err.value.kind == "refused"
    with caplog.at_level(logging.WARNING):
        status = wallet.status(signed, [signed.reference])
    assert status.state == CONFIRMED and status.attachments == (signed.reference,)
    assert "made by it" in status.detail and "told by its coin's balance" in status.detail
    assert status.fee_nanos == iota_node.executed[signed.reference].fee_nanos > 0
    assert "it ran and paid" in caplog.text
    assert iota_node.paid_to(RECEIVER) == {signed.reference: 5_000_000}


def test_a_failed_transaction_no_longer_served_is_failed_not_paid(iota_node: IotaNode) -> None:
    """A failure smashes and charges the gas too: its coin's balance tells it paid nothing."""
    wallet = iota_wallet(iota_node, gas_margin=0.5)  # a budget below the cost: it fails
    signed = _lose_answer(iota_node, wallet, 5000)
    assert not iota_node.executed[signed.reference].success
    iota_node.forget(signed.reference)
    status = wallet.status(signed, [signed.reference])
    assert status.state == FAILED and "told by its coin's balance" in status.detail
    assert status.fee_nanos == iota_node.executed[signed.reference].fee_nanos > 0
    assert iota_node.paid_to(RECEIVER) == {}


def test_when_the_balance_cannot_tell_paid_from_failed_it_waits(iota_node: IotaNode) -> None:
    """One micro-IOTA is less than the gas budget: paid or failed leave the coin alike."""
    wallet = iota_wallet(iota_node)
    signed = _lose_answer(iota_node, wallet, 1)
    iota_node.forget(signed.reference)
    status = wallet.status(signed, [signed.reference])
    assert status.state == PENDING
    assert "whether it paid or failed cannot be told" in status.detail


def test_ours_running_between_the_reads_of_its_coins_is_not_dead() -> None:
    """A fullnode reads the objects of one multiGetObjects apart: ours may land between
    the first coin (seen unmoved) and another (seen deleted, smashed by ours)."""
    node = IotaNode()
    for _ in range(3):
        node.fund(PAYER_KEY.address, 400_000_000)
    with node:
        wallet = iota_wallet(node)
        signed = wallet.prepare(700_000, 0)
        gas = json.loads(signed.payload)["gas_coins"]
        assert len(gas) == 2
        data = json.loads(signed.payload)

        def land_ours(object_id: str) -> None:
            if object_id == gas[0][0] and not node.executed:
                node.handle("iota_executeTransactionBlock", [data["tx_bytes"],
                                                              [data["signature"]]])
                node.forget(signed.reference)  # and not served here yet

        node.between_objects = land_ours
        status = wallet.status(signed, [])
        assert node.paid_to(RECEIVER) == {signed.reference: 700_000_000}
        assert status.state == CONFIRMED


def test_a_node_that_leaves_out_the_previous_transaction_proves_nothing(
        iota_node: IotaNode, monkeypatch) -> None:
    from support import iota_node as node_module
    wallet = iota_wallet(iota_node)
    signed = _lose_answer(iota_node, wallet, 5000)
    iota_node.forget(signed.reference)
    shown = node_module._object_data

    def without_previous(coin, options):
        data = shown(coin, options)
        data.pop("previousTransaction", None)
        return data

    monkeypatch.setattr(node_module, "_object_data", without_previous)
    status = wallet.status(signed, [signed.reference])
    assert status.state == PENDING and "does not say which transaction" in status.detail


def test_it_ran_though_its_coin_moved_on_since(iota_node: IotaNode) -> None:
    """The coin's version after ours (``iota_tryGetPastObject``) names our digest."""
    wallet = iota_wallet(iota_node)
    first = _lose_answer(iota_node, wallet, 5000)
    _, status = _pay(wallet, 7000)  # moves the same coin on
    assert status.state == CONFIRMED
    iota_node.forget(first.reference)
    assert wallet.status(first, [first.reference]).state == CONFIRMED
    assert "iota_tryGetPastObject" in iota_node.method_names()
    assert sorted(iota_node.paid_to(RECEIVER).values()) == [5_000_000, 7_000_000]


def test_when_the_history_is_pruned_too_it_waits_and_says_so_once(iota_node: IotaNode,
                                                                  caplog) -> None:
    wallet = iota_wallet(iota_node)
    first = _lose_answer(iota_node, wallet, 5000)
    _pay(wallet, 7000)
    iota_node.forget(first.reference)
    iota_node.prune_history()
    for _ in range(2):
        iota_node.next_epoch()  # long past its expiry too: still never a guess
    with caplog.at_level(logging.WARNING):
        states = [wallet.status(first, [first.reference]) for _ in range(3)]
    assert {s.state for s in states} == {PENDING}
    assert "cannot tell whether it ran" in states[0].detail
    assert "does not serve its version" in states[0].detail
    assert len([r for r in caplog.records if "cannot tell" in r.getMessage()]) == 1


def test_a_transaction_that_ran_is_not_dead_when_its_epoch_is_over(iota_node: IotaNode) -> None:
    wallet = iota_wallet(iota_node)
    signed = _lose_answer(iota_node, wallet, 5000)
    iota_node.forget(signed.reference)
    for _ in range(3):
        iota_node.next_epoch()
    assert wallet.status(signed, [signed.reference]).state == CONFIRMED


def test_nothing_moved_and_its_epoch_is_over_is_dead(iota_node: IotaNode) -> None:
    now = [1000.0]
    wallet = iota_wallet(iota_node, clock=lambda: now[0])
    signed = wallet.prepare(5000, 0)
    iota_node.next_epoch()
    assert wallet.status(signed, []).state == PENDING  # epoch 1: it may still run
    iota_node.next_epoch()
    first = wallet.status(signed, [])  # seen closed once: a replica may lag
    assert first.state == PENDING and "dead if nothing it names has moved" in first.detail
    now[0] += DEAD_AFTER_S
    status = wallet.status(signed, [])
    assert status.state == DEAD and "nothing it names moved" in status.detail
    assert "its last epoch 1 is over" in status.detail


def test_coins_from_a_replica_that_lags_do_not_make_a_transaction_that_ran_dead(
        iota_node: IotaNode) -> None:
    """A load-balanced endpoint: the epoch from a replica ahead, the coins from one that
    has not applied ours yet (it ran late in its last epoch)."""
    now = [1000.0]
    wallet = iota_wallet(iota_node, clock=lambda: now[0])
    signed = wallet.prepare(5000, 0)
    [coin] = iota_node.coins_of(PAYER_KEY.address)
    stale = {"objectId": coin.object_id, "version": str(coin.version), "digest": coin.digest,
             "previousTransaction": coin.previous_tx,
             "content": {"fields": {"balance": str(coin.balance)}}}
    iota_node.next_epoch()  # its last epoch; it runs
    data = json.loads(signed.payload)
    iota_node.handle("iota_executeTransactionBlock", [data["tx_bytes"], [data["signature"]]])
    iota_node.forget(signed.reference)
    iota_node.next_epoch()
    fresh = iota_node._rpc_iota_multiGetObjects
    iota_node._rpc_iota_multiGetObjects = lambda ids, options=None: [{"data": stale}]
    assert wallet.status(signed, []).state == PENDING  # looks unmoved and closed: not yet
    iota_node._rpc_iota_multiGetObjects = fresh  # the replica catches up
    now[0] += DEAD_AFTER_S
    assert wallet.status(signed, []).state == CONFIRMED
    assert iota_node.paid_to(RECEIVER) == {signed.reference: 5_000_000}


def test_its_own_price_in_its_last_epoch_keeps_it_pending(iota_node: IotaNode) -> None:
    wallet = iota_wallet(iota_node)
    signed = wallet.prepare(5000, 0)
    iota_node.next_epoch(gas_price=1000)  # its last epoch, at its price: it may run
    status = wallet.status(signed, [])
    assert status.state == PENDING and "cannot tell" not in status.detail


def test_its_last_epochs_higher_price_makes_it_dead(iota_node: IotaNode) -> None:
    now = [1000.0]
    wallet = iota_wallet(iota_node, clock=lambda: now[0])
    signed = wallet.prepare(5000, 0)
    iota_node.next_epoch(gas_price=2000)  # epoch 1, its last: the price doubled
    assert wallet.status(signed, []).state == PENDING
    now[0] += DEAD_AFTER_S
    status = wallet.status(signed, [])
    assert status.state == DEAD
    assert "reference gas price of its last epoch 1 is 2000, above its 1000" in status.detail


def test_another_of_its_coins_spent_elsewhere_makes_it_dead() -> None:
    node = IotaNode()
    for _ in range(3):
        node.fund(PAYER_KEY.address, 400_000_000)
    with node:
        wallet = iota_wallet(node)
        signed = wallet.prepare(700_000, 0)  # 0.7 IOTA: two coins
        gas = json.loads(signed.payload)["gas_coins"]
        assert len(gas) == 2
        node.spend_elsewhere(gas[1][0])
        status = wallet.status(signed, [])
        assert status.state == DEAD and f"gas coin {gas[1][0]} moved" in status.detail


def test_a_coin_the_node_does_not_know_proves_nothing(iota_node: IotaNode) -> None:
    wallet = iota_wallet(iota_node)
    signed = wallet.prepare(5000, 0)
    [coin] = iota_node.coins_of(PAYER_KEY.address)
    del iota_node.coins[coin.object_id]  # a replica that has not seen the coin yet
    for _ in range(2):
        iota_node.next_epoch()
    status = wallet.status(signed, [])
    assert status.state == PENDING and "may lag" in status.detail


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
