"""The unit files: systemd accepts them, and `systemd-analyze security` rates each <= 2.0."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from p2p_energy import config

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "p2p-energy.service"
SERVE_UNIT = UNIT.with_name("p2p-energy-serve.service")
UNITS = [pytest.param(UNIT, id="daemon"), pytest.param(SERVE_UNIT, id="serve")]
MAX_EXPOSURE = 2.0
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def _settings(text: str) -> dict[str, list[str]]:
    """``Section.Key`` -> every value given (systemd allows a key more than once)."""
    out: dict[str, list[str]] = defaultdict(list)
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out[f"{section}.{key.strip()}"].append(value.strip())
    return out


def _runnable_copy(tmp_path: Path, unit: Path = UNIT) -> Path:
    """The unit with ExecStart pointing at a binary that exists here.

    `verify` checks that the ExecStart binary exists, and /opt/p2p-energy/.venv
    only exists on an installed Pi. Everything else stays as shipped.
    """
    text = unit.read_text()
    exec_start = "ExecStart=/opt/p2p-energy/.venv/bin/p2p-energy "
    assert exec_start in text
    real = shutil.which("true") or "/bin/true"
    copy = tmp_path / unit.name
    copy.write_text(text.replace(exec_start, f"ExecStart={real} "))
    return copy


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run([ANALYZE, *args], capture_output=True, text=True, timeout=60,
                          check=False)


@needs_analyze
@pytest.mark.parametrize("unit", UNITS)
def test_systemd_verify_accepts_the_unit(tmp_path: Path, unit: Path) -> None:
    copy = _runnable_copy(tmp_path, unit)
    result = _analyze("verify", str(copy))
    # verify exits 0 even for unknown keys, but warns on stderr: any line about
    # our unit is a mistake. (Lines about the host's own units are not ours.)
    ours = [line for line in result.stderr.splitlines() if unit.name in line]
    assert result.returncode == 0, result.stderr
    assert ours == []


@needs_analyze
@pytest.mark.parametrize("unit", UNITS)
def test_security_exposure_is_at_most_2(tmp_path: Path, unit: Path) -> None:
    result = _analyze("security", "--offline=true", str(unit))
    if "offline" in result.stderr and "unrecognized" in result.stderr:
        pytest.skip("this systemd-analyze has no --offline (needs systemd 250 or later)")
    match = re.search(rf"Overall exposure level for {re.escape(unit.name)}: (\d+(?:\.\d+)?)",
                      result.stdout)
    assert match, result.stdout + result.stderr
    exposure = float(match.group(1))
    assert exposure <= MAX_EXPOSURE, result.stdout


def test_unit_promises_what_the_daemon_relies_on() -> None:
    s = _settings(UNIT.read_text())

    def one(key: str) -> str:
        assert len(s[key]) == 1, (key, s[key])
        return s[key][0]

    assert one("Service.Type") == "notify"  # the daemon sends READY=1 (p2p_energy.notify)
    assert one("Service.WatchdogSec")  # ... and WATCHDOG=1 at half of it
    assert one("Service.Restart") == "on-failure"
    assert one("Service.RestartPreventExitStatus") == "2"  # a config error: restarting won't help
    assert one("Service.ExecStart") == ("/opt/p2p-energy/.venv/bin/p2p-energy run"
                                        " -c /etc/p2p-energy/config.toml")
    assert one("Service.ConfigurationDirectory") == "p2p-energy"
    assert one("Service.StateDirectory") == "p2p-energy"
    # The default ledger lives in the state directory, the one writable place.
    assert config.LedgerConfig().path.startswith("/var/lib/p2p-energy/")
    assert one("Service.LoadCredential") == "seed:/etc/p2p-energy/seed"
    assert one("Service.User") == one("Service.Group") == "p2p-energy"
    assert one("Service.SupplementaryGroups") == "i2c"
    assert one("Service.DevicePolicy") == "closed"
    assert one("Service.DeviceAllow") == "char-i2c rw"
    assert "DynamicUser" not in str(dict(s))
    families = set(one("Service.RestrictAddressFamilies").split())
    assert families == {"AF_UNIX", "AF_INET", "AF_INET6"}  # notify socket; the node
    assert one("Service.TimeoutStopSec")
    assert one("Install.WantedBy") == "multi-user.target"


def test_unit_waits_for_the_wall_clock_to_be_synchronised() -> None:
    """time-sync.target is passive: only pulled in (Wants=) and ordered (After=) does it wait,
    and only with systemd-time-wait-sync enabled, which the README has the owner do."""
    s = _settings(UNIT.read_text())
    wants = " ".join(s["Unit.Wants"]).split()
    after = " ".join(s["Unit.After"]).split()
    assert "time-sync.target" in wants and "time-sync.target" in after
    readme = (UNIT.parent.parent / "README.md").read_text()
    assert "sudo systemctl enable systemd-time-wait-sync" in readme


def test_serve_unit_runs_serve_as_the_ledgers_owner_without_devices() -> None:
    s = _settings(SERVE_UNIT.read_text())
    assert s["Service.ExecStart"] == ["/opt/p2p-energy/.venv/bin/p2p-energy serve"
                                      " -c /etc/p2p-energy/config.toml"]
    assert s["Service.Type"] == ["notify"]  # serve sends READY=1 once it listens
    assert s["Service.RestartPreventExitStatus"] == ["2"]
    assert s["Service.User"] == s["Service.Group"] == ["p2p-energy"]  # the ledger dir is 0700
    assert s["Service.StateDirectory"] == ["p2p-energy"]
    assert s["Service.PrivateDevices"] == ["yes"] and "DeviceAllow" not in str(dict(s))
    assert "LoadCredential" not in str(dict(s))  # no seed: serve never signs
    assert "p2p-energy.service" in s["Unit.After"][0] and "Unit.Requires" not in s
    assert set(s["Service.RestrictAddressFamilies"][0].split()) == {"AF_UNIX", "AF_INET",
                                                                    "AF_INET6"}


def test_a_payer_that_keeps_failing_never_reaches_the_start_limit():
    """The payer's fatal exit comes at least FATAL_AFTER_S after a start: the start limit
    (StartLimitBurst starts in StartLimitIntervalSec) can only stop a daemon that fails
    at start-up, never one whose payer keeps dying; that one is restarted every time."""
    from p2p_energy.runtime.payer import FATAL_AFTER_S

    unit = _settings(UNIT.read_text())
    interval = unit["Unit.StartLimitIntervalSec"][0]
    assert interval.endswith("min")
    interval_s = float(interval.removesuffix("min")) * 60
    burst = int(unit["Unit.StartLimitBurst"][0])
    assert unit["Service.Restart"] == ["on-failure"]
    # burst - 1 runs that each last FATAL_AFTER_S outlast the interval.
    assert (burst - 1) * FATAL_AFTER_S > interval_s


@pytest.mark.parametrize("unit", UNITS)
def test_units_allow_no_core_dumps(unit: Path) -> None:
    assert _settings(unit.read_text())["Service.LimitCORE"] == ["0"]


def test_serve_unit_bounds_files_tasks_memory_and_cpu_above_serves_own_limits() -> None:
    """systemd's limits are the last line; serve's own ([serve] max_connections) must come
    first, or a LAN client would meet "too many open files" or a failed thread start."""
    from p2p_energy.serve.server import FILES_PER_CONNECTION, FILES_RESERVED, connection_cap

    s = _settings(SERVE_UNIT.read_text())
    connections = config.ServeConfig().max_connections
    nofile = int(s["Service.LimitNOFILE"][0])
    assert nofile >= FILES_RESERVED + connections * FILES_PER_CONNECTION
    assert connection_cap(connections, nofile) == connections  # not lowered under systemd
    assert int(s["Service.TasksMax"][0]) >= connections + 16  # main, http, sweeper, MQTT...
    memory = s["Service.MemoryMax"][0]
    assert memory.endswith("M") and 150 < int(memory[:-1]) <= 256  # bench/serve.py: <= 150 MB
    quota = s["Service.CPUQuota"][0]
    assert quota.endswith("%") and 10 <= int(quota[:-1]) <= 100  # less than the whole Pi
