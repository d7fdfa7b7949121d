"""Statements and `ledger --csv` through the CLI, on a real SQLite ledger spanning DST changes.

The expected figures are computed here independently: each round's local date
from its `ended_at` with zoneinfo, then plain sums.
"""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from p2p_energy.core.metering import RoundTotals
from p2p_energy.core.pricing import Quote
from p2p_energy.store.ledger import Ledger
from p2p_energy.wallet.base import Attachment, Signed

BERLIN = ZoneInfo("Europe/Berlin")
ROUND_S = 600.0
# The module-scoped rig is built once: under pytest-xdist its tests share one worker.
pytestmark = pytest.mark.xdist_group("statement")


def build_ledger(path: Path, start: datetime, days: int) -> None:
    """10-minute rounds from ``start`` for ``days`` days; a payment confirms at 12:00 UTC."""
    now = [start.timestamp()]
    led = Ledger(path, clock=lambda: now[0])
    t = start.timestamp()
    end = t + days * 86400
    i = 0
    while t < end:
        mws = 1000.0 + (i % 37) * 250.0 - (300.0 if i % 50 == 0 else 0.0)
        r = RoundTotals(started_at=t, duration_s=ROUND_S, metered_s=ROUND_S, consumer_mws=mws,
                        producer_mws=50_000.0, samples=600, expected_samples=600,
                        ended_at=t + ROUND_S)
        now[0] = t + ROUND_S
        led.record_round(r, Quote(price=0.02, capped=False, owed_nano_units=123_456_789 + i * 1001))
        t += ROUND_S
        i += 1
        if datetime.fromtimestamp(t, UTC).strftime("%H:%M") == "12:00":
            p = led.claim_queued()
            if p is not None:
                led.store_signed(p.id, Signed(f"REF{p.id}".ljust(81, "9"), "[]",
                                                    p.value_units, p.id, p.id + 1), "pyota")
                led.record_attachment(p.id, Attachment(f"TAIL{p.id}", ""))
                led.mark_sent(p.id, f"TAIL{p.id}")
                led.mark_confirmed(p.id)
    led.close()


def cli(cfg: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "p2p_energy", *args, "-c", str(cfg)],
                          capture_output=True, text=True, timeout=60, env=env)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("statement")
    db = tmp / "ledger.db"
    build_ledger(db, datetime(2026, 3, 27, 22, 0, tzinfo=UTC), 4)  # over 2026-03-29 (23 h)
    build_ledger(db, datetime(2026, 10, 23, 21, 0, tzinfo=UTC), 4)  # over 2026-10-25 (25 h)
    cfg = tmp / "c.toml"
    cfg.write_text(f'[ledger]\npath = "{db}"\n[serve]\ntimezone = "Europe/Berlin"\n')
    rounds = list(csv.DictReader(io.StringIO(_ok(cli(cfg, "ledger", "--csv")))))
    return cfg, db, rounds


