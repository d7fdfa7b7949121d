"""TI INA3221 three-channel shunt and bus voltage monitor over I2C (smbus2).

The register map below is data from the datasheet (TI SBOS576). Per channel the
chip measures the drop across a high-side shunt (VIN+ to VIN-) and the bus
voltage at VIN- to ground, i.e. the voltage the load actually gets; current and
power are computed here with scale factors fixed at construction, so a sample
costs four 2-byte SMBus I2C block reads (each a register-pointer write and a
2-byte read, MSB first) and a few multiplications (it runs at up to 100 Hz on a
Pi Zero 2). Four transfers, not one combined ``I2C_RDWR``: a read returns the
register the last pointer write chose (datasheet section 7.5.2), so each
register needs a write and a read, and the Pi's adapter (Linux
``i2c-bcm2835``) refuses a transfer with a read anywhere but last (EOPNOTSUPP).

Nothing touches hardware at import time: ``from_config`` imports smbus2 lazily
and the bus is opened by ``open()``.
"""

from __future__ import annotations

import enum
import errno
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..config import MeterConfig
from ..core.ina3221_chip import AVERAGES, CONVERSION_US
from ..errors import ConfigError, ImplausibleReading, SensorError, SensorReadError
from .base import Sample

log = logging.getLogger(__name__)


class I2CBus(Protocol):
    """The part of ``smbus2.SMBus`` this driver uses."""

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]: ...

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: list[int]) -> None: ...

    def close(self) -> None: ...


# -- register map (datasheet section 7.6) -----------------------------------------------

@dataclass(frozen=True, slots=True)
class Register:
    """One 16-bit, big-endian register; for measurements, the value of one code."""

    name: str
    address: int
    lsb: float = 0.0  # one 13-bit code (bits 15..3, after >> 3), in ``unit``
    unit: str = ""


CONFIGURATION = Register("configuration", 0x00)
SHUNT_VOLTAGE = {  # 40 uV per code; +-4095 codes = +-163.8 mV full scale
    1: Register("CH1 shunt voltage", 0x01, 0.040, "mV"),
    2: Register("CH2 shunt voltage", 0x03, 0.040, "mV"),
    3: Register("CH3 shunt voltage", 0x05, 0.040, "mV"),
}
BUS_VOLTAGE = {  # 8 mV per code; the ADC spans 32.76 V but inputs are rated to 26 V
    1: Register("CH1 bus voltage", 0x02, 0.008, "V"),
    2: Register("CH2 bus voltage", 0x04, 0.008, "V"),
    3: Register("CH3 bus voltage", 0x06, 0.008, "V"),
}
MANUFACTURER_ID = Register("manufacturer ID", 0xFE)
DIE_ID = Register("die ID", 0xFF)

INA3221_MANUFACTURER_ID = 0x5449  # "TI" in ASCII
INA3221_DIE_ID = 0x3220

# Configuration register: bit 15 RST, bits 14..12 enable CH1..CH3, 11..9 AVG,
# 8..6 VBUSCT, 5..3 VSHCT, 2..0 MODE. Codes from datasheet tables 3 to 6.
AVERAGES_CODE = {averages: code for code, averages in enumerate(AVERAGES)}
CONVERSION_US_CODE = {us: code for code, us in enumerate(CONVERSION_US)}
AVG_SHIFT = 9
VBUS_CT_SHIFT = 6
VSH_CT_SHIFT = 3
MODE_SHUNT_AND_BUS_CONTINUOUS = 0b111
MODES = {  # datasheet table 6 (MODE3..1)
    0b000: "power-down", 0b001: "shunt single-shot", 0b010: "bus single-shot",
    0b011: "shunt and bus single-shot", 0b100: "power-down", 0b101: "shunt continuous",
    0b110: "bus continuous", 0b111: "shunt and bus continuous",
}

FULL_SCALE_CODE = 4095  # the ADC clips here: a current beyond the shunt's range, or an open input
BUS_VOLTAGE_MAX_V = 26.0  # absolute maximum rating: a higher reading is no real circuit

# The chip times conversions with its own oscillator; allow it some slack
# before trusting the first results after (re)configuring.
_WARMUP_MARGIN = 1.2
_NO_ANSWER = frozenset({errno.ENXIO, errno.EREMOTEIO, errno.EIO, errno.ETIMEDOUT})



