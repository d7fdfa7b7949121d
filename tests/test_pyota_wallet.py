"""PyotaWallet through the real PyOTA client over HTTP to the test node on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys
import threading
import time
import warnings
from typing import Any

import pytest

from p2p_energy.errors import InsufficientBalance, WalletError
from p2p_energy.wallet.base import SignedBundle
from p2p_energy.wallet.pyota_wallet import PyotaWallet

from legacy_node import address_of
from node_fixtures import PAYER_SEED, RECEIVER, TEST_MWM, wallet_config

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

def test_a_funded_seed_pays_the_receiver(legacy_node, wallet):
    legacy_node.fund_seed(PAYER_SEED, 0, 1000)
    start = time.perf_counter()
    bundle = in_thread(wallet.prepare, 100, 0, 1)
    prepared = time.perf_counter()
    tail = in_thread(wallet.broadcast, bundle)
    sent = time.perf_counter()
    print(f"\nprepare {prepared - start:.2f} s (incl. import iota and 2 addresses), "
          f"broadcast {sent - prepared:.2f} s at mwm {TEST_MWM}")
    assert legacy_node.command_names() == [
        "wereAddressesSpentFrom", "getBalances", "getTransactionsToApprove", "attachToTangle",
        "broadcastTransactions", "storeTransactions"]
    assert legacy_node.requests[0][1] == {"addresses": [address_of(PAYER_SEED, 0)]}
    assert legacy_node.requests[1][1] == {"addresses": [address_of(PAYER_SEED, 0)]}
    assert (bundle.value_iota, bundle.input_index, bundle.change_index) == (100, 0, 1)
    assert len(bundle.trytes) == 4  # output, 2 signature fragments, change
    assert legacy_node.bundles[bundle.bundle_hash].tails == [tail]
    assert not wallet.is_confirmed([tail])
    legacy_node.confirm_all()
    assert in_thread(wallet.is_confirmed, ["9" * 81, tail])
    assert legacy_node.balance(RECEIVER) == 100
    assert wallet.balance(1) == 900 and wallet.balance(0) == 0
    assert legacy_node.rejected == []
    assert legacy_node.addresses_signed_by_more_than_one_bundle() == {}


def test_spending_the_whole_balance_needs_no_change(legacy_node, wallet):
    legacy_node.fund_seed(PAYER_SEED, 3, 250)
    bundle = wallet.prepare(250, 3, 4)
    assert len(bundle.trytes) == 3
    wallet.broadcast(bundle)
    legacy_node.confirm_all()
    assert legacy_node.balance(RECEIVER) == 250
    assert legacy_node.rejected == []


def test_refuses_zero_value_and_bad_indexes(wallet):
    with pytest.raises(ValueError, match="positive"):
        wallet.prepare(0, 0, 1)
    with pytest.raises(ValueError, match="different"):
        wallet.prepare(5, 2, 2)


def test_insufficient_balance_is_retryable(legacy_node, wallet):
    legacy_node.fund_seed(PAYER_SEED, 0, 50)
    with pytest.raises(InsufficientBalance) as err:
        wallet.prepare(100, 0, 1)
    assert err.value.retryable
    assert "holds 50 i" in str(err.value) and "needs 100 i" in str(err.value)
    assert_clean(err.value)
    assert legacy_node.command_names() == ["wereAddressesSpentFrom", "getBalances"]


def test_an_address_already_spent_from_is_never_signed_again(legacy_node, wallet):
    legacy_node.fund_seed(PAYER_SEED, 0, 1000)
    in_thread(wallet.broadcast, in_thread(wallet.prepare, 100, 0, 1))  # spends #0
    with pytest.raises(WalletError) as err:
        in_thread(wallet.prepare, 100, 0, 2)
    assert not err.value.retryable and "already spent from" in str(err.value)
    assert legacy_node.addresses_signed_by_more_than_one_bundle() == {}


# -- reattach and promote ------------------------------------------------------------------

def test_reattach_gives_a_new_tail_of_the_same_bundle(legacy_node, wallet):
    legacy_node.fund_seed(PAYER_SEED, 0, 1000)
    bundle = wallet.prepare(100, 0, 1)
    first = wallet.broadcast(bundle)
    second = in_thread(wallet.reattach, first)
    assert second != first
    assert legacy_node.bundles[bundle.bundle_hash].tails == [first, second]
    legacy_node.confirm_all()
    assert wallet.is_confirmed([second])
    assert legacy_node.balance(RECEIVER) == 100  # once, however many attachments
    assert legacy_node.addresses_signed_by_more_than_one_bundle() == {}
    assert legacy_node.rejected == []


def test_reattach_after_a_restart_asks_the_node_for_the_bundle(legacy_node, wallet):
    legacy_node.fund_seed(PAYER_SEED, 0, 1000)
    bundle = wallet.prepare(100, 0, 1)
    first = wallet.broadcast(bundle)
    fresh = PyotaWallet(wallet_config(legacy_node))  # knows nothing of ``first``
    try:
        second = fresh.reattach(first)
    finally:
        fresh.close()
    assert "getTrytes" in legacy_node.command_names()
    assert legacy_node.bundles[bundle.bundle_hash].tails == [first, second]
    assert legacy_node.rejected == []


def test_promote_attaches_a_zero_value_transaction(legacy_node, wallet):
    legacy_node.fund_seed(PAYER_SEED, 0, 1000)
    tail = wallet.broadcast(wallet.prepare(100, 0, 1))
    wallet.promote(tail)
    assert "checkConsistency" in legacy_node.command_names()
    assert len(legacy_node.bundles) == 2
    assert legacy_node.rejected == []


def test_an_unknown_tail_is_not_promotable(legacy_node, wallet):
    with pytest.raises(WalletError, match="not promotable") as err:
        wallet.promote("A" * 81)
    assert not err.value.retryable
    assert "not solid" in err.value.node_message or "not solid" in str(err.value.__cause__)


# -- what the node rejects ------------------------------------------------------------------

def test_a_bundle_tampered_after_signing_is_rejected_by_the_node(legacy_node, wallet):
    legacy_node.fund_seed(PAYER_SEED, 0, 1000)
    bundle = wallet.prepare(100, 0, 1)

    def value(raw: str, v: int) -> str:
        return raw[:2268] + str(TryteString.from_trits(trits_from_int(v, pad=81))) + raw[2295:]
    t = bundle.trytes  # head first: change 900, signature, input -1000, output 100
    tampered = dataclasses.replace(bundle, trytes=(value(t[0], 800), *t[1:3], value(t[3], 200)))
    with pytest.raises(WalletError) as err:
        wallet.broadcast(tampered)
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
            low.broadcast(low.prepare(100, 0, 1))
    finally:
        low.close()
    assert not err.value.retryable
    assert_clean(err.value)


def test_a_receiver_with_a_wrong_checksum_is_refused(legacy_node):
    w = PyotaWallet(wallet_config(legacy_node, receiver=RECEIVER + "A" * 9))
    with pytest.raises(WalletError, match="checksum") as err:
        w.prepare(1, 0, 1)
    assert not err.value.retryable


# -- faults ------------------------------------------------------------------------------------

@pytest.mark.parametrize("fault", ["refuse", "hang", "http500", "garbage"])
def test_every_fault_is_a_retryable_one_line_wallet_error(legacy_node, fault):
    w = PyotaWallet(wallet_config(legacy_node, timeout_s=0.3))
    legacy_node.set_fault(fault)
    start = time.monotonic()
    try:
        with pytest.raises(WalletError) as err:
            in_thread(w.prepare, 100, 0, 1)
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
    bundle = wallet.prepare(100, 0, 1)
    legacy_node.set_fault("http500", commands={"attachToTangle"}, times=1)
    with pytest.raises(WalletError, match=r"^attachToTangle: .* HTTP 500") as err:
        wallet.broadcast(bundle)
    assert err.value.retryable
    assert "fault injected" in err.value.node_message
    tail = wallet.broadcast(bundle)  # the same signed bundle, sent again
    legacy_node.confirm_all()
    assert wallet.is_confirmed([tail])


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
    bundle = wallet.prepare(100, 0, 1)
    legacy_node.set_fault("drop")
    lost = wallet.broadcast(bundle)
    legacy_node.clear_fault()
    legacy_node.confirm_all()
    assert not wallet.is_confirmed([lost])
    found = wallet.reattach(lost)  # from the signed trytes the wallet kept
    legacy_node.confirm_all()
    assert wallet.is_confirmed([lost, found])
    assert legacy_node.balance(RECEIVER) == 100


def test_never_confirm_keeps_is_confirmed_false(legacy_node, wallet):
    legacy_node.fund_seed(PAYER_SEED, 0, 1000)
    tail = wallet.broadcast(wallet.prepare(100, 0, 1))
    legacy_node.set_fault("never_confirm")
    legacy_node.confirm_all()
    assert not wallet.is_confirmed([tail])
    assert not wallet.is_confirmed([])


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


def test_signed_bundle_shape(legacy_node, wallet):
    legacy_node.fund_seed(PAYER_SEED, 0, 1000)
    bundle = wallet.prepare(7, 0, 1)
    assert isinstance(bundle, SignedBundle)
    assert len(bundle.bundle_hash) == 81
    assert all(len(t) == 2673 and t[2349:2430] == bundle.bundle_hash for t in bundle.trytes)
