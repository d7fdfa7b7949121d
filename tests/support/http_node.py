"""What our test nodes share: serving on 127.0.0.1 in a thread, and injected faults.

A node class sets ``FAULTS``, ``NAME`` and ``handler`` (its request handler,
which reaches the node as ``self.node``), calls ``_init_http`` and offers a
``set_fault`` that names its own filter (API commands, JSON-RPC methods) and
calls ``_set_fault``. The handler asks ``_take_fault(name)`` per request.
``refuse`` closes the listening socket until the fault is cleared; a held
(``hang``) request is released by ``clear_fault``, a new fault or ``stop``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Fault:
    kind: str
    names: frozenset[str] | None  # only requests for these (None: all)
    remaining: int | None  # only this many more requests (None: until cleared)
    answer: Any = None  # what a node sends instead, for faults that carry an answer


class HttpNode:
    FAULTS: tuple[str, ...] = ()
    PASSIVE_FAULTS = frozenset({"refuse"})  # faults no single request takes
    NAME = "test-node"
    handler: type[BaseHTTPRequestHandler]

    def _init_http(self, *, port: int, hang_s: float) -> None:
        self.port = port
        self.hang_s = hang_s
        self._lock = threading.RLock()
        self._fault: Fault | None = None
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Any:
        """Listen on 127.0.0.1 (``port`` 0: an ephemeral one) in a daemon thread."""
        handler = type("Handler", (self.handler,), {"node": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name=f"{self.NAME}-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening; held (hanging) requests are released."""
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def serve_until_interrupted(self, name: str, detail: str) -> None:
        """For manual runs: serve until Ctrl-C (the first line printed names the URL)."""
        self.start()
        print(f"{name} on {self.url} ({detail}); Ctrl-C stops it", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            self.stop()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _set_fault(self, kind: str, names: Iterable[str] | None, times: int | None,
                   answer: Any = None) -> None:
        if kind not in self.FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {self.FAULTS}")
        self._release.set()  # requests held by an earlier ``hang`` go on
        self._release.clear()
        # Swap in one step: no request may slip through unfaulted between two faults.
        with self._lock:
            old, self._fault = self._fault, Fault(kind, frozenset(names) if names else None,
                                                  times, answer)
        if kind == "refuse" and self._server is not None:
            port = self.port
            self.stop()
            self.port = port
        elif kind != "refuse" and old is not None and old.kind == "refuse" \
                and self._server is None:
            self.start()

    def clear_fault(self) -> None:
        """Behave again (and listen again after ``refuse``)."""
        fault, self._fault = self._fault, None
        self._release.set()
        if fault is not None and fault.kind == "refuse" and self._server is None:
            self._release.clear()
            self.start()

    @contextmanager
    def fault(self, kind: str, **kwargs: Any) -> Iterator[None]:
        """``with node.fault("http500"): ...`` sets a fault for the block."""
        self.set_fault(kind, **kwargs)  # type: ignore[attr-defined]
        try:
            yield
        finally:
            self.clear_fault()

    def _take_fault(self, name: str) -> Fault | None:
        """The fault this request (command or method ``name``) meets, counting it."""
        with self._lock:
            f = self._fault
            if f is None or f.kind in self.PASSIVE_FAULTS:
                return None
            if f.names is not None and name not in f.names:
                return None
            if f.remaining is not None:
                f.remaining -= 1
                if f.remaining <= 0:
                    self._fault = None
            return f


class JsonHandler(BaseHTTPRequestHandler):
    """A node's request handler: quiet, one request per connection, JSON answers."""

    protocol_version = "HTTP/1.0"  # one request per connection: "refuse" takes effect at once

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        self._send_raw(status, json.dumps(payload).encode(), "application/json")

    def _send_raw(self, status: int, body: bytes, content_type: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout): nothing to tell it
