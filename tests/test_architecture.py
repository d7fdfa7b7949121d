"""The architecture holds: imports point down only (import-linter's contracts in
pyproject.toml), no module circles, no backend name compared outside ``wallet/``, and a
new wallet backend is one module plus one registry line."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from p2p_energy import backends

PACKAGE = Path(__file__).resolve().parent.parent / "p2p_energy"


def test_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint)], capture_output=True, text=True, timeout=120,
                         cwd=PACKAGE.parent)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def test_no_module_imports_itself_through_others() -> None:
    """No circles, lazy (in-function) imports included."""
    import grimp

    graph = grimp.build_graph("p2p_energy")
    circles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if imported != module and graph.chain_exists(importer=imported, imported=module):
                circles.append((module, imported))
    assert circles == []


def _compared_names(path: Path) -> list[tuple[int, str]]:
    names = set(backends.names())
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Compare):
            for side in (node.left, *node.comparators):
                if isinstance(side, ast.Constant) and side.value in names:
                    found.append((node.lineno, side.value))
    return found


def test_no_backend_name_is_compared_outside_wallet() -> None:
    outside = [p for p in PACKAGE.rglob("*.py") if "wallet" not in p.relative_to(PACKAGE).parts]
    found = {str(p.relative_to(PACKAGE)): _compared_names(p) for p in outside}
    assert {k: v for k, v in found.items() if v} == {}


@pytest.fixture
def fourth(monkeypatch):
    monkeypatch.setitem(backends.REGISTRY, "test-coin", "support.fourth_backend")  # the one line


def test_a_fourth_backend_is_one_module_and_one_registry_line(fourth, tmp_path, capsys
                                                               ) -> None:
    from p2p_energy import config
    from p2p_energy.commands.check import _check_wallet
    from p2p_energy.commands.cli import main
    from p2p_energy.runtime.build import wallet_opener
    from p2p_energy.wallet.base import ledger_unit, reference_key

    path = tmp_path / "c.toml"
    path.write_text('[wallet]\nbackend = "test-coin"\nreceiver = "tc:neighbour"\n'
                    "[wallet.testcoin]\nconfirmations = 3\n"
                    f'[ledger]\npath = "{tmp_path / "l.db"}"\n')
    path.chmod(0o600)
    cfg = config.load(path)
    assert (cfg.wallet.node_url, cfg.wallet.min_payment) == ("http://127.0.0.1:1", 7)
    assert cfg.wallet.testcoin.confirmations == 3
    assert (ledger_unit("test-coin"), reference_key("test-coin")) == ("mTEST", "tc_reference")
    wallet = wallet_opener(cfg)()
    wallet.send(wallet.attach(wallet.prepare(9, 0)))
    assert wallet.sent == [9]
    lines: list[tuple[str, str]] = []
    _check_wallet(cfg, lambda status, text: lines.append((status, text)))
    assert lines == [("ok", "test coin: 3 confirmation(s), key index 0")]
    assert main(["wallet", "address", "-c", str(path)]) == 0
    assert capsys.readouterr().out.strip() == "tc:me"
    assert main(["wallet", "mint", "5"]) == 0  # a subcommand of its own, no config
    assert capsys.readouterr().out == "minted 5 mTEST\n"
    path.write_text('[wallet]\nbackend = "test-coin"\nreceiver = "0x' + "e1" * 32 + '"\n')
    with pytest.raises(config.ConfigError, match=r"wallet\.receiver = .*: must start with tc:"):
        config.load(path)
    path.write_text('[wallet]\nbackend = "test-coin"\n[wallet.testcoin]\nconfirmations = 0\n')
    with pytest.raises(config.ConfigError, match=r"wallet\.testcoin\.confirmations = 0"):
        config.load(path)


def test_a_wallet_subcommand_without_config_is_one_backends(fourth, monkeypatch) -> None:
    """No config says which backend would run it: two offering one is refused."""
    import dataclasses

    from p2p_energy.commands.wallet_cmd import offered
    from p2p_energy.wallet.iota_backend import NEW_KEY

    from support import fourth_backend

    assert [(c.name, c.needs_config) for c in offered().values()] == [
        ("new", False), ("address", True), ("mint", False)]
    monkeypatch.setattr(fourth_backend, "BACKEND", dataclasses.replace(
        fourth_backend.BACKEND, commands=(NEW_KEY,)))
    with pytest.raises(ValueError, match="wallet new: offered by two backends"):
        offered()


def test_a_wallet_subcommand_of_another_backend_is_refused_by_name(fourth, tmp_path,
                                                                   capsys) -> None:
    from p2p_energy.commands.cli import main

    path = tmp_path / "c.toml"
    path.write_text('[wallet]\nbackend = "dry-run"\n')
    assert main(["wallet", "address", "-c", str(path)]) == 2
    assert 'wallet address needs backend = "iota" or "test-coin", not "dry-run"' \
        in capsys.readouterr().err
