"""The test node, driven by the real PyOTA client over HTTP on 127.0.0.1.

These tests pin down that the node is as strict as IRI where it matters to us:
it checks signatures, the bundle hash, PoW and the trunk/branch chain, and moves
balances once per bundle hash.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from typing import Any

import pytest

from support.legacy_node import (
    NULL_HASH,
    LegacyNode,
    address_of,
    attach,
    bundle_hash_of,
    curl_hash,
    do_pow,
    weight_of,
)
from support.node_fixtures import OTHER_SEED, PAYER_SEED, RECEIVER, TEST_MWM

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import httpx
    from iota import (
        Address,
        AsyncIota,
        BadApiResponse,
        Bundle,
        HttpAdapter,
        ProposedBundle,
        ProposedTransaction,
        Tag,
        Transaction,
        TransactionHash,
        TryteString,
    )
    from iota.crypto.signing import KeyGenerator
    from iota.transaction.validator import BundleValidator
    from iota.trits import trits_from_int

# PyOTA 3.1 posts with httpx's deprecated ``data=<str>``.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


def call(node: LegacyNode, make: Any, timeout_s: float = 5.0) -> Any:
    """Run one PyOTA API coroutine against ``node`` with a fresh client."""
    async def go() -> Any:
        api = AsyncIota(HttpAdapter(node.url, timeout=timeout_s))
        try:
            return await make(api)
        finally:
            await api.adapter.client.aclose()
    return asyncio.run(go())


def signed_payment(seed: str, index: int, balance: int, value: int,
                   change_index: int | None) -> list[str]:
    """Trytes (head first) of a signed bundle paying RECEIVER from ``seed`` #index."""
    source = Address(address_of(seed, index), balance=balance, key_index=index,
                     security_level=2)
    bundle = ProposedBundle([ProposedTransaction(address=Address(RECEIVER), value=value,
                                                 tag=Tag("TEST"))])
    bundle.add_inputs([source])
    if change_index is not None:
        bundle.send_unspent_inputs_to(Address(address_of(seed, change_index)))
    bundle.finalize()
    bundle.sign_inputs(KeyGenerator(seed))
    return [str(t) for t in bundle.as_tryte_strings()]


def message_bundle(n: int = 2) -> list[str]:
    """Trytes (head first) of a zero-value bundle of ``n`` transactions."""
    bundle = ProposedBundle([
        ProposedTransaction(address=Address(RECEIVER), value=0, tag=Tag("MSG"),
                            message=TryteString("M" + "ABCDEFGHIJ"[i]))
        for i in range(n)])
    bundle.finalize()
    return [str(t) for t in bundle.as_tryte_strings()]


def attach_and_send(node: LegacyNode, trytes: list[str]) -> list[str]:
    """getTransactionsToApprove, attachToTangle, broadcast and store; trytes tail first."""
    async def go(api: AsyncIota) -> list[str]:
        tips = await api.get_transactions_to_approve(depth=3)
        done = (await api.attach_to_tangle(tips["trunkTransaction"], tips["branchTransaction"],
                                           trytes, TEST_MWM))["trytes"]
        await api.broadcast_and_store(done)
        return [str(t) for t in done]
    return call(node, go)


def tail_hash(trytes_tail_first: list[str]) -> str:
    return curl_hash(trytes_tail_first[0])


def set_value(raw: str, value: int) -> str:
    return raw[:2268] + str(TryteString.from_trits(trits_from_int(value, pad=81))) + raw[2295:]


