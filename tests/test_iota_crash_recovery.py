"""SIGKILL the daemon paying on our IOTA node 20 times: nothing lost, nothing paid twice.

Each run starts the CLI daemon on the same config and ledger as the run before
and is killed (SIGKILL) at a moment a seeded RNG picks:

- ``round``: at a random time, wherever metering and paying happen to be;
- ``unsent``: a signed transaction is in the ledger, and its submission never
  reached the node (the node answers it with a JSON-RPC error);
- ``held``: the submission reached the node, which holds it unexecuted; it
  executes after the kill, as a slow network would deliver it late;
- ``answer``: the node executed it and holds the answer: the ledger does not
  know it went out;
- ``dead``: as ``unsent``, and then another transaction uses the gas coin at its
  signed version, so the stored transaction can never execute: the payment must
  be proven dead and its amount signed anew, once.

Then a drain run settles what is owed, and the books must balance on the node
to the nano, every signed transaction passing the IOTA SDK.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable

import pytest

from support.iota_daemon import (
    Row,
    assert_iota_books_balance,
    drain,
    read_payments,
    write_iota_setup,
)
from support.iota_node import IotaNode
from support.paying_daemon import metering_started, start_daemon, wait_for

KILLS = 20
SEED = 20_261_125
MIN_PAYMENT = 10  # one round's worth: a new payment every second
EXECUTE = "iota_executeTransactionBlock"
FAULT = {"unsent": "rpc_error", "dead": "rpc_error", "held": "hang", "answer": "hang_answer"}
MODES = ("round", "unsent", "held", "answer", "dead")



def unsent(rows: list[Row]) -> Row | None:
    """The signed payment whose attachment is not recorded as sent, if any."""
    return next((r for r in rows if r.reference and r.status in ("queued", "sent")
                 and r.sent == 0), None)


def kill_window(mode: str, node: IotaNode, db) -> Callable[[], bool]:
    def inside() -> bool:
        pending = unsent(read_payments(db)[0])
        if pending is None:
            return False
        executed = pending.reference in node.executed
        submitted = EXECUTE in node.method_names()[-3:]
        if mode == "answer":
            return executed
        return not executed and submitted
    return inside


@pytest.mark.usefixtures("iota_sdk_judge")
def test_twenty_sigkills_pay_everything_once(iota_node, tmp_path, ledger_dir) -> None:
    node = iota_node
    rng = random.Random(SEED)
    setup = write_iota_setup(tmp_path, node, ledger_dir, min_payment=MIN_PAYMENT,
                             promote_after_s=1.0)
    log = setup.log("run")
    modes = [MODES[i % len(MODES)] for i in range(KILLS)]
    rng.shuffle(modes)
    seen = {"signed, not executed": 0, "executed, not marked sent": 0}
    made_dead: list[str] = []
    started = time.monotonic()
    for n, mode in enumerate(modes):
        proc = start_daemon(setup.cfg, log)
        try:
            wait_for("metering to start", metering_started(log, n), 20, proc=proc)
            if mode == "round":
                time.sleep(rng.uniform(0.3, 2.0))
            else:
                wait_for("the last run's payment to be sent",
                         lambda: unsent(read_payments(setup.db)[0]) is None, 20, proc=proc)
                node.requests.clear()
                node.set_fault(FAULT[mode], methods={EXECUTE})
                wait_for(f"the {mode} window", kill_window(mode, node, setup.db), 20,
                         proc=proc)
                time.sleep(rng.uniform(0.0, 0.05))
        finally:
            proc.kill()
            proc.wait(timeout=10)
        pending = unsent(read_payments(setup.db)[0])
        if pending is not None:
            key = "executed, not marked sent" if pending.reference in node.executed \
                else "signed, not executed"
            seen[key] += 1
            if mode == "dead" and pending.reference not in node.executed:
                [coin] = json.loads(pending.payload)["gas_coins"]
                node.spend_elsewhere(coin[0])
                made_dead.append(pending.reference)
        node.clear_fault()  # a held request goes on now, as if delivered late
    kills_s = time.monotonic() - started

    drain_log = drain(setup, min_payment=MIN_PAYMENT)
    assert "Traceback" not in drain_log + log.read_text()
    report = assert_iota_books_balance(node, setup, min_payment=MIN_PAYMENT)
    rows, _ = read_payments(setup.db)

    # Every window was hit at every kill aimed at it.
    assert seen["signed, not executed"] >= sum(modes.count(m) for m in ("unsent", "held",
                                                                         "dead")), seen
    assert seen["executed, not marked sent"] >= modes.count("answer"), seen
    # The transactions made dead never ran; each was proven dead and its amount paid anew.
    assert made_dead and not set(made_dead) & set(node.executed)
    dead = {r.reference: r for r in rows if r.reference in made_dead}
    assert all(r.status == "failed" for r in dead.values()), dead
    print(f"\n{KILLS} kills in {kills_s:.0f} s ({seen}, {len(made_dead)} made dead);"
          f" {len(report['payments'])} payments, {report['totals']['paid_iota']} micro-IOTA"
          f" paid, fees {report['totals']['fees_nanos']} nanos")
