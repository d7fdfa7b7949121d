"""``p2p-energy check`` judges what ``run`` and ``serve`` will need the way they do."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from p2p_energy import config
from p2p_energy.check import cmd_check


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
