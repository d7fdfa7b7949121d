"""The README's shell steps work when typed top to bottom by a first-time Pi owner."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def _commands(text: str) -> list[str]:
    """Every command line of the ```sh blocks, in reading order."""
    return [line.strip() for block in re.findall(r"```sh\n(.*?)```", text, re.S)
            for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


ALL = _commands(README.read_text())
PI = _commands(README.read_text().split("## Install on a Raspberry Pi", 1)[1])


def _first(commands: list[str], pattern: str) -> int:
    return next(i for i, c in enumerate(commands) if re.search(pattern, c))


def test_the_service_user_is_used_only_after_it_is_created():
    created = _first(ALL, r"useradd .*\bp2p-energy$")
    uses = [i for i, c in enumerate(ALL)
            if re.search(r"(adduser|usermod .*|-u|User=)\s*p2p-energy\b", c)]
    assert uses and all(i > created for i in uses), [ALL[i] for i in uses if i < created]


def test_the_unit_alone_puts_the_service_in_group_i2c():
    unit = (README.parent / "systemd" / "p2p-energy.service").read_text()
    assert "SupplementaryGroups=i2c" in unit
    assert not [c for c in ALL if re.search(r"(adduser|usermod).*p2p-energy", c)]


def test_the_pi_install_makes_its_checkout_after_installing_git():
    git = _first(PI, r"apt-get install .*\bgit\b")
    clone = _first(PI, r"^git clone ")
    assert git < clone < _first(PI, r"git archive")


def test_commands_that_need_the_checkout_run_in_it():
    """After `cd /opt/p2p-energy`, a later `git pull` or `git archive` would not find the repo."""
    where = ""
    for c in PI:
        for target in re.findall(r"(?:^|&& )cd (\S+)", c):
            where = target
        if re.search(r"^git (pull|archive)", c):
            assert where == "~/p2p-energy", (c, where)


def test_i2c_tools_are_installed_before_i2cdetect_runs():
    assert _first(ALL, r"apt(-get)? install .*i2c-tools") < _first(ALL, r"i2cdetect")


def _pyproject() -> dict:
    import tomllib
    return tomllib.loads((README.parent / "pyproject.toml").read_text())


def test_the_service_install_compiles_bytecode_once_and_carries_no_dev_tools():
    """`[tool.uv] compile-bytecode` would recompile the environment at every `uv run`;
    the service's `uv sync` compiles it once instead, without the dev group."""
    project = _pyproject()
    assert "compile-bytecode" not in project.get("tool", {}).get("uv", {})
    dev = {re.split(r"[<>=!~ ]", d)[0] for d in project["dependency-groups"]["dev"]}
    assert {"pytest", "ruff", "hypothesis"} <= dev
    runtime = {re.split(r"[<>=!~ \[]", d)[0] for d in project["project"]["dependencies"]}
    assert not dev & runtime
    syncs = [c for c in PI if re.search(r"\buv sync\b", c)]
    assert len(syncs) >= 2  # install and upgrade
    for c in syncs:
        assert "--no-dev" in c and "--compile-bytecode" in c and "--frozen" in c, c


def test_uv_is_installed_in_a_way_that_works_on_raspberry_pi_os_bookworm():
    """PEP 668: a bare `pip install uv` is refused there ("externally-managed-environment")."""
    text = README.read_text()
    assert not re.search(r"(?<![\w-])pip3? install (--user )?uv\b", text)
    assert "curl -LsSf https://astral.sh/uv/install.sh | sh" in text
    assert "pipx install uv" in text


def test_the_clone_line_names_a_repository():
    clones = [c for c in ALL if c.startswith("git clone")]
    assert clones and not [c for c in clones if "<" in c]
    text = README.read_text()
    assert "<this repository>" not in text
    assert re.search(r"^REPO=\S+", text, re.M)  # set once, named in the text
