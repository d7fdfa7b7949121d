"""Sampling cost and schedule accuracy of the INA3221 driver, on the emulated chip.

Runs the real driver and the real smbus2 against the fake i2c-dev from
``tests/support/i2c_emulator.py`` (the same fake ioctl the tests use), and prints:

* CPU time per sample (``time.process_time``): the whole ``read()``, the four
  bare ``smbus2`` 2-byte I2C block reads alone (registers 0x01 to 0x04, as the
  driver does), and the difference, i.e. what the driver adds beyond the I2C
  calls. The bare figure is mostly the emulator standing in for the kernel; on
  a Pi it is the four ioctls plus bus time (not CPU) instead.
* CPU time per sample of what the loop does beside ``read()``: the schedule,
  the wall-clock step check and the per-channel metering.
* Schedule lateness p50/p99/max and drift at 1 Hz and 50 Hz, sampling on
  deadlines ``start + k * interval`` with ``p2p_energy.core.metering.Schedule``.

Figures only, no pass/fail: ``uv run python bench/sampling.py [--help]``.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType

from p2p_energy.config import MeterConfig
from p2p_energy.core.metering import RoundMeter, Schedule
from p2p_energy.errors import SensorReadError
from p2p_energy.sensors.base import Sample
from p2p_energy.sensors.ina3221 import INA3221Sensor


def load_emulator() -> ModuleType:
    """The test suite's emulator module (``support`` is a package in tests/, not on the path)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    return importlib.import_module("support.i2c_emulator")


def opened_sensor(interval_s: float) -> INA3221Sensor:
    """A driver built as the daemon builds it, opened, its first update done."""
    sensor = INA3221Sensor.from_config(MeterConfig(sample_interval_s=interval_s))
    sensor.open()
    time.sleep(sensor.update_time_s * 1.3)
    return sensor


def cpu_per_sample_us(samples: int) -> tuple[float, float]:
    """CPU microseconds per ``read()`` and per four bare smbus2 block reads."""
    import smbus2

    sensor = opened_sensor(0.02)
    t = time.monotonic()
    start = time.process_time()
    for _ in range(samples):
        sensor.read(t)
    driver_us = (time.process_time() - start) / samples * 1e6
    sensor.close()

    with smbus2.SMBus(1) as bus:
        read = bus.read_i2c_block_data
        start = time.process_time()
        for _ in range(samples):
            read(0x40, 0x01, 2)
            read(0x40, 0x02, 2)
            read(0x40, 0x03, 2)
            read(0x40, 0x04, 2)
        bare_us = (time.process_time() - start) / samples * 1e6
    return driver_us, bare_us


def metering_per_sample_us(samples: int) -> float:
    """CPU microseconds per sample the daemon's loop spends beside ``read()``.

    ``Schedule.advance``, the wall-clock step check (one ``time.time()`` and
    ``RoundMeter.follow_wall``) and ``RoundMeter.add``/``expect``, over 60 s
    rounds at 100 Hz, every tenth sample with the producer out of range.
    """
    points = [Sample(i * 0.01, 50.0 + i % 7, None if i % 10 == 0 else 500.0 - i % 5)
              for i in range(samples)]
    meter = RoundMeter(60.0, 0.0, time.time(), max_gap_s=10.0)
    schedule, wall = Schedule(0.0, 0.01), time.time
    start = time.process_time()
    for s in points:
        schedule.advance(s.t)
        meter.follow_wall(s.t, wall())
        meter.add(s)
        meter.expect(1)
    return (time.process_time() - start) / samples * 1e6


def run_schedule(interval_s: float, duration_s: float) -> dict[str, float]:
    """Sample on deadlines for ``duration_s``; lateness figures in milliseconds."""
    sensor = opened_sensor(interval_s)
    schedule = Schedule(time.monotonic() + interval_s, interval_s)
    end = schedule.start + duration_s
    lateness_ms: list[float] = []
    missed = failed = 0
    while schedule.deadline < end:
        delay = schedule.deadline - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        now = time.monotonic()
        lateness_ms.append((now - schedule.deadline) * 1e3)
        try:
            sensor.read(now)
        except SensorReadError:  # counted, as the daemon would
            failed += 1
        missed += schedule.advance(now)
    sensor.close()
    tenth = max(len(lateness_ms) // 10, 1)
    quantiles = statistics.quantiles(lateness_ms, n=100, method="inclusive")
    return {
        "ticks": len(lateness_ms), "missed": missed, "failed": failed,
        "p50": quantiles[49], "p99": quantiles[98], "max": max(lateness_ms),
        # Mean lateness of the last tenth minus the first tenth: with deadline
        # scheduling this stays near zero however long the run.
        "drift": statistics.fmean(lateness_ms[-tenth:]) - statistics.fmean(lateness_ms[:tenth]),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds-1hz", type=float, default=20.0, help="1 Hz run (default 20)")
    parser.add_argument("--seconds-50hz", type=float, default=30.0, help="50 Hz run (default 30)")
    parser.add_argument("--cpu-samples", type=int, default=20000,
                        help="reads for the CPU measurement (default 20000)")
    args = parser.parse_args(argv)

    emulator = load_emulator()
    chip = emulator.INA3221Chip()
    chip.set_input(1, current_ma=120.0, load_v=5.0)
    chip.set_input(2, current_ma=-3.0, load_v=12.5)
    with emulator.FakeI2CAdapter({0x40: chip}, bus=1).installed():
        driver_us, bare_us = cpu_per_sample_us(args.cpu_samples)
        print(f"python {sys.version.split()[0]}, emulated INA3221 behind the real smbus2")
        print(f"CPU per sample: read() {driver_us:.1f} us total, 4 bare smbus2 block reads "
              f"{bare_us:.1f} us, beyond the I2C calls {driver_us - bare_us:.1f} us "
              f"({args.cpu_samples} samples)")
        print(f"CPU per sample beside read(): schedule, wall-clock step check and metering "
              f"{metering_per_sample_us(10 * args.cpu_samples):.2f} us")
        for hz, seconds in ((1, args.seconds_1hz), (50, args.seconds_50hz)):
            r = run_schedule(1.0 / hz, seconds)
            print(f"{hz:>2} Hz for {seconds:g} s: {r['ticks']:.0f} ticks, lateness p50 "
                  f"{r['p50']:.3f} ms, p99 {r['p99']:.3f} ms, max {r['max']:.3f} ms, drift "
                  f"{r['drift']:+.3f} ms, missed deadlines {r['missed']:.0f}, failed reads "
                  f"{r['failed']:.0f}")


if __name__ == "__main__":
    main()
