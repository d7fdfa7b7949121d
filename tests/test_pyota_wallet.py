"""PyotaWallet through the real PyOTA client over HTTP to the test node on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import subprocess
import sys
import threading
import time
import warnings
from typing import Any

import pytest

from p2p_energy.errors import InsufficientBalance, NotPromotable, WalletError
from p2p_energy.wallet.base import CONFIRMED, PENDING, Signed, Status
from p2p_energy.wallet.pyota_wallet import PyotaWallet

from support.legacy_node import address_of
from support.node_fixtures import PAYER_SEED, RECEIVER, TEST_MWM, wallet_config

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from iota import TryteString
    from iota.trits import trits_from_int

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


@pytest.fixture
def wallet(legacy_node):
    w = PyotaWallet(wallet_config(legacy_node))
    yield w
    w.close()


def in_thread(fn: Any, *args: Any) -> Any:
    """Run ``fn`` in a fresh worker thread (as the payer does) and return its result."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn(*args)
        except BaseException as err:
            out["error"] = err
    t = threading.Thread(target=run)
    t.start()
    t.join(timeout=60)
    if "error" in out:
        raise out["error"]
    return out["value"]


def assert_clean(err: WalletError) -> None:
    """One line, no seed in it (also not in the node's words)."""
    text = str(err)
    assert text and "\n" not in text and len(text) <= 300
    assert PAYER_SEED not in text and PAYER_SEED.rstrip("9") not in text
    assert PAYER_SEED.rstrip("9") not in err.node_message


# -- imports ------------------------------------------------------------------------------

