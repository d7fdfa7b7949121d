"""``run --simulate`` never writes to a real ledger, and a real ``run`` never pays a simulation.

Through the CLI in a subprocess, on real SQLite files.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from p2p_energy.core.metering import RoundTotals
from p2p_energy.core.pricing import NANO, Quote
from p2p_energy.errors import LedgerError
from p2p_energy.store.ledger import Ledger

from support.cli_process import p2p_energy_cli


def config(tmp: Path, ledger: Path) -> Path:
    cfg = tmp / "config.toml"
    cfg.write_text(f"""
[meter]
sensor = "simulated"
[round]
length_s = 1
checkpoint_s = 0.5
[wallet]
backend = "dry-run"
poll_s = 0.1
[ledger]
path = "{ledger}"
""")
    cfg.chmod(0o600)
    return cfg


def real_ledger_owing(path: Path, units: int) -> None:
    ledger = Ledger(path)
    try:
        r = RoundTotals(started_at=0, duration_s=60, metered_s=60, consumer_mws=1e6,
                        producer_mws=1e6, samples=60, expected_samples=60, ended_at=60)
        ledger.record_round(r, Quote(1.0, False, units * NANO))
    finally:
        ledger.close()


def run(*args: str, env: dict[str, str] | None = None,
        until: Callable[[], bool] | None = None) -> subprocess.CompletedProcess:
    """``p2p-energy run ARGS`` (``cli_process``), 30 s at most."""
    return p2p_energy_cli("run", *args, until=until, env=env, limit_s=30)


def count_rounds(path: Path) -> int:
    try:
        ledger = Ledger(path, readonly=True)
    except LedgerError:
        return 0  # not a ledger yet
    try:
        return len(ledger.report()["rounds"])
    finally:
        ledger.close()


def rounds_in(path: Path) -> Callable[[], bool]:
    """A condition: the daemon has closed a round into the ledger at ``path`` (so it is
    running, its signal handlers in place)."""
    before = count_rounds(path)
    return lambda: count_rounds(path) > before


def report(path: Path) -> dict:
    ledger = Ledger(path, readonly=True)
    try:
        return ledger.report()
    finally:
        ledger.close()


def test_simulate_refuses_a_real_ledger_and_leaves_it_untouched(tmp_path) -> None:
    path = tmp_path / "real.db"
    real_ledger_owing(path, 5_000)
    before = report(path)
    out = run("--simulate", "-c", str(config(tmp_path, path)))
    assert out.returncode == 1
    [line] = out.stderr.strip().splitlines()
    assert line.startswith(f"p2p-energy: {path}: a real ledger") and "--simulate" in line
    after = report(path)
    assert after == before
    assert [p["status"] for p in after["payments"]] == ["queued"]  # not "paid" by dry-run


def test_a_simulation_ledger_is_kept_for_simulation(tmp_path) -> None:
    path = tmp_path / "sim.db"
    cfg = config(tmp_path, path)
    first = run("--simulate", "-c", str(cfg), until=rounds_in(path))
    assert first.returncode == 0, first.stderr
    ledger = Ledger(path, readonly=True)
    try:
        assert ledger.is_simulation() and ledger.report()["rounds"]
    finally:
        ledger.close()
    again = run("--simulate", "-c", str(cfg), until=rounds_in(path))
    assert again.returncode == 0, again.stderr
    real = run("-c", str(cfg))
    assert real.returncode == 1
    [line] = real.stderr.strip().splitlines()
    assert line == (f"p2p-energy: {path}: a ledger made by run --simulate (simulated rounds);"
                    " a real run never pays them: set ledger.path to a new file")


def test_simulate_without_config_adopts_its_own_ledger(tmp_path) -> None:
    """A simulate.db made before simulations were marked is still the simulation's own."""
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path))
    own = tmp_path / "p2p-energy" / "simulate.db"
    real_ledger_owing(own, 10)  # unmarked, as older versions left it
    out = run("--simulate", env=env, until=lambda: report(own)["totals"]["paid_iota"] == 10)
    assert out.returncode == 0, out.stderr
    ledger = Ledger(own, readonly=True)
    try:
        assert ledger.is_simulation()
    finally:
        ledger.close()


@pytest.mark.parametrize("simulate", [False, True])
def test_a_ledger_left_before_its_schema_was_written_is_made_a_ledger(tmp_path,
                                                                     simulate) -> None:
    """A first start that died between SQLite's first write and the schema's commit."""
    path = tmp_path / "half.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")  # a 4096-byte file of schema version 0
    db.close()
    assert path.stat().st_size > 0
    args = ["--simulate"] if simulate else []
    out = run(*args, "-c", str(config(tmp_path, path)), until=rounds_in(path))
    assert out.returncode == 0, out.stderr
    ledger = Ledger(path, readonly=True)
    try:
        assert ledger.is_simulation() is simulate and ledger.report()["rounds"]
    finally:
        ledger.close()


def test_a_config_error_leaves_no_ledger(tmp_path) -> None:
    """The key is read before the ledger is looked at: a bad one makes nothing."""
    path = tmp_path / "new" / "dir" / "never.db"
    cfg = tmp_path / "bad.toml"
    cfg.write_text(f'[wallet]\nbackend = "iota"\nseed = "not a key"\n'
                   f'receiver = "0x{"e1" * 32}"\n[ledger]\npath = "{path}"\n')
    cfg.chmod(0o600)
    out = run("-c", str(cfg))
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]  # no folder, no lock
