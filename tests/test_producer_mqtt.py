"""A producer's signed log over a real Mosquitto: every entry in order, the checkpoint
retained, and what the broker missed while it was away published when it is back.

The neighbour's side is a paho client with a persistent session on a broker that
keeps sessions across its restarts (what a consumer will be): it must end up with
every entry the producer's ledger holds, byte for byte, and a checkpoint signed by
the producer's key over exactly those entries.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from p2p_energy.core import link, note, tlog
from p2p_energy.store.signed_log import LogView

from support.log_daemon import cli, env
from support.mosquitto_broker import MOSQUITTO, Broker, Recorder, password_file, wait_until

pytestmark = [pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed"),
              pytest.mark.xdist_group("producer_mqtt")]
ROOT = "p2p-energy/anna/log"


class Neighbour:
    """A subscriber whose session (and the QoS 1 messages queued for it) the broker keeps."""

    def __init__(self, broker: Broker) -> None:
        self.entries: dict[int, bytes] = {}
        self.checkpoints: list[tuple[bytes, bool]] = []
        self.tails: list[bytes] = []
        self.duplicates = 0
        self.lock = threading.Lock()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="neighbour",
                                  clean_session=False, protocol=paho.MQTTv311)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect("127.0.0.1", broker.port)
        self.client.subscribe(f"{ROOT}/#", qos=1)
        self.client.loop_start()

    def _on_message(self, _c: object, _u: object, msg: paho.MQTTMessage) -> None:
        with self.lock:
            if msg.topic == f"{ROOT}/checkpoint":
                self.checkpoints.append((msg.payload, bool(msg.retain)))
            elif msg.topic == f"{ROOT}/tail":
                self.tails.append(msg.payload)
            else:
                index = int(msg.topic.rsplit("/", 1)[1])
                self.duplicates += index in self.entries
                self.entries[index] = msg.payload

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def persistent_broker(tmp: Path) -> Broker:
    broker = Broker(tmp)
    broker.conf.write_text(broker.conf.read_text().replace(
        "persistence false\n", f"persistence true\npersistence_location {tmp}/\n"))
    return broker


def write_config(tmp: Path, broker: Broker) -> Path:
    trace = tmp / "panel.csv"
    trace.write_text("t_s,consumer_mw,producer_mw\n0,0,400\n3,0,650\n")
    cfg = tmp / "producer.toml"
    cfg.write_text(f"""role = "producer"
