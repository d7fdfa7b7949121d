"""``role = "producer"``: the producer's own meter signs its panel's figures, pays nothing.

Real processes (``p2p-energy run``, ``log export``, ``verify``, ``check``), a replay
sensor, real SQLite; the entries judged by ``core.entries`` and ``rfc8785``.
"""

from __future__ import annotations

import itertools
import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import rfc8785

from p2p_energy.core import entries
from p2p_energy.core.metering import RoundTotals
from p2p_energy.errors import EntryError
from p2p_energy.runtime.clock import clock_state
from p2p_energy.store.signed_log import LogView, production_entry

from support import kernel_clock
from support.mosquitto_broker import wait_until

PANEL_MW = 400.0


def write_config(tmp: Path, extra: str = "") -> Path:
    trace = tmp / "panel.csv"
    trace.write_text(f"t_s,consumer_mw,producer_mw\n0,999,{PANEL_MW}\n60,999,{PANEL_MW}\n")
    cfg = tmp / "producer.toml"
    cfg.write_text(f"""role = "producer"
{extra}
[meter]
sensor = "replay"
replay_file = "{trace}"
sample_interval_s = 0.05
[round]
length_s = 0.5
checkpoint_s = 0.5
[ledger]
path = "{tmp / 'producer.db'}"
""")
    cfg.chmod(0o600)
    return cfg


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "p2p_energy", *args], capture_output=True,
                          text=True, timeout=60)


def logged(db: Path) -> list[bytes]:
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        view = LogView(conn)
        return list(view.iter_entries(view.size()))
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


