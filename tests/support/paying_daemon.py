"""Helpers for tests that run the paying CLI daemon against our legacy node.

Used by ``test_payments_end_to_end.py`` and ``test_crash_recovery.py``: a
funded node, a config and replay trace that owe ~10 IOTA per 1 s round, the
daemon in a subprocess, the ledger read raw, a drain run, and the check that
the books balance on the node.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from .legacy_node import LegacyNode, address_of
from .node_fixtures import PAYER_SEED, RECEIVER, TEST_MWM

# Tests that run this paying daemon are CPU-heavy (PyOTA signs in the daemon for seconds,
# the node does proof of work in the test process) and check node timeouts of 2-3 s.
# Under pytest-xdist they run one at a time, on one worker, beside the other worker's
# tests; those that check the 50 ms sampling rhythm are marked ``alone`` instead and run
# with no test beside them at all (tests/conftest.py; README.md, "Development").
ONE_AT_A_TIME = pytest.mark.xdist_group("legacy_daemon")

FUNDS_IOTA = 1_000_000
ROUND_S = 1.0
SAMPLE_S = 0.05
CONSUMER_MW = 500.0  # with the producer at 500 mW and numerator 10: 10 IOTA per round
RUN_S = 14.0

# -- running the daemon ----------------------------------------------------------------------


@dataclass
class Setup:
    """One daemon's files: config, drain config (consumer at 0 mW), ledger, logs."""

    tmp: Path
    cfg: Path
    drain_cfg: Path
    db: Path

    def log(self, name: str) -> Path:
        return self.tmp / f"{name}.log"


@contextmanager
def ledger_folder() -> Iterator[Path]:
    """A folder for the ledger, on tmpfs when there is one.

    These tests are about what the daemon does, not about the disk: on a shared
    2-core machine an fsync under other jobs' I/O sometimes took ~200 ms, and the
    sampling loop's BEGIN IMMEDIATE waited that long behind the payer's commit
    (3 samples missed at 50 ms). A SIGKILL loses nothing that reached the page
    cache, so tmpfs changes no outcome of these tests.
    """
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(prefix="p2p-energy-test-",
                                     dir=shm if shm.is_dir() else None) as name:
        yield Path(name)


@pytest.fixture
def ledger_dir() -> Iterator[Path]:
    """A folder for a daemon's ledger, on tmpfs when there is one (``ledger_folder``)."""
    with ledger_folder() as path:
        yield path


def write_setup(tmp: Path, node: LegacyNode, ledger_dir: Path, *, checkpoint_s: float = 0.5,
                promote_after_s: float = 1.0, reattach_after_s: float = 2.5,
                timeout_s: float = 2.0) -> Setup:
    """Config files (0600) with the seed in a 0600 ``seed_file``; a fresh ledger path."""
    return write_configs(tmp, ledger_dir, "seed", PAYER_SEED, checkpoint_s=checkpoint_s,
                         wallet=f"""
backend = "pyota"
node_url = "{node.url}"
receiver = "{RECEIVER}"
min_weight_magnitude = {TEST_MWM}
timeout_s = {timeout_s}
promote_after_s = {promote_after_s}
reattach_after_s = {reattach_after_s}
""")


def write_configs(tmp: Path, ledger_dir: Path, secret_name: str, secret: str, *,
                  wallet: str, checkpoint_s: float) -> Setup:
    """A run config (``CONSUMER_MW``) and a drain config (0 mW) paying through the
    ``[wallet]`` keys in ``wallet``, with ``secret`` in the 0600 file ``secret_name``."""
    secret_file = tmp / secret_name
    secret_file.write_text(secret + "\n")
    secret_file.chmod(0o600)
    db = ledger_dir / "ledger.db"

    def config(name: str, consumer_mw: float) -> Path:
        trace = tmp / f"{name}.csv"
        trace.write_text(f"t_s,consumer_mw,producer_mw\n0,{consumer_mw},500\n"
                         f"5,{consumer_mw},500\n")
        path = tmp / f"{name}.toml"
        path.write_text(f"""
[meter]
sensor = "replay"
replay_file = "{trace}"
sample_interval_s = {SAMPLE_S}
[round]
length_s = {ROUND_S}
checkpoint_s = {checkpoint_s}
[price]
numerator = 10
[wallet]
seed_file = "{secret_name}"
poll_s = 0.2
retry_max_s = 0.5
{wallet.strip()}
[ledger]
path = "{db}"
""")
        path.chmod(0o600)
        return path

    return Setup(tmp, config("run", CONSUMER_MW), config("drain", 0.0), db)


