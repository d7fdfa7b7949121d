"""The payer against real SQLite and the dry-run wallet (failures injected at the wallet edge)."""

import json
import logging
import time

import pytest

from p2p_energy.core.metering import RoundTotals
from p2p_energy.core.pricing import NANO, Quote
from p2p_energy.errors import InsufficientBalance, NotPromotable, WalletError
from p2p_energy.runtime.payer import MAX_CAPPED_DEATHS, Payer, PayerPolicy
from p2p_energy.store.ledger import Ledger
from p2p_energy.wallet.base import CONFIRMED, FAILED, PENDING, Status
from p2p_energy.wallet.dryrun import DryRunWallet


class ScriptedWallet(DryRunWallet):
    """The dry-run wallet, with failures and the network's answers controlled by the test."""

    def __init__(self):
        super().__init__()
        self.fail_next: list[Exception] = []
        self.state = CONFIRMED  # what status() says once something was sent
        self.on_network: list[str] = []  # attachments the network knows beyond ``known``
        self.fail_only = ""  # when set, only this step fails
        self.calls: list[str] = []
        self.balance: int | None = None  # None: enough for anything

    def _maybe_fail(self, name):
        self.calls.append(name)
        if self.fail_next and self.fail_only in ("", name):
            raise self.fail_next.pop(0)

    def prepare(self, value, index):
        self._maybe_fail("prepare")
        if self.balance is not None and value > self.balance:
            raise InsufficientBalance(f"holds {self.balance} i, needs {value} i",
                                      available=self.balance)
        return super().prepare(value, index)

    def attach(self, signed):
        self._maybe_fail("attach")
        return super().attach(signed)

    def send(self, attachment):
        self._maybe_fail("send")
        super().send(attachment)
        if self.balance is not None:
            self.balance -= json.loads(attachment.data)[2]

    def status(self, signed, known):
        self._maybe_fail("status")
        held = tuple(dict.fromkeys([*super().status(signed, known).attachments,
                                    *self.on_network]))
        return Status(self.state if held else PENDING, held, fee_nanos=0, detail="test")

    def promote(self, signed, known):
        self._maybe_fail("promote")


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
    run_steps(payer, ledger, wallet, 3)  # sign, attach + send, confirm
    assert wallet.calls == ["prepare", "attach", "send", "status"]
    (sent,) = wallet.sent
    assert (sent.value, sent.input_index, sent.change_index) == (12, 3, 4)
    assert ledger.totals()["paid_iota"] == 12
    assert ledger.report()["payments"][0]["status"] == "confirmed"
    assert ledger.input_index(0) == 4


def test_one_bundle_in_flight_and_later_amounts_go_together(setup):
    ledger, wallet, payer, _ = setup
    wallet.state = PENDING
    owe(ledger, 5)
    run_steps(payer, ledger, wallet, 2)
    owe(ledger, 2, 1)
    owe(ledger, 3, 2)
    run_steps(payer, ledger, wallet, 5)
    assert [b.value for b in wallet.sent] == [5]  # nothing new while unconfirmed
    wallet.state = CONFIRMED
    run_steps(payer, ledger, wallet, 4)
    assert [b.value for b in wallet.sent] == [5, 5]
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
    with caplog.at_level(logging.WARNING, logger="p2p_energy.runtime.payer"):
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
    wallet.state = PENDING
    owe(ledger, 6)
    run_steps(payer, ledger, wallet, 2)
    clock.now += 61
    payer.tick(ledger, wallet)
    assert wallet.calls[-1] == "promote"
    clock.now += 240
    payer.tick(ledger, wallet)
    assert wallet.calls[-3:] == ["status", "attach", "send"]
    p = ledger.payment(1)
    assert len(p.attachments) == 2 and wallet.calls.count("prepare") == 1
    wallet.state = CONFIRMED
    payer.tick(ledger, wallet)
    assert ledger.payment(1).status == "confirmed"


def test_a_bundle_that_cannot_be_promoted_is_reattached_at_once(setup):
    ledger, wallet, payer, clock = setup
    wallet.state = PENDING
    owe(ledger, 6)
    run_steps(payer, ledger, wallet, 2)
    clock.now += 61
    wallet.fail_only = "promote"
    wallet.fail_next = [NotPromotable("tail not promotable")]
    payer.tick(ledger, wallet)
    assert wallet.calls[-3:] == ["promote", "attach", "send"]
    assert len(ledger.payment(1).attachments) == 2