@pytest.fixture(scope="module")
def produced(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("producer")
    cfg = write_config(tmp)
    proc = subprocess.Popen([sys.executable, "-m", "p2p_energy", "run", "-c", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until("six production entries", lambda: len(logged(tmp / "producer.db")) >= 7, 30)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return tmp, cfg, err


def test_the_producer_logs_one_production_entry_per_slot_and_pays_nothing(produced):
    tmp, _cfg, err = produced
    data = logged(tmp / "producer.db")
    opening, *rounds = [entries.parse_entry(d) for d in data]
    assert isinstance(opening, entries.OpeningEntry) and opening.owed_nano_units == 0
    assert all(isinstance(r, entries.ProductionEntry) for r in rounds) and len(rounds) >= 6
    assert all(d == rfc8785.dumps(json.loads(d)) for d in data)  # canonical, as judged
    assert [r.round_id for r in rounds] == list(range(1, len(rounds) + 1))
    for r in rounds:
        assert r.slot_ms == 500 and r.start_utc_ms // 500 == max(r.end_utc_ms - 1, 0) // 500
        assert r.clock in ("synchronized", "unsynchronized", "unknown")
    for before, after in itertools.pairwise(rounds):
        assert after.start_utc_ms == before.end_utc_ms  # contiguous slots
    for r in rounds[1:-1]:  # whole slots: the first and last are cut by start and stop
        assert r.start_utc_ms % 500 == 0 and r.end_utc_ms - r.start_utc_ms == 500
        assert r.producer_energy_uws == pytest.approx(PANEL_MW * 500, rel=0.01)
        assert r.producer_metered_us == pytest.approx(500_000, rel=0.01)
    conn = sqlite3.connect(tmp / "producer.db")
    assert conn.execute("SELECT COUNT(*) FROM payments").fetchone()[0] == 0
    assert conn.execute("SELECT MAX(consumer_mws), MAX(owed_nano_units) FROM rounds"
                        ).fetchone() == (0.0, 0)  # the consumer channel is not its meter's
    live = conn.execute("SELECT consumer_mw, producer_mw FROM live_power").fetchone()
    assert live == (0.0, pytest.approx(PANEL_MW))  # for the dashboard and Home Assistant
    conn.close()
    assert "role producer: meters its own panel on channel 2, pays nothing" in err


def test_the_neighbour_verifies_the_producers_log(produced):
    tmp, cfg, _ = produced
    key = cli("log", "key", "-c", str(cfg)).stdout.strip()
    assert cli("log", "export", "-c", str(cfg), "-o", str(tmp / "export.txt")).returncode == 0
    out = cli("verify", str(tmp / "export.txt"), "--key", key, "--state", str(tmp / "state"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "production: " in out.stdout and " rounds" in out.stdout


def test_check_names_the_role_and_the_clock_and_asks_for_no_wallet(produced):
    _tmp, cfg, _ = produced
    # The two-meter tests mark the kernel's clock synchronised (as an NTP client would);
    # here too, where allowed, so that the line is known whichever test ran first.
    synchronised = not kernel_clock.synchronise()
    state = clock_state()
    out = cli("check", "-c", str(cfg))
    assert out.returncode == 0, out.stdout
    assert "ok   role producer: meters its own panel (channel 2)" in out.stdout
    assert "wallet" not in out.stdout.replace("no wallet", "")
    assert "signed log: not published over MQTT ([mqtt] enabled = false)" in out.stdout
    clock = [line for line in out.stdout.splitlines() if " clock: " in line]
    expected = {"synchronized": "ok   ", "unsynchronized": "warn ", "unknown": "warn "}
    assert len(clock) == 1 and clock[0].startswith(expected[state]), clock
    assert state == "synchronized" or not synchronised


def test_a_role_of_no_kind_is_one_line_naming_the_key(tmp_path):
    cfg = write_config(tmp_path, extra="").read_text().replace('role = "producer"',
                                                             'role = "prosumer"')
    (tmp_path / "bad.toml").write_text(cfg)
    out = cli("check", "-c", str(tmp_path / "bad.toml"))
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert 'role = "prosumer": must be one of "consumer", "producer"' in out.stderr


def test_a_production_entry_stays_within_one_slot():
    good = entries.ProductionEntry(7, 60_000, 1_796_515_200_000, 1_796_515_260_000, 24_000_000,
                                   60_000_000, "synchronized")
    assert entries.parse_entry(entries.encode_production(good)) == good
    with pytest.raises(EntryError, match="not within one slot"):
        entries.encode_production(entries.ProductionEntry(
            7, 60_000, 1_796_515_230_000, 1_796_515_260_001, 1, 1, "synchronized"))
    with pytest.raises(EntryError, match="clock"):
        entries.encode_production(entries.ProductionEntry(
            7, 60_000, 1_796_515_200_000, 1_796_515_260_000, 1, 1, "yes"))


def test_a_round_resumed_after_its_slot_is_logged_within_its_slot():
    """Stopped mid-slot and started again later: the round it saved closes at once, and
    its entry covers what it metered, in its own slot."""
    late = RoundTotals(started_at=1_796_515_230.0, duration_s=20.0, metered_s=20.0,
                       producer_mws=8000.0, ended_at=1_796_519_000.0, producer_metered_s=20.0)
    entry = entries.parse_entry(production_entry(3, late, 60.0, "unsynchronized"))
    assert (entry.start_utc_ms, entry.end_utc_ms) == (1_796_515_230_000, 1_796_515_260_000)
    assert entry.producer_energy_uws == 8_000_000



def test_a_producers_ledger_is_not_run_as_a_consumers(produced):
    tmp, cfg, _ = produced
    consumer = tmp / "consumer.toml"
    consumer.write_text(cfg.read_text().replace('role = "producer"', 'role = "consumer"')
                        + '[wallet]\nbackend = "dry-run"\n')
    consumer.chmod(0o600)
    out = cli("run", "-c", str(consumer))
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert "a producer's ledger, and this config says role = \"consumer\"" in out.stderr


def test_a_round_length_is_a_whole_number_of_milliseconds(tmp_path):
    cfg = write_config(tmp_path)
    cfg.write_text(cfg.read_text().replace("length_s = 0.5", "length_s = 0.1234"))
    out = cli("check", "-c", str(cfg))
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "round.length_s = 0.1234: must be a whole number of milliseconds" in out.stderr
