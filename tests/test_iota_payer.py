"""The payer with real SQLite and IotaWallet on our IOTA node: short funds, failure, death."""

from __future__ import annotations

import json

import pytest

from p2p_energy.core.metering import RoundTotals
from p2p_energy.core.pricing import NANO, Quote
from p2p_energy.runtime.payer import Payer, PayerPolicy
from p2p_energy.store.ledger import Ledger
from p2p_energy.wallet.iota_wallet import DEAD_AFTER_S

from support.iota_fixtures import PAYER_KEY, RECEIVER, iota_wallet
from support.iota_node import IotaNode

UNIT_NANOS = 1_000


@pytest.fixture
def ledger(tmp_path):
    ledger = Ledger(tmp_path / "l.db")
    yield ledger
    ledger.close()


def owe(ledger: Ledger, units: int) -> None:
    r = RoundTotals(started_at=0, duration_s=1, metered_s=1, consumer_mws=1, producer_mws=1,
                    samples=1, expected_samples=1, ended_at=1)
    ledger.record_round(r, Quote(1.0, False, units * NANO))


def settle(payer: Payer, ledger: Ledger, wallet, steps: int = 12) -> None:
    for _ in range(steps):
        payer.tick(ledger, wallet)


def payer_for(ledger: Ledger, wallet) -> Payer:
    return Payer(lambda: ledger, lambda: wallet, PayerPolicy(min_payment=1000, poll_s=0.0))


def test_short_funds_pay_what_is_there_and_the_rest_after_a_deposit(ledger) -> None:
    with IotaNode() as node:
        node.fund(PAYER_KEY.address, 500_000_000)  # 0.5 IOTA
        wallet = iota_wallet(node)
        payer = payer_for(ledger, wallet)
        owe(ledger, 1_000_000)  # 1 IOTA owed
        settle(payer, ledger, wallet)
        first = node.paid_to(RECEIVER)
        assert len(first) == 1 and 490_000_000 < sum(first.values()) < 500_000_000
        assert ledger.totals()["queued_iota"] == 1_000_000 - sum(first.values()) // UNIT_NANOS
        node.fund(PAYER_KEY.address, 1_000_000_000)
        settle(payer, ledger, wallet)
        assert node.balance(RECEIVER) == 1_000_000 * UNIT_NANOS
        t = ledger.totals()
        assert (t["paid_iota"], t["queued_iota"]) == (1_000_000, 0)
        assert t["fees_nanos"] == sum(e.fee_nanos for e in node.executed.values())
        assert node.rejected == []


def test_a_failed_execution_is_owed_again_with_its_gas_recorded(ledger) -> None:
    with IotaNode() as node:
        node.fund(PAYER_KEY.address, 10**10)
        wallet = iota_wallet(node, gas_margin=0.5)  # a budget below the cost: InsufficientGas
        payer = payer_for(ledger, wallet)
        owe(ledger, 5_000)
        settle(payer, ledger, wallet, 4)
        assert any(p["status"] == "failed" for p in ledger.report()["payments"])
        wallet.gas_margin = 1.5  # what was signed with the small budget still fails
        settle(payer, ledger, wallet)
        failed = [p for p in ledger.report()["payments"] if p["status"] == "failed"]
        assert all(p["value_iota"] == 5_000 for p in failed)
        for p in failed:
            assert p["fee_nanos"] == node.executed[p["digest"]].fee_nanos > 0
            assert "InsufficientGas" in p["last_error"]
        [paid] = [p for p in ledger.report()["payments"] if p["status"] == "confirmed"]
        assert paid["value_iota"] == 5_000
        assert node.paid_to(RECEIVER) == {paid["digest"]: 5_000 * UNIT_NANOS}
        assert ledger.totals()["fees_nanos"] == sum(p["fee_nanos"] for p in failed) \
            + paid["fee_nanos"] == sum(e.fee_nanos for e in node.executed.values())


def test_a_transaction_proven_dead_is_signed_anew_once(ledger) -> None:
    with IotaNode() as node:
        node.fund(PAYER_KEY.address, 10**10)
        wallet = iota_wallet(node)
        payer = payer_for(ledger, wallet)
        owe(ledger, 5_000)
        payer.tick(ledger, wallet)  # signed and stored; nothing sent yet
        signed = ledger.in_flight()
        assert signed is not None and node.executed == {}
        [coin] = node.coins_of(PAYER_KEY.address)
        node.spend_elsewhere(coin.object_id)  # another transaction takes the signed version
        settle(payer, ledger, wallet)
        payments = ledger.report()["payments"]
        assert [(p["status"], p["digest"] == signed.reference) for p in payments] == [
            ("failed", True), ("confirmed", False)]
        assert payments[0]["last_error"].startswith("dead: unknown to the node, and gas coin")
        assert node.paid_to(RECEIVER) == {payments[1]["digest"]: 5_000 * UNIT_NANOS}


