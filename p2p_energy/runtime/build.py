"""Builds the concrete sensor and wallet a config names. Heavy imports stay lazy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ..config import Config, load_seed
from ..errors import ConfigError
from ..logs import redact
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

    The seed is read here, at start-up, so that a missing or unsafe seed is a
    config error before anything runs; PyOTA is imported only when the payer
    opens the wallet, after the first sample.

    Raises:
        ConfigError: no usable seed or key for the wallet.
    """
    w = cfg.wallet
    if w.backend == "dry-run":
        from ..wallet.dryrun import DryRunWallet
        return lambda: DryRunWallet(receiver=w.receiver, latency_s=w.dry_run_latency_s)
    if not w.receiver:
        raise ConfigError(f'is empty: backend = "{w.backend}" needs the producer\'s IOTA'
                          ' address', path=cfg.source, key="wallet.receiver")
    if w.backend == "iota":
        return _iota_opener(cfg)
    seed = load_seed(cfg)
    redact(seed)  # from here on no log line can carry it
    with_seed = replace(w, seed=seed)

    def open_pyota() -> Wallet:
        from ..wallet.pyota_wallet import PyotaWallet
        return PyotaWallet(with_seed)
    return open_pyota


def _iota_opener(cfg: Config) -> Callable[[], Wallet]:
    """The key is read and checked now; the wallet (and its HTTP client) made later."""
    from ..wallet.iota_keys import parse_secret, secret_fragments

    secret = load_seed(cfg, check=parse_secret)
    for fragment in secret_fragments(secret):
        redact(fragment)  # from here on no log line can carry it
    keypair = parse_secret(secret)

    def open_iota() -> Wallet:
        from ..wallet.iota_wallet import IotaWallet
        return IotaWallet.from_config(cfg.wallet, keypair)
    return open_iota