def _ok(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 0 and out.stderr == "", out.stderr
    return out.stdout


def _exact(niota: int) -> str:
    return f"{niota // 10**9}.{niota % 10**9:09d}"


def _niota(text: str) -> int:
    whole, frac = text.split(".")
    return int(whole) * 10**9 + int(frac)


def _local_day(iso: str) -> date:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(BERLIN).date()


@pytest.mark.parametrize("day, hours", [("2026-03-29", 23), ("2026-10-25", 25),
                                        ("2026-03-28", 24)])
def test_day_statement_equals_the_sum_of_that_days_rounds(setup, day, hours):
    cfg, _, rounds = setup
    mine = [r for r in rounds if _local_day(r["ended_at"]) == date.fromisoformat(day)]
    assert len(mine) == hours * 6  # 10-minute rounds: a DST day has 138 or 150
    (row,) = list(csv.DictReader(io.StringIO(_ok(cli(cfg, "statement", "--day", day,
                                                       "--csv")))))
    assert row["period"] == day and float(row["hours"]) == hours and int(row["rounds"]) == len(
        mine)
    energy = sum(max(float(r["consumer_mws"]), 0.0) for r in mine)
    assert float(row["energy_kwh"]) == pytest.approx(energy / 3.6e9, abs=1e-9)
    owed = sum(_niota(r["owed_iota"]) for r in mine)
    assert row["owed_iota"] == _exact(owed)
    assert float(row["average_price_iota_per_mws"]) == pytest.approx(owed / 1e9 / energy,
                                                                     rel=1e-8)
    assert int(row["payments"]) == 1 and int(row["paid_iota"]) > 0
    assert row["references"].startswith("REF")
    assert row["from"].endswith(("+0100", "+0200"))
    text = _ok(cli(cfg, "statement", "--day", day))
    assert f"{hours} h" in text and _exact(owed) in text and "bundle_hash REF" in text


def test_month_statement_is_its_days_added_up(setup):
    cfg, _, rounds = setup
    rows = list(csv.DictReader(io.StringIO(_ok(cli(cfg, "statement", "--month", "2026-10",
                                                     "--csv")))))
    days, total = rows[:-1], rows[-1]
    assert len(days) == 31 and total["period"] == "2026-10"
    assert float(total["hours"]) == 31 * 24 + 1
    assert sum(_niota(d["owed_iota"]) for d in days) == _niota(total["owed_iota"])
    assert sum(int(d["rounds"]) for d in days) == int(total["rounds"]) == sum(
        _local_day(r["ended_at"]).month == 10 for r in rounds)
    assert sum(int(d["paid_iota"]) for d in days) == int(total["paid_iota"])


def test_ledger_csv_has_every_round_exactly(setup):
    _, db, rounds = setup
    import sqlite3
    con = sqlite3.connect(db)
    n, owed = con.execute("SELECT COUNT(*), SUM(owed_nano_units) FROM rounds").fetchone()
    con.close()
    assert len(rounds) == n == 2 * 4 * 144
    assert sum(_niota(r["owed_iota"]) for r in rounds) == owed
    assert rounds[0]["ended_at"].endswith("Z")
    con = sqlite3.connect(db)
    metered = con.execute("SELECT consumer_metered_s, producer_metered_s FROM rounds"
                          " ORDER BY id").fetchall()
    con.close()
    assert [(float(r["consumer_metered_s"]), float(r["producer_metered_s"])) for r in rounds
            ] == metered


def test_statement_energy_is_in_a_unit_that_suits_it(setup):
    cfg, _, rounds = setup
    day = "2026-03-28"
    mine = [r for r in rounds if _local_day(r["ended_at"]) == date.fromisoformat(day)]
    mwh = sum(max(float(r["consumer_mws"]), 0.0) for r in mine) / 3600
    text = _ok(cli(cfg, "statement", "--day", day))
    assert f"energy used      {mwh:.2f} mWh in 144 rounds" in text, text
    month = _ok(cli(cfg, "statement", "--month", "2026-03"))
    assert "mWh used" in month and "kWh" not in month.replace("/kWh", ""), month


def test_days_default_to_the_system_time_zone(setup, tmp_path):
    _, db, _ = setup
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[ledger]\npath = "{db}"\n')
    env = {**os.environ, "TZ": "America/New_York"}
    (row,) = list(csv.DictReader(io.StringIO(_ok(cli(cfg, "statement", "--day", "2026-03-29",
                                                       "--csv", env=env)))))
    assert row["from"] == "2026-03-29T00:00:00-0400" and float(row["hours"]) == 24


@pytest.mark.parametrize("args", [["--day", "2026-13-01"], ["--day", "yesterday"],
                                  ["--month", "2026-3"], ["--day", "2026-03-01", "--month",
                                                          "2026-03"], []])
def test_bad_periods_are_one_line_usage_errors(setup, args):
    cfg, _, _ = setup
    out = cli(cfg, "statement", *args)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("backend, unit, column", [("pyota", "IOTA", "iota"),
                                                   ("dry-run", "IOTA", "iota"),
                                                   ("iota", "µIOTA", "microiota")])
def test_statements_name_the_ledger_unit_of_the_backend(setup, tmp_path, backend, unit, column):
    """With today's network one ledger unit is a micro-IOTA: a statement calling it IOTA
    would be a million times off. Fees are real IOTA on either network."""
    _, db, _ = setup
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[ledger]\npath = "{db}"\n[serve]\ntimezone = "Europe/Berlin"\n'
                   f'[wallet]\nbackend = "{backend}"\n')
    text = _ok(cli(cfg, "statement", "--month", "2026-03"))
    lines = {line.split()[0]: line for line in text.splitlines()[1:] if line.strip()}
    assert lines["owed"].endswith(f" {unit}") and lines["fees"].endswith(" IOTA")
    assert re.search(rf" \d+ {unit} \(\d+ payment\(s\) confirmed\)$", lines["paid"])
    assert f" {unit}/mW·s (" in lines["average"] and lines["average"].endswith(f" {unit}/kWh)")
    assert f"owed {unit}" in lines["by"] and f"paid {unit}" in lines["by"]
    assert f" {unit} confirmed, created " in text  # each payment
    assert ("µ" in text) == (unit == "µIOTA")
    (header,) = list(csv.reader(io.StringIO(_ok(cli(cfg, "statement", "--day", "2026-03-29",
                                                      "--csv")))))[:1]
    assert {f"owed_{column}", f"paid_{column}", f"average_price_{column}_per_mws",
            "fees_iota"} <= set(header)
    assert not {"owed_iota", "paid_iota"} & set(header) or column == "iota"
    rounds_header = _ok(cli(cfg, "ledger", "--csv")).splitlines()[0].split(",")
    assert rounds_header[13] == f"owed_{column}"
