"""The HTTP server of ``serve``, bounded for a LAN that may hold a hostile client.

What one client can take, and what it gets:

- time: each request must arrive and be answered within ``timeout_s`` of the
  connection's start or its last answer (an idle keep-alive connection too);
  a sweeper thread shuts down late connections, so a client that sends a byte
  every few seconds is cut off as surely as a silent one;
- threads and files: at most ``max_connections`` at once (lowered to fit the
  open-file limit), each with one thread; one more is answered 503 at once,
  from the accepting thread, and closed. The listen backlog is 128. When
  ``accept()`` still runs out of files it pauses instead of spinning;
- a request cut off before its headers ended is dropped unanswered;
- a ``Host`` that is not an IP address, this machine or an allowed name is
  refused (403): a web page whose name was made to point here (DNS rebinding)
  cannot read the figures;
- every answer, the standard library's own error pages too, carries the CSP,
  ``nosniff`` and ``no-store``;
- what clients do wrong (resets, timeouts, refusals) is one log line per
  episode through the logger, never a traceback on stderr.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import logging
import math
import resource
import socket
import sys
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import BinaryIO
from urllib.parse import urlsplit

from .. import __version__
from .episodes import Episodes

log = logging.getLogger(__name__)

LISTEN_BACKLOG = 128
FILES_PER_CONNECTION = 4  # its socket, and a ledger reader's file, -wal and -shm
FILES_RESERVED = 32  # Python, the listening socket, the MQTT client, the journal...
TEXT = "text/plain; charset=utf-8"

# A page of ours needs nothing from anywhere else.
CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; connect-src 'self';"
       " img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = (("Cache-Control", "no-store"), ("Content-Security-Policy", CSP),
                    ("X-Content-Type-Options", "nosniff"))

Reply = tuple[int, str, bytes]  # status, Content-Type, body
Answer = Callable[[str, str], Reply]  # (path, query) -> reply


def json_reply(obj: object) -> Reply:
    """200 with ``obj`` as compact JSON (every route that answers JSON)."""
    return HTTPStatus.OK, "application/json", json.dumps(obj, separators=(",", ":")).encode()


def _busy_reply() -> bytes:
    body = b"busy: too many connections at once; try again in a few seconds\n"
    head = [f"HTTP/1.1 503 {HTTPStatus.SERVICE_UNAVAILABLE.phrase}",
            f"Content-Type: {TEXT}", f"Content-Length: {len(body)}", "Retry-After: 5",
            "Connection: close", *(f"{k}: {v}" for k, v in SECURITY_HEADERS)]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


BUSY = _busy_reply()


@dataclass(frozen=True)
class Limits:
    """What one client may take: from ``[serve]`` (README, "What a client can take")."""

    timeout_s: float = 15.0
    max_connections: int = 64
    allowed_hosts: frozenset[str] = frozenset()  # besides IP addresses


def connection_cap(wanted: int, open_files_limit: int) -> int:
    """``wanted``, lowered so that that many connections, each with a ledger reader, fit
    under the open-file limit (``ulimit -n``): past it ``accept()`` fails and no one is
    answered."""
    fit = (open_files_limit - FILES_RESERVED) // FILES_PER_CONNECTION
    return max(1, min(wanted, fit))


def open_files_limit() -> int:
    """This process's open-file limit (``ulimit -n``, systemd's ``LimitNOFILE``)."""
    try:
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except OSError:  # a seccomp filter that refuses prlimit64: Linux's default
        return 1024
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def own_host_names(listen_host: str, extra: tuple[str, ...] = ()) -> frozenset[str]:
    """Names this server answers to: localhost, the listen address, this machine's
    names (and ``<hostname>.local``, as mDNS gives it), and ``extra``, in lowercase."""
    hostname = socket.gethostname().lower()
    names = {"localhost", listen_host.lower(), hostname, f"{hostname.split('.')[0]}.local"}
    with suppress(OSError):
        names.add(socket.getfqdn().lower())
    names.update(extra)
    return frozenset(n.rstrip(".") for n in names if n and n not in ("0.0.0.0", "::"))


def host_of(header: str) -> str:
    """The name in a ``Host`` header, without its port, lowercase: ``[::1]:80`` -> ``::1``."""
    text = header.strip().lower()
    if text.startswith("["):
        return text[1:].partition("]")[0]
    name, sep, port = text.rpartition(":")
    return name if sep and port.isdigit() else text


def host_allowed(header: str, names: frozenset[str]) -> bool:
    """An IP address (a page cannot rebind one: its origin would be that address), or
    one of ``names``."""
    host = host_of(header).rstrip(".")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host in names
    return True


class _Lines:
    """The request's reader, remembering whether the last line it gave ended in a newline:
    if not, the client went away mid-request."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.whole = True

    def readline(self, limit: int = -1) -> bytes:
        line = self.raw.readline(limit)
        self.whole = line.endswith(b"\n")
        return line

    def read(self, size: int = -1) -> bytes:
        return self.raw.read(size)

    def close(self) -> None:
        self.raw.close()