def start_daemon(cfg: Path, log: Path) -> subprocess.Popen:
    """``python -m p2p_energy run -c cfg``, stderr appended to ``log``."""
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "JOURNAL_STREAM")}
    with log.open("a") as err:
        return subprocess.Popen([sys.executable, "-m", "p2p_energy", "run", "-c", str(cfg)],
                                stdout=subprocess.DEVNULL, stderr=err, env=env)


def wait_for(what: str, cond: Callable[[], bool], timeout_s: float, *, every_s: float = 0.02,
             proc: subprocess.Popen | None = None) -> None:
    """Poll ``cond`` until true; fail naming ``what`` (or the daemon's exit code)."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"daemon exited with {proc.returncode} while waiting for {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(every_s)


def metering_started(log: Path, runs_before: int) -> Callable[[], bool]:
    """True once the log shows one more "metering with" line than ``runs_before``."""
    return lambda: log.exists() and log.read_text().count("metering with") > runs_before


def stop_daemon(proc: subprocess.Popen, timeout_s: float = 30.0) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=timeout_s)


# -- reading the ledger ----------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    id: int
    value_units: int
    status: str
    bundle_hash: str | None
    trytes: tuple[str, ...] | None
    input_index: int | None
    change_index: int | None
    tails: int  # attachments recorded
    tails_sent: int  # of which known to be sent


def read_db(db: Path) -> tuple[list[Row], int, int | None]:
    """(payments, total owed in nano-IOTA, wallet input index) straight from SQLite."""
    if not db.exists():
        return [], 0, None
    con = sqlite3.connect(db, timeout=10.0)
    try:
        rows = [Row(r[0], r[1], r[2], r[3], tuple(json.loads(r[4])) if r[4] else None,
                    r[5], r[6], r[7], r[8]) for r in con.execute(
            "SELECT p.id, p.value_units, p.status, p.reference, p.payload, p.input_index,"
            " p.change_index, (SELECT COUNT(*) FROM attachments a WHERE a.payment_id = p.id),"
            " (SELECT COUNT(*) FROM attachments a WHERE a.payment_id = p.id"
            " AND a.sent_at IS NOT NULL) FROM payments p ORDER BY p.id")]
        owed = con.execute("SELECT COALESCE(SUM(owed_nano_units), 0) FROM rounds").fetchone()[0]
        index = con.execute("SELECT value FROM wallet_state WHERE key = 'input_index'").fetchone()
    except sqlite3.OperationalError:  # the daemon has not created the tables yet
        return [], 0, None
    finally:
        con.close()
    return rows, int(owed), index[0] if index else None


def drained(db: Path) -> bool:
    """Every whole IOTA owed is in a confirmed payment."""
    rows, owed, _ = read_db(db)
    confirmed = sum(r.value_units for r in rows if r.status == "confirmed")
    return bool(rows) and all(r.status == "confirmed" for r in rows) \
        and confirmed == owed // 1_000_000_000


def ledger_json(cfg: Path) -> dict:
    """What ``p2p-energy ledger --json`` prints."""
    out = subprocess.run([sys.executable, "-m", "p2p_energy", "ledger", "-c", str(cfg), "--json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def drain(setup: Setup, timeout_s: float = 60.0) -> tuple[str, float]:
    """Run the zero-consumption config on the same ledger until all owed is confirmed.

    Returns the drain run's log and the seconds it metered (first sample to SIGTERM).
    """
    log = setup.log("drain")
    proc = start_daemon(setup.drain_cfg, log)
    try:
        wait_for("the drain run to start metering", metering_started(log, 0), 20, proc=proc)
        since = time.monotonic()
        wait_for("everything owed to be confirmed", lambda: drained(setup.db), timeout_s,
                 every_s=0.2, proc=proc)
    finally:
        stopped = time.monotonic()
        code = stop_daemon(proc)
    assert code == 0, log.read_text()
    return log.read_text(), stopped - since


# -- what the node saw -----------------------------------------------------------------------


def broadcast_contents(node: LegacyNode) -> dict[str, set[tuple[str, ...]]]:
    """Bundle hash -> the distinct signed contents sent (signature + essence, by index).

    Everything but the attachment fields (trunk, branch, tag, timestamps, nonce) is
    the same in every attachment of one bundle; two contents mean a second signing.
    """
    out: dict[str, set[tuple[str, ...]]] = {}
    for command, req in node.requests:
        if command not in ("broadcastTransactions", "storeTransactions"):
            continue
        by_bundle: dict[str, list[tuple[int, str]]] = {}
        for raw in req["trytes"]:
            by_bundle.setdefault(raw[2349:2430], []).append((_index(raw), raw[:2430]))
        for bundle, txs in by_bundle.items():
            out.setdefault(bundle, set()).add(tuple(content for _, content in sorted(txs)))
    return out


def signed_content(trytes: tuple[str, ...]) -> tuple[str, ...]:
    """The signed part of a stored bundle, by transaction index (as ``broadcast_contents``)."""
    return tuple(raw[:2430] for raw in sorted(trytes, key=_index))


def _index(raw: str) -> int:
    """A transaction's current index."""
    from iota import TryteString
    from iota.trits import int_from_trits
    return int_from_trits(TryteString(raw[2331:2340]).as_trits())


