"""``verify --node --address``: payments looked up on the network, against our test nodes.

The payments are real: made by our wallets through the nodes (today's network:
JSON-RPC to ``iota_node``; legacy: PyOTA to ``legacy_node``), then logged the way
the daemon logs them, or logged wrong on purpose."""

from __future__ import annotations

import base64
import io
import re
import secrets
import subprocess
import sys
from pathlib import Path

from p2p_energy.core.entries import FAILED
from p2p_energy.core.export import write_export
from p2p_energy.wallet.base import CONFIRMED
from p2p_energy.wallet.iota_keys import address_bytes
from p2p_energy.wallet.iota_rpc import RpcClient
from p2p_energy.wallet.iota_tx import (
    ARG_GAS_COIN,
    ARG_INPUT,
    ARG_RESULT,
    CALL_ARG_PURE,
    CMD_SPLIT_COINS,
    CMD_TRANSFER_OBJECTS,
    EXPIRATION_NONE,
    KIND_PROGRAMMABLE,
    TX_DATA_V1,
    BcsWriter,
    b58encode,
    digest_bytes,
    sign_transaction,
)
from p2p_energy.wallet.iota_units import NANOS_PER_UNIT
from p2p_energy.wallet.pyota_wallet import PyotaWallet

from support.cli_process import p2p_energy_cli
from support.iota_fixtures import PAYER_KEY, RECEIVER, iota_wallet
from support.log_server import LogServer, SignedLog
from support.node_fixtures import PAYER_SEED, wallet_config
from support.node_fixtures import RECEIVER as LEGACY_RECEIVER

OTHER = "0x" + "0a" * 32
OPTIONS = {"showEffects": True, "showBalanceChanges": True, "showRawInput": True}
LEGACY_OTHER = "OTHER9PRODUCER9ADDRESS9FOR9TESTS" + "9" * 49
UNKNOWN = ("(never executed, or dropped by a pruning node: a fullnode keeps transactions about"
           " two epochs; ask an archive node)")


def verify(*args: str) -> tuple[int, list[str], str]:
    """(exit code, stdout lines, stderr) of ``p2p-energy verify ARGS``."""
    out = p2p_energy_cli("verify", *args)
    assert "Traceback" not in out.stderr
    return out.returncode, out.stdout.splitlines(), out.stderr


def problems(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith(("entry ", "entries ", "checkpoint:"))]


def pay(node, value: int, **overrides) -> str:
    """A real transfer of ``value`` micro-IOTA by our wallet; its digest."""
    wallet = iota_wallet(node, **overrides)
    try:
        signed = wallet.prepare(value, 0)
        attachment = wallet.attach(signed)
        wallet.send(attachment)
        wallet.status(signed, [attachment.id])
    finally:
        wallet.close()
    return signed.reference


def export(log: SignedLog, path: Path) -> str:
    buf = io.BytesIO()
    write_export(buf, log.checkpoint(), log.entries)
    path.write_bytes(buf.getvalue())
    return str(path)


# -- today's IOTA network ------------------------------------------------------------------

def test_exact_payments_are_seen_on_the_network(tmp_path: Path, iota_node) -> None:
    log = SignedLog()
    log.add_rounds(4)
    log.add_payment(pay(iota_node, 1234), RECEIVER, 1234)
    log.add_rounds(4)
    log.add_payment(pay(iota_node, 5678), RECEIVER, 5678)
    failed = pay(iota_node, 5000, gas_margin=0.5)  # a failure, and logged as one
    log.add_payment(failed, RECEIVER, 5000, status=FAILED)
    before = len(iota_node.requests)
    with LogServer(log) as server:
        code, lines, err = verify(server.url, "--key", log.verifier_key, "--state",
                                  str(tmp_path / "s"), "--node", iota_node.url,
                                  "--address", RECEIVER.upper().replace("0X", "0x"))
    assert (code, err) == (0, "")
    assert (f"paid as seen on the network: 6912 µIOTA (2 payments to {RECEIVER}, checked on"
            f" today's IOTA network (node {iota_node.url}))") in lines
    assert iota_node.requests[before:] == [  # the executed ones only, one call each
        ("iota_getTransactionBlock", [digest, OPTIONS]) for digest in _references(log)[:2]]


