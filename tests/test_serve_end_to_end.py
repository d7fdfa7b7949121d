"""`p2p-energy serve` at its real boundaries: a running daemon, a real Mosquitto broker,
Prometheus's own `promtool`, and HTTP over a socket.

One scenario (module fixture), the tests then check what it saw:
daemon + serve run; the broker is stopped and started again mid-run; Home
Assistant's birth message is sent; serve is killed (SIGKILL: the broker's last
will says offline) and started again; the daemon stops; /metrics is compared
with `ledger --json`.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from support.mosquitto_broker import (
    MOSQUITTO,
    Broker,
    Recorder,
    needs_mosquitto,
    password_file,
    wait_until,
)
from support.paying_daemon import assert_sampling_kept_up

DEVICE = "test-meter"
PREFIX = "p2p-energy-test"
DISCOVERY = "homeassistant"
SENSOR_KEYS = ("consumer_energy", "producer_energy", "consumer_power", "producer_power",
               "price", "price_kwh", "owed", "paid", "last_payment_status")
PROMTOOL = shutil.which("promtool")
# The module-scoped rig is built once: under pytest-xdist its tests share one worker.
pytestmark = pytest.mark.xdist_group("serve_end_to_end")


def write_config(tmp: Path, broker: Broker) -> Path:
    trace = tmp / "trace.csv"
    trace.write_text("t_s,consumer_mw,producer_mw\n0,50,500\n5,50,500\n")
    cfg = tmp / "c.toml"
    cfg.write_text(f"""
