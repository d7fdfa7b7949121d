"""``/log/...``: the signed log, for the neighbour's ``p2p-energy verify`` and any
RFC 6962 / C2SP tlog client. Read-only, like every route of ``serve``.

    /log/checkpoint                       the latest signed checkpoint (text/plain), as signed
    /log/entries?start=N&end=M            {"entries": [base64, ...]} for indexes N .. M-1,
                                          at most 1000 (fewer at the log's end)
    /log/proof/inclusion?index=I&size=S   {"proof": [base64 hash, ...]}: RFC 6962 2.1.1
    /log/proof/consistency?from=M&to=N    {"proof": [base64 hash, ...]}: RFC 6962 2.1.2

Each answer costs O(log n) reads of the ledger (at most 1000 rows for entries):
no request can make the Pi work through the whole log.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from http import HTTPStatus

from ..store.signed_log import MAX_PAGE, LogView
from .figures import LedgerSource
from .server import TEXT, Reply, json_reply

MAX_INDEX = 2**63 - 1
Query = dict[str, list[str]]


class LogRoutes:
    """The four routes, over the ledger ``source`` names."""

    def __init__(self, source: LedgerSource) -> None:
        self.source = source

    def routes(self) -> dict[str, Callable[[Query], Reply]]:
        return {"/log/checkpoint": self.checkpoint, "/log/entries": self.entries,
                "/log/proof/inclusion": self.inclusion,
                "/log/proof/consistency": self.consistency}

    def checkpoint(self, _q: Query) -> Reply:
        with self.source.open() as reader:
            note = LogView(reader.db).checkpoint()
        if note is None:
            return HTTPStatus.NOT_FOUND, TEXT, b"the signed log has no entry yet\n"
        return HTTPStatus.OK, "text/plain; charset=utf-8", note

    def entries(self, q: Query) -> Reply:
        try:
            start, end = _index(q, "start"), _index(q, "end")
        except ValueError as err:
            return _bad(str(err))
        if end <= start:
            return _bad("end must be above start")
        with self.source.open() as reader, reader.snapshot():
            view = LogView(reader.db)
            size = view.size()
            if start >= size:
                return (HTTPStatus.NOT_FOUND, TEXT,
                        f"the log holds {size} entries: none from {start}\n".encode())
            found = view.entries(start, min(end, start + MAX_PAGE, size))
        return json_reply({"entries": [base64.b64encode(e).decode("ascii") for e in found]})

    def inclusion(self, q: Query) -> Reply:
        try:
            index, size = _index(q, "index"), _index(q, "size")
        except ValueError as err:
            return _bad(str(err))
        if not index < size:
            return _bad("index must be below size")
        return self._proof(lambda view: view.inclusion_proof(index, size))

    def consistency(self, q: Query) -> Reply:
        try:
            old, new = _index(q, "from"), _index(q, "to")
        except ValueError as err:
            return _bad(str(err))
        if not old <= new:
            return _bad("from must not be above to")
        return self._proof(lambda view: view.consistency_proof(old, new))

    def _proof(self, make: Callable[[LogView], list[bytes]]) -> Reply:
        with self.source.open() as reader, reader.snapshot():
            try:
                proof = make(LogView(reader.db))
            except ValueError as err:  # a size beyond the log
                return _bad(str(err))
        return json_reply({"proof": [base64.b64encode(h).decode("ascii") for h in proof]})


def _index(q: Query, key: str) -> int:
    values = q.get(key, [])
    text = values[-1] if values else ""
    if not text.isascii() or not text.isdigit() or len(text) > 19 or int(text) > MAX_INDEX:
        raise ValueError(f"{key} must be a whole number from 0 to {MAX_INDEX}")
    return int(text)


def _bad(message: str) -> Reply:
    return HTTPStatus.BAD_REQUEST, TEXT, f"{message}\n".encode()
