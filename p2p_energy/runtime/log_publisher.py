"""A producer's signed log, published to an MQTT broker (``role = "producer"``, ``[mqtt]``).

Topics under ``MqttConfig.log_topic`` (``p2p-energy/<user>/log``):

- ``.../entry/<index>``: each entry's exact bytes, QoS 1, in log order;
- ``.../checkpoint``: the signed checkpoint covering them, QoS 1, **retained**
  (a consumer that connects later gets the latest at once);
- ``.../tail``: the checkpoint's last entry with its RFC 6962 inclusion proof
  (``core.link.encode_tail``), QoS 1, retained: a consumer that starts to follow
  a log that is already long checks it against the signed root and goes on from
  there, without the entries before it (``core.link.Follower.bootstrap``).

Nothing is lost while the broker is away: the entries are in the ledger, and the
publisher records there how far the broker has acknowledged
(``ledger_meta.log_published``). After an outage, or a restart of the daemon,
it publishes from that index on, in order, then the checkpoint; a consumer may
see an entry twice (it has one index: the same entry), never a gap. An entry
and the checkpoint are read in one snapshot of the ledger, so the checkpoint
published after a batch covers exactly the entries published before it.

Its own thread; paho-mqtt's thread keeps the connection (reconnecting with
backoff). An outage is logged once when it begins and once when it ends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ..config.serving import MqttConfig
from ..core.link import encode_tail
from ..store.ledger import Ledger
from ..store.signed_log import LogView
from .mqtt_client import make_client

log = logging.getLogger(__name__)

BATCH = 200  # entries published before waiting for the broker's acknowledgements
ACK_WAIT_S = 10.0
POLL_S = 5.0  # the ledger is also looked at after every round (``wake``)
STOP_GRACE_S = 5.0  # at a stop, for the broker to take the last rounds
KEEPALIVE_S = 30


class LogPublisher:
    """``start``; ``wake`` after each round; ``stop``."""

    def __init__(self, open_ledger: Callable[[], Ledger], cfg: MqttConfig, origin: str, *,
                 password: str = "") -> None:
        self._open_ledger = open_ledger
        self.cfg = cfg
        self.root = cfg.log_topic
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._connected = threading.Event()
        self._down_since: float | None = None
        self._thread = threading.Thread(target=self._run, name="log-publisher", daemon=True)
        # MQTT 5: a broker that refuses a publish (its ACL) says so in the PUBACK; in 3.1.1
        # it acknowledges it all the same. The client id is the log's own name: unique per
        # meter (two Pis both called "raspberrypi" must not throw each other off).
        client = make_client(cfg, "log", origin, password)
        self._refused: set[int] = set()  # message ids the broker refused
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_publish = self._on_publish
        self.client = client
        self._refusals = 0  # in a row: logged at the first
        self._open_failed = False  # the ledger could not be opened: logged once
        self._failing = False  # publishing raised: logged once per episode

    def start(self) -> None:
        host, port = self.cfg.address
        log.info("MQTT: publishing the signed log to %s under %s/", self.cfg.broker, self.root)
        self.client.connect_async(host, port, keepalive=KEEPALIVE_S)
        self.client.loop_start()
        self._thread.start()

    def wake(self) -> None:
        """A round was recorded: publish it now rather than at the next poll."""
        self._wake.set()

    def stop(self, timeout_s: float = STOP_GRACE_S + ACK_WAIT_S) -> None:
        """Publish what is waiting (if the broker is there), then disconnect."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout_s)
        self.client.disconnect()
        self.client.loop_stop()

    # -- paho's thread: flags and log lines only -----------------------------------------

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._outage(f"the broker refused the connection: {reason}")
            return
        if self._down_since is not None:
            log.info("MQTT: connected to %s again after %.0f s; publishing what it missed",
                     self.cfg.broker, time.monotonic() - self._down_since)
        self._down_since = None
        self._connected.set()
        self._wake.set()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self._connected.clear()
        if not self._stop.is_set():
            self._outage(f"disconnected ({reason})")

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._refused.add(mid)

    def _on_connect_fail(self, _c: Any, _u: Any) -> None:
        self._outage("cannot connect")

    def _outage(self, why: str) -> None:
        self._connected.clear()
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("MQTT: %s to %s; the log's entries wait in the ledger and go out"
                        " in order when it is back", why, self.cfg.broker)

    # -- the publisher's thread ----------------------------------------------------------

    def _run(self) -> None:
        ledger = None
        try:
            while ledger is None:  # as the recorder does: a locked ledger may free itself
                try:
                    ledger = self._open_ledger()
                except Exception as err:  # the thread's boundary: tried again, logged once
                    if not self._open_failed:
                        log.error("MQTT: cannot open the ledger to publish its log (%s);"
                                  " trying again every %g s", err, POLL_S)
                        self._open_failed = True
                    if self._stop.wait(POLL_S):
                        return
            stopping_until = None
            while True:
                done = False
                stopping = self._stop.is_set()  # asked before this pass: it saw every round
                if self._connected.is_set():
                    try:
                        done = self._publish_new(ledger)
                        self._failing = False
                    except Exception:  # the loop boundary: retried at the next wake or poll
                        if not self._failing:  # once per episode
                            log.exception("MQTT: publishing the signed log failed")
                        self._failing = True
                if self._stop.is_set():
                    # The last rounds go out too, if the broker takes them soon; else they
                    # wait in the ledger for the next start.
                    stopping_until = stopping_until or time.monotonic() + STOP_GRACE_S
                    if (stopping and done) or time.monotonic() >= stopping_until:
                        return
                    time.sleep(0.2)
                    continue
                self._wake.wait(POLL_S)
                self._wake.clear()
        finally:
            if ledger is not None:
                ledger.close()

    def _publish_new(self, ledger: Ledger) -> bool:
        """Every entry the broker has not acknowledged yet, then the checkpoint; True
        once the broker has all of them."""
        published = ledger.log_published()
        while True:
            ledger.db.execute("BEGIN")  # entries and checkpoint from one moment
            try:
                view = LogView(ledger.db)
                size = view.size()
                if size <= published:
                    return True
                end = min(size, published + BATCH)
                batch = view.entries(published, end)
                note = view.checkpoint() if end == size else None
                tail = encode_tail(size - 1, view.entries(size - 1, size)[0],
                                   view.inclusion_proof(size - 1, size)) if note else b""
            finally:
                ledger.db.execute("COMMIT")
            sent = [self.client.publish(f"{self.root}/entry/{published + i}", data, qos=1)
                    for i, data in enumerate(batch)]
            if note is not None:
                sent.append(self.client.publish(f"{self.root}/tail", tail, qos=1, retain=True))
                sent.append(self.client.publish(f"{self.root}/checkpoint", note, qos=1,
                                                retain=True))
            if not _acknowledged(sent):
                return False  # the broker went away: from ``published`` again when back
            refused = [info.mid for info in sent if info.mid in self._refused]
            if refused:
                self._refused.difference_update(refused)
                if not self._refusals:
                    log.error("MQTT: the broker refused to take the signed log under %s/"
                              " (its ACL? it must let this user write there); retrying"
                              " every %g s", self.root, POLL_S)
                self._refusals += 1
                return False
            if self._refusals:
                log.info("MQTT: the broker takes the signed log again")
                self._refusals = 0
            published = end
            ledger.set_log_published(published)
            if note is not None:
                return True




def _acknowledged(sent: list[Any]) -> bool:
    """Whether the broker acknowledged every message (QoS 1 PUBACK) within ``ACK_WAIT_S``."""
    deadline = time.monotonic() + ACK_WAIT_S
    for info in sent:
        try:
            info.wait_for_publish(max(deadline - time.monotonic(), 0.01))
        except (RuntimeError, ValueError):  # not queued: the connection is gone
            return False
        if not info.is_published():
            return False
    return True