class _State(enum.Enum):
    """Where the driver stands with the bus: reading, counting failures, or backing off."""

    HEALTHY = "healthy"  # the last read worked (or failures ended healthy_after_s ago)
    FAILING = "failing"  # reads fail; the bus is closed after failures_before_reconnect
    DISCONNECTED = "disconnected"  # the bus is closed; reopened with backoff


@dataclass(frozen=True, slots=True)
class Recovery:
    """How the driver recovers from I2C errors (seconds on its clock)."""

    failures_before_reconnect: int = 5  # in a row, then the bus is closed and reopened
    backoff_initial_s: float = 1.0  # before the first reopen; doubled after each failed one
    backoff_max_s: float = 60.0
    healthy_after_s: float = 30.0  # without a failure, the episode is over


_ROLES = ("consumer", "producer")


@dataclass(frozen=True, slots=True)
class ChannelReading:
    """One channel in SI-milli units, for ``check`` and diagnostics.

    ``problem`` says why the reading is out of range and what to do ("" when
    plausible); ``measured`` is False when the chip's configuration does not
    convert this channel continuously (its registers hold an old conversion).
    """

    channel: int
    shunt_voltage_mv: float
    bus_voltage_v: float
    current_ma: float
    power_mw: float
    problem: str = ""
    measured: bool = True


@dataclass(frozen=True, slots=True)
class ChipConfiguration:
    """The configuration register, decoded (datasheet section 7.6.1)."""

    word: int
    channels: tuple[int, ...]
    averages: int
    bus_conversion_us: int
    shunt_conversion_us: int
    mode: int

    def measures(self, channel: int) -> bool:
        """Whether ``channel``'s shunt and bus voltages are converted continuously."""
        return channel in self.channels and self.mode == MODE_SHUNT_AND_BUS_CONTINUOUS

    def describe(self) -> str:
        """E.g. ``CH1 and CH2 on, 128 averages, bus 1100 us, shunt 1100 us, shunt and bus
        continuous``."""
        return ", ".join([_channels_on(self.channels), self._averages(), *self._times(),
                          MODES[self.mode]])

    def changes_to(self, other: ChipConfiguration) -> list[str]:
        """What ``other`` sets differently, in ``describe``'s words."""
        changes = [f"CH{ch} on" for ch in other.channels if ch not in self.channels]
        changes += [f"CH{ch} off" for ch in self.channels if ch not in other.channels]
        pairs = [(self._averages(), other._averages()), *zip(self._times(), other._times(),
                                                              strict=True),
                 (MODES[self.mode], MODES[other.mode])]
        return changes + [theirs for ours, theirs in pairs if ours != theirs]

    def _averages(self) -> str:
        return f"{self.averages} average" + ("s" if self.averages > 1 else "")

    def _times(self) -> tuple[str, str]:
        return f"bus {self.bus_conversion_us} us", f"shunt {self.shunt_conversion_us} us"


@dataclass(frozen=True, slots=True)
class Probe:
    """What ``INA3221Sensor.probe`` found: the chip's configuration, the one the
    config file asks for, and one reading per role taken with the former."""

    found: ChipConfiguration
    wanted: ChipConfiguration
    readings: dict[str, ChannelReading]


# -- pure helpers ---------------------------------------------------------------------

def channel_enable_bit(channel: int) -> int:
    """The configuration bit that enables ``channel`` (1..3): CH1 is bit 14."""
    return 1 << (15 - channel)


def config_word(channels: Sequence[int], averages: int, bus_conversion_us: int,
                shunt_conversion_us: int) -> int:
    """The configuration register value: ``channels`` enabled, shunt and bus continuous.

    Raises:
        KeyError: ``averages`` or a conversion time is not one the chip offers.
    """
    word = MODE_SHUNT_AND_BUS_CONTINUOUS
    for channel in channels:
        word |= channel_enable_bit(channel)
    word |= AVERAGES_CODE[averages] << AVG_SHIFT
    word |= CONVERSION_US_CODE[bus_conversion_us] << VBUS_CT_SHIFT
    word |= CONVERSION_US_CODE[shunt_conversion_us] << VSH_CT_SHIFT
    return word