def _references(log: SignedLog) -> list[str]:
    from p2p_energy.core.entries import PaymentEntry, parse_entry
    return [e.reference for e in map(parse_entry, log.entries) if isinstance(e, PaymentEntry)]


def test_each_wrong_payment_is_named_at_its_entry(tmp_path: Path, iota_node) -> None:
    log = SignedLog()
    log.add_rounds(3)
    good = log.add_payment(pay(iota_node, 1000), RECEIVER, 1000)
    unknown_digest = b58encode(secrets.token_bytes(32))
    unknown = log.add_payment(unknown_digest, RECEIVER, 1000)
    elsewhere_digest = pay(iota_node, 700, receiver=OTHER)
    elsewhere = log.add_payment(elsewhere_digest, OTHER, 700)
    claimed_digest = pay(iota_node, 800, receiver=OTHER)
    claimed = log.add_payment(claimed_digest, RECEIVER, 800)  # paid OTHER, logged as ours
    failed_digest = pay(iota_node, 900, gas_margin=0.5)
    failed = log.add_payment(failed_digest, RECEIVER, 900)  # failed, logged as executed
    short_digest = pay(iota_node, 1500)
    short = log.add_payment(short_digest, RECEIVER, 1501)  # one more than it moved
    path = export(log, tmp_path / "e")
    code, lines, err = verify(path, "--key", log.verifier_key, "--state", str(tmp_path / "s"),
                              "--node", iota_node.url, "--address", RECEIVER)
    assert (code, err) == (1, "")
    url = iota_node.url
    assert problems(lines) == [
        f"entry {unknown}: payment 2: transaction {unknown_digest} is unknown to node {url}"
        f" {UNKNOWN}",
        f"entry {elsewhere}: payment 3 was paid to {OTHER}, not to {RECEIVER}",
        f"entry {claimed}: payment 4: transaction {claimed_digest} moved 0 nanos to {RECEIVER},"
        " the entry says 800 µIOTA (800000 nanos)",
        f"entry {failed}: payment 5: transaction {failed_digest} failed on the network:"
        " InsufficientGas",
        f"entry {short}: payment 6: transaction {short_digest} moved 1500000 nanos to"
        f" {RECEIVER}, the entry says 1501 µIOTA (1501000 nanos)",
    ]
    assert good == 3
    assert ("paid as seen on the network: 2500 µIOTA for the 6 of them checked on a network;"
            " the others were not") not in lines  # every one was checked
    assert f"paid as seen on the network: 2500 µIOTA (6 payments to {RECEIVER}, checked on" \
           f" today's IOTA network (node {url}))" in lines
    assert not (tmp_path / "s").exists()


def test_a_pruned_transaction_is_unknown_and_a_failing_node_is_exit_2(tmp_path: Path,
                                                                       iota_node) -> None:
    log = SignedLog()
    log.add_rounds(2)
    digest = pay(iota_node, 1000)
    log.add_payment(digest, RECEIVER, 1000)
    path = export(log, tmp_path / "e")
    args = ("--key", log.verifier_key, "--state", str(tmp_path / "s"), "--node", iota_node.url,
            "--address", RECEIVER)
    iota_node.set_fault("http500", methods=["iota_getTransactionBlock"])
    code, lines, err = verify(path, *args)
    assert code == 2 and lines == []
    assert err.startswith(f"p2p-energy: verify: cannot check the payments:"
                          f" iota_getTransactionBlock: node {iota_node.url} answered HTTP 500")
    assert err.count("\n") == 1
    iota_node.clear_fault()
    iota_node.forget(digest)
    code, lines, _ = verify(path, *args)
    assert code == 1
    assert problems(lines) == [f"entry 2: payment 1: transaction {digest} is unknown to node"
                               f" {iota_node.url} {UNKNOWN}"]


