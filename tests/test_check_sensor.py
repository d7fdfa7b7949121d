"""`p2p-energy check` looks at the chip without writing to it: the service may be using it."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2p_energy import config
from p2p_energy.commands.check import cmd_check
from p2p_energy.sensors.ina3221 import INA3221Sensor, decode_configuration

from support.i2c_emulator import POWER_ON_CONFIG, FakeI2CAdapter, INA3221Chip


@pytest.fixture
def chip() -> INA3221Chip:
    chip = INA3221Chip(shunt_ohms=(0.1, 0.1, 0.1))
    chip.set_input(1, current_ma=50.0 / 3.0, load_v=3.0)  # 50 mW consumer
    chip.set_input(2, current_ma=100.0, load_v=12.0)       # 1.2 W producer
    return chip


@pytest.fixture
def adapter(chip: INA3221Chip) -> Iterator[FakeI2CAdapter]:
    with FakeI2CAdapter({0x40: chip}, bus=1).installed() as fake:
        yield fake


def _cfg(tmp_path: Path, **meter: object) -> config.Config:
    return config.build({"meter": {"sensor": "ina3221", **meter},
                         "wallet": {"backend": "dry-run"},
                         "ledger": {"path": str(tmp_path / "ledger.db")}},
                        source=str(tmp_path / "config.toml"))


def _check(cfg: config.Config) -> tuple[int, list[str]]:
    lines: list[str] = []
    code = cmd_check(cfg, argparse.Namespace(), lines.append)
    return code, lines


def test_check_never_writes_to_the_chip(tmp_path, adapter, chip):
    code, lines = _check(_cfg(tmp_path))
    assert code == 0, lines
    assert chip.config_writes == [] and chip.config == POWER_ON_CONFIG
    assert [t for t in adapter.log if t.read_write != "r"] == []
    assert len(adapter.fds) == 0, "the bus is closed again"


def test_check_reads_with_the_configuration_it_finds_and_names_the_difference(
        tmp_path, adapter, chip):
    _, lines = _check(_cfg(tmp_path))
    text = "\n".join(lines)
    assert ("chip configuration 0x7127: CH1, CH2 and CH3 on, 1 average, bus 1100 us,"
            " shunt 1100 us, shunt and bus continuous") in text
    assert ("differs from the config file, which wants 0x6927: CH3 off, 128 averages"
            " (the daemon writes it when it starts)") in text
    consumer = next(line for line in lines if "consumer CH1:" in line)
    assert consumer.startswith("ok") and "3.000 V" in consumer and "+16.80 mA" in consumer
    producer = next(line for line in lines if "producer CH2:" in line)
    assert "12.000 V" in producer and "+1200.0 mW" in producer


def test_check_while_the_service_runs_finds_its_configuration(tmp_path, adapter, chip):
    cfg = _cfg(tmp_path, sample_interval_s=0.1)
    service = INA3221Sensor.from_config(cfg.meter)
    service.open()  # the running daemon configured the chip and holds the bus
    writes = list(chip.config_writes)
    code, lines = _check(cfg)
    service.close()
    assert code == 0 and chip.config_writes == writes
    assert any(f"chip configuration 0x{service.config_word:04x}" in line
               and "matches the config file" in line for line in lines), lines


def test_a_saturated_channel_fails_check_with_the_shunt_to_fit(tmp_path, adapter, chip):
    chip.set_input(2, current_ma=2000.0, load_v=12.0)
    code, lines = _check(_cfg(tmp_path))
    producer = next(line for line in lines if "producer CH2:" in line)
    assert code == 1 and producer.startswith("FAIL")
    assert "the 0.1 ohm shunt reads at most 1.638 A; for more, fit 0.05 ohm" in producer


def test_a_powered_down_chip_is_reported_not_read_as_zero(tmp_path, adapter, chip):
    chip.config = 0x7120  # power-down: the registers hold the last conversion
    _, lines = _check(_cfg(tmp_path))
    text = "\n".join(lines)
    assert "power-down" in text and "not measuring" in text


@pytest.mark.parametrize(("word", "text"), [
    (0x7127, "CH1, CH2 and CH3 on, 1 average, bus 1100 us, shunt 1100 us,"
             " shunt and bus continuous"),
    (0x4000 | 7 << 9 | 0 << 6 | 7 << 3 | 0b011, "CH1 on, 1024 averages, bus 140 us,"
                                                 " shunt 8244 us, shunt and bus single-shot"),
    (0x0000, "no channel on, 1 average, bus 140 us, shunt 140 us, power-down"),
])
def test_decode_configuration(word, text):
    assert decode_configuration(word).describe() == text


def test_check_says_since_when_payments_have_been_failing(tmp_path, adapter):
    from p2p_energy.store.ledger import Ledger

    cfg = _cfg(tmp_path)
    ledger = Ledger(cfg.ledger.path)
    ledger.set_health(1_795_000_000.0, 12, "getBalances: node http://n:14265 did not answer")
    ledger.close()
    code, lines = _check(cfg)
    assert code == 1
    assert ("FAIL payments failing since 2026-11-18T11:06:40.000Z (12 failed attempts):"
            " getBalances: node http://n:14265 did not answer") in lines
    ledger = Ledger(cfg.ledger.path)
    ledger.set_health(None, 0, "")  # working again
    ledger.close()
    assert _check(cfg)[0] == 0
