"""``p2p-energy check`` judges what ``run`` and ``serve`` will need the way they do."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from p2p_energy import config
from p2p_energy.commands.check import cmd_check


def _cfg(tmp_path: Path, **sections: dict[str, Any]) -> config.Config:
    data: dict[str, dict[str, Any]] = {
        "meter": {"sensor": "simulated"}, "wallet": {"backend": "dry-run"},
        "ledger": {"path": str(tmp_path / "ledger.db")}}
    data.update(sections)
    return config.build(data, source=str(tmp_path / "config.toml"))


def _check(cfg: config.Config) -> tuple[int, list[str]]:
    lines: list[str] = []
    code = cmd_check(cfg, argparse.Namespace(), lines.append)
    return code, lines


def _mqtt(tmp_path: Path, mode: int) -> config.Config:
    pw = tmp_path / "mqtt-password"
    pw.write_text("hunter2secret\n")
    pw.chmod(mode)
    return _cfg(tmp_path, mqtt={"enabled": True, "username": "meter",
                                "password_file": "mqtt-password"})


def test_check_refuses_a_shared_mqtt_password_file_as_serve_does(tmp_path):
    cfg = _mqtt(tmp_path, 0o644)
    code, lines = _check(cfg)
    assert code == 1
    fail = [line for line in lines if line.startswith("FAIL")]
    assert fail == [f"FAIL mqtt password: {tmp_path / 'config.toml'}: mqtt.password_file ="
                    f' "mqtt-password": password file is readable by group and others'
                    f" (mode 0644): run chmod 600 {tmp_path / 'mqtt-password'}"]
    assert not any("hunter2secret" in line for line in lines)


def test_check_passes_an_owner_only_mqtt_password_file(tmp_path):
    code, lines = _check(_mqtt(tmp_path, 0o600))
    assert code == 0, lines
    assert "ok   mqtt password: read for user 'meter'" in lines
    assert not any("hunter2secret" in line for line in lines)


def test_check_says_nothing_of_mqtt_without_it(tmp_path):
    code, lines = _check(_cfg(tmp_path))
    assert code == 0 and not any("mqtt" in line for line in lines)


# -- a ledger path that cannot work: check says so, run refuses it before making anything


def _files(tmp_path: Path) -> set[str]:
    return {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")}


def _run(tmp_path: Path, ledger_path: Path, capsys) -> tuple[int, str]:
    from p2p_energy.commands.cli import main

    conf = tmp_path / "config.toml"
    conf.write_text(f'[meter]\nsensor = "simulated"\n[wallet]\nbackend = "dry-run"\n'
                    f'[ledger]\npath = "{ledger_path}"\n')
    capsys.readouterr()
    code = main(["run", "-c", str(conf)])
    return code, capsys.readouterr().err


def test_a_ledger_under_a_file_fails_check_and_run(tmp_path, capsys):
    (tmp_path / "notadir").write_text("")
    ledger = tmp_path / "notadir" / "ledger.db"
    code, lines = _check(_cfg(tmp_path, ledger={"path": str(ledger)}))
    assert code == 1
    assert (f"FAIL ledger {ledger}: cannot keep the ledger there: {tmp_path / 'notadir'} is a"
            " file, not a directory; set ledger.path to a file in a directory") in lines
    before = _files(tmp_path)
    code, err = _run(tmp_path, ledger, capsys)
    assert code == 1
    assert err == (f"p2p-energy: {ledger}: cannot keep the ledger there: {tmp_path / 'notadir'}"
                   " is a file, not a directory; set ledger.path to a file in a directory\n")
    assert _files(tmp_path) == before | {"config.toml"}


def test_a_ledger_path_naming_a_directory_fails_check_and_run_leaving_nothing(tmp_path,
                                                                               capsys):
    folder = tmp_path / "state"
    folder.mkdir()
    code, lines = _check(_cfg(tmp_path, ledger={"path": str(folder)}))
    assert code == 1
    assert (f"FAIL ledger {folder}: ledger.path names a directory, not the ledger's file:"
            f" name a file in it, e.g. {folder / 'ledger.db'}") in lines
    before = _files(tmp_path)
    code, err = _run(tmp_path, folder, capsys)
    assert code == 1
    assert err == (f"p2p-energy: {folder}: ledger.path names a directory, not the ledger's"
                   f" file: name a file in it, e.g. {folder / 'ledger.db'}\n")
    assert _files(tmp_path) == before | {"config.toml"}  # no state.lock


def test_a_ledger_in_a_missing_folder_is_fine_for_check(tmp_path):
    code, lines = _check(_cfg(tmp_path, ledger={"path": str(tmp_path / "new" / "l.db")}))
    assert code == 0
    assert f"ok   ledger {tmp_path / 'new' / 'l.db'}: not created yet (the daemon creates it)" \
        in lines


def test_legacy_check_names_the_change_address_to_fund_while_a_payment_is_in_flight(
        tmp_path, legacy_node) -> None:
    """A deposit to the input's address after signing would stay on a spent address."""
    from dataclasses import replace as dc_replace

    from p2p_energy.commands.check import _check_wallet
    from p2p_energy.config import Config, LedgerConfig
    from p2p_energy.core.metering import RoundTotals
    from p2p_energy.core.pricing import NANO, Quote
    from p2p_energy.store.ledger import Ledger
    from p2p_energy.wallet.pyota_wallet import PyotaWallet

    from support.node_fixtures import PAYER_SEED, address_of, wallet_config

    legacy_node.fund_seed(PAYER_SEED, 0, 1000)
    w = dc_replace(wallet_config(legacy_node), backend="pyota")
    cfg = Config(ledger=LedgerConfig(path=str(tmp_path / "l.db")), wallet=w)
    ledger = Ledger(cfg.ledger.path)
    wallet = PyotaWallet(w)
    try:
        r = RoundTotals(started_at=0, duration_s=60, metered_s=60, consumer_mws=1,
                        producer_mws=1, samples=1, expected_samples=1, ended_at=60)
        ledger.record_round(r, Quote(1.0, False, 300 * NANO))
        p = ledger.claim_queued()
        signed = wallet.prepare(300, 0)
        ledger.store_signed(p.id, signed, "pyota")
    finally:
        wallet.close()
        ledger.close()
    lines: list[tuple[str, str]] = []
    _check_wallet(cfg, lambda status, what: lines.append((status, what)))
    [deposit] = [what for _, what in lines if "to deposit" in what]
    change = signed.change_index
    assert change != 0
    assert f"use key index {change}, address {address_of(PAYER_SEED, change)}" in deposit
    assert address_of(PAYER_SEED, 0) not in deposit.split("(")[0]
    assert "1000 IOTA at key indexes 0 and" in deposit


