"""Real payments end to end: the CLI daemon in a subprocess, PyOTA, our legacy node.

The node runs in this test process on an ephemeral 127.0.0.1 port (MWM 2,
bundles confirm a short delay after they arrive). The daemon meters a replay
trace that makes every 1 s round owe ~10 IOTA and pays it to ``RECEIVER`` from
``PAYER_SEED``. After a SIGTERM, a drain run on the same ledger, seed and node,
with the consumer at 0 mW (so nothing new is owed), pays what is still owed.
Then everything must add up on the node: what it holds for the receiver is
what the ledger says was paid, which is the whole IOTA owed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from support.legacy_node import LegacyNode
from support.node_fixtures import PAYER_SEED
from support.paying_daemon import (
    RUN_S,
    SAMPLE_S,
    assert_books_balance,
    assert_sampling_kept_up,
    drain,
    funded_node,
    ledger_json,
    metering_started,
    read_db,
    start_daemon,
    stop_daemon,
    wait_for,
    write_setup,
)

# Both check the sampling rhythm: no other test runs beside them (tests/conftest.py).
pytestmark = pytest.mark.alone

# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def node() -> Iterator[LegacyNode]:
    """A funded node: ``PAYER_SEED`` #0 holds ``FUNDS_IOTA``; bundles confirm after 1.5 s."""
    with funded_node(confirm_delay_s=1.5) as n:
        yield n


# -- the tests -------------------------------------------------------------------------------


def test_pays_every_whole_iota_owed_through_a_restart(node, tmp_path, ledger_dir):
    setup = write_setup(tmp_path, node, ledger_dir)
    log = setup.log("run")
    started = time.monotonic()
    proc = start_daemon(setup.cfg, log)
    try:
        wait_for("metering to start", metering_started(log, 0), 20, proc=proc)
        time.sleep(RUN_S)
    finally:
        code = stop_daemon(proc)
    ran_s = time.monotonic() - started
    text = log.read_text()
    assert code == 0, text
    assert "Traceback" not in text and PAYER_SEED not in text
    sent = [r for r in read_db(setup.db)[0] if r.status in ("sent", "confirmed")]
    assert len(sent) >= 3, f"only {len(sent)} payments in {ran_s:.0f} s:\n{text}"

    drain_text, _ = drain(setup)
    assert "Traceback" not in drain_text
    report = assert_books_balance(node, setup)
    rounds = report["rounds"]
    assert_sampling_kept_up(rounds)
    # Several IOTA per whole round (the first is the rest of its wall-clock slot).
    assert all(r["owed_iota"] > 5 for r in rounds[1:6])
    print(f"\n{len(report['payments'])} payments, {report['totals']['paid_iota']} IOTA, "
          f"{len(rounds)} rounds; first run {ran_s:.1f} s")


# The hang comes last: requests it holds go on when the node returns, not into the next fault.
OUTAGE = (("refuse", 3.0), ("http500", 3.0), ("hang", 5.0))


def test_node_outage_keeps_metering_and_pays_afterwards(node, tmp_path, ledger_dir):
    # 3 s: attachToTangle (PoW by the node, pure Python) must fit in the timeout.
    setup = write_setup(tmp_path, node, ledger_dir, timeout_s=3.0)
    log = setup.log("run")
    proc = start_daemon(setup.cfg, log)
    try:
        wait_for("a first confirmed payment", lambda: any(
            r.status == "confirmed" for r in read_db(setup.db)[0]), 30, proc=proc)
        for kind, seconds in OUTAGE:
            node.set_fault(kind)
            time.sleep(seconds)
        node.clear_fault()
        owed_at_return = read_db(setup.db)[1] // 1_000_000_000

        def caught_up() -> bool:
            rows = read_db(setup.db)[0]
            return sum(r.value_units for r in rows if r.status == "confirmed") >= owed_at_return
        wait_for("the backlog to be paid after the node returned", caught_up, 30,
                 every_s=0.1, proc=proc)
    finally:
        code = stop_daemon(proc)
    text = log.read_text()
    assert code == 0, text
    failures = [line for line in text.splitlines() if "payment attempt failed" in line]
    again = re.findall(r"payments working again after (\d+) failed attempts", text)
    # One line per kind of failure, however many attempts failed.
    assert len(failures) == len(OUTAGE), "\n".join(failures)
    assert [m for m in ("cannot reach node", "HTTP 500", "did not answer within 3 s")
            if not any(m in line for line in failures)] == []
    assert again and int(again[0]) >= 2 * len(failures), again
    report = ledger_json(setup.cfg)
    rounds = report["rounds"]
    samples = assert_sampling_kept_up(rounds)  # the outage never stopped the meter
    assert samples >= sum(s for _, s in OUTAGE) / SAMPLE_S

    drain(setup)
    assert_books_balance(node, setup)
