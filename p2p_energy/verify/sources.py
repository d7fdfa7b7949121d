"""Where ``verify`` reads a log: the consumer's ``serve`` over HTTP, or an export file.

``open_source(text)``: ``http://`` or ``https://host:port`` (a path prefix
allowed) is an ``HttpSource``; anything else names an export file
(``core.export``), a ``FileSource``. Both give the signed checkpoint's bytes
and the entries, one at a time; only HTTP gives consistency proofs.

The HTTP endpoints (the consumer's ``serve`` publishes them):

- ``GET /log/checkpoint``: the signed checkpoint note, bytes exactly as signed;
- ``GET /log/entries?start=N&end=M``: ``{"entries": [base64, ...]}`` for
  indexes N to M-1, at most 1000 an answer; a server may give fewer (asked
  again from where it stopped); none at all, or HTTP 404 (``serve``'s answer
  for a start at or past its log's end), for a range the checkpoint covers ends
  the entries there (the verifier counts the rest as missing);
- ``GET /log/proof/consistency?from=M&to=N``: ``{"proof": [base64 hash, ...]}``
  (RFC 6962 2.1.2).

Every request has a timeout (``timeout_s``: to connect, and for the whole
answer to arrive, however slowly it trickles), a body as long as its
Content-Length says (else "cut short"), and a bounded answer: a checkpoint
of at most 64 KiB, a proof of 64 KiB, a page of entries of at most 16 MiB
(when a page would be larger, fewer entries are asked for, down to one: an
entry is at most 64 KiB). Failures raise ``SourceError``:
one line, naming the URL and what went wrong.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import urlsplit

from ..core.export import ExportReader
from ..errors import ExportError, SourceError

PAGE_ENTRIES = 1000  # what the serve gives at most per answer
MAX_NOTE_BYTES = 65_536
MAX_PROOF_BYTES = 65_536
MAX_PAGE_BYTES = 16 * 1024 * 1024
_CHUNK = 65_536  # read at a time, the clock checked between reads
DEFAULT_TIMEOUT_S = 30.0


class Source(Protocol):
    where: str  # the URL or the file's path, for messages
    has_proofs: bool  # consistency proofs (HTTP); without, old roots are rebuilt
    count: int | None  # how many entries it says it holds (an export), None: not said

    def checkpoint(self) -> bytes: ...

    def entries(self, start: int, end: int) -> Iterator[bytes]:
        """Entries ``start`` to ``end - 1``; fewer when the source has no more."""
        ...

    def consistency(self, old_size: int, new_size: int) -> list[bytes]: ...

    def close(self) -> None: ...


def plain_url_problem(url: str) -> str:
    """Why ``url`` may not be used, "" when it may: a user name or password
    (``user:password@``), a query or a fragment may carry a secret, and the URL shows in
    every message and statement. The reason never repeats the URL."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        return ("must not hold a user name or password (user:password@), which would show"
                " in messages")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        return ("must not hold a query (?...) or fragment (#...), which may carry a token"
                " and would show in messages")
    return ""