# -- a pruning node: balance changes, then whole transactions, forgotten ------------------

def pay_inputs_swapped(node, value: int) -> str:
    """A real transfer of ``value`` micro-IOTA to RECEIVER in a shape our wallet does not
    build (the same commands, the inputs the other way round: ``[receiver, amount]``),
    signed by PAYER_KEY and executed by the node; its digest."""
    [coin] = node.coins_of(PAYER_KEY.address)
    sender = address_bytes(PAYER_KEY.address)
    w = BcsWriter().uleb128(TX_DATA_V1).uleb128(KIND_PROGRAMMABLE).uleb128(2)
    w.uleb128(CALL_ARG_PURE).vec_u8(address_bytes(RECEIVER))
    w.uleb128(CALL_ARG_PURE).vec_u8(bytes(BcsWriter().u64(value * NANOS_PER_UNIT)))
    w.uleb128(2).uleb128(CMD_SPLIT_COINS).uleb128(ARG_GAS_COIN).uleb128(1)
    w.uleb128(ARG_INPUT).u16(1)
    w.uleb128(CMD_TRANSFER_OBJECTS).uleb128(1).uleb128(ARG_RESULT).u16(0)
    w.uleb128(ARG_INPUT).u16(0)
    w.fixed(sender, 32).uleb128(1).fixed(bytes.fromhex(coin.object_id[2:]), 32)
    w.u64(coin.version).vec_u8(digest_bytes(coin.digest))
    w.fixed(sender, 32).u64(node.gas_price).u64(5_000_000).uleb128(EXPIRATION_NONE)
    tx = bytes(w)
    answer = RpcClient(node.url, 2.0).call(
        "iota_executeTransactionBlock", base64.b64encode(tx).decode(),
        [sign_transaction(PAYER_KEY, tx)], {"showEffects": True}, "WaitForLocalExecution")
    assert answer["effects"]["status"] == {"status": "success"}
    return answer["digest"]


def _balance_changes_left_out(node, digest: str) -> bool:
    answer = RpcClient(node.url, 2.0).call("iota_getTransactionBlock", digest, OPTIONS)
    return "balanceChanges" not in answer and bool(answer["errors"])


def test_after_pruning_an_honest_payment_still_verifies_from_its_bytes(tmp_path: Path,
                                                                         iota_node) -> None:
    """The node pruned the coins' past versions (a day later): it answers without balance
    changes, and the payments are read from their own bytes, seen on the network."""
    log = SignedLog()
    log.add_rounds(4)
    first = pay(iota_node, 1234)
    log.add_payment(first, RECEIVER, 1234)
    log.add_rounds(4)
    log.add_payment(pay(iota_node, 5678), RECEIVER, 5678)
    iota_node.prune_history()
    assert _balance_changes_left_out(iota_node, first)
    before = len(iota_node.requests)
    code, lines, err = verify(export(log, tmp_path / "e"), "--key", log.verifier_key,
                              "--state", str(tmp_path / "s"), "--node", iota_node.url,
                              "--address", RECEIVER)
    assert (code, err) == (0, "")
    assert (f"paid as seen on the network: 6912 µIOTA (2 payments to {RECEIVER}, checked on"
            f" today's IOTA network (node {iota_node.url}))") in lines
    assert iota_node.requests[before:] == [  # still one call each
        ("iota_getTransactionBlock", [digest, OPTIONS]) for digest in _references(log)]


