"""The dashboard in a real headless Chromium, with JavaScript off and on.

A ledger of 26 hours of 30-second rounds (a sunny day's curve) is served by a
real `p2p-energy serve`; Chromium loads the page, and the DOM it built must hold
the three charts with their points (more than 2,000 rounds: thinned to 2,000).
Chromium is driven over the DevTools protocol (``chromium_cdp.py``).
Screenshots for a person to look at are written to
``$TMPDIR/p2p-energy-dashboard/{phone,desktop}.png``.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2p_energy.core.metering import LivePower, RoundTotals
from p2p_energy.core.pricing import PriceRule, quote_round
from p2p_energy.store.ledger import Ledger
from p2p_energy.wallet.base import Attachment, Signed

from support.chromium_cdp import CHROMIUM, Browser
from support.mosquitto_broker import wait_until

RULE10 = PriceRule.from_units(10.0, 10.0)


def priced(r):
    return quote_round(r.consumer_mws, r.producer_mws, r.producer_metered_s, RULE10)

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed"
                       " (apt-get install chromium)"),
    # The module-scoped rig is built once: under pytest-xdist its tests share one worker.
    pytest.mark.xdist_group("dashboard_browser"),
]
ROUND_S = 30.0
HOURS = 26
SHOTS = Path(tempfile.gettempdir()) / "p2p-energy-dashboard"


def sunny_ledger(path: Path, now: float) -> None:
    """Rounds up to ``now``: production follows the sun, the load a daily rhythm."""
    clock = [now]
    led = Ledger(path, clock=lambda: clock[0])
    start = now - HOURS * 3600
    n = int(HOURS * 3600 / ROUND_S)
    for i in range(n):
        t = start + i * ROUND_S
        hour = (t / 3600) % 24
        sun = max(math.sin((hour - 6) / 12 * math.pi), 0.0)
        producer_mw = 900 * sun * (0.6 if 13 < hour < 14 else 1.0)  # a cloud
        consumer_mw = 60 + 40 * math.sin(hour / 24 * 2 * math.pi) ** 2
        r = RoundTotals(started_at=t, duration_s=ROUND_S, metered_s=ROUND_S,
                        consumer_mws=consumer_mw * ROUND_S, producer_mws=producer_mw * ROUND_S,
                        samples=30, expected_samples=30, ended_at=t + ROUND_S)
        clock[0] = t + ROUND_S
        led.record_round(r, priced(r))
        if i % 240 == 239:  # every two hours a payment goes out and confirms
            p = led.claim_queued()
            if p is not None:
                led.store_signed(p.id, Signed(f"B{p.id}".ljust(81, "9"), "[]",
                                                    p.value_units, p.id, p.id + 1), "pyota")
                led.record_attachment(p.id, Attachment("TAIL", ""))
                led.mark_sent(p.id, "TAIL")
                led.mark_confirmed(p.id)
    led.record_round(r, priced(r))  # one queued
    led.checkpoint(r, LivePower(73.0, 640.0, time.time()))
    led.close()


def one_minute_ledger(path: Path, now: float) -> None:
    """A new owner's first minute: six 10-second rounds ending now, nothing paid yet."""
    led = Ledger(path, clock=lambda: now)
    for i in range(6):
        t = now - 60 + 10 * i
        r = RoundTotals(started_at=t, duration_s=10.0, metered_s=10.0,
                        consumer_mws=(60 + 5 * i) * 10.0, producer_mws=(400 + 40 * i) * 10.0,
                        samples=10, expected_samples=10, ended_at=t + 10)
        led.record_round(r, priced(r))
    led.checkpoint(r, LivePower(73.0, 640.0, now - 1))
    led.close()


