"""Shared pytest fixtures. Add your own below; keep big ones in their own module."""

import compileall
import sysconfig
from pathlib import Path

import pytest

from iota_fixtures import iota_node  # noqa: F401  (the IOTA JSON-RPC test node)
from node_fixtures import legacy_node  # noqa: F401  (the legacy IOTA test node)
from paying_daemon import ledger_dir  # noqa: F401  (a tmpfs folder for a daemon's ledger)
from sdk_judge import iota_sdk_judge  # noqa: F401  (the IOTA SDK, installed by npm ci once)


def pytest_configure(config: pytest.Config) -> None:
    """Byte-compile the environment once, before any test (and any worker) starts.

    The daemons the tests start must not compile PyOTA and httpx in the payer thread
    while the sampling loop waits for the GIL (the tests check its rhythm): with
    ``PYTHONDONTWRITEBYTECODE`` set, as on many CI machines, Python would compile
    them again at every start. compileall writes .pyc files whatever that says, and
    skips what is compiled already (the service's install does the same with ``uv
    sync --compile-bytecode``; README, "Development").
    """
    if hasattr(config, "workerinput"):  # an xdist worker: the controller did it
        return
    for folder in (sysconfig.get_paths()["purelib"], Path(__file__).parent.parent / "p2p_energy"):
        compileall.compile_dir(str(folder), quiet=2)


# Node ids of tests marked xdist_group that pytest-xdist did not group (see below).
_UNGROUPED = pytest.StashKey[list[str]]()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``--dist loadgroup`` (pyproject.toml), note tests whose group was lost.

    pytest-xdist keeps the tests of one ``xdist_group`` on one worker by adding
    ``@group`` to their node ids; with pytest 9.2 that silently stopped working
    (pytest-xdist issue 1386), and the legacy paying-daemon tests then ran beside
    each other and missed their node timeouts. Hence the pin of pytest in
    pyproject.toml, and ``xdist_groups_in_effect`` says so if it ever happens again.
    """
    if getattr(config.option, "loadgroup", False):  # xdist workers under --dist loadgroup
        config.stash[_UNGROUPED] = [item.nodeid for item in items if "@" not in item.nodeid
                                    and item.get_closest_marker("xdist_group")]


@pytest.fixture(scope="session", autouse=True)
def xdist_groups_in_effect(pytestconfig: pytest.Config) -> None:
    ungrouped = pytestconfig.stash.get(_UNGROUPED, [])
    if ungrouped:
        pytest.fail(f"pytest-xdist did not group {len(ungrouped)} tests marked xdist_group"
                    f" (e.g. {ungrouped[0]}): this pytest and pytest-xdist do not work"
                    " together under --dist loadgroup (see tests/conftest.py)", pytrace=False)