[meter]
sensor = "replay"
replay_file = "{trace}"
sample_interval_s = 0.05
[round]
length_s = 0.5
[ledger]
path = "{tmp / 'producer.db'}"
[mqtt]
enabled = true
broker = "{broker.url}"
device_id = "anna"
""")
    cfg.chmod(0o600)
    return cfg


def ledger_log(db: Path) -> tuple[list[bytes], int]:
    """(the log's entries, how many the broker acknowledged); nothing before the ledger is."""
    if not db.exists():
        return [], 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        view = LogView(conn)
        published = conn.execute("SELECT value FROM ledger_meta WHERE key = 'log_published'"
                                 ).fetchone()
        return list(view.iter_entries(view.size())), int(published[0]) if published else 0
    except sqlite3.OperationalError:  # being made this moment
        return [], 0
    finally:
        conn.close()


@pytest.fixture
def stopped_at_the_end():
    """Brokers (and subscribers) a test started: stopped however the test ends."""
    started: list = []
    yield started.append
    for thing in reversed(started):
        thing.close() if hasattr(thing, "close") else thing.stop()


def test_every_entry_reaches_the_neighbour_in_order_across_a_broker_outage(
        tmp_path, stopped_at_the_end):
    broker = persistent_broker(tmp_path)
    broker.start()
    stopped_at_the_end(broker)
    neighbour = Neighbour(broker)
    stopped_at_the_end(neighbour)
    cfg = write_config(tmp_path, broker)
    with (tmp_path / "run.log").open("a") as err:
        producer = subprocess.Popen([sys.executable, "-m", "p2p_energy", "run", "-c", str(cfg)],
                                    stdout=subprocess.DEVNULL, stderr=err, env=env())
    try:
        wait_until("four entries on the broker", lambda: len(neighbour.entries) >= 4, 30)
        broker.stop()  # 3 s away: six rounds close meanwhile
        time.sleep(3)
        during = len(ledger_log(tmp_path / "producer.db")[0])
        broker.start()
        wait_until("the entries made during the outage",
                   lambda: len(neighbour.entries) >= during + 2, 30)
    finally:
        producer.send_signal(signal.SIGTERM)
        assert producer.wait(30) == 0, (tmp_path / "run.log").read_text()
    data, published = ledger_log(tmp_path / "producer.db")
    verifier = _verifier(cfg)

    def sizes() -> list[int]:
        return [note.parse_checkpoint(note.open_note(c, verifier).text).size
                for c, _ in neighbour.checkpoints]
    try:
        wait_until("the last checkpoint", lambda: sizes() and sizes()[-1] == len(data), 20)
    except BaseException:
        print("ledger", len(data), "published", published, "entries", sorted(neighbour.entries),
              "checkpoints", sizes())
        print((tmp_path / "run.log").read_text()[-3000:])
        raise
    assert published == len(data) > during  # the broker acknowledged everything
    assert neighbour.entries == dict(enumerate(data))  # every entry, byte for byte, no gap
    checkpoint = note.open_checkpoint(neighbour.checkpoints[-1][0], verifier)
    assert checkpoint.root_hash == tlog.root_from_leaves(tlog.leaf_hash(d) for d in data)
    # The tail: the last entry and its inclusion proof, which give the signed root.
    index, entry, proof = link.decode_tail(neighbour.tails[-1])
    assert (index, entry) == (len(data) - 1, data[-1])
    assert tlog.root_from_inclusion(index, len(data), tlog.leaf_hash(entry), proof) \
        == checkpoint.root_hash
    log = (tmp_path / "run.log").read_text()
    assert log.count("the log's entries wait in the ledger") == 1  # once per outage
    assert "connected to mqtt://127.0.0.1" in log and "publishing what it missed" in log


def test_a_restarted_producer_does_not_publish_its_log_again(tmp_path, stopped_at_the_end):
    broker = persistent_broker(tmp_path)
    broker.start()
    stopped_at_the_end(broker)
    cfg = write_config(tmp_path, broker)
    neighbour = Neighbour(broker)
    try:
        for runs in (1, 2):
            with (tmp_path / "run.log").open("a") as err:
                producer = subprocess.Popen(
                    [sys.executable, "-m", "p2p_energy", "run", "-c", str(cfg)],
                    stdout=subprocess.DEVNULL, stderr=err, env=env())
            try:
                wait_until("entries", lambda n=runs: len(neighbour.entries) >= 4 * n, 30)
            finally:
                producer.send_signal(signal.SIGTERM)
                assert producer.wait(30) == 0
        data, published = ledger_log(tmp_path / "producer.db")
        wait_until("all of them", lambda: len(neighbour.entries) == len(data), 20)
    finally:
        neighbour.close()
        broker.stop()
    assert published == len(data) and neighbour.entries == dict(enumerate(data))
    assert neighbour.duplicates == 0  # the second run went on from where the first stopped


def test_check_says_where_the_log_is_published_for_the_consumers_config(tmp_path):
    cfg = write_config(tmp_path, Broker(tmp_path))  # check connects to no broker
    out = cli("check", "-c", str(cfg))
    assert out.returncode == 0, out.stdout
    line = next(x for x in out.stdout.splitlines() if "signed log: published" in x)
    assert line.startswith("ok ") and 'topic = "p2p-energy/anna/log"' in line


def _verifier(cfg: Path) -> note.Verifier:
    return note.parse_verifier(cli("log", "key", "-c", str(cfg)).stdout.strip())


def acl_broker(tmp: Path) -> Broker:
    """Passwords for anna and bob; each may write only under p2p-energy/<own name>/."""
    users = tmp / "passwd"
    password_file(users, "anna", "anna-secret-1")
    subprocess.run(["mosquitto_passwd", "-b", str(users), "bob", "bob-secret-2"], check=True,
                   capture_output=True, timeout=30)
    (tmp / "acl").write_text("pattern write p2p-energy/%u/#\npattern read p2p-energy/#\n")
    broker = Broker(tmp, password_file=users)
    broker.conf.write_text(broker.conf.read_text() + f"acl_file {tmp / 'acl'}\n")
    return broker


def test_with_a_password_and_the_acl_only_its_own_topic_is_taken(tmp_path,
                                                                 stopped_at_the_end):
    broker = acl_broker(tmp_path)
    broker.start()
    stopped_at_the_end(broker)
    (tmp_path / "anna-password").write_text("anna-secret-1\n")
    (tmp_path / "anna-password").chmod(0o600)
    cfg = write_config(tmp_path, broker)
    auth = (f'username = "anna"\npassword_file = "{tmp_path / "anna-password"}"\n')
    cfg.write_text(cfg.read_text().replace('device_id = "anna"\n', auth))
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(cfg.read_text().replace("[mqtt]\n", '[mqtt]\ntopic_prefix = "energy"\n')
                     .replace("producer.db", "wrong.db"))
    wrong.chmod(0o600)
    bob = Recorder(broker, "#", auth=("bob", "bob-secret-2"))
    try:
        for config, db in ((cfg, "producer.db"), (wrong, "wrong.db")):
            with (tmp_path / f"{db}.log").open("a") as err:
                producer = subprocess.Popen(
                    [sys.executable, "-m", "p2p_energy", "run", "-c", str(config)],
                    stdout=subprocess.DEVNULL, stderr=err, env=env())
            try:
                wait_until("five rounds", lambda d=db: len(ledger_log(tmp_path / d)[0]) >= 6,
                           30)
                time.sleep(1.0)
            finally:
                producer.send_signal(signal.SIGTERM)
                assert producer.wait(30) == 0
        data, published = ledger_log(tmp_path / "producer.db")
        wait_until("anna's entries", lambda: len([t for t in bob.topics()
                                                  if t.startswith(f"{ROOT}/entry/")])
                   == len(data), 20)
    finally:
        bob.close()
        broker.stop()
    assert published == len(data)
    refused_data, refused_published = ledger_log(tmp_path / "wrong.db")
    assert refused_published == 0 < len(refused_data)  # refused: nothing counted as sent
    assert not [t for t in bob.topics() if t.startswith("energy/")]
    log = (tmp_path / "wrong.db.log").read_text()
    assert log.count("the broker refused to take the signed log under energy/anna/log/") == 1
    everything = log + (tmp_path / "producer.db.log").read_text()
    assert "anna-secret-1" not in everything