def _serve(tmp: Path, fill) -> Iterator[str]:
    shm = Path("/dev/shm")
    ledger_dir = Path(tempfile.mkdtemp(dir=shm if shm.is_dir() else None))
    db = ledger_dir / "ledger.db"
    fill(db, time.time())
    cfg = tmp / "c.toml"
    cfg.write_text(f'[ledger]\npath = "{db}"\n[serve]\nenabled = true\n'
                   'listen = "127.0.0.1:0"\ntimezone = "Europe/Berlin"\n'
                   "[round]\ncheckpoint_s = 600\n")  # the live reading stays fresh
    log = tmp / "serve.log"
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "JOURNAL_STREAM")}
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "p2p_energy", "serve", "-c", str(cfg)],
                                stderr=err, env=env)
    try:
        url: list[str] = []

        def listening() -> bool:
            url[:] = re.findall(r"on (http://\S+/) ", log.read_text())
            return bool(url)
        wait_until("serve to listen", listening, 20)
        yield url[0]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        shutil.rmtree(ledger_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    yield from _serve(tmp_path_factory.mktemp("browser"), sunny_ledger)


@pytest.fixture(scope="module")
def served_one_minute(tmp_path_factory):
    yield from _serve(tmp_path_factory.mktemp("minute"), one_minute_ledger)


def _charts(dom: str) -> list[int]:
    """data-points of each chart svg in the DOM Chromium built."""
    return [int(n) for n in re.findall(r'<svg class="chart"[^>]*data-points="(\d+)"', dom)]


def test_charts_render_with_javascript_off(served):
    with Browser(javascript=False) as b:
        b.load(served)
        dom = b.dom()
    assert len(_charts(dom)) == 3
    lines = re.findall(r'<polyline class="line (\w+)" points="([^"]+)" data-points="(\d+)"',
                       dom)
    per_series: dict[str, int] = {}
    for css, coords, n in lines:
        assert len(coords.split()) >= int(n) >= 2
        per_series[css] = per_series.get(css, 0) + int(n)
    assert set(per_series) == {"consumer", "producer", "price", "owed", "paid"}
    # 2,880 rounds in the last 24 h: thinned to at most 2,000 points (lows and highs of
    # runs; a flat run, the night, gives one point).
    for css in ("consumer", "producer", "price", "owed"):
        assert 1000 < per_series[css] <= 2000, (css, per_series[css])
    assert per_series["consumer"] == 2000
    assert per_series["paid"] == 12 + 2  # a step per payment, the window's start and end
    assert "73.0 mW" in dom and "640.0 mW" in dom  # the live reading, without a script
    assert 'data-js="live"' not in dom
    assert "<td>confirmed</td>" in dom and "<td>queued</td>" in dom and "bundle hash B" in dom


def _live_figures(dom: str) -> dict[str, str]:
    return dict(re.findall(r'<b data-live="(\w+)">([^<]*)</b>', dom))


def test_the_script_refreshes_live_figures_with_javascript_on(served):
    with Browser(javascript=False) as b:
        b.load(served)
        static = _live_figures(b.dom())
    with Browser(javascript=True) as b:
        b.load(served)
        wait_until("live.js to update the page", lambda: 'data-js="live"' in b.dom(), 10)
        dom = b.dom()
    assert len(_charts(dom)) == 3
    # The script writes the figures as the server does (the ledger did not change).
    assert _live_figures(dom) == static and len(static) == 4


def test_a_chosen_day_and_screenshots_for_a_person(served):
    from datetime import date, timedelta
    day = (date.today() - timedelta(days=1)).isoformat()
    with Browser(javascript=False) as b:
        b.load(f"{served}?day={day}")
        dom = b.dom()
    assert f'value="{day}"' in dom and len(_charts(dom)) == 3
    assert all(p > 0 for p in _charts(dom))
    SHOTS.mkdir(exist_ok=True)
    for name, width, mobile in (("phone", 412, True), ("desktop", 1280, False)):
        with Browser(javascript=True, width=width, mobile=mobile) as b:
            b.load(served)
            wait_until("live.js", lambda b=b: 'data-js="live"' in b.dom(), 10)
            png = b.screenshot()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">I", png[16:20])[0] == width
        assert len(png) > 20_000  # a page with charts, not a blank one
        (SHOTS / f"{name}.png").write_bytes(png)
        print(f"screenshot: {SHOTS / name}.png")


def _x_span(dom: str, css: str) -> tuple[float, float]:
    """The leftmost and rightmost x of the ``css`` line's points."""
    (coords,) = re.findall(rf'<polyline class="line {css}" points="([^"]+)"', dom)
    xs = [float(c.split(",")[0]) for c in coords.split()]
    return min(xs), max(xs)


def test_a_minute_of_rounds_fills_the_charts(served_one_minute):
    with Browser(javascript=False) as b:
        b.load(served_one_minute)
        dom = b.dom()
    assert _charts(dom) == [12, 6, 8]  # power: two lines of 6; price; owed 6 + paid 2
    # The plot runs from x = 58 to 630 (of 640): the six rounds spread over most of it.
    for css in ("consumer", "price", "owed"):
        left, right = _x_span(dom, css)
        assert right - left >= 0.7 * (630 - 58), (css, left, right)
    labels = re.findall(r'<text class="xlabel"[^>]*>(\d\d:\d\d:\d\d)</text>', dom)
    assert len(labels) >= 12  # a tick every 10 s on two charts at least
    assert "(since " in dom and "last 24 hours" in dom  # fitted; a link to the day


def _note(dom: str) -> str:
    (text,) = re.findall(r'<p class="muted" data-live="note">([^<]*)</p>', dom)
    return text


def test_times_read_the_same_with_javascript_off_and_on(served_one_minute):
    with Browser(javascript=False) as b:
        b.load(served_one_minute)
        off = _note(b.dom())
    with Browser(javascript=True) as b:
        b.load(served_one_minute)
        wait_until("live.js to update the page", lambda: 'data-js="live"' in b.dom(), 10)
        on = _note(b.dom())
    assert re.fullmatch(r"reading of \d\d:\d\d:\d\d", off), off
    assert on == off
