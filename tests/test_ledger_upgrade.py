"""Upgrading the ledger's schema: only the daemon does it, under the ledger's lock.

Read commands (``ledger``, ``check``, ``statement``) run through the CLI in a
subprocess against real SQLite files while an older daemon still writes: they
never change the file. The daemon's upgrade recounts what is owed from the rounds.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from p2p_energy.core.metering import RoundTotals
from p2p_energy.core.pricing import NANO, Quote
from p2p_energy.errors import LedgerError
from p2p_energy.store.ledger import _MIGRATIONS, SCHEMA_VERSION, Ledger
from p2p_energy.store.lock import LedgerLock
from p2p_energy.store.schema import _units_by_name
from p2p_energy.wallet.base import Signed

T0 = 1.7e9


def write_config(tmp: Path) -> tuple[Path, Path]:
    db = tmp / "ledger.db"
    cfg = tmp / "config.toml"
    cfg.write_text(f'[wallet]\nbackend = "dry-run"\n[ledger]\npath = "{db}"\n')
    return cfg, db


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "p2p_energy", *args], capture_output=True,
                          text=True, timeout=60)


def version(db: Path) -> int:
    with sqlite3.connect(db) as c:
        return c.execute("PRAGMA user_version").fetchone()[0]


class OldDaemon:
    """The daemon of the release with schema 4: it records rounds and queues whole IOTA,
    with no running total (one connection for its life, as its recorder had)."""

    def __init__(self, db: Path) -> None:
        self.db = sqlite3.connect(db, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("BEGIN IMMEDIATE")
        for step in _MIGRATIONS[:4]:
            step(self.db)
        self.db.execute("PRAGMA user_version = 4")
        self.db.execute("COMMIT")
        self.rounds = 0

    def record_round(self, owed_iota: int) -> None:
        t = T0 + 60 * self.rounds
        self.rounds += 1
        self.db.execute("BEGIN IMMEDIATE")
        rid = self.db.execute(
            "INSERT INTO rounds (started_at, ended_at, duration_s, metered_s, samples,"
            " expected_samples, failed_samples, consumer_mws, producer_mws, producer_avg_mw,"
            " price, price_capped, owed_niota) VALUES (?,?,60,60,60,60,0,1,1,1,1,0,?)",
            (t, t + 60, owed_iota * NANO)).lastrowid
        pid = self.db.execute("INSERT INTO payments (value_iota, status, created_at)"
                              " VALUES (?, 'queued', ?)", (owed_iota, t + 60)).lastrowid
        self.db.execute("INSERT INTO payment_rounds VALUES (?, ?)", (pid, rid))
        self.db.execute("COMMIT")


def new_round(i: int) -> RoundTotals:
    return RoundTotals(started_at=T0 + 600 + 60 * i, duration_s=60, metered_s=60,
                       consumer_mws=1, producer_mws=1, samples=60, expected_samples=60)


def test_read_commands_beside_an_older_daemon_change_nothing_and_nothing_owed_is_lost(
        tmp_path):
    cfg, db = write_config(tmp_path)
    old = OldDaemon(db)
    old.record_round(10)
    old.record_round(10)
    for args in (("ledger",), ("ledger", "--json")):
        out = cli(*args, "-c", str(cfg))
        assert out.returncode == 1 and out.stdout == ""
        assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
        assert "schema 4 is older than this program's" in out.stderr
        assert "restart it once" in out.stderr
    csv = cli("ledger", "--csv", "-c", str(cfg))  # what can be read is printed
    assert csv.returncode == 0 and len(csv.stdout.splitlines()) == 3, csv.stderr
    check = cli("check", "--simulate", "-c", str(cfg))
    assert f"schema 4, older than this program's ({SCHEMA_VERSION})" in check.stdout
    assert "Traceback" not in check.stderr
    assert version(db) == 4  # nothing upgraded it beside the running daemon
    old.record_round(10)  # ...which goes on recording
    old.record_round(10)
    old.db.close()
    with pytest.raises(LedgerError, match="only the daemon does"):
        Ledger(db)  # no lock, no upgrade
    with LedgerLock(db):  # as `p2p-energy run` does
        led = Ledger(db)
        for i in range(2):
            led.record_round(new_round(i), Quote(1.0, False, 10 * NANO))
        t = led.totals()
        assert t["owed_iota"] == 60 and t["queued_iota"] == 60 and t["carry_iota"] == 0
        led.close()
    assert version(db) == SCHEMA_VERSION
    out = cli("ledger", "-c", str(cfg))
    assert out.returncode == 0 and "owed 60.000 IOTA" in out.stdout, out.stderr


def test_the_upgrade_recounts_what_is_owed_from_the_rounds(tmp_path):
    """A ledger an earlier read command upgraded beside an older daemon lacks those
    rounds in its running total: the daemon's upgrade counts them, and they are queued."""
    db = tmp_path / "l.db"
    led = Ledger(db)
    for i in range(3):
        led.record_round(new_round(i), Quote(1.0, False, 10 * NANO))
    led.db.execute("UPDATE running_totals SET value = ?", (str(10 * NANO),))
    # As left by the version before the recount (every step from it on runs again).
    led.db.execute(f"PRAGMA user_version = {_MIGRATIONS.index(_units_by_name)}")
    led.close()
    with LedgerLock(db):
        led = Ledger(db)
        assert led.totals()["owed_iota"] == 30
        led.record_round(new_round(3), Quote(1.0, False, 10 * NANO))
        assert led.totals()["queued_iota"] == 40
        led.close()


