"""sd_notify against real Unix datagram sockets, as systemd would bind them."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2p_energy.notify import Notifier, watchdog_interval_s


def _bind(address: str | bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(2.0)
    return sock


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify")
    sock = _bind(path)
    yield sock, path
    sock.close()


def _received(sock: socket.socket) -> bytes:
    return sock.recv(4096)


def test_messages_reach_a_path_socket(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    n = Notifier.from_env({"NOTIFY_SOCKET": path})
    assert n.enabled
    n.ready()
    n.status("round 3: 12.5 mW·s")
    n.watchdog()
    n.stopping()
    assert [_received(sock) for _ in range(4)] == [
        b"READY=1", "STATUS=round 3: 12.5 mW·s".encode(), b"WATCHDOG=1", b"STOPPING=1"]
    n.close()


def test_messages_reach_an_abstract_socket() -> None:
    name = f"p2p-energy-test-{uuid.uuid4().hex}"
    sock = _bind("\0" + name)
    try:
        n = Notifier.from_env({"NOTIFY_SOCKET": "@" + name})
        n.ready()
        assert _received(sock) == b"READY=1"
        n.close()
    finally:
        sock.close()


def test_status_cannot_smuggle_another_assignment(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    Notifier(path).status("line one\nWATCHDOG=trigger")
    assert _received(sock) == b"STATUS=line one WATCHDOG=trigger"


def test_unset_socket_is_a_silent_no_op(caplog: pytest.LogCaptureFixture) -> None:
    n = Notifier.from_env({})
    assert not n.enabled
    n.ready()
    n.status("x")
    n.watchdog()
    n.stopping()
    assert n.send("READY=1") is False
    assert caplog.records == []


def test_from_env_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch,
                                                listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    Notifier.from_env().ready()
    assert _received(sock) == b"READY=1"


def test_a_missing_socket_is_logged_once_and_never_raises(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    n = Notifier(str(tmp_path / "nobody-listens"))
    with caplog.at_level(logging.DEBUG, logger="p2p_energy.notify"):
        for _ in range(3):
            n.watchdog()
        n.ready()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "nobody-listens" in warnings[0].getMessage()
    assert len(caplog.records) == 4  # the rest at debug level


def test_a_full_queue_drops_instead_of_blocking(listener: tuple[socket.socket, str],
                                                caplog: pytest.LogCaptureFixture) -> None:
    # The sampling loop must never wait for systemd: nobody reads, the queue fills.
    _sock, path = listener
    n = Notifier(path)
    results = [n.send("WATCHDOG=1") for _ in range(5000)]
    assert results[0] is True
    assert False in results
    assert sum(r.levelno == logging.WARNING for r in caplog.records) == 1


def test_a_recovered_socket_works_again(tmp_path: Path) -> None:
    path = str(tmp_path / "later")
    n = Notifier(path)
    assert n.send("READY=1") is False
    sock = _bind(path)
    try:
        assert n.send("READY=1") is True
        assert _received(sock) == b"READY=1"
    finally:
        sock.close()


def test_an_unsupported_address_is_a_no_op(caplog: pytest.LogCaptureFixture) -> None:
    n = Notifier("vsock:2:1234")
    assert not n.enabled
    n.ready()
    assert "not a path" in caplog.text


@pytest.mark.parametrize(("env", "expected"), [
    ({}, None),
    ({"WATCHDOG_USEC": "30000000"}, 30.0),
    ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": str(os.getpid())}, 0.5),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "x"}, None),
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "-5"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
])
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval_s(env) == expected


def test_watchdog_interval_reads_the_process_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert watchdog_interval_s() == 2.0
