"""A real Mosquitto broker on a free loopback port, and a recording MQTT client.

The broker is Debian's ``mosquitto`` (``.ci/run`` installs it), started with a
generated config: one listener on 127.0.0.1, no persistence, so a restart
forgets every retained message, as a broker whose disk was wiped would.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections import defaultdict
from pathlib import Path

import paho.mqtt.client as paho
import pytest

MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
needs_mosquitto = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed"
                                     " (apt-get install mosquitto)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """``start``/``stop`` any number of times; always the same port."""

    def __init__(self, tmp: Path, *, password_file: Path | None = None) -> None:
        self.port = free_port()
        self.conf = tmp / "mosquitto.conf"
        auth = (f"allow_anonymous false\npassword_file {password_file}\n" if password_file
                else "allow_anonymous true\n")
        # As root, mosquitto would switch to its own user, who cannot read our tmp files.
        self.conf.write_text(f"listener {self.port} 127.0.0.1\n{auth}persistence false\n"
                             "user root\nlog_dest stderr\nlog_type error\n"
                             "log_type warning\n")
        self.log = tmp / "mosquitto.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert MOSQUITTO is not None
        with self.log.open("a") as log:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)],
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mosquitto did not start: {self.log.read_text()}")
                time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


def password_file(path: Path, user: str, password: str) -> Path:
    """A Mosquitto password file made by its own ``mosquitto_passwd``."""
    tool = shutil.which("mosquitto_passwd")
    assert tool, "mosquitto_passwd comes with the mosquitto package"
    subprocess.run([tool, "-b", "-c", str(path), user, password], check=True,
                   capture_output=True, timeout=30)
    path.chmod(0o600)
    return path


class Recorder:
    """An MQTT client (paho) that subscribes to ``topics`` and keeps every message."""

    def __init__(self, broker: Broker, *topics: str, auth: tuple[str, str] | None = None
                 ) -> None:
        self.messages: dict[str, list[tuple[bytes, bool]]] = defaultdict(list)
        self.lock = threading.Lock()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2,
                                  client_id=f"test-recorder-{time.monotonic_ns()}")
        self.client.on_message = self._on_message
        if auth:
            self.client.username_pw_set(*auth)
        self.client.connect("127.0.0.1", broker.port)
        for t in topics:
            self.client.subscribe(t, qos=1)
        self.client.loop_start()

    def _on_message(self, _c: object, _u: object, msg: paho.MQTTMessage) -> None:
        with self.lock:
            self.messages[msg.topic].append((msg.payload, bool(msg.retain)))

    def last(self, topic: str) -> str | None:
        with self.lock:
            got = self.messages.get(topic)
            return got[-1][0].decode() if got else None

    def all(self, topic: str) -> list[str]:
        with self.lock:
            return [p.decode() for p, _ in self.messages.get(topic, [])]

    def topics(self) -> list[str]:
        with self.lock:
            return list(self.messages)

    def publish(self, topic: str, payload: str, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_until(what: str, cond, timeout_s: float, every_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(every_s)