def decode_configuration(word: int) -> ChipConfiguration:
    """The configuration register value ``word`` as settings."""
    def field(shift: int, table: dict[int, int]) -> int:
        code = word >> shift & 0b111
        return next(value for value, c in table.items() if c == code)

    return ChipConfiguration(word, tuple(ch for ch in (1, 2, 3) if word & channel_enable_bit(ch)),
                             field(AVG_SHIFT, AVERAGES_CODE),
                             field(VBUS_CT_SHIFT, CONVERSION_US_CODE),
                             field(VSH_CT_SHIFT, CONVERSION_US_CODE), word & 0b111)


def _channels_on(channels: Sequence[int]) -> str:
    names = [f"CH{ch}" for ch in channels]
    if not names:
        return "no channel on"
    return (", ".join(names[:-1]) + " and " if len(names) > 1 else "") + names[-1] + " on"


def update_time_s(n_channels: int, averages: int, bus_conversion_us: int,
                  shunt_conversion_us: int) -> float:
    """Seconds for one fresh averaged result on every enabled channel.

    In continuous mode the chip cycles through the enabled channels, converting
    shunt then bus on each, ``averages`` times before it updates the registers.
    """
    return n_channels * (bus_conversion_us + shunt_conversion_us) * averages / 1e6


def choose_averages(averages: int | str, sample_interval_s: float, n_channels: int,
                    bus_conversion_us: int, shunt_conversion_us: int, *, source: str = "") -> int:
    """The averaging count to program: ``averages`` itself, or the largest that fits.

    One full update must be shorter than ``sample_interval_s`` so that every
    sample sees a fresh average. ``"auto"`` picks the largest count that fits.

    Raises:
        ConfigError: the update is not shorter than the interval (names the keys
            and the numbers).
    """
    def update(avg: int) -> float:
        return update_time_s(n_channels, avg, bus_conversion_us, shunt_conversion_us)

    fitting = [avg for avg in AVERAGES_CODE if update(avg) < sample_interval_s]
    how = f"{n_channels} channels x ({bus_conversion_us} + {shunt_conversion_us} us)"
    if not fitting:
        raise ConfigError(
            f"even meter.averages = 1 takes {how} = {update(1) * 1e3:.3f} ms per update, not "
            f"shorter than meter.sample_interval_s = {sample_interval_s:g} s; lower "
            "meter.bus_conversion_us / meter.shunt_conversion_us or raise the interval",
            path=source, key="meter.sample_interval_s", value=sample_interval_s)
    if averages == "auto":
        return fitting[-1]
    if averages not in AVERAGES_CODE:
        raise ConfigError("must be one of " + ", ".join(map(str, AVERAGES_CODE)) + ' or "auto"',
                          path=source, key="meter.averages", value=averages)
    if averages not in fitting:
        raise ConfigError(
            f"one update takes {how} x {averages} = {update(averages):.3f} s, not shorter "
            f"than meter.sample_interval_s = {sample_interval_s:g} s; use meter.averages "
            f'<= {fitting[-1]} or "auto"',
            path=source, key="meter.averages", value=averages)
    return int(averages)


def _word(data: Sequence[int]) -> int:
    """Two bytes as the chip sends them (most significant first) -> unsigned word."""
    return (data[0] << 8) | data[1]


def _code(data: Sequence[int]) -> int:
    """Two bytes -> the signed 13-bit measurement left-justified in bits 15..3."""
    word = (data[0] << 8) | data[1]
    return (word - ((word & 0x8000) << 1)) >> 3  # sign-extend, then arithmetic shift


def _strerror(err: OSError) -> str:
    return f"errno {err.errno} {err.strerror or errno.errorcode.get(err.errno or 0, '')}"


def _close_quietly(bus: I2CBus) -> None:
    try:
        bus.close()
    except OSError as err:  # closing a vanished adapter may fail; nothing left to release
        log.debug("closing the I2C bus failed: %s", err)


def _smbus_factory(bus_number: int) -> Callable[[], I2CBus]:
    def open_bus() -> I2CBus:
        import smbus2  # only a real meter needs it; tests and --simulate never import it

        return smbus2.SMBus(bus_number)
    return open_bus


# -- the driver -----------------------------------------------------------------------

