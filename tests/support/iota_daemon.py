"""Helpers for tests that run the paying CLI daemon against our IOTA JSON-RPC node.

Like ``paying_daemon.py`` for the legacy node: a funded node, a config and
replay trace that owe ``UNITS_PER_ROUND`` micro-IOTA per 1 s round, the ledger
read raw, a drain run, and the check that the books balance on the node, with
every signed transaction in the ledger judged by the IOTA SDK.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from .iota_fixtures import FUNDS_NANOS, PAYER_KEY, RECEIVER, judged
from .iota_node import IotaNode
from .paying_daemon import (
    Setup,
    ledger_json,
    metering_started,
    start_daemon,
    stop_daemon,
    wait_for,
    write_configs,
)

NANOS_PER_UNIT = 1_000
CONSUMER_MW = 500.0  # producer 500 mW, numerator 10: 10 micro-IOTA per 1 s round
UNITS_PER_ROUND = 10
MIN_PAYMENT = 25  # units: every ~3 rounds, so amounts visibly wait and go out together


def write_iota_setup(tmp: Path, node: IotaNode, ledger_dir: Path, *, checkpoint_s: float = 0.5,
                     promote_after_s: float = 1.0, timeout_s: float = 2.0,
                     min_payment: int = MIN_PAYMENT) -> Setup:
    """Config files (0600) with PAYER_KEY in a 0600 ``seed_file``; a fresh ledger path."""
    return write_configs(tmp, ledger_dir, "key", PAYER_KEY.export(), checkpoint_s=checkpoint_s,
                         wallet=f"""
backend = "iota"
node_url = "{node.url}"
receiver = "{RECEIVER}"
min_payment = {min_payment}
timeout_s = {timeout_s}
promote_after_s = {promote_after_s}
reattach_after_s = 30
""")


@dataclass(frozen=True)
class Row:
    id: int
    value: int
    status: str
    reference: str | None
    payload: str | None
    fee_nanos: int
    backend: str | None
    attachments: int
    sent: int


def read_payments(db: Path) -> tuple[list[Row], int]:
    """(payments, total owed in nano-units) straight from SQLite."""
    if not db.exists():
        return [], 0
    con = sqlite3.connect(db, timeout=10.0)
    try:
        rows = [Row(*r) for r in con.execute(
            "SELECT p.id, p.value_units, p.status, p.reference, p.payload, p.fee_nanos,"
            " p.backend, (SELECT COUNT(*) FROM attachments a WHERE a.payment_id = p.id),"
            " (SELECT COUNT(*) FROM attachments a WHERE a.payment_id = p.id"
            "  AND a.sent_at IS NOT NULL) FROM payments p ORDER BY p.id")]
        owed = con.execute("SELECT COALESCE(SUM(owed_nano_units), 0) FROM rounds").fetchone()[0]
    except sqlite3.OperationalError:  # the daemon has not created the tables yet
        return [], 0
    finally:
        con.close()
    return rows, int(owed)


def settled(db: Path, min_payment: int = MIN_PAYMENT) -> bool:
    """Nothing signed is unconfirmed, and what is queued is below ``min_payment``."""
    rows, owed = read_payments(db)
    queued = sum(r.value for r in rows if r.status == "queued" and r.reference is None)
    in_flight = [r for r in rows if r.reference and r.status in ("queued", "sent")]
    return bool(rows) and not in_flight and queued < min_payment \
        and sum(r.value for r in rows if r.status != "failed") == owed // 10**9


def drain(setup: Setup, timeout_s: float = 60.0, min_payment: int = MIN_PAYMENT) -> str:
    """Run the zero-consumption config on the same ledger until everything has settled."""
    log = setup.log("drain")
    proc = start_daemon(setup.drain_cfg, log)
    try:
        wait_for("the drain run to start metering", metering_started(log, 0), 20, proc=proc)
        wait_for("every signed payment to settle", lambda: settled(setup.db, min_payment),
                 timeout_s, every_s=0.2, proc=proc)
    finally:
        code = stop_daemon(proc)
    assert code == 0, log.read_text()
    return log.read_text()


def assert_iota_books_balance(node: IotaNode, setup: Setup,
                              min_payment: int = MIN_PAYMENT) -> dict:
    """The checks every end-to-end run ends with; returns the ledger report."""
    report = ledger_json(setup.cfg)
    totals = report["totals"]
    rows, owed = read_payments(setup.db)
    confirmed = [r for r in rows if r.status == "confirmed"]
    # Paid + queued = floor(owed); what is queued waits for min_payment.
    assert totals["paid_iota"] + totals["queued_iota"] == math.floor(owed / 10**9)
    assert totals["queued_iota"] < min_payment and totals["paid_iota"] > 0
    assert all(r.value >= min_payment for r in confirmed)
    # The receiver got exactly the confirmed payments, each once, in micro-IOTA.
    paid = node.paid_to(RECEIVER)
    assert paid == {r.reference: r.value * NANOS_PER_UNIT for r in confirmed}
    assert node.balance(RECEIVER) == totals["paid_iota"] * NANOS_PER_UNIT
    # Every fee the node charged is in the ledger, payment by payment and in total.
    charged = {d: e.fee_nanos for d, e in node.executed.items()}
    assert {r.reference: r.fee_nanos for r in rows if r.reference in charged} == charged
    assert totals["fees_nanos"] == sum(charged.values()) > 0
    assert node.balance(PAYER_KEY.address) == \
        FUNDS_NANOS - totals["paid_iota"] * NANOS_PER_UNIT - totals["fees_nanos"]
    # ledger --json names the digest, and the backend that signed.
    for p in report["payments"]:
        row = next(r for r in rows if r.id == p["id"])
        if row.reference is not None:
            assert "bundle_hash" not in p and p["backend"] == "iota"
            assert p["digest"] == row.reference
    # Every transaction the ledger ever signed: the SDK verifies it as ours, paying the
    # receiver exactly the payment's value, and the node never saw another one.
    signed = [r for r in rows if r.payload]
    verdicts = judged([r.payload for r in signed])
    for r, v in zip(signed, verdicts, strict=True):
        assert v["ok"] and v["signer"] == v["sender"] == PAYER_KEY.address, v
        assert v["receiver"] == RECEIVER and int(v["amount"]) == r.value * NANOS_PER_UNIT
        assert v["digest"] == r.reference
    sent = {json.loads(r.payload)["tx_bytes"] for r in signed}
    assert {e.tx_bytes for e in node.executed.values()} <= sent
    assert [reason for _, reason in node.rejected
            if "not available for consumption" not in reason] == []
    return report