def test_the_bytes_say_what_the_balance_changes_said(tmp_path: Path, iota_node) -> None:
    """The same log verified before and after the node pruned: the same lines, problems
    and amounts seen alike (a payment to another address, one short, a failure logged as
    executed; and one from the address to itself, which paid only its gas)."""
    log = SignedLog()
    log.add_rounds(3)
    log.add_payment(pay(iota_node, 1000), RECEIVER, 1000)
    log.add_payment(pay(iota_node, 800, receiver=OTHER), RECEIVER, 800)
    log.add_payment(pay(iota_node, 1500), RECEIVER, 1501)
    log.add_payment(pay(iota_node, 900, gas_margin=0.5), RECEIVER, 900)
    to_itself = SignedLog()
    to_itself.add_rounds(2)
    at_itself = to_itself.add_payment(pay(iota_node, 700, receiver=PAYER_KEY.address),
                                      PAYER_KEY.address, 700)

    def both() -> list[tuple[int, list[str], str]]:
        return [verify(export(lg, tmp_path / "e"), "--key", lg.verifier_key, "--state",
                       str(tmp_path / "s"), "--node", iota_node.url, "--address", address)
                for lg, address in [(log, RECEIVER), (to_itself, PAYER_KEY.address)]]

    before = both()
    iota_node.prune_history()
    assert all(_balance_changes_left_out(iota_node, d) for d in _references(log)[:3])
    assert _balance_changes_left_out(iota_node, _references(to_itself)[0])
    assert both() == before
    (code, lines, _), (self_code, self_lines, _) = before
    assert code == 1 and len(problems(lines)) == 3
    assert f"paid as seen on the network: 2500 µIOTA (4 payments to {RECEIVER}, checked on" \
           f" today's IOTA network (node {iota_node.url}))" in lines
    [self_problem] = problems(self_lines)
    assert self_code == 1 and re.fullmatch(
        rf"entry {at_itself}: payment 1: transaction \S+ moved -\d+ nanos to {PAYER_KEY.address},"
        r" the entry says 700 µIOTA \(700000 nanos\)", self_problem)


def test_what_a_pruning_node_no_longer_vouches_for_is_a_problem(tmp_path: Path,
                                                                 iota_node) -> None:
    """After pruning: a transaction the node dropped altogether, bytes that are another
    transaction's (a lying node), and a real payment in a shape we do not build are each
    a problem naming its payment, never a crash; before pruning all of them checked."""
    log = SignedLog()
    log.add_rounds(3)
    good = pay(iota_node, 1000)
    log.add_payment(good, RECEIVER, 1000)
    dropped = pay(iota_node, 2000)
    at_dropped = log.add_payment(dropped, RECEIVER, 2000)
    lied = pay(iota_node, 3000)
    at_lied = log.add_payment(lied, RECEIVER, 3000)
    swapped = pay_inputs_swapped(iota_node, 4000)
    at_swapped = log.add_payment(swapped, RECEIVER, 4000)
    path = export(log, tmp_path / "e")

    def run(state: str) -> tuple[int, list[str], str]:
        return verify(path, "--key", log.verifier_key, "--state", str(tmp_path / state),
                      "--node", iota_node.url, "--address", RECEIVER)

    assert run("before")[0] == 0  # all four are payments, as the balance changes show
    iota_node.prune_history()
    iota_node.forget(dropped)
    iota_node.lie_about_bytes(lied, good)
    code, lines, err = run("after")
    assert (code, err) == (1, "")
    url = iota_node.url
    gone = (r" \(Cannot retrieve balance changes: Error checking transaction input objects:"
            r" Could not find the referenced object 0x[0-9a-f]{64} at version Some\(\d+\)\)")
    unknown, wrong_bytes, other_shape = problems(lines)
    assert unknown == (f"entry {at_dropped}: payment 2: transaction {dropped} is unknown to"
                       f" node {url} {UNKNOWN}")
    for line, at, pid, digest, why in [
            (wrong_bytes, at_lied, 3, lied, f"they are the bytes of transaction {good}"),
            (other_shape, at_swapped, 4, swapped,
             "the start (version, kind, inputs) is not the one a transfer of ours has")]:
        assert re.fullmatch(
            re.escape(f"entry {at}: payment {pid}: node {url} no longer has the balance changes"
                      f" of transaction {digest}") + gone
            + re.escape(f" and its bytes are not a payment this verifier can read ({why});"
                        " ask an archive node"), line), line
    assert f"paid as seen on the network: 1000 µIOTA (4 payments to {RECEIVER}, checked on" \
           f" today's IOTA network (node {url}))" in lines
    assert not (tmp_path / "after").exists()