def test_non_retryable_prepare_failure_leaves_it_queued_and_it_is_paid_later(setup):
    ledger, wallet, payer, _ = setup
    owe(ledger, 3)
    wallet.fail_next = [WalletError("receiver rejected", retryable=False)]
    payer.tick(ledger, wallet)
    first = ledger.report()["payments"][0]
    assert (first["status"], first["last_error"]) == ("queued", "receiver rejected")
    owe(ledger, 0.5, 1)
    run_steps(payer, ledger, wallet, 3)
    assert ledger.totals()["paid_iota"] == 3


def test_stop_returns_within_grace(tmp_path):
    payer = Payer(lambda: Ledger(tmp_path / "t.db"), DryRunWallet, PayerPolicy(poll_s=30))
    payer.start()
    assert payer.stop(5.0)


def test_an_attachment_is_recorded_before_it_is_sent_and_a_failed_send_resends_it(setup):
    ledger, wallet, payer, _ = setup
    owe(ledger, 7)
    payer.tick(ledger, wallet)  # signed
    wallet.fail_only = "send"
    wallet.fail_next = [WalletError("storeTransactions: node answered HTTP 500")]
    payer.tick(ledger, wallet)
    p = ledger.in_flight()
    assert len(p.attachments) == 1 and p.unsent is not None  # known, perhaps never sent
    run_steps(payer, ledger, wallet, 3)  # status (unknown), the same attachment sent, confirmed
    assert wallet.calls.count("attach") == 1 and wallet.calls.count("send") == 2
    assert ledger.payment(p.id).attachments == p.attachments
    assert ledger.totals()["paid_iota"] == 7


def test_every_attachment_the_network_knows_is_recorded(setup, caplog):
    ledger, wallet, payer, _ = setup
    wallet.state = PENDING
    owe(ledger, 7)
    run_steps(payer, ledger, wallet, 2)
    wallet.on_network = ["UNRECORDED9TAIL"]
    with caplog.at_level(logging.INFO, logger="p2p_energy.runtime.payer"):
        payer.tick(ledger, wallet)
    assert ledger.payment(1).attachments[-1] == "UNRECORDED9TAIL"
    assert "1 attachment(s) the ledger had not recorded" in caplog.text


def test_a_payment_that_failed_on_the_network_is_paid_again(setup, caplog):
    ledger, wallet, payer, _ = setup
    wallet.state = FAILED
    owe(ledger, 7)
    with caplog.at_level(logging.WARNING, logger="p2p_energy.runtime.payer"):
        run_steps(payer, ledger, wallet, 3)
    assert "payment 1 failed (test): its 7 IOTA are owed again (payment 2)" in caplog.text
    wallet.state = CONFIRMED
    run_steps(payer, ledger, wallet, 3)
    assert [p["status"] for p in ledger.report()["payments"]] == ["failed", "confirmed"]
    assert ledger.totals()["paid_iota"] == 7
    assert wallet.calls.count("prepare") == 2


def test_low_balance_pays_what_it_can_and_the_rest_after_a_deposit(setup, caplog):
    ledger, wallet, payer, _ = setup
    wallet.balance = 5
    owe(ledger, 12)
    with caplog.at_level(logging.INFO, logger="p2p_energy.runtime.payer"):
        run_steps(payer, ledger, wallet, 3)  # 5 signed, sent, confirmed
        assert [b.value for b in wallet.sent] == [5]
        for i in range(4):  # nothing left at the input; more owed each round
            owe(ledger, 1, i + 1)
            payer.tick(ledger, wallet)
        assert [b.value for b in wallet.sent] == [5]
        wallet.balance = 100  # a deposit
        run_steps(payer, ledger, wallet, 3)
    assert [b.value for b in wallet.sent] == [5, 11]
    assert ledger.totals()["paid_iota"] == 16 and ledger.totals()["queued_iota"] == 0
    assert caplog.text.count("insufficient balance") == 1
    assert "paying the 5 IOTA there now, the rest after a deposit" in caplog.text
    assert "balance sufficient again" in caplog.text


def test_a_refused_send_says_the_signed_transfer_is_sent_again(setup, caplog):
    ledger, wallet, payer, _ = setup
    owe(ledger, 3)
    payer.tick(ledger, wallet)
    wallet.fail_only = "send"
    wallet.fail_next = [WalletError("broadcastTransactions: node answered HTTP 400: "
                                    "Invalid transaction hash", retryable=False)]
    with caplog.at_level(logging.WARNING, logger="p2p_energy.runtime.payer"):
        payer.tick(ledger, wallet)
    assert "will retry the same signed transfer" in caplog.text
    assert "owed again" not in caplog.text
    run_steps(payer, ledger, wallet, 3)
    assert ledger.totals()["paid_iota"] == 3


