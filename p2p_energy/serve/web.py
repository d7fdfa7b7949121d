"""The HTTP side of ``serve``: the dashboard, the JSON API and ``/metrics``.

What each route answers; the server that bounds each client is ``server``. A
read-only ledger connection per request (opening one takes well under a
millisecond). Routes:

    /                       dashboard (?day=YYYY-MM-DD a chosen day, ?range=hour|day|month)
    /api/rounds?from=&to=   rounds that ended in [from, to) (default: last 24 h), a page
                            of at most 2,000; "next" is the URL of the next page
    /api/payments?limit=    newest payments first (default 50, at most 1000)
    /api/totals             live power, price, totals today / this month / all time
    /metrics                Prometheus text format
    /log/...                the signed log and its proofs (``log_routes``)

The dashboard and /api/rounds read many rounds: at most ``HEAVY_AT_ONCE`` of
them are worked on at once, the others wait a little, then get 503.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from http import HTTPStatus
from urllib.parse import parse_qs, urlencode

from ..core.entries import PRICED_FROM
from ..errors import LedgerError
from ..store.ledger import iso
from ..store.reader import PaymentRow, RoundRow
from . import page, periods
from .episodes import Episodes
from .figures import Figures, LedgerSource, PeriodTotals
from .log_routes import LogRoutes
from .server import TEXT, Limits, Reply, Server, json_reply

log = logging.getLogger(__name__)

MAX_ROUNDS = 2_000  # per /api/rounds page: a day and a half of 60 s rounds, ~0.7 MB
HEAVY_AT_ONCE = 2  # dashboards and /api/rounds pages worked on at once
HEAVY_WAIT_S = 5.0  # for a turn, then 503
DAY_S = 86400.0
_CURSOR = re.compile(r"(-?[0-9.e+-]+),([0-9]+)")


class BadRequest(ValueError):
    """A query parameter that cannot be used: answered 400 with its message."""


class Busy(Exception):
    """No turn for a heavy request in time: answered 503 with its message."""


Route = Callable[[dict[str, list[str]]], Reply]


class App:
    """What each route answers, given the query parameters."""

    def __init__(self, source: LedgerSource) -> None:
        self.source = source
        self._metrics_registry = None
        self._lock = threading.Lock()
        self._heavy = threading.BoundedSemaphore(HEAVY_AT_ONCE)
        self.episodes = Episodes(log)
        self._log = LogRoutes(source)

    def routes(self) -> dict[str, Route]:
        return {"/": self._one_at_a_time(self.dashboard),
                "/api/rounds": self._one_at_a_time(self.api_rounds),
                "/api/payments": self.api_payments, "/api/totals": self.api_totals,
                "/metrics": self.metrics, "/static/live.js": self.live_js,
                **self._log.routes()}

    def answer(self, path: str, query: str) -> Reply:
        """The reply to ``GET path?query``: routes match exactly; errors are one line."""
        route = self.routes().get(path)
        if route is None:
            return HTTPStatus.NOT_FOUND, TEXT, b"not found\n"
        try:
            return route(parse_qs(query))
        except BadRequest as err:
            return HTTPStatus.BAD_REQUEST, TEXT, f"{err}\n".encode()
        except Busy as err:
            return HTTPStatus.SERVICE_UNAVAILABLE, TEXT, f"{err}\n".encode()
        except LedgerError as err:  # no ledger yet, or unreadable: say so, keep serving
            self.episodes.note("ledger", logging.WARNING, "HTTP: %s", err)
            return HTTPStatus.SERVICE_UNAVAILABLE, TEXT, f"{err.reason}\n".encode()
        except Exception:  # a request boundary: answer 500, keep serving
            self.episodes.note("error", logging.ERROR, "HTTP: answering %s failed", path,
                               exc_info=True)
            return (HTTPStatus.INTERNAL_SERVER_ERROR, TEXT,
                    b"internal error (see the serve log)\n")

    def _one_at_a_time(self, route: Route) -> Route:
        """``route`` run only with a turn: each reads many rounds (memory, CPU)."""
        def run(q: dict[str, list[str]]) -> Reply:
            if not self._heavy.acquire(timeout=HEAVY_WAIT_S):
                raise Busy("busy: other large requests are being answered; try again in a"
                           " few seconds")
            try:
                return route(q)
            finally:
                self._heavy.release()
        return run

    def dashboard(self, q: dict[str, list[str]]) -> Reply:
        tz = self.source.tz
        with self.source.open() as reader, reader.snapshot():
            figures = self.source.figures(reader)
            day = _one(q, "day")
            if day:
                try:
                    window, live_view = periods.parse_day(day, tz), False
                except ValueError as err:
                    raise BadRequest(str(err)) from None
            else:
                try:
                    window = page.live_window(reader, _one(q, "range"), figures.at, tz)
                except ValueError as err:
                    raise BadRequest(str(err)) from None
                live_view = True
            data = page.collect(reader, figures, tz, window, live_view, figures.unit,
                                _one(q, "range"))
        return _html(page.render(data))

    def api_rounds(self, q: dict[str, list[str]]) -> Reply:
        """One page of rounds; each is encoded as it is read, so a page is in memory only
        as its JSON text."""
        now = time.time()
        start = self._time(q, "from", now - DAY_S)
        end = self._time(q, "to", now)
        after = _cursor(_one(q, "after"))
        limit = _whole(q, "limit", MAX_ROUNDS, MAX_ROUNDS)
        parts: list[str] = []
        last: RoundRow | None = None
        more = False
        with self.source.open() as reader:
            for r in reader.rounds_page(start, end, after, limit + 1):
                if len(parts) == limit:
                    more = True
                    break
                parts.append(json.dumps(round_json(r), separators=(",", ":")))
                last = r
        following = None
        if more and last is not None:
            following = "/api/rounds?" + urlencode({
                "from": repr(start), "to": repr(end), "after": f"{last.ended_at!r},{last.id}",
                "limit": limit})
        head = json.dumps({"from": iso(start), "to": iso(end), "truncated": more,
                           "next": following}, separators=(",", ":"))
        body = head[:-1] + ',"rounds":[' + ",".join(parts) + "]}"
        return HTTPStatus.OK, "application/json", body.encode()

    def api_payments(self, q: dict[str, list[str]]) -> Reply:
        limit = _whole(q, "limit", 50, 1000)
        with self.source.open() as reader:
            payments = reader.payments(limit)
        return json_reply({"payments": [payment_json(p) for p in payments]})

    def api_totals(self, _q: dict[str, list[str]]) -> Reply:
        with self.source.open() as reader:
            f = self.source.figures(reader)
        return json_reply(totals_json(f, periods.zone_name(self.source.tz)))

    def metrics(self, _q: dict[str, list[str]]) -> Reply:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        from .metrics import registry
        with self._lock:
            if self._metrics_registry is None:
                self._metrics_registry = registry(self.source)
        return HTTPStatus.OK, CONTENT_TYPE_LATEST, generate_latest(self._metrics_registry)

    def live_js(self, _q: dict[str, list[str]]) -> Reply:
        return HTTPStatus.OK, "text/javascript; charset=utf-8", page.LIVE_JS.encode()

    def _time(self, q: dict[str, list[str]], key: str, default: float) -> float:
        text = _one(q, key)
        if not text:
            return default
        try:
            return periods.parse_time(text, self.source.tz)
        except ValueError as err:
            raise BadRequest(f"{key}: {err}") from None


def _one(q: dict[str, list[str]], key: str) -> str:
    values = q.get(key, [])
    return values[-1].strip() if values else ""


def _whole(q: dict[str, list[str]], key: str, default: int, most: int) -> int:
    text = _one(q, key) or str(default)
    if not text.isdigit() or not 1 <= int(text) <= most:
        raise BadRequest(f"{key} must be a whole number from 1 to {most}")
    return int(text)


def _cursor(text: str) -> tuple[float, int] | None:
    """``after=<ended_at>,<id>``, as a page's ``next`` gives it."""
    if not text:
        return None
    m = _CURSOR.fullmatch(text)
    if m:
        with suppress(ValueError):
            ended_at = float(m.group(1))
            if math.isfinite(ended_at):
                return ended_at, int(m.group(2))
    raise BadRequest("after must be <ended_at>,<id> as the last page's \"next\" gives it")


