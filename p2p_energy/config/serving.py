"""``[serve]`` and ``[mqtt]``: the dashboard, /metrics, and the figures sent to MQTT."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from typing import Any

from .fields import boolean, float_in, int_in, refuse_url_secrets, setting, split_host_port, string
from .text import toml

_HOST_NAME = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*\.?")


def _host_names(v: Any) -> tuple[str, ...]:
    """Host names the dashboard may be reached by, lowercase, e.g. ["meter.lan"]."""
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ValueError('must be a list of host names, e.g. ["meter.lan"]')
    names = tuple(x.strip().lower() for x in v)
    for name in names:
        if len(name) > 253 or not _HOST_NAME.fullmatch(name):
            raise ValueError(f"{toml(name)} is not a host name: letters, digits, - and dots,"
                             ' without a port or scheme, e.g. "meter.lan"')
    return names


def _listen(v: Any) -> str:
    split_host_port(string(v))
    return v


def _timezone(v: Any) -> str:
    v = string(v)
    if v:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("is not a known time zone: use a name like \"Europe/Berlin\""
                             " (see timedatectl list-timezones), or \"\" for the system's"
                             ) from None
    return v


@dataclass(frozen=True)
class ServeConfig:
    """``p2p-energy serve``: the dashboard, JSON and /metrics over HTTP."""

    enabled: bool = setting(False, boolean)
    listen: str = setting("127.0.0.1:8080", _listen)
    # for days in statements and the dashboard; "" = the system's
    timezone: str = setting("", _timezone)
    # Names the page may be reached by besides the listen address, localhost, this
    # machine's own names and any IP address: a Host header naming anything else is
    # refused (a web page whose name is made to point here: DNS rebinding).
    allowed_hosts: tuple[str, ...] = setting((), _host_names)
    # for each request, from the connection (or the last answer) on
    timeout_s: float = setting(15.0, float_in(1.0, 300.0))
    max_connections: int = setting(64, int_in(1, 4096))  # at once; more are answered 503

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) of ``listen``."""
        return split_host_port(self.listen)


_BROKER_RULE = "must be mqtt://host[:port] or mqtts://host[:port]"


def _broker(v: Any) -> str:
    v = string(v)
    scheme, sep, rest = v.partition("://")
    if not sep or scheme not in ("mqtt", "mqtts"):
        raise ValueError(_BROKER_RULE)
    refuse_url_secrets(v, "give mqtt://host[:port], the user name in mqtt.username and the"
                          " password in a file named by mqtt.password_file")
    if not rest or "/" in rest:
        raise ValueError(_BROKER_RULE)
    try:
        MqttConfig(broker=v).address  # noqa: B018 (validates the port)
    except ValueError:
        raise ValueError(f"{_BROKER_RULE}, the port a number up to 65535") from None
    return v


def mqtt_topic(v: Any) -> str:
    """A topic (or prefix) to publish under: no wildcards, no empty level at either end."""
    v = string(v)
    if not v or set(v) & set("+#\0") or v.startswith("/") or v.endswith("/"):
        raise ValueError("must be an MQTT topic without + or #, not starting or ending in /")
    return v


def _device_id(v: Any) -> str:
    v = string(v)
    if v and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", v):
        raise ValueError("must be 1 to 64 letters, digits, _ or -")
    return v


@dataclass(frozen=True)
class MqttConfig:
    """``p2p-energy serve``: the figures published to an MQTT broker for Home Assistant."""

    enabled: bool = setting(False, boolean)
    broker: str = setting("mqtt://127.0.0.1:1883", _broker)
    username: str = setting("", string)
    password_file: str = setting("", string)
    ca_file: str = setting("", string)  # mqtts:// only: CA certificates; "" = the system's
    topic_prefix: str = setting("p2p-energy", mqtt_topic)
    discovery_prefix: str = setting("homeassistant", mqtt_topic)
    device_id: str = setting("", _device_id)  # "" = p2p-energy-<hostname>
    publish_s: float = setting(10.0, float_in(0.1, 3600.0))

    @property
    def tls(self) -> bool:
        return self.broker.startswith("mqtts://")

    @property
    def device_id_or_default(self) -> str:
        """``device_id``, or ``p2p-energy-<hostname>``."""
        return self.device_id or "p2p-energy-" + re.sub(r"[^A-Za-z0-9_-]", "-",
                                                         socket.gethostname())[:50]

    @property
    def log_topic(self) -> str:
        """Where a producer publishes its signed log: ``<topic_prefix>/<username or
        device id>/log`` (a broker's ACL ``pattern write p2p-energy/%u/#`` lets each
        neighbour write under its own user name only)."""
        return f"{self.topic_prefix}/{self.username or self.device_id_or_default}/log"

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) of ``broker``; the port defaults to 1883, or 8883 for mqtts://."""
        rest = self.broker.split("://", 1)[1]
        if rest.endswith("]") or ":" not in rest.rsplit("]", 1)[-1]:
            rest += ":8883" if self.tls else ":1883"
        return split_host_port(rest)