def test_a_0x_address_never_imports_pyota(tmp_path: Path, iota_node) -> None:
    log = SignedLog()
    log.add_rounds(2)
    log.add_payment(pay(iota_node, 1000), RECEIVER, 1000)
    path = export(log, tmp_path / "e")
    code = ("import sys; from p2p_energy.commands.cli import main;"
            f"rc = main({['verify', path, '--key', log.verifier_key, '--state', str(tmp_path / 's'), '--node', iota_node.url, '--address', RECEIVER]!r});"  # noqa: E501
            "assert rc == 0, rc; assert 'iota' not in sys.modules, 'PyOTA imported'")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=60)


# -- the legacy network ---------------------------------------------------------------------

def pay_legacy(node, value: int, index: int, receiver: str = LEGACY_RECEIVER, *,
               confirm: bool = True) -> str:
    """A real bundle of ``value`` IOTA from key index ``index`` of PAYER_SEED; its hash."""
    wallet = PyotaWallet(wallet_config(node, receiver=receiver))
    try:
        signed = wallet.prepare(value, index)
        attachment = wallet.attach(signed)
        wallet.send(attachment)
        if confirm:
            node.confirm_all()
            assert wallet.status(signed, [attachment.id]).state == CONFIRMED
    finally:
        wallet.close()
    return signed.reference


def test_legacy_payments_good_and_bad(tmp_path: Path, legacy_node) -> None:
    legacy_node.fund_seed(PAYER_SEED, 0, 1000)
    log = SignedLog(unit="IOTA")
    log.add_rounds(3)
    good = pay_legacy(legacy_node, 100, 0)  # change to key index 1
    log.add_payment(good, LEGACY_RECEIVER, 100, backend="pyota")
    args = ("--key", log.verifier_key, "--state", str(tmp_path / "s"), "--node",
            legacy_node.url, "--address", LEGACY_RECEIVER)
    before = len(legacy_node.requests)
    code, lines, err = verify(export(log, tmp_path / "good"), *args)
    assert (code, err) == (0, "")
    assert legacy_node.command_names()[before:] == ["findTransactions", "getTrytes",
                                                    "getInclusionStates"]
    assert legacy_node.requests[before][1] == {"bundles": [good]}
    assert (f"paid as seen on the network: 100 IOTA (1 payment to {LEGACY_RECEIVER}, checked on"
            f" the legacy IOTA network (node {legacy_node.url}))") in lines

    unknown = "UNKNOWN9BUNDLE" + "9" * 67
    log.add_payment(unknown, LEGACY_RECEIVER, 50, backend="pyota")
    elsewhere = pay_legacy(legacy_node, 70, 1, LEGACY_OTHER)  # change to key index 2
    log.add_payment(elsewhere, LEGACY_RECEIVER, 70, backend="pyota")  # logged as ours
    pending = pay_legacy(legacy_node, 80, 2, confirm=False)
    log.add_payment(pending, LEGACY_RECEIVER, 80, backend="pyota")
    code, lines, err = verify(export(log, tmp_path / "bad"), *args)
    assert (code, err) == (1, "")
    assert problems(lines) == [
        f"entry 4: payment 2: bundle {unknown} is unknown to node {legacy_node.url}",
        f"entry 5: payment 3: bundle {elsewhere} moved 0 IOTA to {LEGACY_RECEIVER}, the entry"
        " says 70",
        f"entry 6: payment 4: bundle {pending} is not confirmed (no attachment of it is"
        " included)",
    ]
    assert legacy_node.rejected == []