def test_ledger_on_a_first_schema_ledger_says_so_in_one_line_and_leaves_it(tmp_path):
    cfg, db = write_config(tmp_path)
    c = sqlite3.connect(db)
    _MIGRATIONS[0](c)
    c.execute("PRAGMA user_version = 1")
    c.commit()
    c.close()
    before = db.read_bytes()
    out = cli("ledger", "-c", str(cfg))
    assert out.returncode == 1 and out.stderr.count("\n") == 1
    assert out.stderr.startswith(f"p2p-energy: {db}: ledger schema 1 is older")
    assert db.read_bytes() == before and version(db) == 1


def every_row(db: sqlite3.Connection) -> dict[str, list[tuple]]:
    """Every row of every table, in rowid order (columns in table order)."""
    tables = [r[0] for r in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    return {t: db.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in tables}


def schema_6(path: Path, backends: tuple[str | None, ...]) -> sqlite3.Connection:
    """A ledger as schema 6 wrote it: three rounds, a payment per backend (None: not
    signed yet), an attachment, the running total and a key index event."""
    db = sqlite3.connect(path, isolation_level=None)
    for step in _MIGRATIONS[:6]:
        step(db)
    db.execute("PRAGMA user_version = 6")
    for i in range(3):
        db.execute("INSERT INTO rounds (started_at, ended_at, duration_s, metered_s, samples,"
                   " expected_samples, failed_samples, consumer_mws, producer_mws,"
                   " producer_avg_mw, price, price_capped, owed_niota) VALUES"
                   " (?,?,60,60,60,60,0,1,1,1,1,0,?)", (T0 + 60 * i, T0 + 60 * i + 60,
                                                       7 * NANO + i))
    for pid, backend in enumerate(backends, 1):
        signed = backend is not None
        db.execute("INSERT INTO payments (id, value_iota, status, created_at, reference,"
                   " payload, backend, fee_nanos) VALUES (?, 7, ?, ?, ?, ?, ?, ?)",
                   (pid, "confirmed" if signed else "queued", T0 + pid,
                    f"REF{pid}" if signed else None, "[]" if signed else None, backend,
                    1000 * pid))
        db.execute("INSERT INTO payment_rounds VALUES (?, ?)", (pid, pid))
    db.execute("INSERT INTO attachments (payment_id, attachment_id, attached_at, data,"
               " sent_at) VALUES (1, 'A1', ?, NULL, ?)", (T0, T0))
    db.execute("UPDATE running_totals SET value = ? WHERE key = 'owed_niota'",
               (str(21 * NANO + 3),))
    db.execute("INSERT INTO wallet_events (at, kind, old_index, new_index) VALUES"
               " (?, 'set-index', 0, 3)", (T0,))
    return db


@pytest.mark.parametrize(("backends", "unit"), [
    (("pyota", "dry-run", None), "IOTA"),
    (("dry-run", "iota", None), "µIOTA"),  # the newest signed payment's backend says
    ((None,), None),  # nothing signed: nothing recorded (the configured backend says)
])
def test_step_7_names_amounts_by_unit_keeps_every_row_and_records_the_unit(
        tmp_path, backends, unit):
    db = schema_6(tmp_path / "l.db", backends)
    before = every_row(db)
    _MIGRATIONS[6](db)
    after = every_row(db)
    columns = {t: [r[1] for r in db.execute(f"PRAGMA table_info({t})")] for t in before}
    assert "owed_nano_units" in columns["rounds"] and "owed_niota" not in columns["rounds"]
    assert "value_units" in columns["payments"] and "value_iota" not in columns["payments"]
    assert {t: rows for t, rows in after.items() if t not in ("running_totals", "ledger_meta")
            } == {t: rows for t, rows in before.items() if t != "running_totals"}
    assert after["running_totals"] == [("owed_nano_units", str(21 * NANO + 3))]
    assert after["ledger_meta"] == ([("unit", unit)] if unit else [])
    _MIGRATIONS[6](db)  # again, as a ledger rewound to 6 would be: nothing changes
    assert every_row(db) == after
    db.close()


def test_a_ledger_speaks_the_unit_recorded_in_it_else_the_configured_one(tmp_path):
    path = tmp_path / "l.db"
    schema_6(path, ("dry-run",)).close()
    with LedgerLock(path):
        led = Ledger(path)
        assert led.unit("iota") == "IOTA"  # recorded by the upgrade, whatever the config
        led.record_round(new_round(0), Quote(1.0, False, 10 * NANO))
        p = led.claim_queued()
        assert p is not None
        led.store_signed(p.id, Signed("D", "{}", p.value_units, 0, 0), "iota")
        assert led.unit("iota") == "IOTA"  # signing records nothing: run does, as it starts
        with pytest.raises(LedgerError, match=r"its amounts are in IOTA, and wallet.backend ="
                           r" \"iota\" pays in µIOTA; one ledger keeps one unit"):
            led.record_unit("iota")  # IOTA and µIOTA in one running total: refused
        led.record_unit("pyota")  # the same unit: fine
        assert led.unit("iota") == "IOTA"
        led.close()
    empty = tmp_path / "empty.db"
    schema_6(empty, ()).close()
    with LedgerLock(empty):
        led = Ledger(empty)
        led.record_unit("iota")  # nothing in it yet: it takes the backend's unit
        assert led.unit("pyota") == "µIOTA"
        led.close()
    fresh = Ledger(tmp_path / "new.db")
    assert fresh.unit("iota") == "µIOTA" and fresh.unit("dry-run") == "IOTA"  # config's
    fresh.close()


def test_every_command_names_the_unit_the_ledger_records_not_the_configs(tmp_path):
    """One rule: a ledger that a ``run`` under backend iota wrote speaks µIOTA, read under
    a dry-run config (``--simulate`` makes ``check``'s backend dry-run too)."""
    cfg, db = write_config(tmp_path)  # backend = "dry-run"
    led = Ledger(db)
    led.record_unit("iota")
    led.record_round(new_round(0), Quote(1.0, False, 10 * NANO))
    led.close()
    text = cli("ledger", "-c", str(cfg))
    assert "owed 10.000 µIOTA" in text.stdout, text.stderr
    report = json.loads(cli("ledger", "--json", "-c", str(cfg)).stdout)
    assert report["unit"] == "µIOTA" and report["totals"]["owed_units"] == 10
    assert report["rounds"][0]["owed_units"] == report["rounds"][0]["owed_iota"] == 10
    assert report["payments"][0]["value_units"] == report["payments"][0]["value_iota"] == 10
    assert "owed_microiota" in cli("ledger", "--csv", "-c", str(cfg)).stdout.splitlines()[0]
    check = cli("check", "--simulate", "-c", str(cfg))
    assert "owed 10.000 µIOTA" in check.stdout, check.stdout
    month = cli("statement", "--month", "2023-11", "-c", str(cfg))
    assert month.returncode == 0 and "µIOTA" in month.stdout, month.stderr