def _html(text: str) -> Reply:
    return HTTPStatus.OK, "text/html; charset=utf-8", text.encode()


# -- JSON shapes (names as in `p2p-energy ledger --json`) ------------------------------------

def round_json(r: RoundRow) -> dict[str, object]:
    return {"id": r.id, "started_at": iso(r.started_at), "ended_at": iso(r.ended_at),
            "duration_s": r.duration_s, "metered_s": r.metered_s, "samples": r.samples,
            "expected_samples": r.expected_samples, "failed_samples": r.failed_samples,
            "consumer_mws": r.consumer_mws, "producer_mws": r.producer_mws,
            "consumer_avg_mw": r.consumer_avg_mw, "producer_avg_mw": r.producer_avg_mw,
            "price": None if r.waiting else r.price, "price_capped": r.price_capped,
            "owed_iota": r.owed_nano_units / 1e9,
            # waiting: for the producer's figure (not priced yet, owes nothing until then);
            # priced_from: whose figure priced it (null: this meter's own, unlinked)
            "waiting": r.waiting, "priced_from": r.priced_from}


def payment_json(p: PaymentRow) -> dict[str, object]:
    out: dict[str, object] = {
        "id": p.id, "value_iota": p.value_units, "status": p.status,
        "created_at": iso(p.created_at), "sent_at": iso(p.sent_at),
        "confirmed_at": iso(p.confirmed_at), "attempts": p.attempts,
        "reference": p.reference, "reference_kind": p.reference_kind,
        "fee_nanos": p.fee_nanos, "last_error": p.last_error}
    out[p.reference_kind] = p.reference  # "bundle_hash" or "digest", as `ledger --json`
    return out