def _mqtt_broker(tmp_path: Path, broker: str) -> config.Config:
    pw = tmp_path / "mqtt-password"
    pw.write_text("hunter2secret\n")
    pw.chmod(0o600)
    return _cfg(tmp_path, mqtt={"enabled": True, "username": "meter", "broker": broker,
                                "password_file": "mqtt-password"})


def test_check_warns_when_mqtt_would_send_the_password_unencrypted(tmp_path):
    code, lines = _check(_mqtt_broker(tmp_path, "mqtt://homeassistant.local:1883"))
    assert code == 0  # a warning, not a failure
    warn = [line for line in lines if line.startswith("warn") and "mqtt" in line]
    assert len(warn) == 1 and "mqtt://homeassistant.local:1883 is not encrypted" in warn[0]
    assert "mqtts://" in warn[0] and not any("hunter2secret" in line for line in lines)
    for quiet in ("mqtts://homeassistant.local", "mqtt://127.0.0.1:1883", "mqtt://[::1]",
                  "mqtt://localhost"):
        assert not any(line.startswith("warn") and "mqtt" in line for line in _check(
            _mqtt_broker(tmp_path, quiet))[1]), quiet  # (the clock may warn: not MQTT's)


def test_a_fifo_as_ledger_fails_check_and_run_without_waiting(tmp_path, capsys):
    fifo = tmp_path / "ledger.db"
    os.mkfifo(fifo)
    code, lines = _check(_cfg(tmp_path, ledger={"path": str(fifo)}))
    assert code == 1
    assert (f"FAIL ledger {fifo}: ledger.path names something that is not a regular file"
            " (a FIFO, a device)") in lines
    code, err = _run(tmp_path, fifo, capsys)  # before: "disk I/O error"
    assert code == 1 and "not a regular file" in err and len(err.splitlines()) == 1