def open_source(text: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Source:
    """The source ``text`` names (nothing is read yet but a file's header).

    Raises:
        SourceError: an unusable URL, a file that cannot be opened, or one that
            is not a log export.
    """
    if text.startswith(("http://", "https://")):
        return HttpSource(text, timeout_s)
    return FileSource(Path(text))


def _b64(value: Any, what: str) -> bytes:
    """Strict standard base64 with padding (one spelling per byte string)."""
    if isinstance(value, str):
        try:
            data = base64.b64decode(value.encode("ascii"), validate=True)
        except (UnicodeEncodeError, binascii.Error, ValueError):
            data = None
        if data is not None and base64.b64encode(data).decode() == value:
            return data
    raise ValueError(f"{what} is not base64")


class _NotFound(SourceError):
    """HTTP 404: no log here (the checkpoint), or no entry from there on (entries)."""


class HttpSource:
    """The log as the consumer's ``serve`` publishes it at ``url``."""

    has_proofs = True
    count = None

    def __init__(self, url: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        problem = plain_url_problem(url)
        if problem:
            raise SourceError(f"SOURCE {problem}")
        parts = urlsplit(url)
        if not parts.hostname:
            raise SourceError(f"{url!r} is not a log's address: give http(s)://host:port")
        try:
            port = parts.port
        except ValueError:
            raise SourceError(f"{url!r} has no valid port") from None
        self.where = url.rstrip("/")
        self.timeout_s = timeout_s
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname, port
        self._prefix = parts.path.rstrip("/")
        self._conn: Any = None

    def checkpoint(self) -> bytes:
        """The signed checkpoint note, as the server sends it. Raises SourceError."""
        body = self._get("/log/checkpoint", MAX_NOTE_BYTES)
        if body is None:
            raise SourceError(f"{self.where}/log/checkpoint: over {MAX_NOTE_BYTES} bytes:"
                              " not a log")
        return body

    def entries(self, start: int, end: int) -> Iterator[bytes]:
        """Entries ``start`` to ``end - 1``, page by page; stops early when the server
        answers none. Raises SourceError for an answer out of shape."""
        page = PAGE_ENTRIES
        while start < end:
            ask = min(page, end - start)
            path = f"/log/entries?start={start}&end={start + ask}"
            try:
                body = self._get(path, MAX_PAGE_BYTES)
            except _NotFound:
                return  # the server holds no entry from ``start`` on
            if body is None:
                if ask == 1:
                    raise SourceError(f"{self.where}{path}: one entry over"
                                      f" {MAX_PAGE_BYTES} bytes")
                page = max(1, ask // 2)
                continue
            got = self._page(path, body, ask)
            if not got:
                return
            yield from got
            start += len(got)

    def _page(self, path: str, body: bytes, asked: int) -> list[bytes]:
        try:
            answer = json.loads(body)
            items = answer["entries"]
            if not isinstance(items, list):
                raise TypeError("entries is not a list")
            if len(items) > asked:
                raise ValueError(f"{len(items)} entries for {asked} asked")
            return [_b64(item, f"entry {i} of the answer") for i, item in enumerate(items)]
        except (ValueError, KeyError, TypeError) as err:
            raise SourceError(f"{self.where}{path}: not a page of entries:"
                              f" {_one_line(str(err))}") from None

    def consistency(self, old_size: int, new_size: int) -> list[bytes]:
        """The RFC 6962 consistency proof from ``old_size`` to ``new_size`` (hashes).

        Raises SourceError for an answer that is not a proof's shape (a proof
        that does not check is the verifier's business)."""
        return self._proof(f"/log/proof/consistency?from={old_size}&to={new_size}",
                           "a consistency")

    def inclusion(self, index: int, size: int) -> list[bytes]:
        """The RFC 6962 inclusion proof of entry ``index`` in the tree of ``size`` (hashes).

        Raises SourceError for an answer that is not a proof's shape."""
        return self._proof(f"/log/proof/inclusion?index={index}&size={size}", "an inclusion")

    def _proof(self, path: str, kind: str) -> list[bytes]:
        body = self._get(path, MAX_PROOF_BYTES)
        try:
            if body is None:
                raise ValueError(f"over {MAX_PROOF_BYTES} bytes")
            items = json.loads(body)["proof"]
            if not isinstance(items, list):
                raise TypeError("proof is not a list")
            return [_b64(item, f"hash {i}") for i, item in enumerate(items)]
        except (ValueError, KeyError, TypeError) as err:
            raise SourceError(f"{self.where}{path}: not {kind} proof:"
                              f" {_one_line(str(err))}") from None

    def _connection(self) -> Any:
        import http.client
        import ssl

        if self._conn is None:
            if self._https:
                self._conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self.timeout_s,
                    context=ssl.create_default_context())
            else:
                self._conn = http.client.HTTPConnection(self._host, self._port,
                                                        timeout=self.timeout_s)
        return self._conn

    def _get(self, path: str, limit: int) -> bytes | None:
        """The body of a 200 answer to GET ``path``; None when it is over ``limit`` bytes.

        A kept-alive connection the server has closed meanwhile (``serve`` closes one
        idle for its ``timeout_s``, while the verifier asks a node) is opened afresh,
        once. Raises SourceError: unreachable, timed out, or another status
        (``_NotFound`` for 404).
        """
        import http.client

        for attempt in (1, 2):
            reused = self._conn is not None
            try:
                return self._get_once(path, limit)
            except (OSError, http.client.HTTPException) as err:
                self.close()
                stale = reused and isinstance(err, (http.client.RemoteDisconnected,
                                                    ConnectionResetError, BrokenPipeError))
                if not (stale and attempt == 1):
                    raise SourceError(f"{self.where}{path}: cannot be reached:"
                                      f" {_one_line(str(err) or type(err).__name__)}") from None
        raise AssertionError("unreachable")

    def _get_once(self, path: str, limit: int) -> bytes | None:
        """One GET; errors of the connection itself are left to the caller."""
        url = f"{self.where}{path}"
        conn = self._connection()
        try:
            conn.request("GET", self._prefix + path, headers={"Accept": "*/*"})
            response = conn.getresponse()
        except TimeoutError:
            self.close()
            raise SourceError(f"{url}: no answer within {self.timeout_s:g} s") from None
        try:
            length = response.getheader("Content-Length")
            if response.status != 200:
                said = _one_line(response.read(200).decode("utf-8", "replace"), 80)
                self.close()
                kind = _NotFound if response.status == 404 else SourceError
                raise kind(f"{url}: HTTP {response.status} {said}".rstrip()
                           + (": not a log" if response.status == 404 else ""))
            if length is not None and length.isdigit() and int(length) > limit:
                self.close()  # unread: the connection cannot be used again
                return None
            body = self._read_body(response, url, limit)
        except TimeoutError:
            self.close()
            raise SourceError(f"{url}: no answer within {self.timeout_s:g} s") from None
        if len(body) > limit:
            self.close()
            return None
        if length is not None and length.isdigit() and len(body) != int(length):
            self.close()
            raise SourceError(f"{url}: answer cut short ({len(body)} of {length} bytes)")
        if response.will_close:
            self.close()
        return body

    def _read_body(self, response: Any, url: str, limit: int) -> bytes:
        """At most ``limit + 1`` bytes of the body, all within ``timeout_s`` from now (a
        server trickling a byte at a time cannot hold the verifier for longer)."""
        import time

        deadline = time.monotonic() + self.timeout_s
        parts: list[bytes] = []
        got = 0
        while got <= limit:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            sock = getattr(self._conn, "sock", None)
            if sock is not None:
                sock.settimeout(min(left, self.timeout_s))
            chunk = response.read1(min(_CHUNK, limit + 1 - got))
            if not chunk:
                response.read()  # b"" at the end: marks the answer read, so the connection
                break            # can carry the next request
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class FileSource:
    """A log export file (``core.export``), read once, front to back."""

    has_proofs = False

    def __init__(self, path: Path) -> None:
        self.where = str(path)
        try:
            self._fp: BinaryIO = open(path, "rb")  # noqa: SIM115 (closed by close())
        except OSError as err:
            raise SourceError(f"{path}: cannot be opened: {err.strerror}") from None
        try:
            self._reader = ExportReader(self._fp)
        except ExportError as err:
            self._fp.close()
            raise SourceError(f"{path}: not a log: {err}") from None
        except OSError as err:
            self._fp.close()
            raise SourceError(f"{path}: cannot be read: {err.strerror}") from None
        self._next = 0
        self._entries = self._reader.entries()

    @property
    def count(self) -> int:
        """How many entries the export says it holds."""
        return self._reader.count

    def checkpoint(self) -> bytes:
        return self._reader.checkpoint_note

    def entries(self, start: int, end: int) -> Iterator[bytes]:
        """Entries ``start`` to ``end - 1`` of one front-to-back pass: each call must
        start where the last one ended (0 first).

        Raises SourceError: the export is malformed there, or cannot be read."""
        if start != self._next:
            raise ValueError(f"an export is read in order: entry {self._next} next, not"
                             f" {start}")
        while self._next < min(end, self.count):
            try:
                data = next(self._entries)
            except ExportError as err:
                raise SourceError(f"{self.where}: not a log: {err}") from None
            except OSError as err:
                raise SourceError(f"{self.where}: cannot be read: {err.strerror}") from None
            self._next += 1
            yield data
        if self._next == self.count:  # nothing may follow the last entry
            try:
                next(self._entries, None)
            except ExportError as err:
                raise SourceError(f"{self.where}: not a log: {err}") from None

    def consistency(self, old_size: int, new_size: int) -> list[bytes]:
        raise SourceError(f"{self.where}: an export holds no proofs")

    def close(self) -> None:
        self._fp.close()


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."
