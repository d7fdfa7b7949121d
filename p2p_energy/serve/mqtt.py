"""The figures on an MQTT broker, announced to Home Assistant by MQTT discovery.

One device with one sensor per figure. Each sensor's config is published
retained to ``<discovery_prefix>/sensor/<device_id>/<object_id>/config``, its
state retained to ``<topic_prefix>/<object_id>``; its ``unique_id`` is
``<device_id>_<object_id>``. A sensor's object id is its key, and for an amount
of money in a unit other than legacy IOTA the unit follows (``owed_microiota``):
an entity whose unit changed is a new entity to Home Assistant, whose long-term
statistics start clean, while the old one keeps its history (and stops
updating; remove it in Home Assistant when it is no longer wanted). The unit is
the ledger's at each publishing pass: when ``run`` records another (a switched
backend, a ledger made after ``serve`` started), the new entities are announced
at once.
``<topic_prefix>/availability`` says ``online``, and the broker says ``offline``
for us (the last will) when this process goes away. When Home Assistant
announces itself (``online`` on ``<discovery_prefix>/status``) every config and
state is published again.

Energy totals come from the ledger, so they never reset or dip across restarts
(Home Assistant would take a dip for a new meter), in Wh with 6 decimals: a
50 mW load adds 13.9 µWh a second, which shows.

paho-mqtt's own thread keeps the connection and reconnects with backoff (1 s
doubling to 60 s); its callbacks only set flags. Our thread publishes, and
only while connected: nothing piles up during an outage, and the current
figures go out as soon as the broker is back. One log line when an outage
starts, one when it ends.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import paho.mqtt.client as paho

from .. import __version__
from ..config import MqttConfig
from ..errors import LedgerError
from ..store.ledger import iso
from ..wallet.base import LEGACY_UNIT, unit_slug
from .episodes import Episodes
from .figures import MWS_PER_KWH, MWS_PER_WH, Figures, LedgerSource

log = logging.getLogger(__name__)

RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 60
KEEPALIVE_S = 30
UNKNOWN = "None"  # what Home Assistant reads as "unknown" for a sensor's state


@dataclass(frozen=True)
class Entity:
    key: str  # what the figure is, whatever its unit
    name: str
    state: Callable[[Figures], str]
    unit: str | None = None
    device_class: str | None = None
    state_class: str | None = None
    precision: int | None = None  # suggested_display_precision
    icon: str | None = None
    object_id: str = ""  # in topics and the unique_id; "": the key

    @property
    def id(self) -> str:
        return self.object_id or self.key


def _power(mw: Callable[[Figures], float | None]) -> Callable[[Figures], str]:
    def state(f: Figures) -> str:
        value = mw(f)
        return UNKNOWN if value is None else f"{value / 1000:.4f}"
    return state


def entities(unit: str) -> tuple[Entity, ...]:
    """Every sensor; money in ``unit``, the ledger's (``reader.ledger_unit_of``). The
    object ids of money name a unit other than legacy IOTA (whose ids predate units)."""
    return tuple(replace(e, object_id=f"{e.key}_{unit_slug(unit)}")
                 if e.key in _MONEY and unit != LEGACY_UNIT else e for e in _entities(unit))


_MONEY = ("price", "price_kwh", "owed", "paid")  # the entities in ledger units


def _entities(unit: str) -> tuple[Entity, ...]:
    return (
        Entity("consumer_energy", "Consumer energy",
               lambda f: f"{f.consumer_mws / MWS_PER_WH:.6f}",
               "Wh", "energy", "total_increasing", 3),
        Entity("producer_energy", "Producer energy",
               lambda f: f"{f.producer_mws / MWS_PER_WH:.6f}",
               "Wh", "energy", "total_increasing", 3),
        Entity("consumer_power", "Consumer power",
               _power(lambda f: f.live.consumer_mw if f.live else None),
               "W", "power", "measurement", 3),
        Entity("producer_power", "Producer power",
               _power(lambda f: f.live.producer_mw if f.live else None),
               "W", "power", "measurement", 3),
        Entity("price", "Price", lambda f: UNKNOWN if f.price is None else f"{f.price:.6g}",
               f"{unit}/mW·s", None, "measurement", 4, "mdi:cash"),
        # Home Assistant's Energy dashboard takes a price only per kWh (or Wh, MWh...).
        Entity("price_kwh", "Price per kWh", lambda f: UNKNOWN if f.price is None else
               plain(f.price * MWS_PER_KWH), f"{unit}/kWh", None, "measurement", 0,
               "mdi:cash"),
        Entity("owed", f"{unit} owed", lambda f: f"{f.owed_nano_units / 1e9:.9f}",
               unit, None, "total_increasing", 3, "mdi:cash-minus"),
        Entity("paid", f"{unit} paid", lambda f: str(f.paid_units),
               unit, None, "total_increasing", 0, "mdi:cash-check"),
        Entity("last_payment_status", "Last payment",
               lambda f: f.last_payment.status if f.last_payment else "none",
               icon="mdi:receipt-text-check"),
    )


def plain(value: float, digits: int = 6) -> str:
    """``value`` to ``digits`` significant digits, written without an exponent (which not
    every reader of a state takes): 72000000, 0.0123457, 1."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    decimals = max(digits - 1 - math.floor(math.log10(abs(value))), 0)
    text = f"{float(f'{value:.{digits}g}'):.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


