"""The daemon's MQTT 5 client, as both ends of the producer's log make it.

The producer publishes its log (``log_publisher``), a consumer follows it
(``producer_link``): the same broker settings (``[mqtt]``: user, password, TLS),
the same reconnect backoff, a client id from this meter's own log name (unique
per meter: two Pis both called "raspberrypi" must not throw each other off).
paho-mqtt is imported here, when one is made, never at the daemon's start.
"""

from __future__ import annotations

from typing import Any

from ..config.serving import MqttConfig

RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 15  # a broker back is found within 15 s


def make_client(cfg: MqttConfig, role: str, name: str, password: str, **options: Any) -> Any:
    """A paho client (MQTT 5) for ``cfg``'s broker, id ``p2p-energy-<role>-<name>`` in
    letters, digits and ``-`` (at most 64 characters); ``options``: paho's (manual_ack)."""
    import paho.mqtt.client as paho

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id(role, name),
                         protocol=paho.MQTTv5, **options)
    if cfg.username:
        client.username_pw_set(cfg.username, password or None)
    if cfg.tls:
        client.tls_set(ca_certs=cfg.ca_file or None)
    client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
    return client


def client_id(role: str, name: str) -> str:
    """``p2p-energy-<role>-`` and a log's name, in letters, digits and ``-`` (at most 64)."""
    return (f"p2p-energy-{role}-" + "".join(c if c.isalnum() and c.isascii() else "-"
                                            for c in name))[:64]