def test_an_unforeseen_error_restarts_the_payer_and_payments_resume(tmp_path, caplog):
    path = tmp_path / "s.db"
    ledger = Ledger(path)
    owe(ledger, 9)
    wallet = ScriptedWallet()
    wallet.fail_only = "status"
    wallet.fail_next = [KeyError("states"), KeyError("states")]
    fatal = []
    payer = Payer(lambda: Ledger(path), lambda: wallet,
                  PayerPolicy(poll_s=0.01, retry_min_s=0.01, retry_max_s=0.05))
    payer.on_fatal = fatal.append
    with caplog.at_level(logging.INFO, logger="p2p_energy.runtime.payer"):
        payer.start()
        deadline = time.monotonic() + 10
        while ledger.payment(1).status != "confirmed" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert payer.stop(5)
    assert ledger.totals()["paid_iota"] == 9 and fatal == []
    crashes = [r for r in caplog.records if "payer stopped" in r.message]
    assert [bool(r.exc_info) for r in crashes] == [True, False]  # the traceback once
    assert "KeyError: 'states'" in crashes[1].message
    assert ledger.health() == (None, 0, "")  # recovered, and the ledger says so
    ledger.close()


def test_a_burst_of_deaths_faster_than_fatal_after_s_never_stops_the_payer(tmp_path):
    """Deaths in quick succession (an odd node for a minute) only restart the payer,
    however many, until it has kept dying for ``fatal_after_s``; then it pays."""
    path = tmp_path / "s.db"
    ledger = Ledger(path)
    owe(ledger, 9)
    wallet = ScriptedWallet()
    wallet.fail_next = [ValueError("odd answer")] * 8  # 8 deaths, 5 of them after capped waits
    fatal = []
    payer = Payer(lambda: Ledger(path), lambda: wallet,
                  PayerPolicy(poll_s=0.01, retry_min_s=0.01, retry_max_s=0.04, fatal_after_s=30))
    payer.on_fatal = fatal.append
    payer.start()
    deadline = time.monotonic() + 20
    while ledger.payment(1).status != "confirmed" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert payer.stop(5)
    assert fatal == [] and ledger.totals()["paid_iota"] == 9 and wallet.fail_next == []
    ledger.close()


def test_a_payer_that_keeps_dying_is_fatal_and_check_sees_since_when(tmp_path):
    path = tmp_path / "s.db"
    ledger = Ledger(path)
    owe(ledger, 9)
    wallet = ScriptedWallet()
    wallet.fail_next = [ValueError("odd answer")] * 1000
    fatal = []
    policy = PayerPolicy(poll_s=0.01, retry_min_s=0.01, retry_max_s=0.02, fatal_after_s=0.5)
    payer = Payer(lambda: Ledger(path), lambda: wallet, policy)
    payer.on_fatal = fatal.append
    started, t0 = time.time(), time.monotonic()
    payer.start()
    payer._thread.join(10)
    took_s = time.monotonic() - t0
    assert not payer._thread.is_alive()
    assert len(fatal) == 1 and fatal[0].startswith("the payer kept failing for 0 min (")
    assert fatal[0].endswith("restarted every 0.02 s at the end); last: ValueError: odd answer")
    deaths = 1000 - len(wallet.fail_next)
    assert payer.failures == deaths - 1 >= MAX_CAPPED_DEATHS + 1  # the last one is fatal
    assert policy.fatal_after_s <= took_s < 5  # not before fatal_after_s, yet in bounded time
    since, failures, last_error = ledger.health()
    assert started <= since <= time.time() and failures == deaths - 1
    assert last_error == "payer crashed: ValueError: odd answer"
    assert ledger.totals()["queued_iota"] == 9  # still owed, nothing lost
    ledger.close()


def test_an_attachment_the_network_got_although_its_send_failed_is_not_sent_again(setup):
    ledger, wallet, payer, _ = setup
    owe(ledger, 7)
    payer.tick(ledger, wallet)  # signed
    wallet.fail_only = "send"
    wallet.fail_next = [WalletError("storeTransactions: node answered HTTP 500")]
    payer.tick(ledger, wallet)  # attached, recorded; the send "failed"
    p = ledger.in_flight()
    wallet.state = PENDING
    wallet.on_network = list(p.attachments)  # ...but the broadcast had got through
    payer.tick(ledger, wallet)
    assert ledger.in_flight().unsent is None and wallet.calls.count("send") == 1


