"""Rounds waiting for the producer's figure, and whose figure priced the others, as
``check``, the dashboard, /api, /metrics and statements show them (issue 17, point 4).

The ledger is a real file written as the linked daemon writes it: ``Ledger`` with a
signed log, the producer's entries accepted by ``core.link.Follower`` under its signed
checkpoint, the waiting rounds priced by the daemon's own ``Pricer``. The views are
read from a real ``serve`` process over HTTP, Prometheus's ``promtool`` judges the
exposition, and ``check`` runs through the CLI.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from p2p_energy import config
from p2p_energy.core import link, note, tlog
from p2p_energy.core.entries import (
    DISPUTE_PRODUCER,
    FROM_PRODUCER,
    ProductionEntry,
    encode_production,
)
from p2p_energy.core.metering import RoundTotals
from p2p_energy.core.pricing import quote_round
from p2p_energy.runtime.producer_link import Pricer
from p2p_energy.serve import periods
from p2p_energy.serve.figures import AllTime
from p2p_energy.serve.statement import make_statement, text, write_rounds_csv
from p2p_energy.store import schema
from p2p_energy.store.ledger import Ledger, iso
from p2p_energy.store.reader import LedgerReader, Waiting
from p2p_energy.store.signed_log import LogWriter

from support.mosquitto_broker import wait_until

PROMTOOL = shutil.which("promtool")
ORIGIN = "anna.lan/p2p-energy/0001"
PRODUCER = note.signer_from_seed(ORIGIN, bytes(range(32, 64)))
KEY = PRODUCER.verifier.key()  # the producer's verifier key, as [producer] names it
METER = note.signer_from_seed("test.meter/p2p-energy/0001", bytes(range(32)))
SLOT_MS = 60_000
TOPIC = "p2p-energy/anna/log"
PASSWORD = "hunter2-never-printed"


@dataclass
class Linked:
    path: Path
    t0: float  # the first round's start (a slot boundary, an hour ago)
    followed_at: float
    cfg: config.Config

    def end(self, i: int) -> float:
        return self.t0 + 60 * (i + 1)


def closed(t0: float, i: int, own_mw: float = 400.0) -> RoundTotals:
    """Round i: 60 s at 60 mW used, this meter's producer channel at ``own_mw``."""
    start = t0 + 60 * i
    return RoundTotals(started_at=start, duration_s=60, metered_s=60, consumer_mws=60.0 * 60,
                       producer_mws=own_mw * 60, samples=60, expected_samples=61,
                       failed_samples=1, ended_at=start + 60, consumer_metered_s=60,
                       producer_metered_s=60)


def production(t0: float, i: int, mw: int) -> bytes:
    start_ms = round((t0 + 60 * i) * 1000)
    return encode_production(ProductionEntry(
        round_id=i + 1, slot_ms=SLOT_MS, start_utc_ms=start_ms, end_utc_ms=start_ms + SLOT_MS,
        producer_energy_uws=mw * SLOT_MS, producer_metered_us=SLOT_MS * 1000,
        clock="synchronized"))


def consumer_cfg(path: Path, **producer: object) -> config.Config:
    return config.build({
        "meter": {"sensor": "simulated"}, "wallet": {"backend": "dry-run"},
        "ledger": {"path": str(path)},
        "producer": {"verifier_key": PRODUCER.verifier.key(), "topic": TOPIC, **producer}},
        source=str(path.parent / "config.toml"))


def offer(ledger: Ledger, follower: link.Follower, entries: list[bytes], since_ms: int) -> None:
    """The producer's entries and its signed checkpoint over them, as the link thread
    offers them, and what was accepted kept."""
    accepted = []
    for i, data in enumerate(entries):
        accepted += follower.offer_entry(i, data).accepted
    root = tlog.root_from_leaves(tlog.leaf_hash(e) for e in entries)
    checkpoint = note.sign_checkpoint(note.Checkpoint(ORIGIN, len(entries), root), PRODUCER)
    accepted += follower.offer_checkpoint(checkpoint).accepted
    assert [a.index for a in accepted] == list(range(follower.size - len(accepted),
                                                     follower.size))
    ledger.accept_producer_entries(KEY, accepted, follower.frontier, checkpoint, since_ms)


