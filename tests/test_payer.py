"""The payer against real SQLite and the dry-run wallet (failures injected at the wallet edge)."""

import logging

import pytest

from p2p_energy.errors import InsufficientBalance, WalletError
from p2p_energy.ledger import Ledger
from p2p_energy.metering import RoundTotals
from p2p_energy.payer import Payer, PayerPolicy
from p2p_energy.pricing import NANO, Quote
from p2p_energy.wallet.dryrun import DryRunWallet


class ScriptedWallet(DryRunWallet):
    """The dry-run wallet, with failures and confirmation controlled by the test."""

    def __init__(self):
        super().__init__()
        self.fail_next: list[Exception] = []
        self.confirm = True
        self.fail_only = ""  # when set, only this step fails
        self.calls: list[str] = []

    def _maybe_fail(self, name):
        self.calls.append(name)
        if self.fail_next and self.fail_only in ("", name):
            raise self.fail_next.pop(0)

    def prepare(self, value, i, c):
        self._maybe_fail("prepare")
        return super().prepare(value, i, c)

    def broadcast(self, b):
        self._maybe_fail("broadcast")
        return super().broadcast(b)

    def is_confirmed(self, tails):
        self._maybe_fail("is_confirmed")
        return self.confirm

    def promote(self, tail):
        self._maybe_fail("promote")

    def reattach(self, tail):
        self._maybe_fail("reattach")
        return super().reattach(tail)


class Clock:
    def __init__(self):
        self.now = 1.7e9

    def __call__(self):
        return self.now


@pytest.fixture
def setup(tmp_path):
    clock = Clock()
    ledger = Ledger(tmp_path / "l.db", clock=clock)
    wallet = ScriptedWallet()
    payer = Payer(lambda: ledger, lambda: wallet,
                  PayerPolicy(start_index=3, promote_after_s=60, reattach_after_s=300), wall=clock)
    yield ledger, wallet, payer, clock
    ledger.close()


def owe(ledger, iota, i=0):
    r = RoundTotals(started_at=i, duration_s=1, metered_s=1, consumer_mws=1, producer_mws=1,
                    samples=1, expected_samples=1, ended_at=i + 1)
    ledger.record_round(r, Quote(1.0, False, round(iota * NANO)))


def run_steps(payer, ledger, wallet, n):
    return [payer.tick(ledger, wallet) for _ in range(n)]


def test_pays_owed_amount_and_moves_to_change_index(setup):
    ledger, wallet, payer, _ = setup
    owe(ledger, 12.7)
    run_steps(payer, ledger, wallet, 3)  # sign, broadcast, confirm
    (sent,) = wallet.sent
    assert (sent.value_iota, sent.input_index, sent.change_index) == (12, 3, 4)
    assert ledger.totals()["paid_iota"] == 12
    assert ledger.report()["payments"][0]["status"] == "confirmed"
    assert ledger.input_index(0) == 4


def test_one_bundle_in_flight_and_later_amounts_go_together(setup):
    ledger, wallet, payer, _ = setup
    wallet.confirm = False
    owe(ledger, 5)
    run_steps(payer, ledger, wallet, 2)
    owe(ledger, 2, 1)
    owe(ledger, 3, 2)
    run_steps(payer, ledger, wallet, 5)
    assert [b.value_iota for b in wallet.sent] == [5]  # nothing new while unconfirmed
    wallet.confirm = True
    run_steps(payer, ledger, wallet, 4)
    assert [b.value_iota for b in wallet.sent] == [5, 5]
    assert [b.input_index for b in wallet.sent] == [3, 4]  # never the same key twice
    assert ledger.totals()["paid_iota"] == 10


def test_restart_after_signing_rebroadcasts_stored_bundle_without_resigning(setup, tmp_path):
    ledger, wallet, payer, clock = setup
    owe(ledger, 8)
    payer.tick(ledger, wallet)  # signed and committed, then "crash"
    assert wallet.calls == ["prepare"] and not wallet.sent
    signed = ledger.in_flight().signed
    fresh_wallet = ScriptedWallet()
    fresh = Payer(lambda: ledger, lambda: fresh_wallet, payer.policy, wall=clock)
    run_steps(fresh, ledger, fresh_wallet, 2)
    assert "prepare" not in fresh_wallet.calls
    assert fresh_wallet.sent == [signed]
    assert ledger.totals()["paid_iota"] == 8


def test_retryable_failures_keep_the_amount_owed_and_log_once(setup, caplog):
    ledger, wallet, payer, _ = setup
    owe(ledger, 4)
    err = WalletError("node at http://127.0.0.1:1: connection refused")
    wallet.fail_next = [err, err, err, InsufficientBalance("balance 0 < 4")]
    with caplog.at_level(logging.WARNING, logger="p2p_energy.payer"):
        delays = run_steps(payer, ledger, wallet, 4)
    assert delays == [1.0, 2.0, 4.0, 8.0]  # capped exponential backoff
    assert len([r for r in caplog.records if "connection refused" in r.message]) == 1
    assert ledger.totals()["queued_iota"] == 4
    assert ledger.report()["payments"][0]["attempts"] == 4
    run_steps(payer, ledger, wallet, 3)
    assert ledger.totals()["paid_iota"] == 4


def test_backoff_is_capped(setup):
    ledger, wallet, payer, _ = setup
    owe(ledger, 4)
    wallet.fail_next = [WalletError("down")] * 20
    delays = run_steps(payer, ledger, wallet, 20)
    assert max(delays) == payer.policy.retry_max_s


def test_unconfirmed_bundle_is_promoted_then_reattached(setup):
    ledger, wallet, payer, clock = setup
    wallet.confirm = False
    owe(ledger, 6)
    run_steps(payer, ledger, wallet, 2)
    clock.now += 61
    payer.tick(ledger, wallet)
    assert wallet.calls[-1] == "promote"
    clock.now += 240
    payer.tick(ledger, wallet)
    assert wallet.calls[-1] == "reattach"
    p = ledger.payment(1)
    assert len(p.tails) == 2 and wallet.calls.count("prepare") == 1
    wallet.confirm = True
    payer.tick(ledger, wallet)
    assert ledger.payment(1).status == "confirmed"


def test_a_bundle_that_cannot_be_promoted_is_reattached_at_once(setup):
    ledger, wallet, payer, clock = setup
    wallet.confirm = False
    owe(ledger, 6)
    run_steps(payer, ledger, wallet, 2)
    clock.now += 61
    wallet.fail_only = "promote"
    wallet.fail_next = [WalletError("tail not promotable: reattach it", retryable=False)]
    payer.tick(ledger, wallet)
    assert wallet.calls[-2:] == ["promote", "reattach"]
    assert len(ledger.payment(1).tails) == 2


def test_non_retryable_prepare_failure_marks_failed_and_is_owed_again(setup):
    ledger, wallet, payer, _ = setup
    owe(ledger, 3)
    wallet.fail_next = [WalletError("receiver rejected", retryable=False)]
    payer.tick(ledger, wallet)
    assert ledger.report()["payments"][0]["status"] == "failed"
    owe(ledger, 0.5, 1)
    run_steps(payer, ledger, wallet, 3)
    assert ledger.totals()["paid_iota"] == 3


def test_stop_returns_within_grace(tmp_path):
    payer = Payer(lambda: Ledger(tmp_path / "t.db"), DryRunWallet, PayerPolicy(poll_s=30))
    payer.start()
    assert payer.stop(5.0)