def post_raw(node: LegacyNode, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    req = urllib.request.Request(node.url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


# -- protocol -----------------------------------------------------------------------

def test_speaks_the_iri_api_as_pyota_sends_it(legacy_node):
    info = call(legacy_node, lambda api: api.get_node_info())
    assert info["latestMilestoneIndex"] == 1
    addr = legacy_node.fund_seed(PAYER_SEED, 0, 1000)
    assert call(legacy_node, lambda api: api.get_balances([Address(addr)]))["balances"] == [1000]
    spent = call(legacy_node, lambda api: api.were_addresses_spent_from([Address(addr)]))
    assert spent["states"] == [False]
    tips = call(legacy_node, lambda api: api.get_transactions_to_approve(depth=3))
    assert tips["trunkTransaction"] == tips["branchTransaction"] == legacy_node.genesis_hash
    assert legacy_node.command_names() == ["getNodeInfo", "getBalances",
                                           "wereAddressesSpentFrom",
                                           "getTransactionsToApprove"]


def test_answers_errors_as_iri_does(legacy_node):
    headers = {"Content-Type": "application/json", "X-IOTA-API-Version": "1"}
    assert post_raw(legacy_node, b'{"command": "getNodeInfo"}',
                    {"Content-Type": "application/json"}) == (
        400, {"error": "Invalid API Version"})
    status, body = post_raw(legacy_node, b'{"command": "fly"}', headers)
    assert (status, body["error"]) == (400, "Command [fly] is unknown")
    with pytest.raises(BadApiResponse, match="400 response from node: Invalid depth"):
        call(legacy_node, lambda api: api.create_command("getTransactionsToApprove")(depth=0))


def test_attach_chains_the_bundle_like_iri_and_returns_tail_first(legacy_node):
    trytes = message_bundle(3)
    done = call(legacy_node, lambda api: api.attach_to_tangle(
        TransactionHash("T" * 81), TransactionHash("B" * 81), trytes, TEST_MWM))["trytes"]
    txs = [Transaction.from_tryte_string(t) for t in done]
    assert [t.current_index for t in txs] == [0, 1, 2]
    assert str(txs[2].trunk_transaction_hash) == "T" * 81  # the head approves the tips
    assert str(txs[2].branch_transaction_hash) == "B" * 81
    for tx, nxt in itertools.pairwise(txs):
        assert tx.trunk_transaction_hash == nxt.hash  # tail leads to head through trunks
        assert str(tx.branch_transaction_hash) == "T" * 81
    assert all(weight_of(str(t.hash)) >= TEST_MWM for t in txs)
    assert str(txs[0].tag).startswith("MSG")


def test_stores_a_valid_bundle_and_finds_it(legacy_node):
    done = attach_and_send(legacy_node, message_bundle(2))
    tail = tail_hash(done)
    bundle = str(Transaction.from_tryte_string(done[0]).bundle_hash)
    found = call(legacy_node, lambda api: api.find_transactions(bundles=[bundle]))["hashes"]
    assert len(found) == 2 and TransactionHash(tail) in found
    got = call(legacy_node, lambda api: api.get_trytes([TransactionHash(tail)]))["trytes"]
    assert str(got[0]) == done[0]
    assert call(legacy_node, lambda api: api.check_consistency([tail]))["state"] is True
    assert legacy_node.rejected == []
    assert legacy_node.bundles[bundle].tails == [tail]


# -- value bundles, confirmation ----------------------------------------------------

def test_a_payment_confirms_once_even_when_reattached(legacy_node):
    legacy_node.fund_seed(PAYER_SEED, 0, 1000)
    trytes = signed_payment(PAYER_SEED, 0, 1000, 100, change_index=1)
    first = tail_hash(attach_and_send(legacy_node, trytes))
    second = tail_hash(attach_and_send(legacy_node, trytes))  # reattachment: same bundle
    assert first != second
    assert legacy_node.balance(RECEIVER) == 0  # nothing moves before confirmation
    states = call(legacy_node, lambda api: api.get_inclusion_states([first, second]))
    assert states["states"] == [False, False]
    legacy_node.confirm_all()
    legacy_node.confirm_all()
    assert legacy_node.balance(RECEIVER) == 100
    assert legacy_node.balance(address_of(PAYER_SEED, 1)) == 900
    assert legacy_node.balance(address_of(PAYER_SEED, 0)) == 0
    states = call(legacy_node, lambda api: api.get_inclusion_states([first, second]))
    assert states["states"] == [True, False]  # one attachment is included, never both
    assert legacy_node.is_spent(address_of(PAYER_SEED, 0))
    assert legacy_node.rejected == []
    assert legacy_node.addresses_signed_by_more_than_one_bundle() == {}


def test_exactly_one_attachment_is_ever_included_and_the_others_are_not_promotable(
        legacy_node):
    legacy_node.fund_seed(PAYER_SEED, 0, 1000)
    trytes = signed_payment(PAYER_SEED, 0, 1000, 100, change_index=1)
    first = tail_hash(attach_and_send(legacy_node, trytes))
    second = tail_hash(attach_and_send(legacy_node, trytes))
    assert call(legacy_node, lambda api: api.check_consistency([second]))["state"] is True
    legacy_node.confirm_all()
    later = tail_hash(attach_and_send(legacy_node, trytes))  # after confirmation
    tails = [first, second, later]
    states = call(legacy_node, lambda api: api.get_inclusion_states(tails))["states"]
    assert states == [True, False, False]
    for tail in (second, later):
        answer = call(legacy_node, lambda api, t=tail: api.check_consistency([t]))
        assert answer["state"] is False and "not consistent" in answer["info"]
        with pytest.raises(BadApiResponse, match="not promotable"):
            call(legacy_node, lambda api, t=tail: api.promote_transaction(t, 3, TEST_MWM))
    # Every attachment is found by bundle hash; the non-tail transactions too.
    bundle = str(Transaction.from_tryte_string(trytes[0]).bundle_hash)
    found = call(legacy_node, lambda api: api.find_transactions(bundles=[bundle]))["hashes"]
    assert {str(h) for h in found} >= set(tails) and len(found) == 3 * len(trytes)
    assert legacy_node.balance(RECEIVER) == 100


def test_include_last_includes_the_newest_attachment():
    with LegacyNode(mwm=TEST_MWM, include="last") as node:
        node.fund_seed(PAYER_SEED, 0, 1000)
        trytes = signed_payment(PAYER_SEED, 0, 1000, 100, change_index=1)
        tails = [tail_hash(attach_and_send(node, trytes)) for _ in range(2)]
        node.confirm_all()
        assert call(node, lambda api: api.get_inclusion_states(tails))["states"] == [
            False, True]


def test_a_forgotten_bundle_is_gone_and_can_be_sent_again(legacy_node):
    legacy_node.fund_seed(PAYER_SEED, 0, 1000)
    trytes = signed_payment(PAYER_SEED, 0, 1000, 100, change_index=1)
    done = attach_and_send(legacy_node, trytes)
    bundle = str(Transaction.from_tryte_string(done[0]).bundle_hash)
    legacy_node.forget(bundle)
    assert call(legacy_node, lambda api: api.find_transactions(bundles=[bundle]))["hashes"] == []
    assert not legacy_node.is_spent(address_of(PAYER_SEED, 0))
    again = tail_hash(attach_and_send(legacy_node, trytes))
    legacy_node.confirm_all()
    assert call(legacy_node, lambda api: api.get_inclusion_states([again]))["states"] == [True]
    assert legacy_node.balance(RECEIVER) == 100


def test_a_fault_for_one_command_leaves_the_others_alone(legacy_node):
    legacy_node.set_fault("http500", commands={"storeTransactions"})
    trytes = message_bundle(1)

    async def go(api: AsyncIota) -> list[str]:
        tips = await api.get_transactions_to_approve(depth=3)
        done = (await api.attach_to_tangle(tips["trunkTransaction"], tips["branchTransaction"],
                                           trytes, TEST_MWM))["trytes"]
        await api.broadcast_transactions(done)
        with pytest.raises(BadApiResponse, match="500"):
            await api.store_transactions(done)
        return [str(t) for t in done]
    done = call(legacy_node, go)
    bundle = str(Transaction.from_tryte_string(done[0]).bundle_hash)
    assert legacy_node.bundles[bundle].tails == [tail_hash(done)]  # the broadcast got through


def test_confirms_after_the_configured_delay():
    now = [100.0]
    with LegacyNode(mwm=TEST_MWM, confirm_delay_s=30.0, clock=lambda: now[0]) as node:
        tail = tail_hash(attach_and_send(node, message_bundle(1)))
        now[0] += 29.0
        assert call(node, lambda api: api.get_inclusion_states([tail]))["states"] == [False]
        now[0] += 1.0
        assert call(node, lambda api: api.get_inclusion_states([tail]))["states"] == [True]


def test_a_second_bundle_from_a_spent_address_is_a_double_spend(legacy_node):
    legacy_node.fund_seed(OTHER_SEED, 0, 500)
    one = signed_payment(OTHER_SEED, 0, 500, 500, change_index=None)
    two = signed_payment(OTHER_SEED, 0, 500, 400, change_index=2)
    attach_and_send(legacy_node, one)
    attach_and_send(legacy_node, two)  # accepted: the node only sees the conflict later
    reused = legacy_node.addresses_signed_by_more_than_one_bundle()
    assert list(reused) == [address_of(OTHER_SEED, 0)]
    legacy_node.confirm_all()
    assert legacy_node.balance(RECEIVER) == 500
    assert [(r.command, r.reason.split(":")[0]) for r in legacy_node.rejected] == [
        ("confirm", "double spend")]


# -- what the node rejects ------------------------------------------------------------

def test_rejects_a_value_changed_after_signing_by_recomputing_the_bundle_hash(legacy_node):
    legacy_node.fund_seed(PAYER_SEED, 0, 1000)
    trytes = signed_payment(PAYER_SEED, 0, 1000, 100, change_index=1)
    # Head first: [change 900, input sig 2, input -1000, output 100]. Move 50 i from
    # the change to the receiver: still sums to zero, signatures untouched.
    tampered = [set_value(trytes[0], 850), *trytes[1:3], set_value(trytes[3], 150)]
    txs = [Transaction.from_tryte_string(t) for t in tampered]
    assert BundleValidator(Bundle(txs)).errors == []  # PyOTA alone would accept it
    assert bundle_hash_of(t for t in reversed(tampered)) != str(txs[0].bundle_hash)
    with pytest.raises(BadApiResponse, match="400 response from node: Invalid bundle hash"):
        attach_and_send(legacy_node, tampered)
    assert len(legacy_node.rejected) == 1
    assert legacy_node.rejected[0].reason.startswith("Invalid bundle hash")
    assert legacy_node.bundles == {}
    assert not legacy_node.is_spent(address_of(PAYER_SEED, 0))


def test_rejects_a_forged_signature(legacy_node):
    trytes = signed_payment(PAYER_SEED, 0, 1000, 100, change_index=1)
    forged = [*trytes[:2], "A" + trytes[2][1:], *trytes[3:]]  # first signature fragment
    with pytest.raises(BadApiResponse, match="invalid signature"):
        attach_and_send(legacy_node, forged)
    assert "invalid signature" in legacy_node.rejected[0].reason


def test_rejects_low_proof_of_work(legacy_node):
    done = attach(message_bundle(2), NULL_HASH, NULL_HASH, TEST_MWM)
    tail = done[0]
    for n in range(100):  # another nonce on the tail, until its weight is 0
        weak = tail[:2646] + str(TryteString.from_trits(trits_from_int(n, pad=81)))
        if weight_of(curl_hash(weak)) == 0:
            break
    with pytest.raises(BadApiResponse, match="Invalid transaction hash"):
        call(legacy_node, lambda api: api.broadcast_transactions([weak, done[1]]))
    assert "below minimum weight magnitude" in legacy_node.rejected[0].reason
    assert legacy_node.bundles == {}


def test_refuses_attachments_older_than_its_snapshot_or_far_in_the_future(legacy_node):
    tips = (legacy_node.genesis_hash, legacy_node.genesis_hash)
    old = attach(message_bundle(2), *tips, TEST_MWM)
    legacy_node.take_snapshot()
    with pytest.raises(BadApiResponse, match="Invalid transaction timestamp"):
        call(legacy_node, lambda api: api.broadcast_transactions(old))
    ahead = attach(message_bundle(2), *tips, TEST_MWM,
                   now_ms=lambda: int(time.time() * 1000) + 3 * 3600 * 1000)
    with pytest.raises(BadApiResponse, match="Invalid transaction timestamp"):
        call(legacy_node, lambda api: api.broadcast_transactions(ahead))
    fresh = attach(message_bundle(2), *tips, TEST_MWM)  # the same content, attached now
    call(legacy_node, lambda api: api.broadcast_transactions(fresh))
    assert len(legacy_node.rejected) == 2 and len(legacy_node.bundles) == 1


def test_rejects_a_broken_trunk_branch_chain(legacy_node):
    done = attach(message_bundle(2), "T" * 81, "B" * 81, TEST_MWM)
    bad_tail, _ = do_pow(done[0][:2511] + "C" * 81 + done[0][2592:], TEST_MWM)
    with pytest.raises(BadApiResponse, match="is not the head's trunk"):
        call(legacy_node, lambda api: api.store_transactions([bad_tail, done[1]]))
    with pytest.raises(BadApiResponse, match="Incomplete bundle"):
        call(legacy_node, lambda api: api.store_transactions([done[1]]))
    assert len(legacy_node.rejected) == 2


# -- faults -----------------------------------------------------------------------------

def test_refuse_closes_the_socket_until_cleared(legacy_node):
    legacy_node.set_fault("refuse")
    with pytest.raises(httpx.ConnectError):
        call(legacy_node, lambda api: api.get_node_info())
    legacy_node.clear_fault()
    assert call(legacy_node, lambda api: api.get_node_info())["latestMilestoneIndex"] == 1


def test_hang_outlasts_the_client_timeout(legacy_node):
    legacy_node.set_fault("hang", commands={"getNodeInfo"})
    start = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        call(legacy_node, lambda api: api.get_node_info(), timeout_s=0.3)
    assert time.monotonic() - start < 2.0
    call(legacy_node, lambda api: api.get_balances([Address(RECEIVER)]))  # other commands


def test_http500_and_garbage_are_bad_api_responses(legacy_node):
    with legacy_node.fault("http500"), pytest.raises(BadApiResponse, match=r"^500 response"):
        call(legacy_node, lambda api: api.get_node_info())
    with legacy_node.fault("garbage"), pytest.raises(BadApiResponse, match="Non-JSON 200"):
        call(legacy_node, lambda api: api.get_node_info())


def test_a_fault_for_n_requests_clears_itself(legacy_node):
    legacy_node.set_fault("http500", times=1)
    with pytest.raises(BadApiResponse):
        call(legacy_node, lambda api: api.get_node_info())
    call(legacy_node, lambda api: api.get_node_info())


def test_drop_accepts_a_broadcast_but_stores_nothing(legacy_node):
    legacy_node.set_fault("drop")
    tail = tail_hash(attach_and_send(legacy_node, message_bundle(1)))
    got = call(legacy_node, lambda api: api.get_trytes([TransactionHash(tail)]))["trytes"]
    assert str(got[0]) == "9" * 2673
    assert legacy_node.bundles == {}


def test_never_confirm_holds_confirmation(legacy_node):
    tail = tail_hash(attach_and_send(legacy_node, message_bundle(1)))
    legacy_node.set_fault("never_confirm")
    legacy_node.confirm_all()
    assert call(legacy_node, lambda api: api.get_inclusion_states([tail]))["states"] == [False]
    legacy_node.clear_fault()
    legacy_node.confirm_all()
    assert call(legacy_node, lambda api: api.get_inclusion_states([tail]))["states"] == [True]


def test_runs_from_the_command_line():
    tests = Path(__file__).resolve().parent  # where the package ``support`` is
    proc = subprocess.Popen([sys.executable, "-W", "ignore", "-m", "support.legacy_node",
                             "--port", "0", "--fund", f"{RECEIVER}=7"],
                            stdout=subprocess.PIPE, text=True, cwd=tests)
    try:
        line = proc.stdout.readline()
        url = line.split(" on ")[1].split()[0]
        node = LegacyNode(port=int(url.rsplit(":", 1)[1]))  # only for its url
        assert call(node, lambda api: api.get_balances([Address(RECEIVER)]))["balances"] == [7]
    finally:
        proc.terminate()
        proc.wait(timeout=5)
        proc.stdout.close()