class Handler(BaseHTTPRequestHandler):
    server: Server
    server_version = f"p2p-energy/{__version__}"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    # Not 0.9: every answer, an error to a request line without a version too, then has
    # a status line and headers (the CSP).
    default_request_version = "HTTP/1.0"
    error_content_type = TEXT
    error_message_format = "%(code)d %(message)s\n"

    def setup(self) -> None:
        self.timeout = self.server.limits.timeout_s  # each recv and send; the sweeper: all
        super().setup()
        self.rfile = _Lines(self.rfile)  # type: ignore[assignment]

    def handle_one_request(self) -> None:
        super().handle_one_request()
        self.server.renew(self.connection)

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        if not self.rfile.whole:  # type: ignore[attr-defined]
            # Cut off before the headers ended: nobody is waiting for an answer.
            self.close_connection = True
            return False
        host = self.headers.get("Host")
        if host is not None and not host_allowed(host, self.server.limits.allowed_hosts):
            self.server.episodes.note(
                "host", logging.WARNING, "HTTP: refused a request for a host that is not"
                " this one (a web page whose name points here?); add the name to"
                " serve.allowed_hosts if it is ours: %r", host_of(host)[:80])
            self.close_connection = True
            self._send(HTTPStatus.FORBIDDEN, TEXT, b"this server does not answer to that"
                       b" host name (serve.allowed_hosts)\n", body=self.command != "HEAD")
            return False
        return True

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, body: bool) -> None:
        url = urlsplit(self.path)
        status, ctype, data = self.server.answer(url.path, url.query)
        self._send(status, ctype, data, body=body)

    def _send(self, status: int, ctype: str, data: bytes, *, body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        if status == HTTPStatus.SERVICE_UNAVAILABLE:
            self.send_header("Retry-After", "5")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def end_headers(self) -> None:
        for name, value in SECURITY_HEADERS:  # on our answers and the standard library's
            self.send_header(name, value)
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class Server(ThreadingHTTPServer):
    """``serve_forever`` in a thread; ``stop`` ends it and the sweeper."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], answer: Answer, limits: Limits) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.answer = answer
        self.limits = limits
        self.episodes = Episodes(log)
        self._slots = threading.BoundedSemaphore(limits.max_connections)
        self._due: dict[socket.socket, float] = {}  # connection -> monotonic deadline
        self._due_lock = threading.Lock()
        self._stopping = threading.Event()
        self._sweeper = threading.Thread(target=self._sweep, name="http-sweeper", daemon=True)
        super().__init__(address, Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in str(host) else host
        return f"http://{host}:{port}/"

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="http", daemon=True)
        self._sweeper.start()
        thread.start()
        return thread

    def stop(self) -> None:
        self._stopping.set()
        self.shutdown()
        self.server_close()

    # -- connections: a slot each, and a deadline ---------------------------------------------

    def get_request(self) -> tuple[socket.socket, object]:
        try:
            return super().get_request()
        except OSError as err:
            if err.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                self.episodes.note("files", logging.WARNING, "HTTP: cannot accept a"
                                   " connection: %s; pausing", err.strerror)
                self._stopping.wait(0.1)  # the listening socket stays readable: no spinning
            raise

    def process_request(self, request: socket.socket, client_address: object) -> None:
        if not self._slots.acquire(blocking=False):
            self._refuse(request)
            return
        self.renew(request)
        super().process_request(request, client_address)

    def renew(self, connection: socket.socket) -> None:
        """The connection's next request has ``timeout_s`` from now."""
        with self._due_lock:
            self._due[connection] = time.monotonic() + self.limits.timeout_s

    def shutdown_request(self, request: socket.socket) -> None:
        with self._due_lock:
            held = self._due.pop(request, None) is not None
        super().shutdown_request(request)
        if held:
            self._slots.release()

    def _refuse(self, request: socket.socket) -> None:
        """503 from the accepting thread: a fresh socket's buffer takes it without waiting."""
        self.episodes.note("full", logging.WARNING, "HTTP: %d connections at once"
                           " (serve.max_connections): answering 503 to more",
                           self.limits.max_connections)
        with suppress(OSError):
            request.setblocking(False)
            request.send(BUSY)
            request.shutdown(socket.SHUT_WR)
            request.recv(65536)  # what it sent so far: closing on unread data resets
        request.close()

    def _sweep(self) -> None:
        tick_s = min(1.0, self.limits.timeout_s / 4)
        while not self._stopping.wait(tick_s):
            now = time.monotonic()
            with self._due_lock:
                late = [c for c, due in self._due.items() if due <= now]
                for connection in late:  # its thread forgets it when it ends
                    self._due[connection] = math.inf
            for connection in late:  # wakes its thread: its recv ends, its send fails
                with suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
            if late:
                self.episodes.note("late", logging.WARNING, "HTTP: closed %d connection(s)"
                                   " idle or unanswered after %g s (serve.timeout_s)",
                                   len(late), self.limits.timeout_s)

    def handle_error(self, request: object, client_address: object) -> None:
        """A request thread failed outside any route: one line per episode, no traceback
        on stderr (the standard library's own would bypass the logger)."""
        err = sys.exc_info()[1]
        who = client_address[0] if isinstance(client_address, tuple) else client_address
        if isinstance(err, ConnectionError | TimeoutError) or (
                isinstance(err, OSError) and err.errno in (errno.ENOTCONN, errno.EBADF)):
            self.episodes.note("gone", logging.INFO, "HTTP: a client went away mid-request"
                               " (%s: %s)", who, type(err).__name__)
        else:
            self.episodes.note("error", logging.ERROR, "HTTP: answering %s failed", who,
                               exc_info=True)