class INA3221Sensor:
    """Consumer and producer power from one INA3221 (implements ``Sensor``).

    I2C errors never escape as ``OSError``: a failed sample raises
    ``SensorReadError``; after ``failures_before_reconnect`` failures in a row
    the bus is closed and reopened with exponential backoff (``clock`` seconds),
    re-checking the chip's identity and rewriting its configuration.
    """

    def __init__(self, meter: MeterConfig, bus_factory: Callable[[], I2CBus], *,
                 clock: Callable[[], float] = time.monotonic, source: str = "",
                 recovery: Recovery = Recovery()) -> None:
        """The driver for ``meter`` (validated by ``config``) on the bus ``bus_factory``
        opens; fixes the scale factors and touches no hardware. ``source`` is the
        config file's path, for errors.

        Raises:
            ConfigError: an averaging count whose update is not shorter than
                ``meter.sample_interval_s``.
        """
        consumer_channel, producer_channel = meter.consumer_channel, meter.producer_channel
        bus_conversion_us, shunt_conversion_us = meter.bus_conversion_us, meter.shunt_conversion_us
        self.averages = choose_averages(meter.averages, meter.sample_interval_s, 2,
                                        bus_conversion_us, shunt_conversion_us, source=source)
        self.update_time_s = update_time_s(2, self.averages, bus_conversion_us,
                                           shunt_conversion_us)
        self.config_word = config_word((consumer_channel, producer_channel), self.averages,
                                       bus_conversion_us, shunt_conversion_us)
        self._bus_factory = bus_factory
        self._address = address = meter.i2c_address
        self._channels = (consumer_channel, producer_channel)
        self._shunt_ohms = tuple(meter.shunt_ohms[ch - 1] for ch in self._channels)
        self._sample_interval_s = meter.sample_interval_s
        self._conversion_us = (bus_conversion_us, shunt_conversion_us)
        self._clock = clock
        self._bus_name = f"/dev/i2c-{meter.i2c_bus}"
        self._i2c_bus = meter.i2c_bus
        self._where = f"INA3221 0x{address:02x} on {self._bus_name}"
        self._registers = tuple(reg[ch].address for ch in self._channels
                                for reg in (SHUNT_VOLTAGE, BUS_VOLTAGE))
        # mW = (code_sh * 0.04 mV / R ohm = mA) * (code_bus * 0.008 V): one factor per channel
        self._mw_per_code2 = tuple(SHUNT_VOLTAGE[1].lsb / r * BUS_VOLTAGE[1].lsb
                                   for r in self._shunt_ohms)
        self._bus_code_max = int(BUS_VOLTAGE_MAX_V / BUS_VOLTAGE[1].lsb)
        self._failures_before_reconnect = recovery.failures_before_reconnect
        self._backoff_initial_s = recovery.backoff_initial_s
        self._backoff_max_s = recovery.backoff_max_s
        self._healthy_after_s = recovery.healthy_after_s
        self._bus: I2CBus | None = None
        self._opened = False
        self._warming = False
        self._fresh_at = 0.0
        self._state = _State.HEALTHY
        self._failures = 0  # in a row
        self._episode_failures = 0  # since the state left healthy
        self._last_failure_at = 0.0
        self._last_errno: int | None = None
        self._backoff_s = recovery.backoff_initial_s
        self._retry_at = 0.0
        self._left_out = [0, 0]  # consumer, producer: samples left out in this episode
        self._any_left_out = False
        self.read_errors = 0
        self.implausible_readings = 0  # samples with a channel out of range
        self.reconnects = 0

    @classmethod
    def from_config(cls, meter: MeterConfig, *, clock: Callable[[], float] = time.monotonic,
                    source: str = "") -> INA3221Sensor:
        """The driver for the chip ``[meter]`` names, on a real ``smbus2.SMBus``.

        Nothing is opened yet; call ``open()``. ``source`` is the config file
        path, used in error messages.

        Raises:
            ConfigError: as for the constructor.
        """
        return cls(meter, _smbus_factory(meter.i2c_bus), clock=clock, source=source)

    # -- Sensor protocol ------------------------------------------------------------

    def open(self) -> None:
        """Open the bus, check the chip is an INA3221 and configure it.

        The first sample is only taken once one full update (``update_time_s``)
        has run with the new configuration; earlier reads raise SensorReadError.

        Raises:
            SensorError: no such bus, no permission, nothing answering, another
                chip at the address, or the configuration did not stick.
        """
        if self._bus is not None:
            return
        try:
            self._connect()
        except OSError as err:
            raise SensorError(self._explain(err)) from None
        self._opened = True
        self._state = _State.HEALTHY
        log.debug("%s", self.describe())

    def read(self, t: float) -> Sample:
        """Both channels' power now, in mW, stamped with monotonic time ``t``.

        Plausibility is judged per channel: a channel whose shunt reads full
        scale (the current is beyond the shunt's range) or whose bus reads above
        26 V is None in the sample, and the other channel is kept. Each such
        episode is logged once per channel, with the shunt that would fit.

        Raises:
            ImplausibleReading: both channels are out of range.
            SensorReadError: this sample could not be taken (I2C error, bus
                closed while backing off, first update not finished).
        """
        cs, cb, ps, pb = self._read_codes()
        lim, bus_max = FULL_SCALE_CODE, self._bus_code_max
        if (-lim < cs < lim and -lim < ps < lim and cb <= bus_max and pb <= bus_max
                and not self._any_left_out):
            k_consumer, k_producer = self._mw_per_code2
            return Sample(t, cs * cb * k_consumer, ps * pb * k_producer)
        return self._judged(t, (cs, cb, ps, pb))

    @property
    def warmup_s(self) -> float:
        """Seconds until the first update with the written configuration is done."""
        return max(self._fresh_at - self._clock(), 0.0) if self._warming else 0.0

    def read_channels(self) -> dict[str, ChannelReading]:
        """Shunt and bus voltage, current and power of both channels (diagnostics).

        Raises:
            SensorReadError: as for ``read``.
        """
        return self._readings(self._read_codes(), decode_configuration(self.config_word))

    def probe(self) -> Probe:
        """Look at the chip as it is, writing nothing to it (for ``check``).

        The service may be sampling the chip right now, so this opens the bus
        on its own, checks the IDs, reads the configuration register and one
        measurement made with whatever configuration it holds, and closes the
        bus again. ``open`` is not needed (nor used).

        Raises:
            SensorError: no such bus, no permission, nothing answering, another
                chip at the address, or an I2C error while reading.
        """
        try:
            bus = self._bus_factory()
        except OSError as err:
            raise SensorError(self._explain(err)) from None
        read, addr = bus.read_i2c_block_data, self._address
        try:
            self._verify_identity(bus)
            word = _word(read(addr, CONFIGURATION.address, 2))
            codes = tuple(_code(read(addr, reg, 2)) for reg in self._registers)
        except OSError as err:
            raise SensorError(self._explain(err)) from None
        finally:
            _close_quietly(bus)
        found = decode_configuration(word)
        return Probe(found, decode_configuration(self.config_word),
                     self._readings(codes, found))

    def _readings(self, codes: Sequence[int],
                  configuration: ChipConfiguration) -> dict[str, ChannelReading]:
        readings: dict[str, ChannelReading] = {}
        for i, role in enumerate(_ROLES):
            shunt, bus = codes[2 * i], codes[2 * i + 1]
            shunt_mv, bus_v = shunt * SHUNT_VOLTAGE[1].lsb, bus * BUS_VOLTAGE[1].lsb
            current_ma = shunt_mv / self._shunt_ohms[i]
            found = self._out_of_range(i, shunt, bus)
            readings[role] = ChannelReading(
                self._channels[i], shunt_mv, bus_v, current_ma, bus_v * current_ma,
                problem=": ".join(found) if found else "",
                measured=configuration.measures(self._channels[i]))
        return readings

    def describe(self) -> str:
        """One line: where the chip is, channels, shunts, averaging and counters."""
        (consumer, producer), (r_c, r_p) = self._channels, self._shunt_ohms
        bus_us, shunt_us = self._conversion_us
        return (f"{self._where}: consumer CH{consumer} ({r_c:g} ohm), producer CH{producer} "
                f"({r_p:g} ohm); {self.averages} averages x 2 channels x ({bus_us} + "
                f"{shunt_us} us) = {self.update_time_s * 1e3:.1f} ms per update, sample every "
                f"{self._sample_interval_s:g} s; config 0x{self.config_word:04x}; "
                f"{self.read_errors} read errors, {self.implausible_readings} implausible, "
                f"{self.reconnects} reconnects")

    def close(self) -> None:
        """Release the bus. Safe to call twice; ``read`` afterwards raises SensorError."""
        self._opened = False
        if self._bus is not None:
            _close_quietly(self._bus)
            self._bus = None

    # -- sampling -----------------------------------------------------------------

    def _read_codes(self) -> tuple[int, int, int, int]:
        bus = self._bus
        if bus is None:
            bus = self._reconnect()
        if self._warming:
            self._check_warm()
        read, addr = bus.read_i2c_block_data, self._address
        r_cs, r_cb, r_ps, r_pb = self._registers
        try:
            cs = _code(read(addr, r_cs, 2))
            cb = _code(read(addr, r_cb, 2))
            ps = _code(read(addr, r_ps, 2))
            pb = _code(read(addr, r_pb, 2))
        except OSError as err:
            raise self._failed(err) from None
        if self._state is not _State.HEALTHY:
            self._succeeded()
        return cs, cb, ps, pb

    def _check_warm(self) -> None:
        now = self._clock()
        if now < self._fresh_at:
            raise SensorReadError(f"{self._where}: first update after configuring not done "
                                  f"yet ({(self._fresh_at - now) * 1e3:.0f} ms to go)")
        self._warming = False

    # -- plausibility, per channel ---------------------------------------------------

    def _judged(self, t: float, codes: tuple[int, int, int, int]) -> Sample:
        """The sample with each out-of-range channel as None; logs episode starts and ends.

        Raises:
            ImplausibleReading: neither channel is in range.
        """
        powers: list[float | None] = []
        problems: list[str] = []
        for i, role in enumerate(_ROLES):
            shunt, bus = codes[2 * i], codes[2 * i + 1]
            found = self._out_of_range(i, shunt, bus)
            if found is None:
                if self._left_out[i]:
                    log.info("%s: %s CH%d in range again after %d samples left out",
                             self._where, role, self._channels[i], self._left_out[i])
                    self._left_out[i] = 0
                powers.append(shunt * bus * self._mw_per_code2[i])
                continue
            problem, advice = found
            if not self._left_out[i]:
                log.warning("%s: %s: %s; CH%d is left out until it reads in range again, the %s "
                            "channel is still metered", self._where, problem, advice,
                            self._channels[i], _ROLES[1 - i])
            self._left_out[i] += 1
            problems.append(problem)
            powers.append(None)
        self._any_left_out = any(self._left_out)
        if problems:
            self.implausible_readings += 1
        consumer, producer = powers
        if consumer is None and producer is None:
            raise ImplausibleReading(f"{self._where}: implausible reading: " + "; ".join(problems))
        return Sample(t, consumer, producer)

    def _out_of_range(self, i: int, shunt: int, bus: int) -> tuple[str, str] | None:
        """What is wrong with channel ``i``'s codes and what to do; None if plausible."""
        role, channel, ohms = _ROLES[i], self._channels[i], self._shunt_ohms[i]
        if abs(shunt) >= FULL_SCALE_CODE:
            # The ADC clips at +-163.8 mV: the current is at least full scale / R.
            max_a = FULL_SCALE_CODE * SHUNT_VOLTAGE[1].lsb / ohms / 1000
            return (f"{role} CH{channel} shunt at full scale "
                    f"({shunt * SHUNT_VOLTAGE[1].lsb:+.2f} mV)",
                    f"the {ohms:g} ohm shunt reads at most {max_a:.4g} A; for more, fit "
                    f"{ohms / 2:g} ohm (up to {2 * max_a:.4g} A) or less and set meter.shunt_ohms")
        if bus > self._bus_code_max:
            return (f"{role} CH{channel} bus {bus * BUS_VOLTAGE[1].lsb:.3f} V above "
                    f"{BUS_VOLTAGE_MAX_V:g} V",
                    f"the chip's inputs are rated to {BUS_VOLTAGE_MAX_V:g} V; check the wiring "
                    f"to VIN{channel}-")
        return None

    # -- failure and recovery -------------------------------------------------------

    def _failed(self, err: OSError) -> SensorReadError:
        self.read_errors += 1
        self._failures += 1
        self._episode_failures += 1
        self._last_errno = err.errno
        self._last_failure_at = self._clock()
        if self._state is _State.HEALTHY:
            self._state = _State.FAILING
            log.warning("%s: read failed (%s); counting failures, reconnecting after %d in a row",
                        self._where, _strerror(err), self._failures_before_reconnect)
        if self._failures >= self._failures_before_reconnect:
            self._disconnect(err)
        return SensorReadError(f"{self._where}: read failed: {_strerror(err)}", errno=err.errno)

    def _succeeded(self) -> None:
        self._failures = 0
        if self._clock() - self._last_failure_at >= self._healthy_after_s:
            log.info("%s: healthy again, no read failure for %g s (%d failed samples before)",
                     self._where, self._healthy_after_s, self._episode_failures)
            self._state = _State.HEALTHY
            self._episode_failures = 0

    def _disconnect(self, err: OSError) -> None:
        if self._bus is not None:
            _close_quietly(self._bus)
            self._bus = None
        self._state = _State.DISCONNECTED
        self._backoff_s = self._backoff_initial_s
        self._retry_at = self._clock() + self._backoff_s
        log.warning("%s: %d reads failed in a row (last: %s); closed the bus, reopening in "
                    "%g s with backoff", self._where, self._failures, _strerror(err),
                    self._backoff_s)

    def _reconnect(self) -> I2CBus:
        if not self._opened:
            raise SensorError(f"{self._where}: read before open() or after close()")
        now = self._clock()
        if now < self._retry_at:
            raise SensorReadError(f"{self._where}: bus closed after repeated failures; next "
                                  f"reopen in {self._retry_at - now:.1f} s", errno=self._last_errno)
        try:
            self._connect()
        except (OSError, SensorError) as err:
            self._last_errno = getattr(err, "errno", None)
            self._backoff_s = min(2 * self._backoff_s, self._backoff_max_s)
            self._retry_at = now + self._backoff_s
            detail = _strerror(err) if isinstance(err, OSError) else str(err)
            log.debug("%s: reopen failed (%s); next try in %g s", self._where, detail,
                      self._backoff_s)
            raise SensorReadError(f"{self._where}: reopen failed ({detail}); next try in "
                                  f"{self._backoff_s:g} s", errno=self._last_errno) from None
        log.info("%s: reconnected after %d failed samples", self._where, self._episode_failures)
        self.reconnects += 1
        self._state = _State.HEALTHY
        self._failures = self._episode_failures = 0
        self._backoff_s = self._backoff_initial_s
        assert self._bus is not None
        return self._bus

    # -- connecting ---------------------------------------------------------------

    def _connect(self) -> None:
        """Open the bus, verify the chip, write and verify the configuration.

        Raises:
            OSError: from the bus (the caller decides what it means).
            SensorError: another chip, or the configuration did not stick.
        """
        bus = self._bus_factory()
        try:
            self._verify_identity(bus)
            self._configure(bus)
        except BaseException:
            _close_quietly(bus)
            raise
        self._bus = bus
        self._warming = True
        self._fresh_at = self._clock() + self.update_time_s * _WARMUP_MARGIN

    def _verify_identity(self, bus: I2CBus) -> None:
        maker = _word(bus.read_i2c_block_data(self._address, MANUFACTURER_ID.address, 2))
        die = _word(bus.read_i2c_block_data(self._address, DIE_ID.address, 2))
        if (maker, die) != (INA3221_MANUFACTURER_ID, INA3221_DIE_ID):
            raise SensorError(
                f"{self._where} is not an INA3221: read manufacturer ID 0x{maker:04x} and die "
                f"ID 0x{die:04x}, expected 0x{INA3221_MANUFACTURER_ID:04x} and "
                f"0x{INA3221_DIE_ID:04x}; check meter.i2c_address and the chip on the board")

    def _configure(self, bus: I2CBus) -> None:
        word = self.config_word
        bus.write_i2c_block_data(self._address, CONFIGURATION.address, [word >> 8, word & 0xFF])
        back = _word(bus.read_i2c_block_data(self._address, CONFIGURATION.address, 2))
        if back != word:
            raise SensorError(f"{self._where}: wrote configuration 0x{word:04x} but read back "
                              f"0x{back:04x}")

    def _explain(self, err: OSError) -> str:
        """One actionable line for an ``OSError`` met while opening."""
        what = f"{self._where}: {_strerror(err)}"
        if err.errno == errno.ENOENT:
            return (f"{what}: {self._bus_name} does not exist; enable I2C with "
                    "`sudo raspi-config nonint do_i2c 0` and reboot")
        if err.errno in (errno.EACCES, errno.EPERM):
            return (f"{what}: no permission to open {self._bus_name}; add the service user "
                    "to the i2c group")
        if err.errno == errno.EBUSY:
            return (f"{what}: a kernel driver has claimed the address (an ina3221 dtoverlay?); "
                    "remove it from /boot/firmware/config.txt")
        if err.errno in _NO_ANSWER:
            return (f"{what}: nothing answers; check SDA, SCL, VS and GND wiring and the A0 "
                    f"pin; `i2cdetect -y {self._i2c_bus}` should show {self._address:02x}")
        return what
