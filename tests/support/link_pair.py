"""Two neighbours on one Mosquitto: anna's producer meter and bob's consumer, as processes.

    street = Street(tmp)                       # the broker with passwords and the ACL
    anna = street.producer("anna", "0,0,400")  # config, key made; not started
    bob = street.consumer("bob", anna.verifier_key, "0,100,398")
    street.start(anna); street.start(bob)
    wait_until("priced", lambda: len(bob.priced()) >= 4, 30)

The broker is the README's: a password per neighbour, ``pattern write
p2p-energy/%u/#`` (each publishes under its own user name only), read for all.
The readers open each ledger read-only, as ``serve`` does, while the daemons run.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho

from p2p_energy import config
from p2p_energy.config.log_key import load_log_signer
from p2p_energy.core import tlog
from p2p_energy.core.entries import LinkedRoundEntry, ProductionEntry, parse_entry

from .log_daemon import env, serve_url
from .mosquitto_broker import Broker, password_file

PASSWORDS = {"anna": "anna-secret-1", "bob": "bob-secret-2"}
ROOT = "p2p-energy/anna/log"  # where anna's producer publishes


def neighbours_broker(tmp: Path, *, persistent: bool = False) -> Broker:
    """anna and bob with passwords; each writes only under p2p-energy/<own name>/.
    ``persistent``: sessions, their queued QoS 1 messages and retained ones survive a
    restart (as a broker with ``persistence true`` on a disk does)."""
    users = tmp / "passwd"
    password_file(users, "anna", PASSWORDS["anna"])
    subprocess.run(["mosquitto_passwd", "-b", str(users), "bob", PASSWORDS["bob"]],
                   check=True, capture_output=True, timeout=30)
    (tmp / "acl").write_text("pattern write p2p-energy/%u/#\npattern read p2p-energy/#\n")
    broker = Broker(tmp, password_file=users)
    text = broker.conf.read_text() + f"acl_file {tmp / 'acl'}\n"
    if persistent:
        text = text.replace("persistence false\n",
                            f"persistence true\npersistence_location {tmp}/\n")
    broker.conf.write_text(text)
    return broker


def trace(path: Path, *rows: str) -> Path:
    """A replay trace, rows ``"t_s,consumer_mw,producer_mw"`` (it loops)."""
    path.write_text("t_s,consumer_mw,producer_mw\n" + "".join(r + "\n" for r in rows))
    return path


@dataclass
class Meter:
    """One neighbour's daemon: its folder, config, ledger, log file and process."""

    name: str
    home: Path
    cfg: Path
    verifier_key: str
    proc: subprocess.Popen | None = None

    @property
    def db(self) -> Path:
        return self.home / "ledger.db"

    @property
    def log(self) -> Path:
        return self.home / "run.log"

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def _read(self, query: str, args: tuple = ()) -> list[tuple]:
        if not self.db.exists():
            return []
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute(query, args).fetchall()
        except sqlite3.OperationalError:  # the ledger is being made this moment
            return []
        finally:
            conn.close()

    # -- a producer's ledger ------------------------------------------------------------

    def entries(self) -> list[bytes]:
        """Its signed log's entries, in order."""
        return [bytes(r[0]) for r in self._read("SELECT data FROM log_entries ORDER BY idx")]

    def productions(self) -> dict[int, ProductionEntry]:
        """Its production entries by log index."""
        out = {}
        for i, data in enumerate(self.entries()):
            entry = parse_entry(data)
            if isinstance(entry, ProductionEntry):
                out[i] = entry
        return out

    # -- a consumer's ledger ------------------------------------------------------------

    def rounds(self) -> list[tuple]:
        """(id, started_at, ended_at, waiting, priced_from, producer_index, owed_nano_units)."""
        return self._read("SELECT id, started_at, ended_at, waiting, priced_from,"
                          " producer_index, owed_nano_units FROM rounds ORDER BY id")

    def priced(self) -> list[tuple]:
        return [r for r in self.rounds() if not r[3]]

    def round_entries(self) -> dict[int, LinkedRoundEntry]:
        """Its signed log's round entries by round id."""
        out = {}
        for round_id, data in self._read("SELECT round_id, data FROM log_entries"
                                         " WHERE round_id IS NOT NULL"):
            entry = parse_entry(bytes(data))
            assert isinstance(entry, LinkedRoundEntry), entry
            out[round_id] = entry
        return out

    def stored_producer_entries(self) -> dict[int, bytes]:
        """The producer's entries this consumer accepted and kept, by index."""
        return {i: bytes(d) for i, d in self._read("SELECT idx, data FROM producer_entries")}

    def followed_size(self) -> int:
        """How far it accepted the producer's log (0: nothing yet)."""
        row = self._read("SELECT value FROM ledger_meta WHERE key = 'producer_size'")
        return int(row[0][0]) if row else 0

    def owed_total(self) -> int:
        """The ledger's running total of what its rounds owe (nano-units)."""
        row = self._read("SELECT value FROM running_totals WHERE key = 'owed_nano_units'")
        return int(row[0][0]) if row else 0