def period_json(p: PeriodTotals) -> dict[str, object]:
    s = p.sums
    return {"period": p.period.label, "from": iso(p.period.start), "to": iso(p.period.end),
            "rounds": s.rounds, "consumer_mws": s.consumer_mws, "producer_mws": s.producer_mws,
            "owed_iota": s.owed_nano_units / 1e9, "paid_iota": p.paid.value_units,
            "fees_nanos": p.paid.fee_nanos, "average_price": p.average_price}


def totals_json(f: Figures, zone: str) -> dict[str, object]:
    live = None if f.live is None else {
        "consumer_mw": f.live.consumer_mw, "producer_mw": f.live.producer_mw,
        "sampled_at": iso(f.live.sampled_at)}
    return {
        "at": iso(f.at), "timezone": zone, "unit": f.unit, "live": live,
        "last_sample_at": iso(f.live_seen.sampled_at) if f.live_seen else None,
        "price": f.price, "price_capped": f.price_capped,
        "last_round_end": iso(f.last_round_end),
        "all_time": {"consumer_mws": f.consumer_mws, "producer_mws": f.producer_mws,
                     "owed_iota": f.owed_nano_units / 1e9, "paid_iota": f.paid_units,
                     "fees_nanos": f.fees_nanos, "rounds": f.rounds, "samples": f.samples,
                     "missed_samples": f.missed_samples,
                     "rounds_disputed": f.priced.disputed,
                     "priced_from": dict(zip(PRICED_FROM, f.priced.priced_from, strict=True))},
        # Closed rounds waiting for the producer's figure: in no total above until priced.
        "waiting": {"rounds": f.waiting.rounds, "oldest_ended_at": iso(f.waiting.oldest_end)},
        "today": period_json(f.today), "month": period_json(f.month),
        "payments": {s: {"count": n, "value_iota": v}
                     for s, (n, v) in sorted(f.payments_by_status.items())},
    }


# -- the server -----------------------------------------------------------------------------

def start(address: tuple[str, int], source: LedgerSource, limits: Limits) -> Server:
    """Listen on ``address`` and serve in a thread. Raises OSError (address in use...)."""
    server = Server(address, App(source).answer, limits)
    server.start()
    return server