def paid_to_receiver(node: LegacyNode) -> dict[str, int]:
    """Bundle hash -> IOTA it moved to the receiver, for every confirmed value bundle."""
    return {h: rec.changes.get(RECEIVER, 0) for h, rec in node.bundles.items()
            if rec.state == "confirmed" and rec.changes}


# A sample deadline passed while the machine was busy is counted as missed, not lost:
# energy is integrated over the time between the samples taken. How often it happens
# is a figure of the machine's load (bench/pi_budget.py and bench/billing.py print it);
# an end-to-end test on a shared machine checks that the loop kept its rhythm.
MISSED_SHARE_MAX = 0.02


def missed_samples(rounds: list[dict]) -> tuple[int, int]:
    """(sample deadlines missed, sample deadlines due) over ``rounds``."""
    due = sum(r["expected_samples"] for r in rounds)
    return due - sum(r["samples"] for r in rounds), due


def assert_sampling_kept_up(rounds: list[dict], share: float = MISSED_SHARE_MAX) -> int:
    """At most ``share`` of the sample deadlines were missed; returns the samples taken."""
    missed, due = missed_samples(rounds)
    assert due > 0 and missed >= 0, (missed, due)
    assert missed <= share * due, f"{missed} of {due} sample deadlines missed"
    return due - missed


def assert_books_balance(node: LegacyNode, setup: Setup) -> dict:
    """The checks every end-to-end run ends with; returns the ledger report."""
    report = ledger_json(setup.cfg)
    totals = report["totals"]
    rows, owed_niota, index = read_db(setup.db)
    assert node.rejected == []
    assert node.addresses_signed_by_more_than_one_bundle() == {}
    assert [h for h, c in broadcast_contents(node).items() if len(c) > 1] == []
    assert totals["queued_iota"] == 0
    assert totals["paid_iota"] == math.floor(owed_niota / 1_000_000_000) > 0
    assert node.balance(RECEIVER) == totals["paid_iota"]
    # Every ledger payment is one distinct confirmed bundle on the node, paying its value.
    on_node = paid_to_receiver(node)
    assert {r.bundle_hash: r.value_units for r in rows} == on_node
    assert sum(on_node.values()) == totals["paid_iota"]
    # What the node holds is exactly what the ledger signed (no re-signing after a restart).
    contents = broadcast_contents(node)
    for r in rows:
        assert r.trytes is not None and r.bundle_hash is not None
        assert contents[r.bundle_hash] == {signed_content(r.trytes)}
    # The key index walked through change addresses: payment k spent index k.
    assert [(r.input_index, r.change_index) for r in rows] == [
        (k, k + 1) for k in range(len(rows))]
    assert index == len(rows)
    assert node.balance(address_of(PAYER_SEED, index)) == FUNDS_IOTA - totals["paid_iota"]
    assert all(node.is_spent(address_of(PAYER_SEED, k)) for k in range(index))
    return report


@contextmanager
def funded_node(confirm_delay_s: float) -> Iterator[LegacyNode]:
    """A started node where ``PAYER_SEED`` #0 holds ``FUNDS_IOTA``; bundles confirm
    ``confirm_delay_s`` after they arrive."""
    n = LegacyNode(mwm=TEST_MWM, confirm_delay_s=confirm_delay_s, hang_s=10.0)
    n.fund_seed(PAYER_SEED, 0, FUNDS_IOTA)
    n.start()
    try:
        yield n
    finally:
        n.clear_fault()
        n.stop()