class Street:
    """A broker for anna and bob, and the daemons a test starts on it (all stopped by
    ``close``, whatever the test did)."""

    def __init__(self, tmp: Path, *, persistent: bool = False, round_s: float = 0.5) -> None:
        self.tmp = tmp
        self.round_s = round_s
        self.broker = neighbours_broker(tmp, persistent=persistent)
        self.broker.start()
        self.meters: list[Meter] = []
        self._procs: list[subprocess.Popen] = []

    def _home(self, name: str, user: str) -> tuple[Path, str]:
        home = self.tmp / name
        home.mkdir()
        secret = home / "mqtt-password"
        secret.write_text(PASSWORDS[user] + "\n")
        secret.chmod(0o600)
        mqtt = (f'[mqtt]\nbroker = "{self.broker.url}"\nusername = "{user}"\n'
                f'password_file = "{secret}"\n')
        return home, mqtt

    def _write(self, name: str, home: Path, text: str) -> Meter:
        cfg = home / "config.toml"
        cfg.write_text(text)
        cfg.chmod(0o600)
        signer, _ = load_log_signer(config.load(cfg), make=True)  # as run's first start does
        meter = Meter(name, home, cfg, signer.verifier.key())
        self.meters.append(meter)
        return meter

    def _metering(self, home: Path, replay: Path) -> str:
        """Both meters' TOML: the replay sensor, the street's rounds, the ledger in ``home``."""
        return f"""[meter]
sensor = "replay"
replay_file = "{replay}"
sample_interval_s = 0.05
[round]
length_s = {self.round_s}
checkpoint_s = 0.5
[ledger]
path = "{home / 'ledger.db'}"
"""

    def producer(self, name: str, *rows: str, extra: str = "",
                 broker: Broker | None = None) -> Meter:
        """A producer's meter under MQTT user ``name`` (anna), replaying ``rows``;
        ``broker``: publishing to that one instead (anonymous, device id ``name``)."""
        home, mqtt = self._home(name, name)
        if broker is not None:
            mqtt = f'[mqtt]\nbroker = "{broker.url}"\ndevice_id = "{name}"\n'
        replay = trace(home / "panel.csv", *rows)
        return self._write(name, home, f"""role = "producer"
{self._metering(home, replay)}
[serve]
enabled = true
listen = "127.0.0.1:0"
{mqtt}enabled = true
{extra}""")

    def consumer(self, name: str, verifier_key: str, *rows: str, producer: str = "",
                 extra: str = "") -> Meter:
        """A consumer following anna's log with bob's credentials, replaying ``rows``;
        ``producer``: more ``[producer]`` keys. ``wait_s`` is 1 s unless given: a round
        of a slot before the producer's first is priced from this meter's own channel
        1 s after the producer's log passed it (after_wait = "wait"), instead of
        holding up the rounds after it for the default 300 s."""
        home, mqtt = self._home(name, "bob")
        replay = trace(home / "meter.csv", *rows)
        wait = "" if "wait_s" in producer else "wait_s = 1\n"
        return self._write(name, home, f"""
{self._metering(home, replay)}
[wallet]
backend = "dry-run"
receiver = "{'A' * 81}"
poll_s = 0.05
{mqtt}
[producer]
verifier_key = "{verifier_key}"
topic = "{ROOT}"
{wait}{producer}
{extra}""")

    def start(self, meter: Meter, command: str = "run") -> subprocess.Popen:
        """``p2p-energy COMMAND -c`` its config, stderr appended to its log."""
        log = meter.log if command == "run" else meter.home / f"{command}.log"
        with log.open("a") as err:
            proc = subprocess.Popen([sys.executable, "-m", "p2p_energy", command, "-c",
                                     str(meter.cfg)], stdout=subprocess.DEVNULL, stderr=err,
                                    env=env())
        if command == "run":
            meter.proc = proc
        self._procs.append(proc)
        return proc

    def serve(self, meter: Meter) -> str:
        """Its ``serve`` started; its http://127.0.0.1:PORT once it listens."""
        self.start(meter, "serve")
        return serve_url(meter.home / "serve.log")

    def stop(self, meter: Meter) -> None:
        """Stopped as systemd stops it: SIGTERM, which must end it with exit 0."""
        assert meter.proc is not None
        meter.proc.send_signal(signal.SIGTERM)
        assert meter.proc.wait(30) == 0, meter.log_text()[-3000:]
        meter.proc = None

    def kill(self, meter: Meter) -> None:
        """kill -9: no handler runs, nothing is flushed."""
        assert meter.proc is not None
        meter.proc.kill()
        meter.proc.wait(10)
        meter.proc = None

    def close(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        self._procs.clear()
        self.broker.stop()


def leaf_hash_hex(data: bytes) -> str:
    return tlog.leaf_hash(data).hex()


def alter_one_byte(data: bytes) -> bytes:
    """The entry with one digit of its production figure changed: still a well-formed
    entry (same length, canonical JSON), only its figure is not the one signed."""
    at = data.index(b'"producer_energy_uws":') + len(b'"producer_energy_uws":') + 1
    digit = data[at] - ord("0")
    assert 0 <= digit <= 9, data
    return data[:at] + bytes([ord("0") + (digit + 1) % 10]) + data[at + 1:]


class Relay:
    """A broker on the way that alters a message: forwards everything published under
    ``ROOT`` on ``src`` to ``dst`` (as anna, QoS 1, the checkpoint retained), in order, except that
    after ``alter_next()`` the next entry goes out with one byte changed."""

    def __init__(self, src: Broker, dst: Broker) -> None:
        self.altered: dict[int, bytes] = {}  # index: the bytes sent instead
        self._alter = threading.Event()
        self.out = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="relay-out")
        self.out.username_pw_set("anna", PASSWORDS["anna"])
        self.out.connect("127.0.0.1", dst.port)
        self.out.loop_start()
        self.src = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="relay-in")
        self.src.on_message = self._on_message
        self.src.connect("127.0.0.1", src.port)
        self.src.subscribe(f"{ROOT}/#", qos=1)
        self.src.loop_start()

    def alter_next(self) -> None:
        self._alter.set()

    def _on_message(self, _c: object, _u: object, msg: paho.MQTTMessage) -> None:
        payload = bytes(msg.payload)
        if "/entry/" in msg.topic and self._alter.is_set():
            self._alter.clear()
            payload = alter_one_byte(payload)
            self.altered[int(msg.topic.rsplit("/", 1)[1])] = payload
        self.out.publish(msg.topic, payload, qos=1, retain=msg.topic.endswith("/checkpoint"))

    def close(self) -> None:
        for client in (self.src, self.out):
            client.disconnect()
            client.loop_stop()
