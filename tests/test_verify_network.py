"""``verify --node --address``: payments looked up on the network, against our test nodes.

The payments are real: made by our wallets through the nodes (today's network:
JSON-RPC to ``iota_node``; legacy: PyOTA to ``legacy_node``), then logged the way
the daemon logs them, or logged wrong on purpose."""

from __future__ import annotations

import io
import secrets
import subprocess
import sys
from pathlib import Path

from p2p_energy.core.entries import FAILED
from p2p_energy.core.export import write_export
from p2p_energy.wallet.base import CONFIRMED
from p2p_energy.wallet.iota_tx import b58encode
from p2p_energy.wallet.pyota_wallet import PyotaWallet

from support.cli_process import p2p_energy_cli
from support.iota_fixtures import RECEIVER, iota_wallet
from support.log_server import LogServer, SignedLog
from support.node_fixtures import PAYER_SEED, wallet_config
from support.node_fixtures import RECEIVER as LEGACY_RECEIVER

OTHER = "0x" + "0a" * 32
LEGACY_OTHER = "OTHER9PRODUCER9ADDRESS9FOR9TESTS" + "9" * 49


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
        ("iota_getTransactionBlock", [digest, {"showEffects": True, "showBalanceChanges": True}])
        for digest in _references(log)[:2]]


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
        " (never executed there, or pruned)",
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
                               f" {iota_node.url} (never executed there, or pruned)"]


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