def build(tmp: Path, now: float) -> tuple[Linked, Ledger, link.Follower, list[bytes]]:
    """Rounds 0-1 priced before the link; the link followed from round 2's start; the
    producer's figures for rounds 2-4 (its round 3 far from this meter's: disputed);
    rounds 5 and 6 still waiting. The ledger is left open for more."""
    t0 = math.floor((now - 3600) / 60) * 60
    followed_at = t0 + 120
    clock = [t0 + 120]
    path = tmp / "ledger.db"
    ledger = Ledger(path, clock=lambda: clock[0], log=LogWriter(METER))
    cfg = consumer_cfg(path)
    for i in (0, 1):
        r = closed(t0, i)
        ledger.record_round(r, quote_round(r.consumer_mws, r.producer_mws,
                                           r.producer_metered_s, cfg.price.rule))
    state = ledger.follow_producer(PRODUCER.verifier.key())
    for i in range(2, 7):
        ledger.record_waiting_round(closed(t0, i))
    clock[0] = now
    entries = [production(t0, i, 100 if i == 3 else 400) for i in range(5)]
    follower = link.Follower(PRODUCER.verifier)
    offer(ledger, follower, entries, state.since_ms)
    priced = Pricer(cfg, KEY, lambda *_: None, wall=lambda: now).price_ready(ledger)
    assert priced == 3
    return Linked(path, t0, followed_at, cfg), ledger, follower, entries


@pytest.fixture
def linked(tmp_path) -> Iterator[Linked]:
    built, ledger, _, _ = build(tmp_path, time.time())
    ledger.close()
    yield built


# -- the reader ---------------------------------------------------------------------------

def test_the_reader_counts_rounds_waiting_and_whose_figure_priced_the_others(linked):
    with LedgerReader(linked.path) as reader:
        w = reader.waiting()
        assert (w.rounds, w.oldest_end, w.newest_end) == (2, linked.end(5), linked.end(6))
        assert (w.consumer_mws, w.samples, w.expected_samples) == (7200.0, 120, 122)
        s = reader.sums()
        assert s.rounds == 5  # rounds 0-4; the waiting ones count once priced
        assert s.owed_nano_units == reader._owed_total()  # the daemon's running total
        assert (s.priced_by(FROM_PRODUCER), s.priced_by(DISPUTE_PRODUCER), s.disputed) == (
            2, 1, 1)
        assert reader.last_round().id == 5  # the newest priced: its price is the one shown
        assert reader.waiting(linked.end(6), math.inf).rounds == 1  # by when they ended
        follow = reader.producer_follow()
        assert (follow.origin, follow.size, follow.since) == (ORIGIN, 5, linked.followed_at)
        assert follow.verifier_key == PRODUCER.verifier.key()
        plan = " ".join(str(r) for r in reader.db.execute(
            "EXPLAIN QUERY PLAN SELECT COUNT(*) FROM rounds INDEXED BY rounds_waiting"
            " WHERE waiting = 1 AND ended_at >= ? AND ended_at < ?", (0, math.inf)))
        assert "rounds_waiting" in plan  # as many rows read as wait, however old the ledger
        rows = {r.id: r for r in reader.rounds(-math.inf, math.inf)}
        assert [rows[i].priced_from for i in range(1, 8)] == [
            None, None, FROM_PRODUCER, DISPUTE_PRODUCER, FROM_PRODUCER, None, None]
        assert [rows[i].waiting for i in range(1, 8)] == [False] * 5 + [True] * 2


def test_a_ledger_from_before_the_link_reads_as_nothing_waiting(tmp_path):
    path = tmp_path / "v9.db"
    db = sqlite3.connect(path, isolation_level=None)
    for step in schema._MIGRATIONS[:-1]:  # every step before the link's
        step(db)
    db.execute(f"PRAGMA user_version = {len(schema._MIGRATIONS) - 1}")
    db.execute("INSERT INTO rounds (started_at, ended_at, duration_s, metered_s, samples,"
               " expected_samples, failed_samples, consumer_mws, producer_mws,"
               " producer_avg_mw, price, price_capped, owed_nano_units)"
               " VALUES (0, 60, 60, 60, 60, 60, 0, 100, 500, 8.3, 0.02, 0, 2000000000)")
    db.close()
    with LedgerReader(path) as reader:
        assert reader.waiting() == Waiting() and reader.producer_follow() is None
        assert reader.sums().rounds == 1 and reader.sums().disputed == 0
        (r,) = reader.rounds(-math.inf, math.inf)
        assert (r.waiting, r.priced_from, r.price) == (False, None, 0.02)


def test_all_time_totals_kept_up_while_rounds_wait_equal_a_full_sum_once_priced(tmp_path):
    now = time.time()
    built, ledger, follower, entries = build(tmp_path, now)
    all_time = AllTime()
    with LedgerReader(built.path) as reader:
        before = all_time(reader)
        assert before == reader.sums() and before.rounds == 5
    # the producer's figures for rounds 5 and 6 arrive: they are priced, in order
    offer(ledger, follower, entries + [production(built.t0, i, 400) for i in (5, 6)],
          round(built.followed_at * 1000))
    cfg = built.cfg
    assert Pricer(cfg, KEY, lambda *_: None, wall=lambda: now).price_ready(ledger) == 2
    ledger.close()
    with LedgerReader(built.path) as reader:
        after = all_time(reader)  # only rounds above the last one added are read
        assert after == reader.sums() and after.rounds == 7 and reader.waiting().rounds == 0
        assert after.owed_nano_units == reader._owed_total() > before.owed_nano_units