def test_a_payer_that_keeps_dying_stops_the_daemon_which_then_exits_non_zero(tmp_path):
    import threading as th

    from p2p_energy import config
    from p2p_energy.runtime.daemon import Daemon
    from p2p_energy.sensors.simulated import SimulatedSensor

    class Broken(DryRunWallet):
        def status(self, signed, known):
            raise TypeError("'NoneType' object is not iterable")

    cfg = config.build({"meter": {"sensor": "simulated", "sample_interval_s": 0.01},
                        "round": {"length_s": 0.1, "checkpoint_s": 0.5},
                        "wallet": {"backend": "dry-run"}}, source="test.toml")
    path = str(tmp_path / "d.db")
    payer = Payer(lambda: Ledger(path), Broken,
                  PayerPolicy(poll_s=0.01, retry_min_s=0.01, retry_max_s=0.02,
                              fatal_after_s=0.3))
    daemon = Daemon(cfg, SimulatedSensor(), path, payer)
    guard = th.Timer(30, daemon.request_stop)  # the test fails below rather than hang
    guard.start()
    daemon.run()
    guard.cancel()
    assert daemon.fatal_reason.startswith("the payer kept failing for 0 min (")
    assert "; last: TypeError" in daemon.fatal_reason
    status = daemon._payments_status()  # what sd_notify STATUS= carries after each round
    assert status.startswith("; payments failing since 20") and "payer crashed: TypeError" in status
    ledger = Ledger(path)
    assert ledger.report()["rounds"] and ledger.health()[0] is not None
    ledger.close()


@pytest.mark.parametrize("why", ["refused", "too old"])
def test_an_unsent_attachment_the_node_refuses_or_too_old_is_replaced_and_paid_once(
        legacy_node, tmp_path, why, caplog):
    """Through PyOTA over HTTP to the strict node, real SQLite: a crash left an attachment
    recorded but never sent; the node then refuses it (its attachment timestamp is older
    than the node's snapshot, as IRI says "Invalid transaction timestamp"), or every send
    of it fails for longer than ``reattach_after_s``. A fresh attachment pays, once."""
    from p2p_energy.wallet.pyota_wallet import PyotaWallet

    from support.node_fixtures import PAYER_SEED, RECEIVER, wallet_config

    legacy_node.fund_seed(PAYER_SEED, 0, 1000)
    clock = Clock()
    ledger = Ledger(tmp_path / "l.db", clock=clock)
    wallet = PyotaWallet(wallet_config(legacy_node))
    payer = Payer(lambda: ledger, lambda: wallet,
                  PayerPolicy(poll_s=1, promote_after_s=60, reattach_after_s=300), wall=clock)
    owe(ledger, 5)
    payer.tick(ledger, wallet)  # signed
    p = ledger.in_flight()
    stale = wallet.attach(p.signed)
    ledger.record_attachment(p.id, stale)  # ...and the process died before sending it
    if why == "refused":
        legacy_node.take_snapshot()
    else:
        legacy_node.set_fault("http500", commands={"broadcastTransactions"})
    with caplog.at_level(logging.WARNING, logger="p2p_energy.runtime.payer"):
        for _ in range(3):
            clock.now += 200
            payer.tick(ledger, wallet)
            if why != "refused" and ledger.payment(p.id).attachments != (stale.id,):
                legacy_node.clear_fault()  # the fresh attachment's send failed; now it goes
    for _ in range(3):
        legacy_node.confirm_all()
        clock.now += 1
        payer.tick(ledger, wallet)
    done = ledger.payment(p.id)
    assert done.status == "confirmed" and stale.id in done.attachments
    assert len(done.attachments) >= 2 and ledger.in_flight() is None
    assert legacy_node.balance(RECEIVER) == 5 == ledger.totals()["paid_iota"]
    assert legacy_node.addresses_signed_by_more_than_one_bundle() == {}
    assert stale.id not in {t for rec in legacy_node.bundles.values() for t in rec.tails}
    if why == "refused":
        assert [r.reason for r in legacy_node.rejected] == ["Invalid transaction timestamp"]
        assert "attachment refused" in caplog.text
    else:
        assert legacy_node.rejected == [] and "attachment unsent for" in caplog.text
    wallet.close()
    ledger.close()
