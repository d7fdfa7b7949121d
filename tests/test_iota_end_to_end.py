"""The CLI daemon pays on our IOTA JSON-RPC node: exact amounts, fees in the ledger, outages.

Runs ``p2p-energy run`` (replay trace: 10 micro-IOTA owed per 1 s round,
``min_payment`` 25) against the test node, with an outage and node errors in
the middle; a drain run settles the rest. The books must balance on the node
to the nano, every signed transaction passes the IOTA SDK, failures are logged
once per kind, and the key never appears in a log, the ledger or ``check``.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from support.iota_daemon import (
    MIN_PAYMENT,
    assert_iota_books_balance,
    drain,
    read_payments,
    write_iota_setup,
)
from support.iota_fixtures import PAYER_KEY
from support.paying_daemon import metering_started, start_daemon, stop_daemon, wait_for


def _confirmed(db) -> int:
    return sum(r.status == "confirmed" for r in read_payments(db)[0])


@pytest.mark.usefixtures("iota_sdk_judge")
def test_daemon_pays_exact_amounts_through_outages(iota_node, tmp_path, ledger_dir) -> None:
    node = iota_node
    setup = write_iota_setup(tmp_path, node, ledger_dir)
    log = setup.log("run")
    proc = start_daemon(setup.cfg, log)
    try:
        wait_for("metering to start", metering_started(log, 0), 20, proc=proc)
        wait_for("a first confirmed payment", lambda: _confirmed(setup.db) >= 1, 20, proc=proc)
        node.set_fault("refuse")  # the node is gone for a while
        time.sleep(2.0)
        node.clear_fault()
        node.set_fault("rpc_error", methods={"iota_getTransactionBlock"}, times=3)
        node.set_fault("lost", methods={"iota_executeTransactionBlock"}, times=1)
        wait_for("payments after the outage", lambda: _confirmed(setup.db) >= 3, 20, proc=proc)
    finally:
        code = stop_daemon(proc)
    assert code == 0
    run_log = log.read_text()
    drain_log = drain(setup)
    report = assert_iota_books_balance(node, setup)
    assert "Traceback" not in run_log + drain_log
    # The outage was logged once, not once per attempt, and payments went on after it.
    assert run_log.count("cannot be reached") == 1, run_log
    assert "payments working again" in run_log
    payments = report["payments"]
    assert len([p for p in payments if p["status"] == "confirmed"]) >= 3
    assert all(p["fee_nanos"] > 0 for p in payments if p["status"] == "confirmed")
    # The text report names the unit and the fees.
    text = subprocess.run([sys.executable, "-m", "p2p_energy", "ledger", "-c", str(setup.cfg)],
                          capture_output=True, text=True, timeout=60).stdout
    fees = report["totals"]["fees_nanos"] / 1e9
    assert "µIOTA confirmed" in text and f", fees {fees:.6f} IOTA" in text, text
    # The key is nowhere: not in the logs, not in the ledger file.
    secret = PAYER_KEY.export()
    for text in (run_log, drain_log, setup.db.read_bytes().decode("latin-1")):
        assert secret not in text and PAYER_KEY.private_key.hex() not in text


def test_check_reports_the_node_the_address_the_balance_and_gas(iota_node, tmp_path,
                                                                ledger_dir) -> None:
    node = iota_node
    setup = write_iota_setup(tmp_path, node, ledger_dir)
    out = subprocess.run([sys.executable, "-m", "p2p_energy", "check", "-c", str(setup.cfg)],
                         capture_output=True, text=True, timeout=60)
    lines = out.stdout.splitlines()
    assert out.returncode == 0, out.stdout + out.stderr
    print(out.stdout)
    assert f"ok   node {node.url}: chain 70322e65, checkpoint 1" in lines
    assert f"ok   wallet: 10.000000000 IOTA at address {PAYER_KEY.address}" in lines
    gas = next(line for line in lines if line.startswith("ok   gas:"))
    assert "reference price 1000 nanos" in gas and "(a dry run)" in gas
    warn = next(line for line in lines if line.startswith("warn wallet.min_payment"))
    assert f"wallet.min_payment = {MIN_PAYMENT} (0.000025 IOTA)" in warn
    assert "set at least 1" in warn  # the fee is ~2,000,000 nanos: 1 % needs ~0.2 IOTA
    assert node.executed == {}  # check signs and sends nothing
    assert PAYER_KEY.export() not in out.stdout + out.stderr

    (tmp_path / "enough").mkdir()
    quiet = write_iota_setup(tmp_path / "enough", node, ledger_dir, min_payment=300_000)
    out = subprocess.run([sys.executable, "-m", "p2p_energy", "check", "-c", str(quiet.cfg)],
                         capture_output=True, text=True, timeout=60)
    warned = [line for line in out.stdout.splitlines()
              if line.startswith("warn") and not line.startswith("warn clock:")]
    assert out.returncode == 0 and warned == [], out.stdout  # (this machine's clock may warn)

    node.set_fault("refuse")
    out = subprocess.run([sys.executable, "-m", "p2p_energy", "check", "-c", str(setup.cfg)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert f"FAIL node {node.url}: iota_getChainIdentifier: node {node.url} cannot be" \
        in out.stdout
