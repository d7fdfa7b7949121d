"""``p2p-energy wallet set-index N`` through the CLI, on a real SQLite ledger."""

import json
import os
import subprocess
import sys

import pytest

from p2p_energy.core.metering import RoundTotals
from p2p_energy.core.pricing import NANO, Quote
from p2p_energy.store.ledger import Ledger
from p2p_energy.store.lock import LedgerLock
from p2p_energy.wallet.base import Signed


def cli(*args):
    return subprocess.run([sys.executable, "-m", "p2p_energy", *args], capture_output=True,
                          text=True, timeout=60)


def config(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[wallet]\nbackend = "dry-run"\nstart_index = 2\n'
                   f'[ledger]\npath = "{tmp_path / "l.db"}"\n')
    return cfg


def test_set_index_is_recorded_and_used(tmp_path):
    cfg = config(tmp_path)
    out = cli("wallet", "set-index", "7", "-c", str(cfg))
    assert out.returncode == 0, out.stderr
    assert "key index 7 (was 2) recorded" in out.stdout
    ledger = Ledger(tmp_path / "l.db")
    assert ledger.input_index(2) == 7
    ledger.close()
    report = json.loads(cli("ledger", "-c", str(cfg), "--json").stdout)
    assert [(e["kind"], e["old_index"], e["new_index"]) for e in report["wallet_events"]] == [
        ("set-index", 2, 7)]
    assert cli("wallet", "set-index", "7", "-c", str(cfg)).stdout.startswith(
        "key index is 7 already")


@pytest.mark.parametrize("recorded, unit", [(None, "IOTA"), ("pyota", "IOTA"),
                                            ("iota", "µIOTA")])
def test_set_index_is_refused_while_a_payment_is_in_flight(tmp_path, recorded, unit):
    cfg = config(tmp_path)
    ledger = Ledger(tmp_path / "l.db")
    if recorded:
        ledger.record_unit(recorded)  # the value is in the unit the ledger records
    r = RoundTotals(started_at=0, duration_s=1, metered_s=1, consumer_mws=1, producer_mws=1,
                    samples=1, expected_samples=1, ended_at=1)
    ledger.record_round(r, Quote(1.0, False, 5 * NANO))
    p = ledger.claim_queued()
    ledger.store_signed(p.id, Signed("A" * 81, "[]", 5, 2, 3), "dry-run")
    out = cli("wallet", "set-index", "9", "-c", str(cfg))
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        f"p2p-energy: {tmp_path / 'l.db'}: payment 1 of 5 {unit} from key index 2 is in flight;"
        " set the key index once it is confirmed"]
    assert ledger.input_index(2) == 2 and ledger.wallet_events() == []
    ledger.close()


def test_set_index_is_refused_while_the_daemon_holds_the_ledger(tmp_path):
    cfg = config(tmp_path)
    with LedgerLock(tmp_path / "l.db"):
        out = cli("wallet", "set-index", "9", "-c", str(cfg))
    assert out.returncode == 1
    assert f"(pid {os.getpid()}); refusing to set the key index" in out.stderr
    assert not (tmp_path / "l.db").exists()  # nothing was created or changed


def test_a_negative_index_is_a_usage_error(tmp_path):
    out = cli("wallet", "set-index", "-3", "-c", str(config(tmp_path)))
    assert out.returncode in (1, 2) and len(out.stderr.strip().splitlines()) == 1
