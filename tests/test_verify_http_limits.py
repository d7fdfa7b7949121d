"""``verify`` against a hostile or broken HTTP server: a body cut short, a body trickled.

A raw TCP server on 127.0.0.1 stands in for a consumer's serve gone wrong (or a
consumer playing for time): verify ends, one line, exit 2, never hangs.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest

from support.log_server import SignedLog


def serve_raw(answer: Callable[[socket.socket], None]) -> tuple[str, threading.Event]:
    """A server answering every connection with ``answer``; returns its URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def loop() -> None:
        listener.settimeout(0.2)
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                with contextlib.suppress(OSError):  # verify hung up: what the test wants
                    answer(conn)
        listener.close()
    threading.Thread(target=loop, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}", done


def verify(url: str, key: str, tmp, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "p2p_energy", "verify", url, "--key", key,
                           "--state", str(tmp / "state"), *extra],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def log() -> SignedLog:
    signed = SignedLog()
    signed.add_rounds(3)
    return signed


def test_a_checkpoint_cut_short_is_said_so(tmp_path, log):
    note = log.checkpoint()

    def cut(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
                     + str(len(note)).encode() + b"\r\n\r\n" + note[:40])
    url, done = serve_raw(cut)
    try:
        out = verify(url, log.verifier_key, tmp_path)
    finally:
        done.set()
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert f"answer cut short (40 of {len(note)} bytes)" in out.stderr
    assert not (tmp_path / "state").exists()


def test_a_server_trickling_its_answer_cannot_hold_verify_past_its_timeout(tmp_path, log):
    note = log.checkpoint()

    def trickle(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
                     + str(len(note)).encode() + b"\r\n\r\n")
        for byte in note:  # one byte every 0.3 s: each read is on time, the whole is not
            conn.sendall(bytes([byte]))
            time.sleep(0.3)
    url, done = serve_raw(trickle)
    try:
        started = time.monotonic()
        out = verify(url, log.verifier_key, tmp_path, "--timeout-s", "1")
        took = time.monotonic() - started
    finally:
        done.set()
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "no answer within 1 s" in out.stderr
    assert took < 0.3 * len(note) / 2  # stopped long before the server would have finished
