"""The HTTP side of ``serve``: the dashboard, the JSON API and ``/metrics``.

Standard library server, one thread per request, a read-only ledger
connection per request (opening one takes well under a millisecond). Routes:

    /                       dashboard (?day=YYYY-MM-DD a chosen day, ?range=hour|day|month)
    /api/rounds?from=&to=   rounds that ended in [from, to) (default: last 24 h)
    /api/payments?limit=    newest payments first (default 50, at most 1000)
    /api/totals             live power, price, totals today / this month / all time
    /metrics                Prometheus text format
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from .. import __version__
from ..errors import LedgerError
from ..ledger import iso
from ..ledger_read import PaymentRow, RoundRow
from . import page, periods
from .figures import Figures, LedgerSource, PeriodTotals

log = logging.getLogger(__name__)

MAX_ROUNDS = 50_000  # per /api/rounds answer; more is "truncated": true
DAY_S = 86400.0

# A page of ours needs nothing from anywhere else.
_CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; connect-src 'self';"
        " img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


class BadRequest(ValueError):
    """A query parameter that cannot be used: answered 400 with its message."""


Reply = tuple[int, str, bytes]  # status, Content-Type, body
TEXT = "text/plain; charset=utf-8"


class App:
    """What each route answers, given the query parameters."""

    def __init__(self, source: LedgerSource) -> None:
        self.source = source
        self._metrics_registry = None
        self._lock = threading.Lock()

    def routes(self) -> dict[str, Callable[[dict[str, list[str]]], Reply]]:
        return {"/": self.dashboard, "/api/rounds": self.api_rounds,
                "/api/payments": self.api_payments, "/api/totals": self.api_totals,
                "/metrics": self.metrics, "/static/live.js": self.live_js}

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
            data = page.collect(reader, figures, tz, window, live_view, self.source.unit,
                                _one(q, "range"))
        return _html(page.render(data))

    def api_rounds(self, q: dict[str, list[str]]) -> Reply:
        now = time.time()
        start = self._time(q, "from", now - DAY_S)
        end = self._time(q, "to", now)
        with self.source.open() as reader:
            rounds = reader.rounds(start, end, MAX_ROUNDS + 1)
        return _json({"from": iso(start), "to": iso(end),
                      "truncated": len(rounds) > MAX_ROUNDS,
                      "rounds": [round_json(r) for r in rounds[:MAX_ROUNDS]]})

    def api_payments(self, q: dict[str, list[str]]) -> Reply:
        text = _one(q, "limit") or "50"
        if not text.isdigit() or not 1 <= int(text) <= 1000:
            raise BadRequest("limit must be a whole number from 1 to 1000")
        with self.source.open() as reader:
            payments = reader.payments(int(text))
        return _json({"payments": [payment_json(p) for p in payments]})

    def api_totals(self, _q: dict[str, list[str]]) -> Reply:
        with self.source.open() as reader:
            f = self.source.figures(reader)
        return _json(totals_json(f, periods.zone_name(self.source.tz)))

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


def _html(text: str) -> Reply:
    return HTTPStatus.OK, "text/html; charset=utf-8", text.encode()


def _json(obj: object) -> Reply:
    return (HTTPStatus.OK, "application/json",
            json.dumps(obj, separators=(",", ":")).encode())


# -- JSON shapes (names as in `p2p-energy ledger --json`) ------------------------------------

def round_json(r: RoundRow) -> dict[str, object]:
    return {"id": r.id, "started_at": iso(r.started_at), "ended_at": iso(r.ended_at),
            "duration_s": r.duration_s, "metered_s": r.metered_s, "samples": r.samples,
            "expected_samples": r.expected_samples, "failed_samples": r.failed_samples,
            "consumer_mws": r.consumer_mws, "producer_mws": r.producer_mws,
            "consumer_avg_mw": r.consumer_avg_mw, "producer_avg_mw": r.producer_avg_mw,
            "price": r.price, "price_capped": r.price_capped, "owed_iota": r.owed_niota / 1e9}


def payment_json(p: PaymentRow) -> dict[str, object]:
    out: dict[str, object] = {
        "id": p.id, "value_iota": p.value_iota, "status": p.status,
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
            "owed_iota": s.owed_niota / 1e9, "paid_iota": p.paid.value_iota,
            "fees_nanos": p.paid.fee_nanos, "average_price": p.average_price}


def totals_json(f: Figures, zone: str) -> dict[str, object]:
    live = None if f.live is None else {
        "consumer_mw": f.live.consumer_mw, "producer_mw": f.live.producer_mw,
        "sampled_at": iso(f.live.sampled_at)}
    return {
        "at": iso(f.at), "timezone": zone, "live": live,
        "last_sample_at": iso(f.live_seen.sampled_at) if f.live_seen else None,
        "price": f.price, "price_capped": f.price_capped,
        "last_round_end": iso(f.last_round_end),
        "all_time": {"consumer_mws": f.consumer_mws, "producer_mws": f.producer_mws,
                     "owed_iota": f.owed_niota / 1e9, "paid_iota": f.paid_iota,
                     "fees_nanos": f.fees_nanos, "rounds": f.rounds, "samples": f.samples,
                     "missed_samples": f.missed_samples},
        "today": period_json(f.today), "month": period_json(f.month),
        "payments": {s: {"count": n, "value_iota": v}
                     for s, (n, v) in sorted(f.payments_by_status.items())},
    }


# -- the server -----------------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    server_version = f"p2p-energy/{__version__}"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, body: bool) -> None:
        url = urlsplit(self.path)
        app: App = self.server.app  # type: ignore[attr-defined]
        route = app.routes().get(url.path)
        if route is None:
            status, ctype, data = HTTPStatus.NOT_FOUND, TEXT, b"not found\n"
        else:
            try:
                status, ctype, data = route(parse_qs(url.query))
            except BadRequest as err:
                status, ctype, data = HTTPStatus.BAD_REQUEST, TEXT, f"{err}\n".encode()
            except LedgerError as err:  # no ledger yet, or unreadable: say so, keep serving
                status, ctype, data = HTTPStatus.SERVICE_UNAVAILABLE, TEXT, f"{err}\n".encode()
            except Exception:  # a request boundary: answer 500, keep serving
                log.exception("answering %s", url.path)
                status, ctype, data = (HTTPStatus.INTERNAL_SERVER_ERROR, TEXT,
                                       b"internal error (see the serve log)\n")
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", _CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], app: App) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.app = app
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in str(host) else host
        return f"http://{host}:{port}/"


def start(address: tuple[str, int], source: LedgerSource) -> tuple[Server, threading.Thread]:
    """Listen on ``address`` and serve in a thread. Raises OSError (address in use...)."""
    server = Server(address, App(source))
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    return server, thread
