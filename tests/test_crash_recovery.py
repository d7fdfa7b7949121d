"""SIGKILL the paying daemon 20 times in a row; nothing is lost, nothing is paid twice.

Against the strict test node: a bundle attached twice has exactly one attachment
included, the other never confirms, so a payer that only asks about the tails it
remembers would wait for ever.

Each run starts the CLI daemon with the same config and ledger as the run before,
and is killed (SIGKILL: no clean-up at all) at a moment a seeded RNG picks:

- ``round``: at a random time, wherever metering and paying happen to be;
- ``signed``: once the ledger holds a signed payment that was never sent (the
  node holds ``getTransactionsToApprove`` to widen the window);
- ``attach``: while the node is doing the proof of work for it (``attachToTangle`` held);
- ``broadcast``: after the node accepted the bundle but before the daemon could
  record that it was sent (``storeTransactions`` held): the node has it, the ledger
  only knows the tail it computed before sending.

A held request goes on when the fault is cleared after the kill, as a slow
network would deliver it late. Then a drain run (consumer at 0 mW) pays what is
still owed, and the books must balance on the node, and the checkpoints must
have kept the metered time close to the time the daemon was alive.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from support.legacy_node import LegacyNode
from support.paying_daemon import (
    ONE_AT_A_TIME,
    SAMPLE_S,
    Row,
    assert_books_balance,
    drain,
    funded_node,
    metering_started,
    read_db,
    start_daemon,
    wait_for,
    write_setup,
)

pytestmark = ONE_AT_A_TIME

KILLS = 20
CHECKPOINT_S = 0.5
SEED = 20_240_424
HELD = {"signed": "getTransactionsToApprove", "attach": "attachToTangle",
        "broadcast": "storeTransactions"}
MODES = ("round", "signed", "attach", "broadcast")


@pytest.fixture
def node():
    with funded_node(confirm_delay_s=1.0) as n:
        yield n


def unsent(rows: list[Row]) -> Row | None:
    """The payment that is signed in the ledger but not recorded as sent, if any."""
    return next((r for r in rows if r.bundle_hash and r.tails_sent == 0), None)


def kill_window(mode: str, node: LegacyNode, db: Path) -> Callable[[], bool]:
    """True once the daemon is in the window ``mode`` names (the node holds the next step)."""
    def inside() -> bool:
        pending = unsent(read_db(db)[0])
        if pending is None:
            return False
        on_node = pending.bundle_hash in node.bundles
        names = node.command_names()
        last = names[-1] if names else ""
        if mode == "signed":
            return not on_node
        if mode == "attach":
            return not on_node and last == "getTransactionsToApprove"
        return on_node and last == "broadcastTransactions"
    return inside


def test_twenty_sigkills_lose_nothing_and_pay_nothing_twice(node, tmp_path, ledger_dir):
    rng = random.Random(SEED)
    setup = write_setup(tmp_path, node, ledger_dir, checkpoint_s=CHECKPOINT_S, timeout_s=2.0,
                        promote_after_s=1.5, reattach_after_s=3.0)
    log = setup.log("run")
    modes = [MODES[i % len(MODES)] for i in range(KILLS)]
    rng.shuffle(modes)
    alive_s = 0.0
    seen: dict[str, int] = {"signed, not on the node": 0, "on the node, not marked sent": 0}
    started = time.monotonic()
    for n, mode in enumerate(modes):
        proc = start_daemon(setup.cfg, log)
        try:
            wait_for("metering to start", metering_started(log, n), 20, proc=proc)
            metering_since = time.monotonic()
            if mode == "round":
                time.sleep(rng.uniform(0.3, 3.0))
            else:
                # Let a payment left unsent by the last kill go out first, then hold the
                # step after the window, so the kill lands inside it for a new payment.
                wait_for("the last run's payment to be sent",
                         lambda: unsent(read_db(setup.db)[0]) is None, 20, proc=proc)
                node.set_fault("hang", commands={HELD[mode]})
                wait_for(f"the {mode} window", kill_window(mode, node, setup.db), 20,
                         proc=proc)
                time.sleep(rng.uniform(0.0, 0.05))
        finally:
            killed = time.monotonic()
            proc.kill()
            proc.wait(timeout=10)
        alive_s += killed - metering_since
        pending = unsent(read_db(setup.db)[0])
        if pending is not None:
            key = "on the node, not marked sent" if pending.bundle_hash in node.bundles \
                else "signed, not on the node"
            seen[key] += 1
        node.clear_fault()  # a held request goes on now, as if delivered late
    kills_s = time.monotonic() - started

    drain_start = time.monotonic()
    drain_log, drain_alive_s = drain(setup)
    assert "Traceback" not in drain_log
    report = assert_books_balance(node, setup)

    # Both dangerous windows were really hit, at every kill aimed at them.
    assert seen["signed, not on the node"] >= modes.count("signed") + modes.count("attach"), seen
    assert seen["on the node, not marked sent"] >= modes.count("broadcast"), seen
    # Checkpoints: each kill loses at most one checkpoint interval (and a sample).
    rounds = report["rounds"]
    covered_s = sum(r["duration_s"] for r in rounds)
    metered_s = sum(r["metered_s"] for r in rounds)
    total_alive_s = alive_s + drain_alive_s
    lost_s = total_alive_s - covered_s
    print(f"\n{KILLS} kills in {kills_s:.0f} s ({seen}); drain "
          f"{time.monotonic() - drain_start:.0f} s; {len(report['payments'])} payments, "
          f"{report['totals']['paid_iota']} IOTA; metered {covered_s:.1f} s of "
          f"{total_alive_s:.1f} s alive (lost {lost_s:.2f} s, {lost_s / KILLS:.2f} s per kill)")
    assert lost_s <= KILLS * (CHECKPOINT_S + 2 * SAMPLE_S) + 0.5
    assert covered_s <= total_alive_s + (KILLS + 1) * 0.05  # nothing metered twice
    assert metered_s == pytest.approx(covered_s, abs=0.2 * (KILLS + 1))
    samples = sum(r["samples"] for r in rounds)
    assert samples >= 0.85 * total_alive_s / SAMPLE_S
