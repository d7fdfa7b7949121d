"""The consumer's link thread (``runtime.producer_link.ProducerLink``) in this process,
against a real Mosquitto, fed crafted messages on the producer's topic: a gap nothing
fills is passed over, and hostile messages leave the link working.

The producer's log is a real one (its ledger, its key); a test client publishes its
entries, checkpoints and tails as the producer's publisher would, or leaves some out.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from p2p_energy.config import build
from p2p_energy.core import link, note, tlog
from p2p_energy.core.metering import RoundTotals
from p2p_energy.runtime import producer_link
from p2p_energy.runtime.producer_link import ProducerLink
from p2p_energy.store.ledger import Ledger
from p2p_energy.store.signed_log import LogView, LogWriter

from support import kernel_clock
from support.mosquitto_broker import MOSQUITTO, Broker, wait_until

pytestmark = [pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed"),
              pytest.mark.xdist_group("producer_mqtt")]
SIGNER = note.signer_from_seed("anna.lan/p2p-energy/0009", bytes(range(9, 41)))
TOPIC = "p2p-energy/anna/log"


def producer_log(path: Path, rounds: int) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """A producer's log of ``rounds`` entries after its opening: (entries, the checkpoint
    after each entry, the tail after each entry)."""
    t0 = time.time() + 5  # rounds that end after bob starts to follow: kept
    led = Ledger(path, log=LogWriter(SIGNER))
    for i in range(rounds):
        start = t0 + i
        led.record_production(RoundTotals(started_at=start, duration_s=1, metered_s=1,
                                          producer_mws=400.0, samples=10, expected_samples=10,
                                          ended_at=start + 1, consumer_metered_s=0,
                                          producer_metered_s=1), 1.0, "synchronized")
    led.close()
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    entries = list(LogView(db).iter_entries(rounds + 1))
    db.close()
    store = tlog.MemoryHashStore()
    checkpoints, tails = [], []
    for i, e in enumerate(entries):
        store.append(tlog.leaf_hash(e))
        checkpoints.append(note.sign_checkpoint(note.Checkpoint(SIGNER.name, i + 1,
                                                                store.root()), SIGNER))
        tails.append(link.encode_tail(i, e, tlog.inclusion_proof(i, i + 1, store.hash_at)))
    return entries, checkpoints, tails


class Publisher:
    def __init__(self, broker: Broker) -> None:
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="test-anna")
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def send(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.client.publish(f"{TOPIC}/{topic}", payload, qos=1,
                            retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def rig(tmp_path):
    broker = Broker(tmp_path)
    broker.start()
    anna = Publisher(broker)
    cfg = build({"round": {"length_s": 1.0}, "mqtt": {"broker": broker.url},
                 "producer": {"verifier_key": SIGNER.verifier.key(), "topic": TOPIC}})
    path = tmp_path / "bob.db"
    Ledger(path).close()
    bob = ProducerLink(lambda: Ledger(path), cfg, "bob.lan/p2p-energy/0002")
    yield broker, anna, bob, path
    bob.stop()
    anna.close()
    broker.stop()


def followed(path: Path) -> tuple[int, list[int]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        size = db.execute("SELECT value FROM ledger_meta WHERE key = 'producer_size'"
                          ).fetchone()
        kept = [r[0] for r in db.execute("SELECT idx FROM producer_entries ORDER BY idx")]
        return (int(size[0]) if size else 0), kept
    finally:
        db.close()


def test_a_gap_nothing_fills_is_passed_over_from_the_tail(rig, tmp_path, monkeypatch,
                                                          caplog):
    if why := kernel_clock.synchronise():
        pytest.skip(why)
    _broker, anna, bob, path = rig
    monkeypatch.setattr(producer_link, "JUMP_AFTER_S", 1.0)
    monkeypatch.setattr(producer_link, "FILL_EVERY_S", 0.2)
    entries, checkpoints, tails = producer_log(tmp_path / "anna.db", 9)
    with caplog.at_level(logging.INFO, logger="p2p_energy.runtime.producer_link"):
        bob.start()
        wait_until("bob subscribed", lambda: bob.client.is_connected(), 10)
        time.sleep(0.3)
        for i in range(4):  # entries 0-3 with their checkpoints
            anna.send(f"entry/{i}", entries[i])
            anna.send("checkpoint", checkpoints[i], retain=True)
        wait_until("the first four accepted", lambda: followed(path)[0] == 4, 10)
        for i in (7, 8, 9):  # 4, 5, 6 never come
            anna.send(f"entry/{i}", entries[i])
        anna.send("tail", tails[9], retain=True)
        anna.send("checkpoint", checkpoints[9], retain=True)
        wait_until("passed over", lambda: followed(path)[0] == 10, 15)
    _size, kept = followed(path)
    assert kept[-1] == 9 and not {4, 5, 6} & set(kept)  # entry 9 from the tail, checked
    assert caplog.text.count("did not come and cannot be fetched") == 1
    anna.send("entry/10", b"not yet signed")  # and it goes on, checked as before
    time.sleep(0.5)
    assert followed(path)[0] == 10


def test_hostile_messages_leave_the_link_working(rig, tmp_path, caplog):
    if why := kernel_clock.synchronise():
        pytest.skip(why)
    _broker, anna, bob, path = rig
    entries, checkpoints, _tails = producer_log(tmp_path / "anna.db", 3)
    with caplog.at_level(logging.WARNING, logger="p2p_energy.runtime.producer_link"):
        bob.start()
        wait_until("bob subscribed", lambda: bob.client.is_connected(), 10)
        time.sleep(0.3)
        anna.send("tail", b"[" * 8000, retain=True)  # deep JSON
        anna.send("entry/0", b"x" * 100_000)  # over the packet size bob asked for
        anna.send("entry/nine", b"{}")  # not an entry's topic
        anna.send("checkpoint", b"\xff" * 3000)  # not a note
        for i, e in enumerate(entries):
            anna.send(f"entry/{i}", e)
        anna.send("checkpoint", checkpoints[-1], retain=True)
        wait_until("the real ones accepted", lambda: followed(path)[0] == 4, 10)
    assert "a tail message" in caplog.text and "not an entry's topic" in caplog.text
    assert "not signed by the producer's key" in caplog.text