# -- statements -----------------------------------------------------------------------------

def test_the_rounds_csv_marks_waiting_rounds_and_whose_figure_priced_each(linked):
    out = io.StringIO()
    write_rounds_csv(str(linked.path), out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [(r["price"] != "", r["priced_from"]) for r in rows] == [
        (True, ""), (True, ""), (True, FROM_PRODUCER), (True, DISPUTE_PRODUCER),
        (True, FROM_PRODUCER), (False, "waiting"), (False, "waiting")]
    assert {r["owed_iota"] for r in rows[5:]} == {"0.000000000"}  # nothing owed yet


def test_the_statement_says_how_many_rounds_wait_and_how_many_were_disputed(linked):
    tz = ZoneInfo("UTC")
    span = periods.Period("the rounds", linked.t0, linked.end(6) + 1)
    with LedgerReader(linked.path) as reader:
        st = make_statement(reader, span, tz, by_day=False)
    said = text(st, tz)
    assert st.totals.sums.rounds == 5 and st.totals.waiting.rounds == 2
    assert "in 5 rounds" in said
    assert re.search(r"waiting +2 round\(s\) wait for the producer's figure", said), said
    assert re.search(r"disputed +1 round\(s\)", said), said
    assert re.search(r"priced from +the producer's signed figure: 3 rounds, this meter's"
                     r" own channel: 0", said), said


# -- serve, over HTTP ------------------------------------------------------------------------

def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "JOURNAL_STREAM")}


@contextmanager
def serving(tmp: Path, ledger: Path) -> Iterator[str]:
    cfg = tmp / "serve.toml"
    cfg.write_text(f'[ledger]\npath = "{ledger}"\n[serve]\nenabled = true\n'
                   'listen = "127.0.0.1:0"\ntimezone = "UTC"\n')
    log = tmp / "serve.log"
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "p2p_energy", "serve", "-c", str(cfg)],
                                stdout=subprocess.DEVNULL, stderr=err, env=_env())
    try:
        found: list[str] = []

        def listening() -> bool:
            assert proc.poll() is None, log.read_text()
            found[:] = re.findall(r"on (http://127\.0\.0\.1:\d+/)", log.read_text())
            return bool(found)
        wait_until("serve to listen", listening, 20)
        yield found[0]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def metric(exposition: str, name: str) -> float:
    (value,) = re.findall(rf"^{name} (\S+)$", exposition, re.M)
    return float(value)


