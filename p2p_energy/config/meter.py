"""``[meter]``, ``[round]`` and ``[price]``: what is measured, how often, and its price."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.ina3221_chip import AVERAGES, CONVERSION_US
from ..core.pricing import MAX_U64, NANO, PriceRule, whole_nanos
from .fields import choice, float_in, int_in, setting, string

SENSORS = ("ina3221", "simulated", "replay")


def _i2c_address(v: Any) -> int:
    # TOML turns 0x41 into 65, so say the rule (and the value) in hex.
    rule = "must be 0x40, 0x41, 0x42 or 0x43 (as set by the A0 pin), without quotes"
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(rule)
    if not 0x40 <= v <= 0x43:
        raise ValueError(rule + (f"; this is 0x{v:02x}" if v >= 0 else ""))
    return v


def whole_ms(lo: float, hi: float):
    """A round length: within [lo, hi] s and a whole number of milliseconds (each round is
    a slot of the wall clock, named in the signed log in milliseconds)."""
    check = float_in(lo, hi)

    def whole(v: Any) -> float:
        value = check(v)
        if abs(value * 1000 - round(value * 1000)) > 1e-6:
            raise ValueError("must be a whole number of milliseconds (at most 3 decimals)")
        return value
    return whole


def nano_units(v: Any) -> float:
    """A price figure: above 0, a whole number of nano-units (9 decimal places at most)."""
    value = float_in(0.0, MAX_U64 / NANO, lo_open=True)(v)
    whole_nanos(value)  # raises ValueError saying why
    return value


def _shunts(v: Any) -> tuple[float, float, float]:
    if not isinstance(v, list) or len(v) != 3:
        raise ValueError("must be a list of three resistances in ohms, one per channel")
    check = float_in(0.0, 1000.0, lo_open=True)
    return tuple(check(x) for x in v)  # type: ignore[return-value]


def _averages(v: Any) -> int | str:
    if v == "auto":
        return v
    return choice(AVERAGES)(v)


@dataclass(frozen=True)
class MeterConfig:
    sensor: str = setting("ina3221", choice(SENSORS))
    i2c_bus: int = setting(1, int_in(0, 255))
    i2c_address: int = setting(0x40, _i2c_address)
    consumer_channel: int = setting(1, int_in(1, 3))
    producer_channel: int = setting(2, int_in(1, 3))
    shunt_ohms: tuple[float, float, float] = setting((0.1, 0.1, 0.1), _shunts)
    sample_interval_s: float = setting(1.0, float_in(0.01, 3600.0))
    replay_file: str = setting("", string)
    averages: int | str = setting("auto", _averages)
    bus_conversion_us: int = setting(1100, choice(CONVERSION_US))
    shunt_conversion_us: int = setting(1100, choice(CONVERSION_US))
    # A sample above this (either channel) is counted as failed, not billed. It
    # bounds what a round can owe (see rules.check_amounts): an INA3221 with 0.1-ohm
    # shunts reads at most 26 V x 1.64 A = 42.6 W.
    max_power_mw: float = setting(100_000.0, float_in(1.0, 1e9))


@dataclass(frozen=True)
class RoundConfig:
    length_s: float = setting(60.0, whole_ms(0.1, 86400.0))
    checkpoint_s: float = setting(10.0, float_in(0.1, 86400.0))


@dataclass(frozen=True)
class PriceConfig:
    numerator: float = setting(10.0, nano_units)
    # numerator / 1 mW: below ~1 mW a 0.1-ohm INA3221 channel reads noise
    # (one shunt LSB is 40 uV / 0.1 ohm = 0.4 mA, ~1.2 mW at 3 V).
    max_price: float = setting(10.0, nano_units)

    @property
    def rule(self) -> PriceRule:
        """The rule in whole nano-units, as each round prices and logs it."""
        return PriceRule.from_units(self.numerator, self.max_price)