[meter]
sensor = "replay"
replay_file = "{trace}"
sample_interval_s = 0.05
[round]
length_s = 1
checkpoint_s = 0.5
[wallet]
backend = "dry-run"
poll_s = 0.1
[ledger]
path = "{tmp / 'ledger.db'}"
[serve]
enabled = true
listen = "127.0.0.1:0"
timezone = "Europe/Berlin"
[mqtt]
enabled = true
broker = "{broker.url}"
topic_prefix = "{PREFIX}"
device_id = "{DEVICE}"
publish_s = 0.2
""")
    return cfg


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "JOURNAL_STREAM")}


def start(command: str, cfg: Path, log: Path) -> subprocess.Popen:
    with log.open("a") as err:
        return subprocess.Popen([sys.executable, "-m", "p2p_energy", command, "-c", str(cfg)],
                                stdout=subprocess.DEVNULL, stderr=err, env=_env())


def serve_url(log: Path, runs_before: int) -> str:
    found: list[str] = []

    def listening() -> bool:
        found[:] = re.findall(r"on (http://127\.0\.0\.1:\d+/)", log.read_text())
        return len(found) > runs_before
    wait_until("serve to listen", listening, 20)
    return found[-1]


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read().decode()


def metric(text: str, name: str) -> float:
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    assert m, f"{name} not in /metrics"
    return float(m.group(1))


def cli_json(cfg: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "p2p_energy", "ledger", "-c", str(cfg),
                          "--json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def energy(rec: Recorder) -> float:
    return float(rec.last(f"{PREFIX}/consumer_energy") or "nan")


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    tmp = tmp_path_factory.mktemp("serve")
    broker = Broker(tmp)
    broker.start()
    cfg = write_config(tmp, broker)
    seen: dict = {"cfg": cfg}
    daemon_log, serve_log = tmp / "daemon.log", tmp / "serve.log"
    daemon = start("run", cfg, daemon_log)
    serve = start("serve", cfg, serve_log)
    rec = Recorder(broker, f"{DISCOVERY}/#", f"{PREFIX}/#")
    try:
        url = serve_url(serve_log, 0)
        # And live power: the first round may be over before the first checkpoint saves
        # it (rounds are wall-clock slots: the first is the rest of its slot).
        wait_until("energy, a price and live power on MQTT", lambda: energy(rec) > 0 and all(
            rec.last(f"{PREFIX}/{key}") not in (None, "None")
            for key in ("price", "consumer_power", "producer_power")), 20)
        seen["first"] = {t: rec.all(t) for t in rec.topics()}
        seen["http"] = {path: get(url + path.lstrip("/")) for path in (
            "/", "/api/totals", "/api/rounds", "/api/payments?limit=5", "/metrics",
            "/api/rounds?from=yesterday", "/api/payments?limit=0", "/nowhere",
            "/?day=2026-02-30", "/static/live.js")}

        # The broker goes away for a while and comes back (with no retained messages).
        before_outage = cli_json(cfg)
        rec.close()
        broker.stop()
        time.sleep(2.5)
        broker.start()
        rec = Recorder(broker, f"{DISCOVERY}/#", f"{PREFIX}/#")
        wait_until("discovery again after the outage",
                   lambda: rec.last(f"{DISCOVERY}/sensor/{DEVICE}/paid/config") is not None, 30)
        wait_until("states again after the outage", lambda: energy(rec) > 0, 10)
        seen["after_outage"] = {t: rec.all(t) for t in rec.topics()}
        seen["outage"] = (before_outage, cli_json(cfg))

        # Home Assistant restarts: its birth message makes serve announce again.
        configs = len(rec.all(f"{DISCOVERY}/sensor/{DEVICE}/price/config"))
        rec.publish(f"{DISCOVERY}/status", "online")
        wait_until("a re-announcement", lambda: len(
            rec.all(f"{DISCOVERY}/sensor/{DEVICE}/price/config")) > configs, 10)

        # serve dies: the broker's last will says offline; a new serve continues the totals.
        serve.kill()
        serve.wait(10)
        last_energy = energy(rec)
        wait_until("the last will", lambda: rec.last(f"{PREFIX}/availability") == "offline",
                   3 * 30)
        serve = start("serve", cfg, serve_log)
        serve_url(serve_log, 1)
        n = len(rec.all(f"{PREFIX}/consumer_energy"))
        wait_until("states from the new serve",
                   lambda: len(rec.all(f"{PREFIX}/consumer_energy")) > n + 2, 20)
        seen["energy_across_restart"] = (last_energy, [float(v) for v in rec.all(
            f"{PREFIX}/consumer_energy")[n:]])
        seen["online_again"] = rec.last(f"{PREFIX}/availability")

        # The daemon stops (its open round is closed and recorded); counters are final,
        # and the energy published across the stop never steps back.
        n = len(rec.all(f"{PREFIX}/consumer_energy"))
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(30) == 0, daemon_log.read_text()
        wait_until("states after the daemon stopped",
                   lambda: len(rec.all(f"{PREFIX}/consumer_energy")) > n + 3, 10)
        seen["energy_across_daemon_stop"] = [float(v) for v in rec.all(
            f"{PREFIX}/consumer_energy")[n - 3:]]
        seen["report"] = cli_json(cfg)
        url = serve_url(serve_log, 1)
        seen["metrics_final"] = get(url + "metrics")[2]
        seen["totals_final"] = json.loads(get(url + "api/totals")[2])
    finally:
        if daemon.poll() is None:
            daemon.kill()
        serve.send_signal(signal.SIGTERM)
        seen["serve_exit"] = serve.wait(30)
        time.sleep(0.3)
        seen["final_availability"] = rec.last(f"{PREFIX}/availability")
        rec.close()
        broker.stop()
    seen["serve_log"] = serve_log.read_text()
    seen["daemon_log"] = daemon_log.read_text()
    return seen


# -- MQTT ------------------------------------------------------------------------------------

def _configs(messages: dict) -> dict[str, dict]:
    out = {}
    for topic, payloads in messages.items():
        m = re.fullmatch(rf"{DISCOVERY}/sensor/{DEVICE}/(\w+)/config", topic)
        if m:
            out[m.group(1)] = json.loads(payloads[-1])
    return out


def test_every_discovery_config_is_a_valid_home_assistant_sensor(scenario):
    configs = _configs(scenario["first"])
    assert set(configs) == set(SENSOR_KEYS)
    unique_ids = {c["unique_id"] for c in configs.values()}
    assert len(unique_ids) == len(SENSOR_KEYS)
    # Keys Home Assistant's MQTT sensor discovery schema knows (it drops any other
    # silently, so a misspelt one would be lost without a word).
    known = {"name", "unique_id", "state_topic", "availability_topic", "payload_available",
             "payload_not_available", "device", "origin", "unit_of_measurement",
             "device_class", "state_class", "suggested_display_precision", "icon",
             "json_attributes_topic"}
    for key, c in configs.items():
        assert set(c) <= known, set(c) - known
        assert set(c["device"]) <= {"identifiers", "name", "manufacturer", "model",
                                    "sw_version"}
        assert c.get("state_class") in (None, "measurement", "total", "total_increasing")
        assert isinstance(c.get("suggested_display_precision", 0), int)
        assert c["state_topic"] == f"{PREFIX}/{key}"
        assert c["availability_topic"] == f"{PREFIX}/availability"
        assert (c["payload_available"], c["payload_not_available"]) == ("online", "offline")
        assert c["device"]["identifiers"] == [DEVICE] and c["device"]["sw_version"]
        assert c["origin"]["name"] == "p2p-energy"
        assert c["name"] and isinstance(c["name"], str)
    for key in ("consumer_energy", "producer_energy"):
        assert configs[key]["device_class"] == "energy"
        assert configs[key]["state_class"] == "total_increasing"
        assert configs[key]["unit_of_measurement"] in ("Wh", "kWh")
    for key in ("consumer_power", "producer_power"):
        c = configs[key]
        assert (c["device_class"], c["state_class"], c["unit_of_measurement"]) == (
            "power", "measurement", "W")
    for key in ("owed", "paid"):
        assert configs[key]["state_class"] == "total_increasing"
        assert configs[key]["unit_of_measurement"] == "IOTA"
        assert "device_class" not in configs[key]  # monetary would need an ISO currency
    # The Energy dashboard takes a price entity only in <currency>/kWh (or /Wh, /MWh...).
    assert configs["price_kwh"]["unit_of_measurement"] == "IOTA/kWh"
    assert configs["price_kwh"]["state_class"] == "measurement"
    assert "unit_of_measurement" not in configs["last_payment_status"]
    assert configs["last_payment_status"]["json_attributes_topic"] == f"{PREFIX}/last_payment"


def test_every_state_is_published_retained_and_parses(scenario):
    msgs = scenario["first"]
    for key in SENSOR_KEYS:
        assert msgs[f"{PREFIX}/{key}"], key
    energy_state = msgs[f"{PREFIX}/consumer_energy"][-1]
    assert re.fullmatch(r"\d+\.\d{6}", energy_state)  # 50 mW adds 13.9 µWh a second
    assert float(energy_state) > 0
    assert float(msgs[f"{PREFIX}/consumer_power"][-1]) == pytest.approx(0.050)
    assert float(msgs[f"{PREFIX}/producer_power"][-1]) == pytest.approx(0.500)
    # Priced from whole µW·s: the first round may be a few milliseconds (the rest of its
    # wall-clock slot), where one µW·s is a part in a thousand of the energy.
    assert float(msgs[f"{PREFIX}/price"][-1]) == pytest.approx(10 / 500, rel=5e-3)
    # 0.02 IOTA/mW·s x 3.6e9 mW·s/kWh
    assert re.fullmatch(r"\d+", msgs[f"{PREFIX}/price_kwh"][-1])
    assert int(msgs[f"{PREFIX}/price_kwh"][-1]) == pytest.approx(72_000_000, rel=5e-3)
    # Each owed state is the ledger's total owed after some round (the ledger read
    # later, which holds those rounds and maybe more), in exact nano-IOTA.
    owed = [round(float(v) * 1e9) for v in msgs[f"{PREFIX}/owed"]]
    per_round = [round(r["owed_iota"] * 1e9) for r in scenario["outage"][0]["rounds"]]
    ledger_owed = list(itertools.accumulate(per_round))
    assert owed[-1] > 0 and owed[-1] in ledger_owed, (owed, ledger_owed)
    assert set(owed) <= {0, *ledger_owed}
    assert msgs[f"{PREFIX}/last_payment_status"][-1] in ("none", "queued", "sent", "confirmed")
    assert msgs[f"{PREFIX}/availability"][-1] == "online"
    energies = [float(v) for v in msgs[f"{PREFIX}/consumer_energy"]]
    assert energies == sorted(energies)  # never a dip


def test_broker_outage_reconnects_and_sampling_never_notices(scenario):
    after = scenario["after_outage"]
    assert set(_configs(after)) == set(SENSOR_KEYS)  # the new broker knew nothing: re-announced
    assert after[f"{PREFIX}/availability"][-1] == "online"
    before, after_report = scenario["outage"]
    rounds = after_report["rounds"]
    assert len(rounds) - len(before["rounds"]) >= 2
    assert_sampling_kept_up(rounds)
    # Payments went on too: more confirmed, and every whole IOTA owed paid or queued.
    confirmed = [p for p in after_report["payments"] if p["status"] == "confirmed"]
    assert len(confirmed) > sum(p["status"] == "confirmed" for p in before["payments"])
    t = after_report["totals"]
    assert t["paid_iota"] + t["queued_iota"] == math.floor(t["owed_iota"])
    log = scenario["serve_log"]
    # One line when the outage starts, one when it ends (paho retried in between).
    assert len(re.findall(r"WARNING .*MQTT: .*(connection lost|cannot connect)", log)) == 1
    assert len(re.findall(r"INFO .*MQTT: connected to .* again after", log)) == 1


def test_home_assistant_birth_message_triggers_announcement(scenario):
    assert "Home Assistant is online: announcing" in scenario["serve_log"]


def test_energy_continues_across_a_serve_restart_and_will_says_offline(scenario):
    last, after = scenario["energy_across_restart"]
    assert after and min(after) >= last > 0
    assert after == sorted(after)
    assert scenario["online_again"] == "online"
    across_stop = scenario["energy_across_daemon_stop"]
    assert across_stop == sorted(across_stop) and across_stop[-1] > 0
    assert scenario["serve_exit"] == 0
    assert scenario["final_availability"] == "offline"  # a clean stop says so itself


# -- HTTP ------------------------------------------------------------------------------------

def test_http_routes_answer_and_refuse_clearly(scenario):
    http = scenario["http"]
    status, ctype, page = http["/"]
    assert status == 200 and ctype.startswith("text/html")
    assert page.count("<svg") == 3 and "Recent payments" in page
    assert http["/api/totals"][0] == 200
    totals = json.loads(http["/api/totals"][2])
    assert totals["timezone"] == "Europe/Berlin" and totals["live"]["consumer_mw"] == 50.0
    rounds = json.loads(http["/api/rounds"][2])["rounds"]
    assert rounds and all(r["consumer_mws"] >= 0 for r in rounds)
    assert len(json.loads(http["/api/payments?limit=5"][2])["payments"]) <= 5
    for bad in ("/api/rounds?from=yesterday", "/api/payments?limit=0", "/?day=2026-02-30"):
        status, _, text = http[bad]
        assert status == 400 and len(text.strip().splitlines()) == 1, bad
    assert http["/nowhere"][0] == 404
    assert http["/static/live.js"][1].startswith("text/javascript")


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (apt-get install"
                    " prometheus)")
@pytest.mark.parametrize("which", ["live", "final"])
def test_metrics_pass_promtool(scenario, which):
    text = scenario["http"]["/metrics"][2] if which == "live" else scenario["metrics_final"]
    out = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.strip() == "" and out.stderr.strip() == "", (
        out.stdout + out.stderr)


def test_metrics_counters_equal_the_ledger(scenario):
    text, report = scenario["metrics_final"], scenario["report"]
    rounds = report["rounds"]
    assert metric(text, "p2p_energy_consumer_energy_joules_total") == pytest.approx(
        sum(max(r["consumer_mws"], 0) for r in rounds) / 1000, rel=1e-12)
    assert metric(text, "p2p_energy_owed_iota_total") == pytest.approx(
        report["totals"]["owed_iota"], rel=1e-12)
    confirmed = sum(p["value_iota"] for p in report["payments"] if p["status"] == "confirmed")
    assert metric(text, "p2p_energy_paid_iota_total") == confirmed
    assert metric(text, "p2p_energy_rounds_total") == len(rounds)
    assert metric(text, "p2p_energy_samples_taken_total") == sum(r["samples"] for r in rounds)
    assert metric(text, "p2p_energy_samples_missed_total") == sum(
        r["expected_samples"] - r["samples"] for r in rounds)
    assert metric(text, 'p2p_energy_payments{status="confirmed"}') == sum(
        p["status"] == "confirmed" for p in report["payments"])
    assert metric(text, "p2p_energy_fees_iota_total") == report["totals"]["fees_nanos"] / 1e9
    assert metric(text, "p2p_energy_ledger_up") == 1
    last_end = metric(text, "p2p_energy_last_round_end_timestamp_seconds")
    assert time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(last_end)) == \
        rounds[-1]["ended_at"][:19]
    # After the daemon stopped its reading grows stale: no power gauge rather than an old one.
    assert "p2p_energy_consumer_power_watts" in scenario["http"]["/metrics"][2]
    t = scenario["totals_final"]["all_time"]
    assert t["owed_iota"] == pytest.approx(report["totals"]["owed_iota"])
    assert math.isclose(t["consumer_mws"], sum(max(r["consumer_mws"], 0) for r in rounds))


def test_the_daemon_does_not_import_serve_prometheus_or_paho(tmp_path):
    """`run` gains no dependency: what it imports, read from sys.modules as it exits."""
    trace = tmp_path / "t.csv"
    trace.write_text("t_s,consumer_mw,producer_mw\n0,50,500\n5,50,500\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[meter]\nsensor = "replay"\nreplay_file = "{trace}"\n'
                   'sample_interval_s = 0.05\n[round]\nlength_s = 0.5\ncheckpoint_s = 0.2\n'
                   f'[wallet]\nbackend = "dry-run"\n[ledger]\npath = "{tmp_path / "l.db"}"\n'
                   '[serve]\nenabled = true\n[mqtt]\nenabled = true\n')
    code = ("import atexit, sys\n"
            "atexit.register(lambda: print(' '.join(sorted(sys.modules)), file=sys.stdout))\n"
            "from p2p_energy.commands.cli import main\n"
            f"sys.exit(main(['run', '-c', {str(cfg)!r}]))\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())
    deadline = time.monotonic() + 30
    while not (tmp_path / "l.db").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)  # a few rounds and checkpoints
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    modules = set(out.split())
    assert "p2p_energy.runtime.daemon" in modules and "p2p_energy.store.ledger" in modules
    assert not {m for m in modules if m.startswith(("p2p_energy.serve", "prometheus_client",
                                                    "paho"))}
    assert "round 1:" in err


@needs_mosquitto
def test_mqtt_only_with_a_password_that_never_reaches_the_log(tmp_path):
    secret = "correct horse battery staple"
    broker = Broker(tmp_path, password_file=password_file(tmp_path / "passwd", "meter", secret))
    broker.start()
    (tmp_path / "mqtt-password").write_text(secret + "\n")
    (tmp_path / "mqtt-password").chmod(0o600)
    (tmp_path / "wrong-password").write_text("guess\n")
    (tmp_path / "wrong-password").chmod(0o600)
    db = tmp_path / "ledger.db"
    subprocess.run([sys.executable, "-c", "from p2p_energy.store.ledger import Ledger;"
                    f"Ledger({str(db)!r}).close()"], check=True, timeout=60)
    base = (f'[ledger]\npath = "{db}"\n[mqtt]\nenabled = true\nbroker = "{broker.url}"\n'
            f'username = "meter"\ndevice_id = "{DEVICE}"\ntopic_prefix = "{PREFIX}"\n')
    rec = Recorder(broker, f"{PREFIX}/#", auth=("meter", secret))
    procs = []
    try:
        for name in ("mqtt-password", "wrong-password"):
            cfg = tmp_path / f"{name}.toml"
            cfg.write_text(base + f'password_file = "{name}"\n')
            log = tmp_path / f"{name}.log"
            procs.append(start("serve", cfg, log))
        wait_until("the right password to get in",
                   lambda: rec.last(f"{PREFIX}/availability") == "online", 20)
        wait_until("the wrong one to be refused", lambda: "refused" in (
            tmp_path / "wrong-password.log").read_text(), 20)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        codes = [p.wait(30) for p in procs]
        rec.close()
        broker.stop()
    assert codes == [0, 0]
    assert rec.last(f"{PREFIX}/consumer_energy") == "0.000000"  # an empty ledger: zero
    for name in ("mqtt-password", "wrong-password"):
        log = (tmp_path / f"{name}.log").read_text()
        assert secret not in log and "guess" not in log
        assert "dashboard" not in log  # [serve] is off: nothing listens
    wrong = (tmp_path / "wrong-password.log").read_text()
    assert len(re.findall(r"WARNING .*refused", wrong)) == 1  # once, however often it retried


@pytest.mark.parametrize("body, code, words", [
    ("[serve]\nenabled = false\n", 2, "neither [serve] nor [mqtt] is enabled"),
    ('[serve]\nenabled = true\nlisten = "127.0.0.1:{port}"\n', 1, "cannot listen"),
    ('[mqtt]\nenabled = true\nusername = "u"\npassword_file = "/nonexistent/pw"\n', 2,
     "mqtt.password_file"),
])
def test_serve_refuses_with_one_line(tmp_path, body, code, words):
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        cfg = tmp_path / "c.toml"
        cfg.write_text(body.replace("{port}", str(taken.getsockname()[1])))
        out = subprocess.run([sys.executable, "-m", "p2p_energy", "serve", "-c", str(cfg)],
                             capture_output=True, text=True, timeout=60, env=_env())
    assert out.returncode == code
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("p2p-energy: ") and words in lines[0], lines


def test_before_the_daemon_made_a_ledger_serve_says_so_and_keeps_serving(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[ledger]\npath = "{tmp_path / "later.db"}"\n[serve]\nenabled = true\n'
                   'listen = "127.0.0.1:0"\n')
    log = tmp_path / "serve.log"
    proc = start("serve", cfg, log)
    try:
        url = serve_url(log, 0)
        page = get(url)
        metrics = get(url + "metrics")
        totals = get(url + "api/totals")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert page[0] == 503 and "no ledger yet" in page[2] and len(page[2].splitlines()) == 1
    assert totals[0] == 503
    assert metrics[0] == 200 and metric(metrics[2], "p2p_energy_ledger_up") == 0
    assert not (tmp_path / "later.db").exists()  # reading created nothing


@needs_mosquitto
def test_on_todays_network_serve_names_the_ledger_unit_micro_iota(tmp_path):
    """backend = "iota": one ledger unit is a micro-IOTA, and every view says so, through
    the real wiring (config -> serve -> page, /metrics, Home Assistant discovery)."""
    from p2p_energy.core.metering import RoundTotals
    from p2p_energy.core.pricing import Quote
    from p2p_energy.store.ledger import Ledger
    db = tmp_path / "ledger.db"
    led = Ledger(db)
    led.record_round(RoundTotals(started_at=time.time() - 60, duration_s=60, metered_s=60,
                                 consumer_mws=3000.0, producer_mws=30000.0, samples=60,
                                 expected_samples=60, ended_at=time.time()),
                     Quote(price=0.02, capped=False, owed_nano_units=60_000_000_000))
    led.close()
    broker = Broker(tmp_path)
    broker.start()
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[wallet]\nbackend = "iota"\n[ledger]\npath = "{db}"\n'
                   '[serve]\nenabled = true\nlisten = "127.0.0.1:0"\n'
                   f'[mqtt]\nenabled = true\nbroker = "{broker.url}"\ntopic_prefix = "{PREFIX}"\n'
                   f'device_id = "{DEVICE}"\npublish_s = 0.2\n')
    rec = Recorder(broker, f"{DISCOVERY}/#", f"{PREFIX}/#")
    log = tmp_path / "serve.log"
    proc = start("serve", cfg, log)
    try:
        url = serve_url(log, 0)
        wait_until("discovery", lambda: rec.last(
            f"{DISCOVERY}/sensor/{DEVICE}/paid_microiota/config") is not None, 20)
        wait_until("the price per kWh", lambda: rec.last(f"{PREFIX}/price_kwh_microiota")
                   is not None, 20)
        page = get(url)
        metrics = get(url + "metrics")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
        rec.close()
        broker.stop()
    assert page[0] == 200 and "Owed / paid, µIOTA<b" in page[2] and "<th>µIOTA</th>" in page[2]
    assert page[2].count("IOTA") == page[2].count("µIOTA")
    configs = {key: json.loads(rec.last(f"{DISCOVERY}/sensor/{DEVICE}/{key}_microiota/config")
                               or "{}") for key in ("owed", "paid", "price", "price_kwh")}
    assert [configs[k]["unit_of_measurement"] for k in ("owed", "paid", "price", "price_kwh")
            ] == ["µIOTA", "µIOTA", "µIOTA/mW·s", "µIOTA/kWh"]
    assert configs["owed"]["unique_id"] == f"{DEVICE}_owed_microiota"  # new unit, new entity
    assert rec.last(f"{PREFIX}/price_kwh_microiota") == "72000000"  # 0.02 µIOTA/mW·s x 3.6e9
    assert metric(metrics[2], "p2p_energy_owed_microiota_total") == 60.0  # names the unit
    assert "# HELP p2p_energy_owed_microiota_total Owed for the energy of closed rounds, in µIOTA" \
        in metrics[2]
    if PROMTOOL:
        out = subprocess.run([PROMTOOL, "check", "metrics"], input=metrics[2],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0 and not (out.stdout + out.stderr).strip(), out.stdout


@needs_mosquitto
def test_a_unit_recorded_after_serve_started_is_the_one_every_view_names(tmp_path):
    """serve started before the ledger existed; run recorded the configured backend's unit,
    later (nothing owed yet) another backend's: the dashboard's JSON, /metrics and Home
    Assistant follow the ledger each time, without a restart (another unit: new unique_ids)."""
    from p2p_energy.core.metering import RoundTotals
    from p2p_energy.core.pricing import Quote
    from p2p_energy.store.ledger import Ledger
    db = tmp_path / "ledger.db"
    broker = Broker(tmp_path)
    broker.start()
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[wallet]\nbackend = "iota"\n[ledger]\npath = "{db}"\n'
                   '[serve]\nenabled = true\nlisten = "127.0.0.1:0"\n'
                   f'[mqtt]\nenabled = true\nbroker = "{broker.url}"\ntopic_prefix = "{PREFIX}"\n'
                   f'device_id = "{DEVICE}"\npublish_s = 0.2\n')
    rec = Recorder(broker, f"{DISCOVERY}/#", f"{PREFIX}/#")
    log = tmp_path / "serve.log"
    proc = start("serve", cfg, log)

    def unit_of_totals() -> str | None:
        status, _, body = get(url + "api/totals")
        return json.loads(body)["unit"] if status == 200 else None
    try:
        url = serve_url(log, 0)
        assert get(url + "api/totals")[0] == 503  # no ledger yet
        led = Ledger(db)
        led.record_unit("iota")  # what run does as it starts
        wait_until("µIOTA in /api/totals", lambda: unit_of_totals() == "µIOTA", 20)
        wait_until("the µIOTA entities", lambda: rec.last(
            f"{DISCOVERY}/sensor/{DEVICE}/owed_microiota/config") is not None, 20)
        micro_metrics = get(url + "metrics")[2]
        # The owner switched backend before anything was owed (a ledger holding amounts
        # keeps its unit: run refuses the switch), and run started again.
        led.record_unit("pyota")
        led.record_round(RoundTotals(started_at=time.time() - 60, duration_s=60, metered_s=60,
                                     consumer_mws=3000.0, producer_mws=30000.0, samples=60,
                                     expected_samples=60, ended_at=time.time()),
                         Quote(price=0.02, capped=False, owed_nano_units=60_000_000_000))
        led.close()
        wait_until("IOTA in /api/totals", lambda: unit_of_totals() == "IOTA", 20)
        wait_until("the IOTA entities", lambda: rec.last(
            f"{DISCOVERY}/sensor/{DEVICE}/owed/config") is not None, 20)
        wait_until("the IOTA owed", lambda: rec.last(f"{PREFIX}/owed") is not None, 20)
        page = get(url)
        metrics = get(url + "metrics")[2]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
        rec.close()
        broker.stop()
    assert metric(micro_metrics, "p2p_energy_owed_microiota_total") == 0.0
    assert metric(metrics, "p2p_energy_owed_iota_total") == 60.0  # a new series, not a jump
    assert "p2p_energy_owed_microiota_total" not in metrics
    assert page[0] == 200 and "Owed / paid, IOTA<b" in page[2] and "µIOTA" not in page[2]
    micro = json.loads(rec.last(f"{DISCOVERY}/sensor/{DEVICE}/owed_microiota/config"))
    legacy = json.loads(rec.last(f"{DISCOVERY}/sensor/{DEVICE}/owed/config"))
    assert (micro["unique_id"], micro["unit_of_measurement"]) == (f"{DEVICE}_owed_microiota",
                                                                  "µIOTA")
    assert (legacy["unique_id"], legacy["unit_of_measurement"]) == (f"{DEVICE}_owed", "IOTA")
    assert rec.last(f"{PREFIX}/owed") == "60.000000000"
    assert "the ledger speaks IOTA now, not µIOTA" in log.read_text()