class Topics:
    def __init__(self, cfg: MqttConfig, device_id: str) -> None:
        self.prefix = cfg.topic_prefix
        self.discovery = cfg.discovery_prefix
        self.device_id = device_id
        self.availability = f"{self.prefix}/availability"
        self.ha_status = f"{self.discovery}/status"
        self.last_payment = f"{self.prefix}/last_payment"

    def state(self, s: Entity) -> str:
        return f"{self.prefix}/{s.id}"

    def config(self, s: Entity) -> str:
        return f"{self.discovery}/sensor/{self.device_id}/{s.id}/config"


def discovery_config(s: Entity, t: Topics) -> dict[str, object]:
    """The retained discovery payload of one sensor."""
    cfg: dict[str, object] = {
        "name": s.name, "unique_id": f"{t.device_id}_{s.id}",
        "state_topic": t.state(s), "availability_topic": t.availability,
        "payload_available": "online", "payload_not_available": "offline",
        "device": {"identifiers": [t.device_id], "name": t.device_id,
                   "manufacturer": "p2p-energy", "model": "INA3221 energy meter",
                   "sw_version": __version__},
        "origin": {"name": "p2p-energy", "sw_version": __version__},
    }
    for key, value in (("unit_of_measurement", s.unit), ("device_class", s.device_class),
                       ("state_class", s.state_class),
                       ("suggested_display_precision", s.precision), ("icon", s.icon)):
        if value is not None:
            cfg[key] = value
    if s.key == "last_payment_status":
        cfg["json_attributes_topic"] = t.last_payment
    return cfg


def last_payment_attributes(f: Figures) -> str:
    p = f.last_payment
    if p is None:
        return "{}"
    return json.dumps({"id": p.id, "value_iota": p.value_units, "value_units": p.value_units,
                       "status": p.status,
                       p.reference_kind: p.reference, "created_at": iso(p.created_at),
                       "confirmed_at": iso(p.confirmed_at)})