def test_serve_shows_the_waiting_and_disputed_rounds_and_keeps_them_out_of_totals(
        linked, tmp_path):
    with serving(tmp_path, linked.path) as url:
        page = get(url)
        totals = json.loads(get(url + "api/totals"))
        metrics = get(url + "metrics")
        rounds = json.loads(get(url + "api/rounds?from=0"))["rounds"]
    oldest = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(linked.end(5)))
    assert (f"2 rounds waiting for the producer&#x27;s figure (oldest since {oldest})"
            in page), page
    assert "1 round disputed" in page and "(1 priced from the producer" in page
    assert totals["waiting"] == {"rounds": 2, "oldest_ended_at": iso(linked.end(5))}
    with LedgerReader(linked.path) as reader:
        owed, priced = reader._owed_total(), reader.sums()
        last_priced = reader.last_round()
    at = totals["all_time"]
    assert at["rounds"] == 5 and at["owed_iota"] == owed / 1e9
    assert at["rounds_disputed"] == 1 and at["priced_from"][FROM_PRODUCER] == 2
    # a waiting round's 0 is no price: the price shown is the newest priced round's
    assert totals["price"] == last_priced.price > 0
    # the consumer's energy, which pricing leaves as it is, counts as soon as it closes
    assert at["consumer_mws"] == pytest.approx(priced.consumer_mws + 2 * 3600.0)
    assert metric(metrics, "p2p_energy_rounds_waiting") == 2
    assert metric(metrics, "p2p_energy_rounds_disputed_total") == 1
    assert metric(metrics, "p2p_energy_rounds_total") == 5
    assert metric(metrics, "p2p_energy_oldest_waiting_round_end_timestamp_seconds") == \
        linked.end(5)
    assert metric(metrics, "p2p_energy_owed_iota_total") == pytest.approx(owed / 1e9)
    assert [(r["waiting"], r["price"] is None, r["priced_from"]) for r in rounds[4:]] == [
        (False, False, FROM_PRODUCER), (True, True, None), (True, True, None)]
    if PROMTOOL is not None:
        out = subprocess.run([PROMTOOL, "check", "metrics"], input=metrics,
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0 and not (out.stdout + out.stderr).strip(), (
            out.stdout + out.stderr)


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (apt-get install"
                    " prometheus)")
def test_with_nothing_waiting_the_page_says_nothing_and_promtool_passes(tmp_path):
    path = tmp_path / "ledger.db"
    Ledger(path).close()
    with serving(tmp_path, path) as url:
        page, metrics = get(url), get(url + "metrics")
    assert "waiting for the producer" not in page and "disputed" not in page
    assert metric(metrics, "p2p_energy_rounds_waiting") == 0
    assert "p2p_energy_oldest_waiting_round_end_timestamp_seconds" not in metrics
    out = subprocess.run([PROMTOOL, "check", "metrics"], input=metrics, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0 and not (out.stdout + out.stderr).strip(), out.stdout + out.stderr


# -- check, through the CLI ------------------------------------------------------------------

def check(tmp: Path, ledger: Path, producer: str) -> tuple[int, str]:
    pw = tmp / "mqtt-password"
    pw.write_text(PASSWORD + "\n")
    pw.chmod(0o600)
    cfg = tmp / "check.toml"
    cfg.write_text(f'[meter]\nsensor = "simulated"\n[wallet]\nbackend = "dry-run"\n'
                   f'[ledger]\npath = "{ledger}"\n'
                   f'[mqtt]\nenabled = true\nbroker = "mqtt://127.0.0.1:1883"\n'
                   f'username = "bert"\npassword_file = "{pw}"\n'
                   f'[producer]\nverifier_key = "{PRODUCER.verifier.key()}"\n'
                   f'topic = "{TOPIC}"\n{producer}\n')
    out = subprocess.run([sys.executable, "-m", "p2p_energy", "check", "-c", str(cfg)],
                         capture_output=True, text=True, timeout=60, env=_env())
    return out.returncode, out.stdout + out.stderr


def test_check_names_the_producer_and_warns_of_rounds_waiting_past_wait_s(linked, tmp_path):
    code, out = check(tmp_path, linked.path, "wait_s = 300")
    assert PASSWORD not in out
    lines = out.splitlines()
    assert f"ok   producer {ORIGIN}: its signed figures price the rounds; its log on topic" \
           f" {TOPIC} at mqtt://127.0.0.1:1883" in lines, out
    assert any(line.startswith("warn producer log_url not set: entries the broker did not"
                               " bring") for line in lines), out
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(linked.followed_at))
    assert any(line.startswith(f"ok   producer log {ORIGIN}: 5 entries accepted") and since
               in line for line in lines), out
    oldest = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(linked.end(5)))
    (waiting,) = [line for line in lines if "waiting for the producer's figure" in line]
    assert waiting.startswith("warn 2 round(s) waiting") and oldest in waiting, out
    assert "longer than wait_s = 300 s" in waiting and 'after_wait = "own_channel"' in waiting
    assert "producer's Pi" in waiting and "mqtt://127.0.0.1:1883" in waiting
    assert code == 0, out  # warnings, not failures


def test_check_is_content_within_wait_s_and_with_a_log_url(linked, tmp_path):
    _, out = check(tmp_path, linked.path,
                   'wait_s = 86400\nlog_url = "http://anna.lan:8080"')
    lines = out.splitlines()
    assert "ok   producer log_url http://anna.lan:8080: entries the broker did not bring are" \
           " fetched there" in lines, out
    (waiting,) = [line for line in lines if "waiting for the producer's figure" in line]
    assert waiting.startswith("ok   2 round(s) waiting") and "within wait_s = 86400 s" in waiting
    assert not any(line.startswith("warn producer") for line in lines), out


def test_ledger_json_marks_each_round_waiting_or_whose_figure_priced_it(linked, tmp_path):
    cfg = tmp_path / "ledger.toml"
    cfg.write_text(f'[meter]\nsensor = "simulated"\n[wallet]\nbackend = "dry-run"\n'
                   f'[ledger]\npath = "{linked.path}"\n')
    out = subprocess.run([sys.executable, "-m", "p2p_energy", "ledger", "-c", str(cfg),
                          "--json"], capture_output=True, text=True, timeout=60, env=_env())
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    rounds = {r["id"]: r for r in report["rounds"]}
    assert [rounds[i]["priced_from"] for i in range(1, 8)] == [
        None, None, FROM_PRODUCER, DISPUTE_PRODUCER, FROM_PRODUCER, None, None]
    assert [rounds[i]["waiting"] for i in range(1, 8)] == [False] * 5 + [True] * 2
    assert all(rounds[i]["owed_units"] == 0 for i in (6, 7))  # nothing owed while waiting
    oldest = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(linked.end(5)))
    assert report["waiting"]["rounds"] == 2
    assert report["waiting"]["oldest_ended_at"].startswith(oldest)
