"""The dashboard: one HTML page, charts drawn on the server, no script needed.

``collect`` reads what the page shows from the ledger; ``render`` turns it into
HTML (a pure function, tested without a server). A small script, when the
browser runs it, refreshes the live figures every few seconds; without it a
``<noscript>`` refresh reloads the page each minute. Times are written alike either way
(``local``: ``2026-06-21 14:02:03``, in the page's zone).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from html import escape

from .. import __version__
from ..core.entries import DISPUTE_OWN, OWN_AFTER_WAIT
from ..store.reader import LedgerReader, PaymentRow, RoundRow
from ..wallet.base import LEGACY_UNIT
from .charts import Series, line_chart
from .figures import MWS_PER_WH, Figures
from .periods import Period, zone_name

RECENT_PAYMENTS = 20
DAY_S = 86400.0
# The spans a reader may choose (?range=); by default the charts fit the data.
RANGES: dict[str, tuple[str, float]] = {"hour": ("last hour", 3600.0),
                                        "day": ("last 24 hours", DAY_S),
                                        "month": ("last 30 days", 30 * DAY_S)}
MIN_SPAN_S = 60.0  # a fitted window is never shorter: a minute of rounds fills the width


@dataclass(frozen=True)
class Dashboard:
    figures: Figures
    tz: tzinfo
    window: Period  # the charts' time span
    live_view: bool  # a span up to now (else a chosen day)
    rounds: list[RoundRow]
    owed_before_niota: int  # owed by the rounds before the window
    paid_before_iota: int  # confirmed before the window
    confirmations: list[tuple[float, int]]
    payments: list[PaymentRow]
    unit: str = LEGACY_UNIT  # what one ledger unit is called (``reader.ledger_unit_of``)
    choice: str = ""  # the ``RANGES`` key chosen; "" fits the data


def live_window(reader: LedgerReader, choice: str, now: float, tz: tzinfo) -> Period:
    """The span the charts show up to ``now``: ``choice`` (a key of ``RANGES``), or for ""
    the data's, from the start of the first round (at least ``MIN_SPAN_S``, at most a day).

    Raises:
        ValueError: ``choice`` is none of ``RANGES``.
    """
    if choice:
        if choice not in RANGES:
            raise ValueError(f"range must be one of {', '.join(RANGES)}")
        label, span_s = RANGES[choice]
        return Period(label, now - span_s, now)
    first = reader.rounds(float("-inf"), float("inf"), 1)  # the oldest, by the index
    return fitted_window(first[0].started_at if first else None, now, tz)


def fitted_window(first_start: float | None, now: float, tz: tzinfo) -> Period:
    """From ``first_start`` (epoch s) to ``now``; the last 24 hours when the data are older
    or there are none yet."""
    if first_start is None or now - first_start >= DAY_S:
        return Period(RANGES["day"][0], now - DAY_S, now)
    start = min(first_start, now - MIN_SPAN_S)
    return Period(f"since {local(start, tz, '%H:%M:%S')}", start, now)


def collect(reader: LedgerReader, figures: Figures, tz: tzinfo, window: Period,
            live_view: bool, unit: str = LEGACY_UNIT, choice: str = "") -> Dashboard:
    """What the page shows. Call inside the ``reader.snapshot()`` that read ``figures``."""
    with reader.snapshot():
        # All-time owed minus what came since: only the recent rounds are read.
        since = reader.sums(window.start).owed_nano_units
        return Dashboard(
            figures=figures, tz=tz, window=window, live_view=live_view,
            rounds=reader.rounds(window.start, window.end),
            owed_before_niota=figures.owed_nano_units - since,
            paid_before_iota=reader.paid(None, window.start).value_units,
            confirmations=reader.confirmations(window.start, window.end),
            payments=reader.payments(RECENT_PAYMENTS), unit=unit, choice=choice)


# -- formatting -------------------------------------------------------------------------

def energy(mws: float) -> str:
    """mW·s in the unit that suits it: mWh, Wh or kWh."""
    name, mws_per = energy_unit(mws)
    return f"{mws / mws_per:.{2 if name == 'mWh' else 3}f} {name}"


def energy_unit(mws: float) -> tuple[str, float]:
    """The unit that suits ``mws`` (mWh below 1 Wh, Wh below 1 kWh, else kWh), and how many
    mW·s it holds."""
    if abs(mws) < MWS_PER_WH:
        return "mWh", MWS_PER_WH / 1000
    if abs(mws) < 1000 * MWS_PER_WH:
        return "Wh", MWS_PER_WH
    return "kWh", MWS_PER_WH * 1000


def power(mw: float) -> str:
    return f"{mw:.1f} mW" if abs(mw) < 1000 else f"{mw / 1000:.2f} W"


def iota(niota: int) -> str:
    """Billionths of a ledger unit as units: three decimals, none from a million on."""
    value = niota / 1e9
    return f"{value:,.0f}" if abs(value) >= 1e6 else f"{value:,.3f}"


def local(ts: float | None, tz: tzinfo, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return datetime.fromtimestamp(ts, tz).strftime(fmt) if ts is not None else "-"


# -- the page ---------------------------------------------------------------------------

_STYLE = """
body{font:15px/1.4 system-ui,sans-serif;margin:0 auto;max-width:980px;padding:8px 12px;
color:#222;background:#fafafa}
h1{font-size:1.3em;margin:.3em 0}h2{font-size:1.05em;margin:1.2em 0 .3em}
.live{display:flex;flex-wrap:wrap;gap:8px}.live div{flex:1 1 140px;background:#fff;
border:1px solid #ddd;border-radius:6px;padding:6px 10px}
.live b{display:block;font-size:1.5em}.muted{color:#777;font-size:.9em}
table{border-collapse:collapse;width:100%;background:#fff}
td,th{border-bottom:1px solid #e5e5e5;padding:4px 6px;text-align:right;vertical-align:top}
th:first-child,td:first-child{text-align:left}
td.ref{text-align:left;font:12px ui-monospace,monospace;word-break:break-all;
border-bottom:1px solid #ccc;padding-top:0}tr.pay td{border-bottom:0}
.nowrap{white-space:nowrap}
.scroll{overflow-x:auto}
svg.chart{width:100%;height:auto;background:#fff;border:1px solid #ddd;border-radius:6px}
svg .grid{stroke:#eee;stroke-width:1}svg text{font-size:11px;fill:#666}
svg .ylabel{text-anchor:end}svg .xlabel{text-anchor:middle}svg .empty{text-anchor:middle}
svg .line{fill:none;stroke-width:1.6}svg circle.line{stroke-width:1}
.consumer{stroke:#d9480f;fill:#d9480f}.producer{stroke:#2b8a3e;fill:#2b8a3e}
.price{stroke:#1864ab;fill:#1864ab}.owed{stroke:#c92a2a;fill:#c92a2a}
.paid{stroke:#2b8a3e;fill:#2b8a3e}
.key{font-size:.9em}.key span::before{content:"";display:inline-block;width:14px;height:3px;
margin:0 4px 3px 10px;background:currentColor}
.key .consumer{color:#d9480f}.key .producer{color:#2b8a3e}.key .owed{color:#c92a2a}
.key .paid{color:#2b8a3e}.key .price{color:#1864ab}
@media (max-width:600px){body{font-size:14px;padding:6px}svg text{font-size:17px}
td,th{padding:4px 3px}
.live b{font-size:1.25em}}
form{margin:.6em 0}input,button{font:inherit}
.notice{background:#fff4e6;border:1px solid #ffc078;border-radius:6px;padding:4px 10px}
.notice:empty{display:none}
"""


def render(d: Dashboard) -> str:
    """The whole page as HTML text."""
    f, tz = d.figures, d.tz
    head = ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>p2p-energy</title><style>{_STYLE}</style>"
            + ('<noscript><meta http-equiv="refresh" content="60"></noscript>'
               '<script src="/static/live.js" defer></script>' if d.live_view else "")
            + "</head>")
    body = ["<body><h1>p2p-energy</h1>", _live(f, tz, d.unit), _link(f, tz), _day_form(d),
            _charts(d), _totals(f, d.unit), _payments(d.payments, tz, d.unit),
            f'<p class="muted">p2p-energy {__version__} · times in {escape(zone_name(tz))} ·'
            ' <a href="/api/totals">JSON</a> · <a href="/metrics">metrics</a></p>'
            "</body></html>"]
    return head + "".join(body)


def _live(f: Figures, tz: tzinfo, unit: str) -> str:
    live = f.live
    if live is not None:
        cons, prod = power(live.consumer_mw), power(live.producer_mw)
        note = f"reading of {local(live.sampled_at, tz, '%H:%M:%S')}"
    else:
        cons = prod = "&ndash;"
        seen = f.live_seen
        note = ("no recent reading: is p2p-energy running?" if seen is None else
                f"last reading {local(seen.sampled_at, tz)}: is p2p-energy running?")
    price = "&ndash;" if f.price is None else f"{f.price:.4g}" + (" (night cap)" if f.price_capped
                                                             else "")
    return ('<section class="live">'
            f'<div>Consumer<b data-live="consumer">{cons}</b></div>'
            f'<div>Producer<b data-live="producer">{prod}</b></div>'
            f'<div>Price, {unit}/mW·s<b data-live="price">{price}</b></div>'
            f'<div>Owed / paid, {unit}<b data-live="owed_paid">{iota(f.owed_nano_units)} /'
            f" {f.paid_units:,}</b></div></section>"
            f'<p class="muted" data-live="note">{escape(note)}</p>')


def waiting_text(rounds: int, oldest: str) -> str:
    """The notice of rounds waiting for the producer's figure ("" when none)."""
    if not rounds:
        return ""
    return (f"{rounds:,} round{'s' if rounds != 1 else ''} waiting for the producer's figure"
            f" (oldest since {oldest}): not priced yet, owing nothing until it comes")


def _link(f: Figures, tz: tzinfo) -> str:
    """A consumer priced from its producer's figures ([producer]): the rounds that wait for
    them, and those whose figures disagreed."""
    waiting = waiting_text(f.waiting.rounds, local(f.waiting.oldest_end, tz))
    # Always there (empty when none wait), so that the live script can fill it in.
    parts = [f'<p class="notice" data-live="waiting">{escape(waiting)}</p>']
    p = f.priced
    own = p.priced_by(DISPUTE_OWN)
    if p.disputed:
        parts.append(
            f'<p class="notice">{p.disputed:,} round{"s" if p.disputed != 1 else ""} disputed:'
            " the producer's figure and this meter's differed beyond the band"
            f" ({p.disputed - own:,} priced from the producer's, {own:,} from this meter's)</p>")
    linked = sum(p.priced_from)
    if linked:
        after = p.priced_by(OWN_AFTER_WAIT)
        parts.append(f'<p class="muted">priced from the producer\'s signed figures:'
                     f" {linked - after - own:,} rounds; from this meter's own channel:"
                     f" {own:,} disputed, {after:,} after waiting</p>")
    return "".join(parts)


def _day_form(d: Dashboard) -> str:
    shown = "" if d.live_view else d.window.label
    spans = " ".join(f"<strong>{escape(label)}</strong>" if d.live_view and key == d.choice else
                     f'<a href="/?range={key}">{escape(label)}</a>'
                     for key, (label, _) in RANGES.items())
    fitted = ("<strong>fitted to the data</strong>" if d.live_view and not d.choice else
              '<a href="/">fitted to the data</a>')
    return ('<form method="get" action="/"><label>Day <input type="date" name="day"'
            f' value="{escape(shown)}"></label> <button>Show</button>'
            f' · {fitted} · {spans}</form>')


def _charts(d: Dashboard) -> str:
    span = (d.window.start, d.window.end)
    what = escape(d.window.label)
    mid = [((r.started_at + r.ended_at) / 2, r) for r in d.rounds]
    power_chart = line_chart(
        "Power", [Series("consumer", "consumer", [(t, r.consumer_avg_mw) for t, r in mid]),
                  Series("producer", "producer", [(t, r.producer_avg_mw) for t, r in mid])],
        x_range=span, tz=d.tz, unit="mW")
    # A round waiting for the producer's figure has no price yet (its 0 is no price).
    price_chart = line_chart("Price", [Series("price", "price", [(t, r.price) for t, r in mid
                                                                 if not r.waiting])],
                             x_range=span, tz=d.tz, unit=f"{d.unit}/mW·s", log_y=True)
    owed, cum = [], d.owed_before_niota
    for r in d.rounds:
        cum += r.owed_nano_units
        owed.append((r.ended_at, cum / 1e9))
    money_chart = line_chart("Owed and paid", [Series("owed", "owed", owed),
                                               Series("paid", "paid", _paid_points(d), step=True)],
                             x_range=span, tz=d.tz, unit=d.unit)
    return (f"<h2>Power, mW ({what})</h2>{power_chart}"
            '<div class="key"><span class="consumer">consumer</span>'
            '<span class="producer">producer</span></div>'
            f"<h2>Price, {d.unit} per mW·s (log scale; {what})</h2>{price_chart}"
            f"<h2>Owed and paid since the start, {d.unit} ({what})</h2>{money_chart}"
            '<div class="key"><span class="owed">owed</span>'
            '<span class="paid">paid (confirmed)</span></div>')


def _paid_points(d: Dashboard) -> list[tuple[float, float]]:
    """The running total paid, as steps; from where the data start, never before (no flat
    zero across a day before the first round), and nothing at all without data."""
    before = d.owed_before_niota > 0 or d.paid_before_iota > 0
    firsts = [r.started_at for r in d.rounds[:1]] + [t for t, _ in d.confirmations[:1]]
    if not before and not firsts:
        return []
    total = d.paid_before_iota
    paid = [(d.window.start if before else min(firsts), float(total))]
    for t, value in d.confirmations:
        total += value
        paid.append((t, float(total)))
    paid.append((min(d.figures.at, d.window.end), float(total)))
    return paid


def _totals(f: Figures, unit: str) -> str:
    """Today, this month and all time side by side: three columns fit a phone."""
    cols = [(f.today.sums.consumer_mws, f.today.sums.producer_mws, f.today.sums.owed_nano_units,
             f.today.paid.value_units, f.today.sums.rounds),
            (f.month.sums.consumer_mws, f.month.sums.producer_mws, f.month.sums.owed_nano_units,
             f.month.paid.value_units, f.month.sums.rounds),
            (f.consumer_mws, f.producer_mws, f.owed_nano_units, f.paid_units, f.rounds)]
    rows = [("used", [energy(c[0]) for c in cols]), ("produced", [energy(c[1]) for c in cols]),
            (f"owed, {unit}", [iota(c[2]) for c in cols]),
            (f"paid, {unit}", [f"{c[3]:,}" for c in cols]), ("rounds", [f"{c[4]:,}" for c in cols])]
    return ('<h2>Totals</h2><div class="scroll"><table><tr><th></th><th>today</th>'
            "<th>this month</th><th>all time</th></tr>"
            + "".join(f"<tr><td>{name}</td>" + "".join(f"<td>{v}</td>" for v in values)
                      + "</tr>" for name, values in rows)
            + "</table></div>")


def _payments(payments: list[PaymentRow], tz: tzinfo, unit: str) -> str:
    rows = []
    for p in payments:
        kind = "digest" if p.reference_kind == "digest" else "bundle hash"
        ref = f"{kind} {escape(p.reference)}" if p.reference else "not signed yet"
        error = f'<br><span class="muted">{escape(p.last_error)}</span>' if p.last_error else ""
        rows.append(f'<tr class="pay"><td>{p.id}</td>'
                    f'<td class="nowrap">{local(p.created_at, tz)}</td>'
                    f"<td>{p.value_units:,}</td><td>{escape(p.status)}{error}</td></tr>"
                    f'<tr><td class="ref" colspan="4">{ref}</td></tr>')
    if not rows:
        rows.append('<tr><td colspan="4">no payments yet</td></tr>')
    return ('<h2>Recent payments</h2><div class="scroll"><table><tr><th>#</th>'
            f"<th>created</th><th>{unit}</th><th>status</th></tr>"
            + "".join(rows) + "</table></div>")


LIVE_JS = """\
// Refreshes the live figures every 5 s from /api/totals. The page works without it.
(function () {
  function power(mw) {
    return mw === null ? "\\u2013" : Math.abs(mw) < 1000 ? mw.toFixed(1) + " mW"
      : (mw / 1000).toFixed(2) + " W";
  }
  function iota(x) {  // as the page writes it: 3 decimals, none from a million on
    var d = Math.abs(x) >= 1e6 ? 0 : 3;
    return x.toLocaleString("en-US", {minimumFractionDigits: d, maximumFractionDigits: d});
  }
  function local(iso, zone, time_only) {  // as the page writes times: 2026-06-21 14:02:03
    var opts = {timeZone: zone};
    try { new Intl.DateTimeFormat("sv-SE", opts); } catch (e) { opts = {}; }
    var d = new Date(iso);
    return time_only ? d.toLocaleTimeString("sv-SE", opts) : d.toLocaleString("sv-SE", opts);
  }
  function set(name, text) {
    var el = document.querySelector('[data-live="' + name + '"]');
    if (el) { el.textContent = text; }
  }
  function update() {
    fetch("/api/totals", {cache: "no-store"}).then(function (r) { return r.json(); })
      .then(function (t) {
        var live = t.live;
        set("consumer", power(live ? live.consumer_mw : null));
        set("producer", power(live ? live.producer_mw : null));
        set("price", t.price === null ? "\\u2013"
          : String(Number(t.price.toPrecision(4)))  // as Python's "%.4g"
            + (t.price_capped ? " (night cap)" : ""));
        set("owed_paid", iota(t.all_time.owed_iota) + " / "
          + t.all_time.paid_iota.toLocaleString("en-US"));
        var w = t.waiting;
        set("waiting", w.rounds === 0 ? "" : w.rounds.toLocaleString("en-US")
          + (w.rounds === 1 ? " round" : " rounds") + " waiting for the producer's figure"
          + " (oldest since " + local(w.oldest_ended_at, t.timezone, false)
          + "): not priced yet, owing nothing until it comes");
        set("note", live ? "reading of " + local(live.sampled_at, t.timezone, true)
          : t.last_sample_at === null ? "no recent reading: is p2p-energy running?"
          : "last reading " + local(t.last_sample_at, t.timezone, false)
            + ": is p2p-energy running?");
        document.body.setAttribute("data-js", "live");
      }).catch(function () { set("note", "cannot reach p2p-energy serve"); });
  }
  update();
  setInterval(update, 5000);
})();
"""