class Publisher:
    """Keeps Home Assistant's view of the figures up to date. ``start``, then ``stop``."""

    def __init__(self, cfg: MqttConfig, source: LedgerSource, *, password: str = "") -> None:
        self.cfg = cfg
        self.source = source
        self.unit: str | None = None  # the ledger's, as last read; None: not read yet
        self.entities: tuple[Entity, ...] = ()  # in that unit
        self.topics = Topics(cfg, cfg.device_id_or_default)
        self.broker = cfg.broker
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._announce = threading.Event()
        self._down_since: float | None = None
        self._ever_connected = False
        self._ledger_failing = False
        self._births = Episodes(log)
        self._thread = threading.Thread(target=self._run, name="mqtt", daemon=True)
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=self.topics.device_id,
                        protocol=paho.MQTTv311)
        if cfg.username:
            c.username_pw_set(cfg.username, password or None)
        if cfg.tls:
            c.tls_set(ca_certs=cfg.ca_file or None)
        c.will_set(self.topics.availability, "offline", qos=1, retain=True)
        c.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        # Only our own configs, states and the availability are ever queued, and we do not
        # publish while disconnected: this bound is never reached in normal operation.
        c.max_queued_messages_set(4 * len(_entities(LEGACY_UNIT)) + 8)
        c.on_connect = self._on_connect
        c.on_connect_fail = self._on_connect_fail
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        self.client = c

    def start(self) -> None:
        host, port = self.cfg.address
        log.info("MQTT: connecting to %s as %s (Home Assistant discovery under %s/)",
                 self.broker, self.topics.device_id, self.cfg.discovery_prefix)
        self.client.connect_async(host, port, keepalive=KEEPALIVE_S)
        self.client.loop_start()
        self._thread.start()

    def stop(self) -> None:
        """Say ``offline``, disconnect, and end both threads."""
        self._stop.set()
        self._wake.set()
        self._thread.join(10)
        if self.client.is_connected():
            info = self.client.publish(self.topics.availability, "offline", qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):  # gone meanwhile: the will says it
                info.wait_for_publish(2.0)
        self.client.disconnect()
        self.client.loop_stop()

    # -- paho's thread: only flags and log lines ---------------------------------------------

    def _on_connect(self, client: paho.Client, _userdata: object, _flags: object,
                    reason: paho.ReasonCode, _props: object) -> None:
        if reason.is_failure:
            self._outage(f"the broker refused the connection: {reason}")
            return
        client.subscribe(self.topics.ha_status, qos=1)
        if self._down_since is not None:
            log.info("MQTT: connected to %s again after %.0f s", self.broker,
                     time.monotonic() - self._down_since)
        elif not self._ever_connected:
            log.info("MQTT: connected to %s", self.broker)
        self._down_since = None
        self._ever_connected = True
        self._announce.set()
        self._wake.set()

    def _on_connect_fail(self, _client: paho.Client, _userdata: object) -> None:
        self._outage("cannot connect")

    def _on_disconnect(self, _client: paho.Client, _userdata: object, _flags: object,
                       reason: paho.ReasonCode, _props: object) -> None:
        if not self._stop.is_set():
            self._outage(f"connection lost ({reason})")

    def _outage(self, what: str) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("MQTT: %s: %s; retrying every %d-%d s, quietly until it is back",
                        self.broker, what, RECONNECT_MIN_S, RECONNECT_MAX_S)

    def _on_message(self, _client: paho.Client, _userdata: object,
                    msg: paho.MQTTMessage) -> None:
        if msg.topic == self.topics.ha_status and msg.payload == b"online":
            # Anyone who may publish there can repeat it: one line per episode. Announcing
            # is a flag, so a flood costs one announcement per publishing pass.
            self._births.note("birth", logging.INFO, "MQTT: Home Assistant is online:"
                              " announcing the sensors again")
            self._announce.set()
            self._wake.set()

    # -- our thread: reads the ledger, publishes ---------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.cfg.publish_s)
            self._wake.clear()
            if self._stop.is_set() or not self.client.is_connected():
                continue
            try:
                self._publish()
            except Exception:  # a loop boundary: log, try again next time
                log.exception("MQTT: publishing failed")

    def _publish(self) -> None:
        try:
            with self.source.open() as reader:
                f = self.source.figures(reader)
        except LedgerError as err:
            if not self._ledger_failing:
                log.warning("MQTT: nothing to publish: %s", err)
            self._ledger_failing = True
            return
        if self._ledger_failing:
            log.info("MQTT: the ledger is readable again")
            self._ledger_failing = False
        if f.unit != self.unit:
            if self.unit is not None:
                log.info("MQTT: the ledger speaks %s now, not %s: announcing its sensors",
                         f.unit, self.unit)
            self.unit, self.entities = f.unit, entities(f.unit)
            self._announce.set()
        if self._announce.is_set():
            self._announce.clear()
            for s in self.entities:
                self.client.publish(self.topics.config(s), json.dumps(discovery_config(
                    s, self.topics)), qos=1, retain=True)
            self.client.publish(self.topics.availability, "online", qos=1, retain=True)
        for s in self.entities:
            self.client.publish(self.topics.state(s), s.state(f), qos=1, retain=True)
        self.client.publish(self.topics.last_payment, last_payment_attributes(f), qos=1,
                            retain=True)
