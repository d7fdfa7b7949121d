"""Shared pytest fixtures. Add your own below; keep big ones in their own module."""

import compileall
import fcntl
import os
import sysconfig
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from support.iota_fixtures import iota_node  # noqa: F401  (the IOTA JSON-RPC test node)
from support.node_fixtures import legacy_node  # noqa: F401  (the legacy IOTA test node)
from support.paying_daemon import ledger_dir  # noqa: F401  (a tmpfs folder for a daemon's ledger)
from support.sdk_judge import iota_sdk_judge  # noqa: F401  (the IOTA SDK, installed by npm ci once)


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
    # The tests marked ``alone`` last: xdist hands them out when the rest is nearly done,
    # so the other worker waits for them as little as possible (see MachineLock).
    items.sort(key=lambda item: item.get_closest_marker("alone") is not None)


@pytest.fixture(scope="session", autouse=True)
def xdist_groups_in_effect(pytestconfig: pytest.Config) -> None:
    ungrouped = pytestconfig.stash.get(_UNGROUPED, [])
    if ungrouped:
        pytest.fail(f"pytest-xdist did not group {len(ungrouped)} tests marked xdist_group"
                    f" (e.g. {ungrouped[0]}): this pytest and pytest-xdist do not work"
                    " together under --dist loadgroup (see tests/conftest.py)", pytrace=False)


class MachineLock:
    """One lock for the pytest-xdist workers of one run: each test holds it shared, a
    test marked ``alone`` holds it exclusively, with no other test of the run beside it.

    ``alone``: the paying-daemon tests against the legacy node that check the 50 ms
    sampling rhythm (at most 2 % of deadlines missed). Their daemon's loop waits for
    the GIL behind its own payer thread, which signs with PyOTA, and for a CPU behind
    everything else on the machine. Beside test_pyota_wallet.py and test_legacy_node.py
    on the other worker (and other jobs, load average 4-5.5) they missed 16 of 439
    (a failure), 6 of 425, 6 of 481 and 3 of 469 deadlines; alone (load average
    1.4-4.4) none in six runs. Alone, they run as they did before the tests ran in
    parallel; they come last (``pytest_collection_modifyitems``), so that the other
    worker has little left to wait with. The rhythm tests of the dry-run daemons
    (test_cli_end_to_end.py, test_serve_end_to_end.py) have no PyOTA signing in the
    daemon and missed no deadline beside the other worker in any run: they share.
    Outside xdist it does nothing.
    """

    def __init__(self, path: str | None) -> None:
        self._fd = None if path is None else os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    @contextmanager
    def _held(self, how: int) -> Iterator[None]:
        if self._fd is None:
            yield
            return
        fcntl.flock(self._fd, how)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def shared(self):
        return self._held(fcntl.LOCK_SH)

    def alone(self):
        """No other test of this run runs meanwhile (waits for those running to end)."""
        return self._held(fcntl.LOCK_EX)


@pytest.fixture(scope="session")
def machine_lock(tmp_path_factory: pytest.TempPathFactory) -> MachineLock:
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return MachineLock(None)
    # The workers' temporary folders (popen-gw0, ...) share the run's folder.
    return MachineLock(str(tmp_path_factory.getbasetemp().parent / "machine.lock"))


@pytest.fixture(autouse=True)
def share_the_machine(request: pytest.FixtureRequest, machine_lock: MachineLock) -> Iterator[None]:
    """Every test shares the machine with the other workers' tests, unless marked ``alone``."""
    alone = request.node.get_closest_marker("alone") is not None
    with machine_lock.alone() if alone else machine_lock.shared():
        yield
