"""INA3221 driver against an emulated chip, through the real smbus2 code.

Only the kernel interface beneath smbus2 is faked (see ``i2c_emulator``); the
driver and smbus2 run as they would on a Pi.
"""

from __future__ import annotations

import errno
import itertools
import logging
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2p_energy.config import MeterConfig
from p2p_energy.errors import ConfigError, ImplausibleReading, SensorError, SensorReadError
from p2p_energy.sensors.base import Sample
from p2p_energy.sensors.ina3221 import INA3221Sensor

from support.i2c_emulator import FakeI2CAdapter, INA3221Chip

SHUNT_LSB_MV = 0.040
BUS_LSB_V = 0.008
LOGGER = "p2p_energy.sensors.ina3221"


class FakeClock:
    """A monotonic clock the test moves by hand, so nothing sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def chip() -> INA3221Chip:
    return INA3221Chip(shunt_ohms=(0.1, 0.1, 0.1))


@pytest.fixture
def adapter(chip: INA3221Chip) -> Iterator[FakeI2CAdapter]:
    with FakeI2CAdapter({0x40: chip}, bus=1).installed() as fake:
        yield fake


def make(clock: FakeClock, **meter: object) -> INA3221Sensor:
    """The driver as the daemon builds it: from config, on a real smbus2.SMBus."""
    return INA3221Sensor.from_config(MeterConfig(**meter), clock=clock)  # type: ignore[arg-type]


def opened(clock: FakeClock, **meter: object) -> INA3221Sensor:
    """An open driver whose first update has run, ready to sample."""
    sensor = make(clock, **meter)
    sensor.open()
    clock.advance(sensor.update_time_s * 2)
    return sensor


def power_bound_mw(current_ma: float, volts: float) -> float:
    """Worst error of V*I when each is off by half an LSB (the ADC rounds)."""
    d_i, d_v = SHUNT_LSB_MV / 2 / 0.1, BUS_LSB_V / 2
    return abs(volts) * d_i + abs(current_ma) * d_v + d_i * d_v + 1e-9


# -- readings ---------------------------------------------------------------------------

def test_50_mw_at_3_v_on_0_1_ohm_reads_50_mw(adapter, chip, clock):
    chip.set_input(1, current_ma=50.0 / 3.0, load_v=3.0)
    sensor = opened(clock)

    sample = sensor.read(clock())

    assert isinstance(sample, Sample) and sample.t == clock()
    # 16.67 mA is 1.667 mV on 0.1 ohm = 41.7 LSB -> 42 -> 16.8 mA x 3.000 V = 50.4 mW
    assert sample.consumer_mw == pytest.approx(50.4, abs=1e-9)
    assert abs(sample.consumer_mw - 50.0) <= power_bound_mw(50 / 3, 3.0)
    assert abs(sample.consumer_mw - 27.8) > 20


def test_reads_both_channels_with_their_own_values(adapter, chip, clock):
    chip.set_input(1, current_ma=120.0, load_v=5.0)
    chip.set_input(2, current_ma=300.0, load_v=12.0)
    sensor = opened(clock)

    sample = sensor.read(clock())

    assert sample.consumer_mw == pytest.approx(600.0, abs=power_bound_mw(120, 5))
    assert sample.producer_mw == pytest.approx(3600.0, abs=power_bound_mw(300, 12))


def test_words_are_big_endian_block_reads(adapter, chip, clock):
    sensor = opened(clock)
    chip.set_register(0x01, 0x0A28)  # code 325 -> 13.000 mV; swapped it would be 1281
    chip.set_register(0x02, 0x1770)  # code 750 -> 6.000 V; swapped 0x7017 -> 28.7 V
    adapter.log.clear()
    transfers_before = adapter.transfers

    reading = sensor.read_channels()["consumer"]

    assert reading.shunt_voltage_mv == pytest.approx(13.0)
    assert reading.bus_voltage_v == pytest.approx(6.0)
    assert reading.current_ma == pytest.approx(130.0)
    assert reading.power_mw == pytest.approx(780.0)
    # Four SMBus I2C block reads (pointer write + 2-byte read each), in register order,
    # the bytes MSB first as the chip sent them.
    assert [(t.kind, t.read_write, t.register, t.data) for t in adapter.log] == [
        ("i2c_block", "r", 0x01, b"\x0a\x28"), ("i2c_block", "r", 0x02, b"\x17\x70"),
        ("i2c_block", "r", 0x03, b"\x00\x00"), ("i2c_block", "r", 0x04, b"\x00\x00")]
    assert adapter.transfers == transfers_before + 4


def test_negative_values_are_sign_extended(adapter, chip, clock):
    sensor = opened(clock)
    chip.set_register(0x03, 0xFFF8)  # -1 code = -40 uV
    chip.set_register(0x04, 0x0FA0)  # 500 codes = 4.000 V

    producer = sensor.read_channels()["producer"]

    assert producer.shunt_voltage_mv == pytest.approx(-0.040)
    assert producer.current_ma == pytest.approx(-0.4)
    assert producer.power_mw == pytest.approx(-1.6)


def test_reverse_current_is_reported_as_negative_power(adapter, chip, clock):
    chip.set_input(1, current_ma=10.0, load_v=5.0)
    chip.set_input(2, current_ma=-25.0, load_v=12.0)
    sensor = opened(clock)

    sample = sensor.read(clock())

    assert sample.producer_mw == pytest.approx(-300.0, abs=power_bound_mw(25, 12))
    assert sample.producer_mw < 0


def test_each_channel_uses_its_own_shunt(clock):
    chip = INA3221Chip(shunt_ohms=(0.05, 0.1, 1.0))
    chip.set_input(3, current_ma=40.0, load_v=3.3)  # 40 mV on 1 ohm
    chip.set_input(1, current_ma=1000.0, load_v=12.0)  # 50 mV on 0.05 ohm
    with FakeI2CAdapter({0x41: chip}).installed():
        sensor = opened(clock, i2c_address=0x41, consumer_channel=3, producer_channel=1,
                        shunt_ohms=(0.05, 0.1, 1.0))
        readings = sensor.read_channels()
        sample = sensor.read(clock())

    assert readings["consumer"].channel == 3
    assert readings["consumer"].current_ma == pytest.approx(40.0, abs=0.02)
    assert readings["producer"].channel == 1
    assert readings["producer"].current_ma == pytest.approx(1000.0, abs=0.4)
    assert sample.consumer_mw == pytest.approx(132.0, abs=0.02 * 3.3 + 40.0 * 0.004)
    assert sample.producer_mw == pytest.approx(12000.0, abs=5.0)


@settings(max_examples=300, deadline=None)
@given(current_ma=st.floats(-1600.0, 1600.0), load_v=st.floats(0.0, 26.0),
       channel=st.sampled_from([1, 2]))
def test_conversion_round_trips_within_one_lsb(current_ma, load_v, channel):
    clock, chip = FakeClock(), INA3221Chip()
    chip.set_input(channel, current_ma, load_v)
    with FakeI2CAdapter({0x40: chip}).installed():
        sensor = opened(clock)
        role = "consumer" if channel == 1 else "producer"
        reading = sensor.read_channels()[role]
        sample = sensor.read(clock())
        sensor.close()

    assert abs(reading.current_ma - current_ma) <= SHUNT_LSB_MV / 0.1
    assert abs(reading.bus_voltage_v - load_v) <= BUS_LSB_V
    power = sample.consumer_mw if channel == 1 else sample.producer_mw
    assert power == pytest.approx(reading.power_mw, rel=1e-12, abs=1e-12)
    assert abs(power - current_ma * load_v) <= 2 * power_bound_mw(current_ma, load_v)


# -- identity and opening -----------------------------------------------------------------

@pytest.mark.parametrize(("maker", "die", "what"), [
    (0x399F, 0x399F, "INA219: no ID registers, answers with its configuration"),
    (0x5449, 0x2260, "INA226: a TI chip, another die"),
    (0x0000, 0x0000, "a chip that reads zero"),
])
def test_refuses_a_chip_that_is_not_an_ina3221(clock, maker, die, what):
    chip = INA3221Chip(manufacturer_id=maker, die_id=die)
    with FakeI2CAdapter({0x40: chip}).installed() as adapter:
        sensor = make(clock)
        with pytest.raises(SensorError) as caught:
            sensor.open()

        assert adapter.fds == {}, "bus left open"
    message = str(caught.value)
    assert "0x40" in message and "/dev/i2c-1" in message, what
    assert f"0x{maker:04x}" in message and f"0x{die:04x}" in message
    assert "0x5449" in message and "0x3220" in message
    assert chip.config_writes == [], "configured a chip it does not know"


@pytest.mark.parametrize(("fault", "hint"), [
    ("missing", "raspi-config nonint do_i2c 0"),
    ("denied", "i2c group"),
    ("claimed", "kernel driver"),
    ("absent", "i2cdetect -y 1"),
])
def test_open_failures_say_what_to_do(chip, clock, fault, hint):
    adapter = FakeI2CAdapter({0x40: chip})
    if fault in ("claimed", "absent"):
        getattr(adapter, fault).add(0x40)
    else:
        setattr(adapter, fault, True)
    with adapter.installed():
        with pytest.raises(SensorError) as caught:
            make(clock).open()
        assert adapter.fds == {}
    assert type(caught.value) is SensorError
    assert hint in str(caught.value)
    assert "0x40" in str(caught.value)


def test_nothing_hardware_happens_at_import():
    code = ("import sys, p2p_energy.sensors.ina3221 as m; "
            "m.INA3221Sensor.from_config(__import__('p2p_energy.config').config.MeterConfig()); "
            "assert 'smbus2' not in sys.modules, 'smbus2 imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_close_releases_the_bus_and_is_safe_twice(adapter, clock):
    sensor = opened(clock)
    assert len(adapter.fds) == 1

    sensor.close()
    sensor.close()

    assert adapter.fds == {}
    with pytest.raises(SensorError):
        sensor.read(clock())


def test_first_update_must_finish_before_sampling(adapter, chip, clock):
    chip.set_input(1, current_ma=100.0, load_v=5.0)
    sensor = make(clock)
    sensor.open()

    with pytest.raises(SensorReadError, match="first update"):
        sensor.read(clock())
    clock.advance(sensor.update_time_s * 1.25)

    assert sensor.read(clock()).consumer_mw == pytest.approx(500.0, abs=1.0)
    assert sensor.read_errors == 0


# -- configuration ----------------------------------------------------------------------

def test_default_configuration_word(adapter, chip, clock):
    opened(clock)  # defaults: CH1+CH2, 1 s -> auto picks 128, 1.1 ms conversions

    # RST 0 | CH1 CH2 on, CH3 off: 110 | AVG 128: 100 | VBUSCT 1.1 ms: 100 | VSHCT: 100 | 111
    assert chip.config_writes == [0b0_110_100_100_100_111] == [0x6927]
    writes = [t for t in adapter.log if t.read_write == "w"]
    assert [(t.kind, t.register, t.data) for t in writes] == [("i2c_block", 0x00, b"\x69\x27")]


@pytest.mark.parametrize(("meter", "word"), [
    ({"consumer_channel": 1, "producer_channel": 3, "averages": 16,
      "bus_conversion_us": 140, "shunt_conversion_us": 8244}, 0b0_101_010_000_111_111),
    ({"consumer_channel": 3, "producer_channel": 2, "averages": 1,
      "bus_conversion_us": 588, "shunt_conversion_us": 204, "sample_interval_s": 0.01},
     0b0_011_000_011_001_111),
    ({"averages": 1024, "bus_conversion_us": 332, "shunt_conversion_us": 2116,
      "sample_interval_s": 10.0}, 0b0_110_111_010_101_111),
])
def test_configuration_encoding(adapter, chip, clock, meter, word):
    sensor = opened(clock, **meter)

    assert chip.config_writes == [word]
    assert sensor.config_word == word
    assert chip.enabled_channels == {meter.get("consumer_channel", 1),
                                     meter.get("producer_channel", 2)}
    assert chip.averages == meter["averages"]
    assert chip.bus_conversion_us == meter["bus_conversion_us"]
    assert chip.shunt_conversion_us == meter["shunt_conversion_us"]
    assert chip.mode == 0b111


@pytest.mark.parametrize(("interval_s", "averages", "update_ms"), [
    (0.01, 1, 4.4),  # 2 channels x 2.2 ms; 4 averages would take 17.6 ms
    (0.02, 4, 17.6),
    (0.1, 16, 70.4),
    (1.0, 128, 563.2),  # 256 would take 1.126 s
    (4.5, 512, 2252.8),  # 1024 would take 4.5056 s: not shorter
    (5.0, 1024, 4505.6),
])
def test_auto_averaging_picks_the_largest_that_fits(adapter, chip, clock, interval_s,
                                                    averages, update_ms):
    sensor = opened(clock, sample_interval_s=interval_s)

    assert sensor.averages == averages == chip.averages
    assert sensor.update_time_s * 1e3 == pytest.approx(update_ms)
    assert f"{averages} averages" in sensor.describe()
    assert f"{update_ms:.1f} ms per update" in sensor.describe()


def test_refuses_averaging_slower_than_the_interval(adapter, clock):
    with pytest.raises(ConfigError) as caught:
        make(clock, averages=256, sample_interval_s=1.0)

    err = caught.value
    assert err.key == "meter.averages" and err.value == 256
    assert "1.126 s" in str(err) and "meter.sample_interval_s = 1 s" in str(err)
    assert "<= 128" in str(err)
    assert adapter.opens == 0, "touched the bus before refusing"


def test_refuses_conversions_too_slow_even_without_averaging(adapter, clock):
    with pytest.raises(ConfigError) as caught:
        make(clock, sample_interval_s=0.03, bus_conversion_us=8244, shunt_conversion_us=8244)

    err = caught.value
    assert err.key == "meter.sample_interval_s" and err.value == 0.03
    assert "meter.averages = 1" in str(err) and "32.976 ms" in str(err)
    assert "meter.bus_conversion_us" in str(err)


def test_config_errors_name_the_file():
    meter = replace(MeterConfig(), averages=1024)
    with pytest.raises(ConfigError, match=r"^/etc/p2p-energy.toml: meter.averages = 1024: "):
        INA3221Sensor.from_config(meter, source="/etc/p2p-energy.toml")


# -- I2C errors and recovery ------------------------------------------------------------

@pytest.mark.parametrize("code", [errno.EIO, errno.ETIMEDOUT, errno.ENXIO, errno.EREMOTEIO])
def test_intermittent_errors_fail_single_samples(adapter, chip, clock, caplog, code):
    chip.set_input(1, current_ma=100.0, load_v=5.0)
    chip.set_input(2, current_ma=200.0, load_v=14.0)
    sensor = opened(clock)
    adapter.fail_every, adapter.fail_errno = 7, code
    good, failed = [], []

    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        for _ in range(100):
            clock.advance(0.02)
            try:
                good.append(sensor.read(clock()))
            except SensorReadError as err:
                failed.append(err)

    assert len(good) + len(failed) == 100
    assert len(failed) == adapter.faults_fired == sensor.read_errors > 10
    assert all(err.errno == code and type(err) is SensorReadError for err in failed)
    assert all(s.consumer_mw == pytest.approx(500.0, abs=1.0) for s in good)
    assert all(s.producer_mw == pytest.approx(2800.0, abs=1.0) for s in good)
    assert sensor.reconnects == 0 and adapter.opens == 1
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and "read failed" in messages[0], messages


def test_device_vanishes_and_comes_back(adapter, chip, clock, caplog):
    chip.set_input(1, current_ma=100.0, load_v=5.0)
    sensor = opened(clock)
    assert sensor.read(clock()).consumer_mw == pytest.approx(500.0, abs=1.0)

    with caplog.at_level(logging.INFO, logger=LOGGER):
        adapter.absent.add(0x40)
        for _ in range(5):
            clock.advance(0.1)
            with pytest.raises(SensorReadError) as caught:
                sensor.read(clock())
            assert caught.value.errno == errno.ENXIO
        assert adapter.fds == {}, "bus not closed after 5 failures in a row"

        # Backing off: reads fail fast without touching the bus.
        transfers = adapter.transfers
        for _ in range(5):
            clock.advance(0.1)
            with pytest.raises(SensorReadError, match="next reopen"):
                sensor.read(clock())
        assert adapter.transfers == transfers and adapter.opens == 1

        clock.advance(0.6)  # 1 s after closing: first reopen, still absent
        with pytest.raises(SensorReadError, match="reopen failed"):
            sensor.read(clock())
        assert adapter.opens == 2 and adapter.fds == {}
        clock.advance(1.5)  # backoff doubled to 2 s: not yet
        with pytest.raises(SensorReadError, match="next reopen"):
            sensor.read(clock())
        assert adapter.opens == 2

        chip.power_cycle()  # it comes back with power-on defaults
        adapter.absent.clear()
        clock.advance(0.5)
        with pytest.raises(SensorReadError, match="first update"):
            sensor.read(clock())
        assert adapter.opens == 3 and chip.config_writes == [0x6927, 0x6927]
        clock.advance(sensor.update_time_s * 2)
        sample = sensor.read(clock())

    assert sample.consumer_mw == pytest.approx(500.0, abs=1.0)
    assert sensor.reconnects == 1 and sensor.read_errors == 5
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3, messages
    assert "read failed" in messages[0] and "errno 6" in messages[0]
    assert "closed the bus" in messages[1]
    assert "reconnected after" in messages[2]


def test_backoff_grows_to_its_limit(adapter, clock):
    sensor = opened(clock)
    adapter.absent.add(0x40)
    for _ in range(5):
        with pytest.raises(SensorReadError):
            sensor.read(clock())
    attempts = []
    for _ in range(600):  # ten minutes in 1 s steps
        clock.advance(1.0)
        opens = adapter.opens
        with pytest.raises(SensorReadError):
            sensor.read(clock())
        if adapter.opens > opens:
            attempts.append(clock())

    gaps = [round(b - a) for a, b in itertools.pairwise(attempts)]
    assert gaps[:6] == [2, 4, 8, 16, 32, 60]
    assert set(gaps[6:]) == {60}


def test_a_swapped_chip_is_not_adopted_on_reconnect(adapter, chip, clock):
    sensor = opened(clock)
    adapter.absent.add(0x40)
    for _ in range(5):
        with pytest.raises(SensorReadError):
            sensor.read(clock())
    adapter.absent.clear()
    chip.ids[0xFF] = 0x2260  # someone fitted an INA226

    clock.advance(1.0)
    with pytest.raises(SensorReadError, match="not an INA3221"):
        sensor.read(clock())
    assert adapter.fds == {} and chip.config_writes == [0x6927]


def test_healthy_again_after_a_quiet_period(adapter, chip, clock, caplog):
    chip.set_input(1, current_ma=100.0, load_v=5.0)
    sensor = opened(clock)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        adapter.fail_every = 1
        with pytest.raises(SensorReadError):
            sensor.read(clock())
        adapter.fail_every = 0
        for _ in range(40):
            clock.advance(1.0)
            sensor.read(clock())

    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert "healthy again" in messages[1] and "1 failed samples" in messages[1]


# -- implausible readings -----------------------------------------------------------------

def test_a_saturated_producer_does_not_discard_the_consumer(adapter, chip, clock, caplog):
    """2 A of sun on the usual 0.1 ohm shunt (range 1.638 A): the consumer is still metered."""
    chip.set_input(1, current_ma=50.0 / 3.0, load_v=3.0)  # 50 mW consumer
    chip.set_input(2, current_ma=2000.0, load_v=12.0)    # 200 mV across 0.1 ohm: clipped
    sensor = opened(clock)

    with caplog.at_level(logging.INFO, logger=LOGGER):
        samples = [sensor.read(clock()) for _ in range(10)]

    assert all(s.producer_mw is None for s in samples)
    assert all(s.consumer_mw == pytest.approx(50.0, abs=power_bound_mw(50 / 3, 3.0))
               for s in samples)
    assert sensor.implausible_readings == 10 and sensor.read_errors == 0
    assert len(adapter.fds) == 1 and sensor.reconnects == 0, "an answering chip is not a fault"
    (record,) = caplog.records  # once per episode, not once per sample
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        "INA3221 0x40 on /dev/i2c-1: producer CH2 shunt at full scale (+163.80 mV): the 0.1 ohm"
        " shunt reads at most 1.638 A; for more, fit 0.05 ohm (up to 3.276 A) or less and set"
        " meter.shunt_ohms; CH2 is left out until it reads in range again, the consumer"
        " channel is still metered")


def test_a_saturation_episode_ends_and_a_new_one_is_logged_again(adapter, chip, clock, caplog):
    chip.set_input(1, current_ma=100.0, load_v=5.0)
    chip.set_input(2, current_ma=-2000.0, load_v=12.0)
    sensor = opened(clock)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert sensor.read(clock()).producer_mw is None
        assert sensor.read(clock()).producer_mw is None
        chip.set_input(2, current_ma=1000.0, load_v=12.0)
        back = sensor.read(clock())
        chip.set_input(2, current_ma=1700.0, load_v=12.0)
        assert sensor.read(clock()).producer_mw is None

    assert back.producer_mw == pytest.approx(12000.0, abs=power_bound_mw(1000, 12))
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3, messages
    assert "shunt at full scale (-163.80 mV)" in messages[0]
    assert messages[1] == ("INA3221 0x40 on /dev/i2c-1: producer CH2 in range again after 2"
                           " samples left out")
    assert "shunt at full scale (+163.80 mV)" in messages[2]


def test_an_overvoltage_leaves_out_that_channel_only(adapter, chip, clock, caplog):
    chip.set_input(1, current_ma=100.0, load_v=27.0)
    chip.set_input(2, current_ma=100.0, load_v=12.0)
    sensor = opened(clock)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        sample = sensor.read(clock())
    assert sample.consumer_mw is None
    assert sample.producer_mw == pytest.approx(1200.0, abs=power_bound_mw(100, 12))
    assert "consumer CH1 bus 27.000 V above 26 V" in caplog.records[0].getMessage()


def test_both_channels_out_of_range_fail_the_sample(adapter, chip, clock, caplog):
    chip.set_input(1, current_ma=100.0, load_v=27.0)
    chip.set_input(2, current_ma=2000.0, load_v=12.0)
    sensor = opened(clock)
    with pytest.raises(ImplausibleReading, match=r"consumer CH1 bus 27.000 V above 26 V; "
                                                 r"producer CH2 shunt at full scale"):
        sensor.read(clock())
    assert issubclass(ImplausibleReading, SensorReadError)
    assert "1 implausible" in sensor.describe()


def test_the_fitting_shunt_follows_the_configured_one(adapter, clock, caplog):
    chip = INA3221Chip(shunt_ohms=(0.1, 0.01, 0.1))
    chip.set_input(2, current_ma=20000.0, load_v=12.0)  # 200 mV across 0.01 ohm
    chip.set_input(1, current_ma=10.0, load_v=5.0)
    adapter.chips[0x40] = chip
    sensor = opened(clock, shunt_ohms=[0.1, 0.01, 0.1])
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert sensor.read(clock()).producer_mw is None
    assert ("the 0.01 ohm shunt reads at most 16.38 A; for more, fit 0.005 ohm (up to 32.76 A)"
            in caplog.records[0].getMessage())


def test_just_below_full_scale_is_plausible(adapter, chip, clock):
    chip.set_input(1, current_ma=1637.0, load_v=25.99)  # 163.7 mV: code 4093
    sensor = opened(clock)

    reading = sensor.read_channels()["consumer"]

    assert reading.shunt_voltage_mv == pytest.approx(163.72)
    assert reading.bus_voltage_v == pytest.approx(25.992)


# -- the emulator itself --------------------------------------------------------------------

def test_emulator_word_reads_show_why_the_driver_uses_block_reads(adapter, chip):
    import smbus2

    chip.set_register(0x02, 0x1770)
    with smbus2.SMBus(1) as bus:
        assert bus.read_word_data(0x40, 0x02) == 0x7017  # SMBus words are little-endian
        assert bus.read_i2c_block_data(0x40, 0x02, 2) == [0x17, 0x70]
        assert bus.read_i2c_block_data(0x40, 0xFE, 2) == [0x54, 0x49]
        bus.write_word_data(0x40, 0x00, 0x2771)  # goes on the wire as 0x71, 0x27
    assert chip.config == 0x7127


@pytest.mark.parametrize("smbus_only", [False, True], ids=["bcm2835", "smbus-only"])
def test_never_a_transfer_the_pis_adapter_refuses(adapter, chip, clock, smbus_only):
    """A long run with failures and reconnects: every transfer is one the Pi's
    i2c-bcm2835 (as strict in the emulator) accepts, and a sample is always the
    same four block reads."""
    adapter.no_rdwr = smbus_only
    chip.set_input(1, current_ma=100.0, load_v=5.0)
    chip.set_input(2, current_ma=200.0, load_v=14.0)
    sensor = opened(clock)
    adapter.log.clear()
    adapter.fail_every = 13
    good = 0
    for i in range(3000):
        if i % 1000 == 500:  # the chip drops off the bus for a while
            adapter.absent.add(0x40)
        elif i % 1000 == 700:
            adapter.absent.clear()
        clock.advance(0.05)
        try:
            sensor.read(clock())
            good += 1
        except SensorReadError:
            pass

    assert adapter.refused == 0
    assert sensor.reconnects >= 3 and adapter.faults_fired > 100 and good > 1000
    assert {t.kind for t in adapter.log} == {"i2c_block"}
    # A sample reads 0x01, 0x02, 0x03, 0x04 in this order; one that failed stopped early.
    runs: list[list[int]] = []
    for t in adapter.log:
        if t.register == 0x01:
            runs.append([])
        if t.register in (0x01, 0x02, 0x03, 0x04):
            runs[-1].append(t.register)
    assert all(run == [0x01, 0x02, 0x03, 0x04][:len(run)] for run in runs)
    assert sum(run == [0x01, 0x02, 0x03, 0x04] for run in runs) == good


def _rdwr(*msgs):
    import smbus2

    with smbus2.SMBus(1) as bus:
        bus.i2c_rdwr(*msgs)


def test_emulator_refuses_a_read_that_is_not_last_as_bcm2835_does(adapter, chip):
    from smbus2 import i2c_msg

    chip.set_register(0x02, 0x1770)
    msgs = [m for reg in (0x01, 0x02) for m in (i2c_msg.write(0x40, [reg]),
                                                 i2c_msg.read(0x40, 2))]
    with pytest.raises(OSError) as caught:
        _rdwr(*msgs)

    assert caught.value.errno == errno.EOPNOTSUPP
    assert adapter.refused == 1 and adapter.log == [] and adapter.transfers == 0
    assert chip.pointer == 0, "a refused transfer must not reach the chip"
    assert all(bytes(m) == b"\x00\x00" for m in msgs[1::2])

    reply = i2c_msg.read(0x40, 2)  # write then one read, last: what bcm2835 can do
    _rdwr(i2c_msg.write(0x40, [0x02]), reply)
    assert bytes(reply) == b"\x17\x70" and adapter.refused == 1


@pytest.mark.parametrize(("msgs", "code"), [
    (lambda m: [], errno.EINVAL),  # i2c-dev: no messages
    (lambda m: [m.write(0x40, [0x01])] * 43, errno.EINVAL),  # i2c-dev: over 42
    (lambda m: [m.read(0x40, 8193)], errno.EINVAL),  # i2c-dev: over 8192 bytes
    (lambda m: [m.read(0x40, 2), m.read(0x40, 2)], errno.EOPNOTSUPP),  # read not last
    (lambda m: [m.write(0x40, []), m.read(0x40, 2)], errno.EIO),  # empty write not last
], ids=["none", "43-messages", "8193-bytes", "two-reads", "empty-write-first"])
def test_emulator_refuses_what_the_kernel_refuses(adapter, chip, msgs, code):
    from smbus2 import i2c_msg

    with pytest.raises(OSError) as caught:
        _rdwr(*msgs(i2c_msg))
    assert caught.value.errno == code
    assert adapter.refused == 1 and adapter.log == [] and chip.config_writes == []