def test_a_refused_transaction_counts_as_unpaid_and_is_signed_anew_at_once(ledger) -> None:
    """The reference gas price doubles while the execute is on its way: refused means
    not sent; nothing counts as paid; it is signed anew at the new price at once."""
    now = [1000.0]
    with IotaNode() as node:
        node.fund(PAYER_KEY.address, 10**10)
        wallet = iota_wallet(node, clock=lambda: now[0])
        payer = payer_for(ledger, wallet)
        owe(ledger, 5_000)
        payer.tick(ledger, wallet)  # signed at gas price 1000 in epoch 0, valid to epoch 1
        first = ledger.in_flight()
        assert first is not None
        node.next_epoch(gas_price=2000)  # the reference gas price doubles
        payer.tick(ledger, wallet)  # attached and sent: refused
        assert "under reference gas price" in node.rejected[-1][1]
        refused = ledger.payment(first.id)
        assert refused.status == "queued" and refused.reference == first.reference
        assert ledger.totals()["paid_iota"] == 0
        assert "refused" in ledger.report()["payments"][0]["last_error"]
        payer.tick(ledger, wallet)  # closed and unmoved: seen once
        now[0] += DEAD_AFTER_S  # two minutes later, still so: dead; no epoch passes
        settle(payer, ledger, wallet, 4)
        payments = ledger.report()["payments"]
        assert [p["status"] for p in payments] == ["failed", "confirmed"]
        assert "reference gas price of its last epoch 1 is 2000" in payments[0]["last_error"]
        assert node.paid_to(RECEIVER) == {payments[1]["digest"]: 5_000 * UNIT_NANOS}
        assert node.executed[payments[1]["digest"]].tx.gas_price == 2000
        assert ledger.totals()["paid_iota"] == 5_000


def test_a_payment_that_ran_is_paid_once_though_its_answer_and_digest_are_gone(ledger) -> None:
    """Execute applied, answer lost, the digest never served again (pruned, or a replica
    that lags): the coin's history says it ran; it is not paid again."""
    with IotaNode() as node:
        node.fund(PAYER_KEY.address, 10**10)
        wallet = iota_wallet(node)
        payer = payer_for(ledger, wallet)
        owe(ledger, 5_000)
        payer.tick(ledger, wallet)  # signed
        node.set_fault("lost", methods={"iota_executeTransactionBlock"}, times=1)
        payer.tick(ledger, wallet)  # executed; the answer is lost
        [digest] = node.executed
        node.forget(digest)
        settle(payer, ledger, wallet)
        owe(ledger, 2_000)
        settle(payer, ledger, wallet)
        assert sorted(node.paid_to(RECEIVER).values()) == [2_000 * UNIT_NANOS,
                                                           5_000 * UNIT_NANOS]
        payments = ledger.report()["payments"]
        assert [(p["status"], p["value_iota"]) for p in payments] == [
            ("confirmed", 5_000), ("confirmed", 2_000)]
        assert ledger.totals()["paid_iota"] == 7_000


def test_a_long_refused_transaction_is_sent_again_once_per_reattach_interval(tmp_path,
                                                                             caplog) -> None:
    """The same digest attached again must restart the clock, not warn at every poll."""
    now = [1.7e9]
    ledger = Ledger(tmp_path / "clock.db", clock=lambda: now[0])
    try:
        with IotaNode() as node:
            node.fund(PAYER_KEY.address, 10**10)
            wallet = iota_wallet(node)
            payer = Payer(lambda: ledger, lambda: wallet,
                          PayerPolicy(min_payment=1000, poll_s=0.0, promote_after_s=60,
                                      reattach_after_s=300), wall=lambda: now[0])
            owe(ledger, 5_000)
            payer.tick(ledger, wallet)
            # A replica that has not seen the coin: refused, and nothing proves it dead.
            [coin] = node.coins_of(PAYER_KEY.address)
            del node.coins[coin.object_id]
            with caplog.at_level("WARNING"):
                for _ in range(30):  # 3,000 s, one poll every 100 s
                    payer.tick(ledger, wallet)
                    now[0] += 100
            again = [r for r in caplog.records if "attaching the same" in r.getMessage()]
            assert 5 <= len(again) <= 3000 // 300 + 1, len(again)
            assert ledger.in_flight() is not None and node.executed == {}
    finally:
        ledger.close()


def test_more_coins_than_one_transaction_can_use_are_all_spent_in_turn(ledger) -> None:
    """300 coins: a transaction takes at most 255 (and merges them); what is owed beyond
    them is paid by the next payment, from the merged coin and the rest."""
    node = IotaNode()
    for _ in range(300):
        node.fund(PAYER_KEY.address, 10_000_000)  # 0.01 IOTA each, 3 IOTA in all
    with node:
        wallet = iota_wallet(node)
        payer = payer_for(ledger, wallet)
        owe(ledger, 2_900_000)  # 2.9 IOTA: more than the 255 largest coins hold
        settle(payer, ledger, wallet, 20)
        assert node.balance(RECEIVER) == 2_900_000 * UNIT_NANOS
        t = ledger.totals()
        assert (t["paid_iota"], t["queued_iota"]) == (2_900_000, 0)
        assert len(node.executed) == 2 and node.rejected == []


def test_a_payment_with_more_coins_than_a_node_reads_at_once_is_followed(ledger) -> None:
    """A fullnode reads at most 50 objects per iota_multiGetObjects: a payment naming
    more than 50 coins, whose first send failed, is still followed and paid once."""
    node = IotaNode()
    for _ in range(60):
        node.fund(PAYER_KEY.address, 10_000_000)
    with node:
        wallet = iota_wallet(node)
        payer = payer_for(ledger, wallet)
        owe(ledger, 550_000)  # 0.55 IOTA and the gas budget: 60 coins
        payer.tick(ledger, wallet)  # signed
        assert len(json.loads(ledger.in_flight().payload)["gas_coins"]) > 50
        node.set_fault("http500", methods={"iota_executeTransactionBlock"}, times=1)
        settle(payer, ledger, wallet)
        assert node.balance(RECEIVER) == 550_000 * UNIT_NANOS
        assert ledger.totals()["paid_iota"] == 550_000
