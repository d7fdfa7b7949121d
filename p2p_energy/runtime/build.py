"""Builds the concrete sensor and wallet a config names. Heavy imports stay lazy."""

from __future__ import annotations

from collections.abc import Callable

from .. import backends
from ..config import Config
from ..errors import ConfigError
from ..sensors.base import Sensor
from ..wallet.base import Wallet


def build_sensor(cfg: Config) -> Sensor:
    """The sensor named by ``meter.sensor`` (no hardware is touched until ``open``).

    Raises:
        ConfigError: settings the sensor cannot work with.
    """
    m = cfg.meter
    if m.sensor == "simulated":
        from ..sensors.simulated import SimulatedSensor
        return SimulatedSensor()
    if m.sensor == "replay":
        from ..sensors.replay import ReplaySensor
        return ReplaySensor(m.replay_file, cfg.source)
    from ..sensors.ina3221 import INA3221Sensor
    return INA3221Sensor.from_config(m, source=cfg.source)


def wallet_opener(cfg: Config) -> Callable[[], Wallet]:
    """A function that opens the wallet, for the payer thread to call.

    The seed or key is read here, at start-up, by the backend's descriptor, so
    that a missing or unsafe one is a config error before anything runs; the
    network's library is imported only when the payer opens the wallet.

    Raises:
        ConfigError: no receiver where the backend needs one; no usable seed or key.
    """
    w = cfg.wallet
    backend = backends.backend(w.backend)
    if backend.needs_receiver and not w.receiver:
        raise ConfigError(f'is empty: backend = "{w.backend}" needs the producer\'s IOTA'
                          ' address', path=cfg.source, key="wallet.receiver")
    return backend.opener(cfg)