def test_importing_and_building_the_wallet_does_not_import_iota():
    code = ("import sys; from p2p_energy.config import WalletConfig;"
            "from p2p_energy.wallet.pyota_wallet import PyotaWallet;"
            f"PyotaWallet(WalletConfig(seed='A', receiver='{RECEIVER}'));"
            "assert 'iota' not in sys.modules, 'iota imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_importing_iota_prints_no_warnings():
    code = "from p2p_energy.wallet.pyota_wallet import import_iota; import_iota()"
    proc = subprocess.run([sys.executable, "-W", "error", "-c", code],
                          capture_output=True, text=True, check=True)
    assert proc.stderr == ""


# -- a payment ----------------------------------------------------------------------------

def send(wallet: PyotaWallet, signed: Signed) -> str:
    """attach + send, as the payer does; returns the attachment id (the tail hash)."""
    attachment = in_thread(wallet.attach, signed)
    in_thread(wallet.send, attachment)
    return attachment.id


def test_a_funded_seed_pays_the_receiver(legacy_node, wallet):
    legacy_node.fund_seed(PAYER_SEED, 0, 1000)
    start = time.perf_counter()
    signed = in_thread(wallet.prepare, 100, 0)
    prepared = time.perf_counter()
    attachment = in_thread(wallet.attach, signed)
    assert legacy_node.bundles == {}  # attaching sends nothing that can confirm
    in_thread(wallet.send, attachment)
    sent = time.perf_counter()
    print(f"\nprepare {prepared - start:.2f} s (incl. import iota and 2 addresses), "
          f"attach + send {sent - prepared:.2f} s at mwm {TEST_MWM}")
    assert legacy_node.command_names() == [
        "wereAddressesSpentFrom", "getBalances", "getTransactionsToApprove", "attachToTangle",
        "broadcastTransactions", "storeTransactions"]
    # One question about the input and the change address together.
    assert legacy_node.requests[0][1] == {"addresses": [address_of(PAYER_SEED, 0),
                                                        address_of(PAYER_SEED, 1)]}
    assert legacy_node.requests[1][1] == {"addresses": [address_of(PAYER_SEED, 0)]}
    assert (signed.value, signed.input_index, signed.change_index) == (100, 0, 1)
    trytes = json.loads(signed.payload)
    assert len(trytes) == 4  # output, 2 signature fragments, change
    # The tail hash was computed locally, before the node had the bundle.
    assert legacy_node.bundles[signed.reference].tails == [attachment.id]
    assert wallet.status(signed, [attachment.id]) == Status(PENDING, (attachment.id,))
    legacy_node.confirm_all()
    status = in_thread(wallet.status, signed, [attachment.id])
    assert status.state == CONFIRMED and status.attachments == (attachment.id,)
    assert legacy_node.balance(RECEIVER) == 100
    assert wallet.balance(1) == 900 and wallet.balance(0) == 0
    assert legacy_node.rejected == []
    assert legacy_node.addresses_signed_by_more_than_one_bundle() == {}


def test_spending_the_whole_balance_needs_no_change(legacy_node, wallet):
    legacy_node.fund_seed(PAYER_SEED, 3, 250)
    signed = wallet.prepare(250, 3)
    assert len(json.loads(signed.payload)) == 3 and signed.change_index == 4
    send(wallet, signed)
    legacy_node.confirm_all()
    assert legacy_node.balance(RECEIVER) == 250
    assert legacy_node.rejected == []


def test_refuses_zero_value_and_bad_indexes(wallet):
    with pytest.raises(ValueError, match="positive"):
        wallet.prepare(0, 0)
    with pytest.raises(ValueError, match="negative"):
        wallet.prepare(5, -1)


def test_insufficient_balance_says_what_is_there(legacy_node, wallet):
    legacy_node.fund_seed(PAYER_SEED, 0, 50)
    with pytest.raises(InsufficientBalance) as err:
        wallet.prepare(100, 0)
    assert err.value.retryable and err.value.available == 50
    assert "holds 50 i" in str(err.value) and "needs 100 i" in str(err.value)
    assert_clean(err.value)
    assert legacy_node.command_names() == ["wereAddressesSpentFrom", "getBalances"]


def test_an_address_already_spent_from_is_never_signed_again(legacy_node, wallet):
    legacy_node.fund_seed(PAYER_SEED, 0, 1000)
    send(wallet, in_thread(wallet.prepare, 100, 0))  # spends #0
    with pytest.raises(WalletError) as err:
        in_thread(wallet.prepare, 100, 0)
    assert not err.value.retryable and "already spent from" in str(err.value)
    assert "p2p-energy wallet set-index" in str(err.value)
    assert legacy_node.addresses_signed_by_more_than_one_bundle() == {}


def test_change_never_goes_to_a_spent_address(legacy_node, wallet):
    # #5 and #6 were spent from by someone else using this seed; #4 holds the funds.
    legacy_node.fund_seed(PAYER_SEED, 4, 1000)
    legacy_node.add_history([], spent=[address_of(PAYER_SEED, 5), address_of(PAYER_SEED, 6)])
    signed = wallet.prepare(100, 4)
    assert signed.change_index == 7
    assert [r for c, r in legacy_node.requests if c == "wereAddressesSpentFrom"] == [
        {"addresses": [address_of(PAYER_SEED, 4), address_of(PAYER_SEED, 5)]},
        {"addresses": [address_of(PAYER_SEED, 6)]},
        {"addresses": [address_of(PAYER_SEED, 7)]}]
    send(wallet, signed)
    legacy_node.confirm_all()
    assert legacy_node.balance(address_of(PAYER_SEED, 7)) == 900


# -- attach again, promote, status by bundle ---------------------------------------------------

def test_attaching_again_gives_a_new_tail_of_the_same_bundle(legacy_node, wallet):
    legacy_node.fund_seed(PAYER_SEED, 0, 1000)
    signed = wallet.prepare(100, 0)
    first = send(wallet, signed)
    second = send(wallet, signed)
    assert second != first
    assert legacy_node.bundles[signed.reference].tails == [first, second]
    legacy_node.confirm_all()
    assert wallet.status(signed, [second]).state == CONFIRMED
    assert legacy_node.balance(RECEIVER) == 100  # once, however many attachments
    assert legacy_node.addresses_signed_by_more_than_one_bundle() == {}
    assert legacy_node.rejected == []


def test_a_fresh_wallet_attaches_from_the_payload_alone(legacy_node, wallet):
    legacy_node.fund_seed(PAYER_SEED, 0, 1000)
    signed = wallet.prepare(100, 0)
    fresh = PyotaWallet(wallet_config(legacy_node))  # as after a restart
    try:
        tail = send(fresh, signed)
        legacy_node.confirm_all()
        assert fresh.status(signed, [tail]).state == CONFIRMED
    finally:
        fresh.close()
    names = legacy_node.command_names()  # the node never had the bundle before this
    assert "getTrytes" not in names[:names.index("storeTransactions")]
    assert legacy_node.balance(RECEIVER) == 100


def test_status_finds_attachments_the_caller_never_heard_of(legacy_node, wallet):
    legacy_node.fund_seed(PAYER_SEED, 0, 1000)
    signed = wallet.prepare(100, 0)
    lost = send(wallet, signed)  # e.g. sent, then the process died before recording it
    known = send(wallet, signed)
    status = wallet.status(signed, [known])
    assert status.state == PENDING and set(status.attachments) == {known, lost}
    legacy_node.confirm_all()
    status = wallet.status(signed, [known])
    assert status.state == CONFIRMED and set(status.attachments) == {known, lost}


def test_promote_attaches_a_zero_value_transaction(legacy_node, wallet):
    legacy_node.fund_seed(PAYER_SEED, 0, 1000)
    signed = wallet.prepare(100, 0)
    tail = send(wallet, signed)
    wallet.promote(signed, [tail])
    assert "checkConsistency" in legacy_node.command_names()
    assert len(legacy_node.bundles) == 2
    assert legacy_node.rejected == []


def test_an_unknown_tail_is_not_promotable(legacy_node, wallet):
    signed = Signed("B" * 81, "[]", 1, 0, 1)
    with pytest.raises(NotPromotable, match="not promotable") as err:
        wallet.promote(signed, ["A" * 81])
    assert not err.value.retryable
    assert "not solid" in err.value.node_message or "not solid" in str(err.value.__cause__)
    with pytest.raises(NotPromotable):
        wallet.promote(signed, [])


# -- what the node rejects ------------------------------------------------------------------

def test_a_bundle_tampered_after_signing_is_rejected_by_the_node(legacy_node, wallet):
    legacy_node.fund_seed(PAYER_SEED, 0, 1000)
    signed = wallet.prepare(100, 0)

    def value(raw: str, v: int) -> str:
        return raw[:2268] + str(TryteString.from_trits(trits_from_int(v, pad=81))) + raw[2295:]
    t = json.loads(signed.payload)  # head first: change 900, signature, input -1000, output 100
    tampered = dataclasses.replace(signed, payload=json.dumps(
        [value(t[0], 800), *t[1:3], value(t[3], 200)]))
    with pytest.raises(WalletError) as err:
        send(wallet, tampered)
    assert not err.value.retryable
    assert err.value.node_message.startswith("Invalid bundle hash")
    assert "storeTransactions" not in legacy_node.command_names()
    assert_clean(err.value)
    assert [r.reason.split(":")[0] for r in legacy_node.rejected] == ["Invalid bundle hash"]


def test_low_proof_of_work_is_refused(legacy_node):
    legacy_node.mwm = 9  # the wallet asks for weight 1; 9 trailing zeros by luck: ~3^-8
    legacy_node.fund_seed(PAYER_SEED, 0, 1000)
    low = PyotaWallet(wallet_config(legacy_node, min_weight_magnitude=1))
    try:
        with pytest.raises(WalletError, match="Invalid transaction hash") as err:
            send(low, low.prepare(100, 0))
    finally:
        low.close()
    assert not err.value.retryable
    assert_clean(err.value)


def test_a_receiver_with_a_wrong_checksum_is_refused(legacy_node):
    w = PyotaWallet(wallet_config(legacy_node, receiver=RECEIVER + "A" * 9))
    with pytest.raises(WalletError, match="checksum") as err:
        w.prepare(1, 0)
    assert not err.value.retryable


# -- faults ------------------------------------------------------------------------------------

@pytest.mark.parametrize("fault", ["refuse", "hang", "http500", "garbage"])
def test_every_fault_is_a_retryable_one_line_wallet_error(legacy_node, fault):
    w = PyotaWallet(wallet_config(legacy_node, timeout_s=0.3))
    legacy_node.set_fault(fault)
    start = time.monotonic()
    try:
        with pytest.raises(WalletError) as err:
            in_thread(w.prepare, 100, 0)
    finally:
        w.close()
    assert time.monotonic() - start < 3.0  # includes deriving the address
    assert err.value.retryable
    assert type(err.value) is WalletError
    assert str(err.value).startswith("wereAddressesSpentFrom: ")  # the first request
    assert legacy_node.url in str(err.value)
    assert_clean(err.value)


def test_a_fault_during_broadcast_names_the_step(legacy_node, wallet):
    legacy_node.fund_seed(PAYER_SEED, 0, 1000)
    signed = wallet.prepare(100, 0)
    legacy_node.set_fault("http500", commands={"attachToTangle"}, times=1)
    with pytest.raises(WalletError, match=r"^attachToTangle: .* HTTP 500") as err:
        wallet.attach(signed)
    assert err.value.retryable
    assert "fault injected" in err.value.node_message
    tail = send(wallet, signed)  # the same signed bundle, attached again
    legacy_node.confirm_all()
    assert wallet.status(signed, [tail]).state == CONFIRMED


def test_timeout_is_honoured(legacy_node):
    w = PyotaWallet(wallet_config(legacy_node, timeout_s=0.5))
    legacy_node.set_fault("hang", commands={"getNodeInfo"})
    start = time.monotonic()
    try:
        with pytest.raises(WalletError, match=r"did not answer within 0\.5 s"):
            w.node_info()
    finally:
        w.close()
    assert time.monotonic() - start < 1.5


def test_a_dropped_broadcast_never_confirms_but_reattach_recovers(legacy_node, wallet):
    legacy_node.fund_seed(PAYER_SEED, 0, 1000)
    signed = wallet.prepare(100, 0)
    legacy_node.set_fault("drop")
    lost = send(wallet, signed)
    legacy_node.clear_fault()
    legacy_node.confirm_all()
    assert wallet.status(signed, [lost]).state == PENDING
    found = send(wallet, signed)  # from the signed payload
    legacy_node.confirm_all()
    assert wallet.status(signed, [lost, found]).state == CONFIRMED
    assert legacy_node.balance(RECEIVER) == 100


def test_never_confirm_keeps_the_payment_pending(legacy_node, wallet):
    legacy_node.fund_seed(PAYER_SEED, 0, 1000)
    signed = wallet.prepare(100, 0)
    tail = send(wallet, signed)
    legacy_node.set_fault("never_confirm")
    legacy_node.confirm_all()
    assert wallet.status(signed, [tail]).state == PENDING
    assert wallet.status(signed, []).state == PENDING


# -- the rest of the surface --------------------------------------------------------------------

def test_describe_names_node_and_receiver_never_the_seed(legacy_node, wallet):
    text = wallet.describe()
    assert legacy_node.url in text and RECEIVER in text
    assert PAYER_SEED.rstrip("9") not in text
    assert PAYER_SEED.rstrip("9") not in repr(wallet)


def test_check_helpers(legacy_node, wallet):
    legacy_node.fund_seed(PAYER_SEED, 2, 42)
    assert wallet.balance(2) == 42
    assert wallet.address(2)[:81] == address_of(PAYER_SEED, 2)
    assert len(wallet.address(2)) == 90
    assert wallet.node_info()["appName"] == "p2p-energy-legacy-test-node"


def test_an_unusable_node_url_is_not_retryable(legacy_node):
    w = PyotaWallet(wallet_config(legacy_node, node_url="http://:80"))
    with pytest.raises(WalletError, match="node_url") as err:
        w.node_info()
    assert not err.value.retryable


def test_needs_a_seed_and_a_receiver():
    with pytest.raises(WalletError, match="no wallet seed"):
        PyotaWallet(dataclasses.replace(wallet_config_stub(), seed=""))
    with pytest.raises(WalletError, match="receiver"):
        PyotaWallet(dataclasses.replace(wallet_config_stub(), receiver=""))


def wallet_config_stub():
    from p2p_energy.config import WalletConfig
    return WalletConfig(seed=PAYER_SEED, receiver=RECEIVER)


@pytest.mark.skipif(importlib.util.find_spec("pow") is not None, reason="pyota-pow installed")
def test_local_pow_without_pyota_pow_is_a_clear_error(legacy_node):
    w = PyotaWallet(wallet_config(legacy_node, local_pow=True))
    with pytest.raises(WalletError, match="pyota-pow") as err:
        w.node_info()
    assert not err.value.retryable


def test_signed_shape(legacy_node, wallet):
    legacy_node.fund_seed(PAYER_SEED, 0, 1000)
    signed = wallet.prepare(7, 0)
    assert isinstance(signed, Signed) and wallet.backend == "pyota"
    assert len(signed.reference) == 81
    trytes = json.loads(signed.payload)
    assert all(len(t) == 2673 and t[2349:2430] == signed.reference for t in trytes)


@pytest.mark.parametrize("command, answer", [
    ("wereAddressesSpentFrom", {"states": ["no", "no"]}),
    ("wereAddressesSpentFrom", {"states": {"a": False, "b": False}}),
    ("wereAddressesSpentFrom", {"states": [False]}),
    ("getBalances", {"balances": ["lots"]}),
])
def test_a_garbled_answer_is_never_read_as_not_spent_or_as_money(legacy_node, wallet, command,
                                                                 answer):
    legacy_node.fund_seed(PAYER_SEED, 0, 1000)
    legacy_node.set_fault("answer", commands={command}, answer=answer, times=1)
    with pytest.raises(WalletError) as err:
        wallet.prepare(100, 0)
    assert err.value.kind == "unexpected answer" and err.value.retryable
    assert_clean(err.value)
    assert "attachToTangle" not in legacy_node.command_names()


@pytest.mark.parametrize("command, answer", [
    ("getTrytes", {"trytes": ["9" * 2673] * 5}),  # more answers than hashes asked about
    ("getTrytes", {"trytes": None}),
    ("getTrytes", {"trytes": ["NOT9TRYTES"] * 4}),
    ("getTrytes", []),
    ("findTransactions", {"hashes": {"a": "b"}}),
    ("findTransactions", {"hashes": [7]}),
])
def test_a_wrong_shaped_answer_about_a_bundle_is_a_retryable_wallet_error(
        legacy_node, wallet, command, answer):
    legacy_node.fund_seed(PAYER_SEED, 0, 1000)
    signed = wallet.prepare(100, 0)
    known = send(wallet, signed)
    legacy_node.set_fault("answer", commands={command}, answer=answer, times=1)
    with pytest.raises(WalletError) as err:
        wallet.status(signed, [known])
    assert err.value.retryable and command in str(err.value)  # never a ValueError
    assert_clean(err.value)
    assert wallet.status(signed, [known]).state == PENDING  # the node answers well again
