"""The pieces of `serve` without a server: charts, periods, the page, config, the password."""

from __future__ import annotations

import math
import re
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from p2p_energy import config
from p2p_energy.core.metering import LivePower
from p2p_energy.errors import ConfigError
from p2p_energy.serve import charts, page, periods
from p2p_energy.serve.figures import Figures, HighWater, PeriodTotals
from p2p_energy.store.reader import PaidSums, PaymentRow, RoundRow, Sums

BERLIN = ZoneInfo("Europe/Berlin")


# -- charts ------------------------------------------------------------------------------

def test_thin_keeps_at_most_max_points_and_every_extreme():
    pts = [(float(i), math.sin(i / 50) * 100) for i in range(10_000)]
    pts[5_001] = (5_001.0, 1e6)  # one spike
    out = charts.thin(pts, 2000)
    assert len(out) <= 2000 and out == sorted(out)
    assert (5_001.0, 1e6) in out and min(pts, key=lambda p: p[1]) in out
    assert charts.thin(pts[:2000], 2000) == pts[:2000]  # up to the limit: every point


def test_segments_break_at_gaps_only():
    pts = [(0.0, 1.0), (60.0, 1.0), (120.0, 2.0), (3600.0, 3.0), (3660.0, 3.0)]
    assert [len(s) for s in charts.segments(pts)] == [3, 2]
    assert charts.segments([]) == [] and charts.segments([(1.0, 1.0)]) == [[(1.0, 1.0)]]


@pytest.mark.parametrize("lo, hi", [(0, 7.3), (0, 1e-4), (-3, 12), (0, 0), (5, 5.0001)])
def test_nice_ticks_cover_the_range(lo, hi):
    ticks = charts.nice_ticks(lo, hi)
    assert ticks[0] <= lo and ticks[-1] >= hi and 2 <= len(ticks) <= 7


def test_time_ticks_follow_local_hours_across_dst():
    day = periods.day(date(2026, 3, 29), BERLIN)
    labels = [label for _, label in charts.time_ticks(day.start, day.end, BERLIN)]
    # 23 hours, from midnight to midnight; 02:00 does not exist that day.
    assert labels == ["00:00", "03:00", "06:00", "09:00", "12:00", "15:00", "18:00", "21:00",
                      "00:00"]


def test_line_chart_draws_one_point_per_round_and_breaks_gaps():
    pts = [(1000.0 + 60 * i, float(i)) for i in range(100)] + [(20000.0, 5.0)]
    svg = charts.line_chart("Power", [charts.Series("consumer", "consumer", pts)],
                            x_range=(0.0, 21000.0), tz=BERLIN, unit="mW")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert 'data-points="101"' in svg
    assert len(re.findall(r"<polyline", svg)) == 1 and "<circle" in svg  # the lone point
    (points,) = re.findall(r'<polyline[^>]* points="([^"]+)"', svg)
    assert len(points.split()) == 100
    empty = charts.line_chart("Price", [charts.Series("p", "price", [])], x_range=(0, 1),
                              tz=BERLIN, unit="x", log_y=True)
    assert "no rounds" in empty


def _minute_of_rounds(now: float) -> list[RoundRow]:
    return [RoundRow(i, now - 60 + 10 * i, now - 50 + 10 * i, 10, 10, 10, 10, 0, 600.0,
                     5000.0, 500.0, 0.02, False, 120_000_000) for i in range(6)]


def test_by_default_the_charts_fit_the_data_and_a_minute_fills_the_width():
    now = 1.8e9
    fitted = page.fitted_window(now - 60, now, BERLIN)
    assert (fitted.start, fitted.end) == (now - 60, now) and fitted.label.startswith("since ")
    assert page.fitted_window(now - 30 * 3600, now, BERLIN).label == "last 24 hours"
    assert page.fitted_window(None, now, BERLIN).label == "last 24 hours"
    d = page.Dashboard(_figures(at=now), BERLIN, fitted, True, _minute_of_rounds(now), 0, 0,
                       [], [])
    html = page.render(d)
    (coords,) = re.findall(r'<polyline class="line consumer" points="([^"]+)"', html)
    xs = [float(c.split(",")[0]) for c in coords.split()]
    assert len(xs) == 6 and max(xs) - min(xs) > 0.7 * (640 - 58 - 10)
    ticks = re.findall(r'<text class="xlabel"[^>]*>([^<]+)</text>', html)
    assert len(ticks) >= 3 * 5 and all(re.fullmatch(r"\d\d:\d\d:\d\d", x) for x in ticks)


def test_a_chosen_range_is_the_last_hour_day_or_month():
    now = 1.8e9
    spans = {c: page.live_window(None, c, now, BERLIN) for c in ("hour", "day", "month")}
    assert [(w.label, now - w.start) for w in spans.values()] == [
        ("last hour", 3600), ("last 24 hours", 86400), ("last 30 days", 30 * 86400)]
    with pytest.raises(ValueError, match="range must be one of hour, day, month"):
        page.live_window(None, "week", now, BERLIN)


def test_no_paid_line_before_the_first_round_nor_before_the_data():
    now = 1.8e9
    day = periods.Period("last 24 hours", now - 86400, now)
    empty = page.render(page.Dashboard(_figures(at=now), BERLIN, day, True, [], 0, 0, [], []))
    assert 'class="line paid"' not in empty and 'class="line owed"' not in empty
    rounds = _minute_of_rounds(now)
    html = page.render(page.Dashboard(_figures(at=now), BERLIN, day, True, rounds, 0, 0, [], []))
    (coords,) = re.findall(r'<polyline class="line paid" points="([^"]+)"', html)
    first_x = float(coords.split()[0].split(",")[0])
    assert first_x > 58 + 0.99 * (640 - 58 - 10)  # from the first round, not from 24 h ago


# -- periods -----------------------------------------------------------------------------

@pytest.mark.parametrize("day, hours", [(date(2026, 3, 29), 23), (date(2026, 10, 25), 25),
                                        (date(2026, 7, 1), 24)])
def test_local_days_are_23_24_or_25_hours(day, hours):
    assert periods.day(day, BERLIN).hours == hours


def test_months_and_parsing():
    m = periods.parse_month("2026-12", BERLIN)
    assert (m.hours, len(periods.days_of(m, BERLIN))) == (31 * 24, 31)
    with pytest.raises(ValueError, match="not a day of the calendar"):
        periods.parse_day("2026-02-30", BERLIN)
    assert periods.parse_time("2026-03-29", BERLIN) == periods.day(date(2026, 3, 29),
                                                                   BERLIN).start
    assert periods.parse_time("1700000000.5", BERLIN) == 1700000000.5
    for bad in ("nan", "inf", "soon"):
        with pytest.raises(ValueError):
            periods.parse_time(bad, BERLIN)


def test_the_system_zone_comes_from_tz():
    assert periods.zone_name(periods.resolve_timezone("", {"TZ": "Asia/Tokyo"})) == "Asia/Tokyo"


def test_high_water_never_steps_back():
    hw = HighWater()
    assert [hw("e", v) for v in (1.0, 3.0, 2.5, 4.0)] == [1.0, 3.0, 3.0, 4.0]


# -- the page ----------------------------------------------------------------------------

def _figures(**kw) -> Figures:
    period = periods.today(1.8e9, BERLIN)
    totals = PeriodTotals(period, Sums(), PaidSums())
    base = dict(at=1.8e9, consumer_mws=0.0, producer_mws=0.0, samples=0, missed_samples=0,
                failed_samples=0, rounds=0, owed_nano_units=0, paid_units=0, fees_nanos=0,
                last_round_end=None, price=None, price_capped=False, live=None,
                live_seen=None, payments_by_status={}, last_payment=None, today=totals,
                month=totals)
    return Figures(**{**base, **kw})


def test_the_page_shows_everything_without_script_and_escapes_ledger_text():
    rounds = [RoundRow(i, 1.8e9 - 3600 + 60 * i, 1.8e9 - 3540 + 60 * i, 60, 60, 60, 60, 0,
                       3000.0, 30000.0, 500.0, 0.02, False, 600_000_000) for i in range(50)]
    pay = PaymentRow(1, 7, "failed", 1.8e9 - 100, None, None, 3, "DIGEST<b>", "digest", 0,
                     "node said <script>")
    d = page.Dashboard(_figures(live=LivePower(50.0, 500.0, 1.8e9 - 2)), BERLIN,
                       periods.Period("last 24 hours", 1.8e9 - 86400, 1.8e9), True, rounds,
                       0, 0, [], [pay])
    html = page.render(d)
    assert html.count("<svg") == 3 and 'data-points="50"' in html
    assert "50.0 mW" in html and "500.0 mW" in html
    assert "DIGEST&lt;b&gt;" in html and "&lt;script&gt;" in html and "<b>" not in html
    assert "digest DIGEST" in html
    assert '<noscript><meta http-equiv="refresh"' in html
    stale = page.render(page.Dashboard(_figures(live_seen=LivePower(1, 2, 1.7e9)), BERLIN,
                                       periods.parse_day("2026-03-29", BERLIN), False, [], 0, 0,
                                       [], []))
    assert "is p2p-energy running?" in stale and "no payments yet" in stale
    assert "refresh" not in stale  # a chosen day does not change


# -- the ledger's unit --------------------------------------------------------------------
# With wallet.backend = "iota" one ledger unit is a micro-IOTA: labelled IOTA, every
# amount would read a million times too large. Fees are real nanos, IOTA on either.

def _units(backend: str) -> tuple[str, str]:
    from p2p_energy.wallet.base import ledger_unit
    unit = ledger_unit(backend)
    return unit, "µIOTA" if unit == "IOTA" else "IOTA"  # (the unit, the one it must not say)


def _money_page(unit: str) -> str:
    rounds = [RoundRow(i, 1.8e9 - 3600 + 60 * i, 1.8e9 - 3540 + 60 * i, 60, 60, 60, 60, 0,
                       3000.0, 30000.0, 500.0, 0.02, False, 600_000_000) for i in range(5)]
    pay = PaymentRow(1, 7, "confirmed", 1.8e9 - 100, 1.8e9 - 50, None, 1, "D", "digest", 0, "")
    return page.render(page.Dashboard(
        _figures(price=0.02, owed_nano_units=3_000_000_000, paid_units=3), BERLIN,
        periods.Period("last 24 hours", 1.8e9 - 86400, 1.8e9), True, rounds, 0, 0,
        [(1.8e9 - 50, 3)], [pay], unit=unit))


@pytest.mark.parametrize("backend", ["iota", "pyota", "dry-run"])
def test_the_page_names_the_ledger_unit_of_the_backend(backend):
    unit, _ = _units(backend)
    html = _money_page(unit)
    for label in (f"Price, {unit}/mW·s<b", f"Owed / paid, {unit}<b", f"<td>owed, {unit}</td>",
                  f"<td>paid, {unit}</td>", f"<th>{unit}</th>", f"Price, {unit} per mW·s",
                  f"Owed and paid since the start, {unit} (", f"<title>Price ({unit}/mW·s)",
                  f"<title>Owed and paid ({unit})"):
        assert label in html, label
    # Every IOTA on the page is the unit's: no bare IOTA on today's network, no µ on the legacy.
    assert ("µ" in html) == (unit == "µIOTA") and html.count("IOTA") == html.count(unit) >= 9


@pytest.mark.parametrize("backend", ["iota", "pyota"])
def test_mqtt_discovery_names_the_unit_and_a_new_unit_gets_new_unique_ids(backend):
    from p2p_energy.serve import mqtt
    unit, _ = _units(backend)
    t = mqtt.Topics(config.MqttConfig(), "meter")
    configs = {e.key: mqtt.discovery_config(e, t) for e in mqtt.entities(unit)}
    legacy = {e.key: mqtt.discovery_config(e, t) for e in mqtt.entities("IOTA")}
    for key in ("owed", "paid"):
        assert configs[key]["unit_of_measurement"] == unit
        assert configs[key]["name"] == f"{unit} {key}"
    assert configs["price"]["unit_of_measurement"] == f"{unit}/mW·s"
    # Legacy IOTA keeps its unique_ids (Home Assistant keeps the history); money in another
    # unit is a new entity, whose long-term statistics start clean.
    changed = [k for k in configs if configs[k]["unique_id"] != legacy[k]["unique_id"]]
    assert changed == ([] if unit == "IOTA" else ["price", "price_kwh", "owed", "paid"])
    assert all(c["unique_id"] == f"meter_{key}" for key, c in legacy.items())


@pytest.mark.parametrize("backend", ["iota", "pyota"])
def test_metrics_name_the_unit_and_say_it_in_help(backend):
    from prometheus_client import generate_latest
    from prometheus_client.registry import CollectorRegistry

    from p2p_energy.serve.metrics import figures_metrics
    unit, _ = _units(backend)
    f = _figures(price=0.02, owed_nano_units=3_000_000_000, paid_units=3, fees_nanos=2_000_000,
                 payments_by_status={"confirmed": (1, 3)})

    class Once:
        def collect(self):
            return figures_metrics(f, unit)
    reg = CollectorRegistry(auto_describe=False)
    reg.register(Once())
    text = generate_latest(reg).decode()
    helps = dict(re.findall(r"^# HELP (\S+) (.*)$", text, re.M))
    meaning = "one micro-IOTA, 1000 nanos" if unit == "µIOTA" else "one legacy IOTA (i)"
    u = "microiota" if unit == "µIOTA" else "iota"  # the unit in the names
    for name in (f"p2p_energy_owed_{u}_total", f"p2p_energy_paid_{u}_total",
                 f"p2p_energy_payment_value_{u}"):
        assert f"in {unit} (one ledger unit: {meaning})" in helps[name], helps[name]
    assert f"{unit} per joule" in helps[f"p2p_energy_price_{u}_per_joule"]
    fees = helps["p2p_energy_fees_iota_total"]
    assert "in IOTA" in fees and "µ" not in fees  # real nanos / 1e9 on either network
    assert re.search(rf"^p2p_energy_owed_{u}_total 3\.0$", text, re.M)
    assert re.search(rf"^p2p_energy_price_{u}_per_joule 20\.0$", text, re.M)


# -- config ------------------------------------------------------------------------------

@pytest.mark.parametrize("body, key", [
    ('[serve]\nlisten = "8080"\n', "serve.listen"),
    ('[serve]\nlisten = "host:70000"\n', "serve.listen"),
    ('[serve]\ntimezone = "Mars/Olympus"\n', "serve.timezone"),
    ('[mqtt]\nbroker = "http://x"\n', "mqtt.broker"),
    ('[mqtt]\nbroker = "mqtt://u:p@x"\n', "mqtt.broker"),
    ('[mqtt]\ntopic_prefix = "a/#"\n', "mqtt.topic_prefix"),
    ('[mqtt]\ndevice_id = "my meter"\n', "mqtt.device_id"),
    ('[mqtt]\npassword_file = "pw"\n', "mqtt.password_file"),
    ('[mqtt]\nca_file = "ca.pem"\n', "mqtt.ca_file"),
    ('[mqtt]\npublish_s = 0\n', "mqtt.publish_s"),
    ('[serve]\nallowed_hosts = "meter.lan"\n', "serve.allowed_hosts"),
    ('[serve]\nallowed_hosts = ["http://meter.lan"]\n', "serve.allowed_hosts"),
    ('[serve]\nallowed_hosts = ["meter.lan:8080"]\n', "serve.allowed_hosts"),
    ('[serve]\ntimeout_s = 0.5\n', "serve.timeout_s"),
    ('[serve]\ntimeout_s = 1e400\n', "serve.timeout_s"),
    ('[serve]\nmax_connections = 0\n', "serve.max_connections"),
    ('[serve]\nmax_connections = ' + "9" * 400 + '\n', "serve.max_connections"),
])
def test_bad_serve_and_mqtt_values_are_one_line_errors(tmp_path, body, key):
    path = tmp_path / "c.toml"
    path.write_text(body)
    with pytest.raises(ConfigError) as err:
        config.load(path)
    text = str(err.value)
    assert text.startswith(f"{path}: {key}") and "\n" not in text


def test_addresses_parse():
    assert config.ServeConfig(listen="[::1]:8080").address == ("::1", 8080)
    assert config.MqttConfig(broker="mqtts://broker.lan").address == ("broker.lan", 8883)
    assert config.MqttConfig(broker="mqtt://[::1]").address == ("::1", 1883)
    assert config.MqttConfig(broker="mqtt://10.0.0.2:1884").address == ("10.0.0.2", 1884)


def test_serve_needs_serve_or_mqtt(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[serve]\nenabled = false\n")
    with pytest.raises(ConfigError, match=r"neither \[serve\] nor \[mqtt\] is enabled"):
        config.require_serve(config.load(path))


def _pw_config(tmp_path: Path, mode: int, text: str = "s3cret pass\n") -> config.Config:
    pw = tmp_path / "mqtt-password"
    pw.write_text(text)
    pw.chmod(mode)
    path = tmp_path / "c.toml"
    path.write_text('[mqtt]\nenabled = true\nusername = "meter"\npassword_file = "mqtt-password"\n')
    return config.load(path)


def test_the_password_file_is_read_owner_only_and_never_shown(tmp_path):
    assert config.load_mqtt_password(_pw_config(tmp_path, 0o600)) == "s3cret pass"
    with pytest.raises(ConfigError, match="readable by group") as err:
        config.load_mqtt_password(_pw_config(tmp_path, 0o640))
    assert "s3cret" not in str(err.value) and "chmod 600" in str(err.value)
    with pytest.raises(ConfigError, match="empty"):
        config.load_mqtt_password(_pw_config(tmp_path, 0o600, "\n"))


def test_the_password_can_come_from_a_systemd_credential(tmp_path):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt-password").write_text("from systemd\n")
    (creds / "mqtt-password").chmod(0o640)  # systemd's ACL mask shows as group bits
    path = tmp_path / "c.toml"
    path.write_text('[mqtt]\nenabled = true\nusername = "meter"\n')
    cfg = config.load(path)
    env = {"CREDENTIALS_DIRECTORY": str(creds)}
    assert config.load_mqtt_password(cfg, environ=env) == "from systemd"
    assert config.load_mqtt_password(cfg, environ={}) == ""


def test_figures_count_the_open_round_and_let_an_old_reading_go_stale(tmp_path):
    from p2p_energy.core.metering import RoundTotals
    from p2p_energy.core.pricing import Quote
    from p2p_energy.serve.figures import read_figures
    from p2p_energy.store.ledger import Ledger
    from p2p_energy.store.reader import LedgerReader

    t0 = 1.8e9
    led = Ledger(tmp_path / "l.db", clock=lambda: t0)
    led.record_round(RoundTotals(t0 - 60, 60, 60, 600.0, 6000.0, 60, 61, 1, t0), Quote(
        0.02, False, 12_000_000_000))
    led.checkpoint(RoundTotals(t0, 5, 5, 50.0, 500.0, 5, 5, 0), LivePower(10.0, 100.0, t0))
    led.close()
    hw = HighWater()
    with LedgerReader(tmp_path / "l.db") as r:
        fresh = read_figures(r, BERLIN, stale_after_s=35, high_water=hw, now=t0 + 30)
        stale = read_figures(r, BERLIN, stale_after_s=35, high_water=hw, now=t0 + 36)
    assert fresh.live == LivePower(10.0, 100.0, t0) and stale.live is None
    assert stale.live_seen == fresh.live
    assert fresh.consumer_mws == 650.0 and fresh.samples == 65 and fresh.missed_samples == 1
    assert fresh.owed_nano_units == 12_000_000_000 and fresh.price == 0.02
    assert fresh.today.sums.rounds == 1
    # Today and this month count the open round's energy, as all time does.
    for period in (fresh.today, fresh.month):
        assert (period.sums.consumer_mws, period.sums.producer_mws) == (650.0, 6500.0)


def test_energy_counters_never_go_down_across_a_serve_restart(tmp_path):
    """A round or checkpoint with energy below zero (the panel channel's noise at night,
    saved by an older daemon) must not make /metrics' and Home Assistant's counters dip
    when serve restarts and its HighWater starts again."""
    from p2p_energy.core.metering import RoundTotals
    from p2p_energy.core.pricing import Quote
    from p2p_energy.serve.figures import AllTime, read_figures
    from p2p_energy.store.ledger import Ledger
    from p2p_energy.store.reader import LedgerReader

    t0, path = 1.8e9, tmp_path / "l.db"
    led = Ledger(path, clock=lambda: t0)
    led.record_round(RoundTotals(t0 - 120, 60, 60, 600.0, 6000.0, 60, 60, 0, t0 - 60),
                     Quote(0.02, False, 0))

    def look(high_water: HighWater, all_time: AllTime):
        with LedgerReader(path) as r:
            f = read_figures(r, BERLIN, stale_after_s=35, high_water=high_water,
                             all_time=all_time, now=t0 + 1)
            return f.producer_mws, f.consumer_mws, f.today.sums.producer_mws

    first = HighWater(), AllTime()
    assert look(*first) == (6000.0, 600.0, 6000.0)
    led.checkpoint(RoundTotals(t0 - 60, 30, 30, -5.0, -40.0, 30, 30, 0))
    assert look(*first) == (6000.0, 600.0, 6000.0)
    assert look(HighWater(), AllTime()) == (6000.0, 600.0, 6000.0)  # serve restarted
    led.record_round(RoundTotals(t0 - 60, 60, 60, -5.0, -40.0, 60, 60, 0, t0),
                     Quote(0.02, False, 0))
    assert look(*first) == (6000.0, 600.0, 6000.0)
    assert look(HighWater(), AllTime()) == (6000.0, 600.0, 6000.0)  # serve restarted
    led.close()


def test_all_time_totals_kept_up_by_adding_new_rounds_equal_a_full_sum(tmp_path):
    from p2p_energy.core.metering import RoundTotals
    from p2p_energy.core.pricing import Quote
    from p2p_energy.serve.figures import AllTime
    from p2p_energy.store.ledger import Ledger
    from p2p_energy.store.reader import LedgerReader

    def add_rounds(path, n, offset=0):
        led = Ledger(path)
        for i in range(n):
            led.record_round(RoundTotals(i, 1, 1, 7.0 * i - 20, 3.0, 10, 11, 1, offset + i + 1),
                             Quote(0.02, False, 1_000_000_007 * i))
        led.close()

    kept = AllTime()
    add_rounds(tmp_path / "a.db", 5)
    with LedgerReader(tmp_path / "a.db") as r:
        kept(r)
    add_rounds(tmp_path / "a.db", 4, offset=100)
    with LedgerReader(tmp_path / "a.db") as r:
        assert kept(r) == r.sums() and r.sums().rounds == 9
    add_rounds(tmp_path / "b.db", 2)  # a smaller ledger file in its place: start over
    with LedgerReader(tmp_path / "b.db") as r:
        assert kept(r) == r.sums()


# -- bounds on what a client can ask (issue 19) ---------------------------------------------

def test_on_a_32_bit_time_t_times_end_before_2038():
    """Raspberry Pi OS before Debian 13 has a 32-bit time_t: Python cannot convert a time
    past 2038-01-19 there, so the API refuses it with the reason instead of failing."""
    first, last = periods.time_range(32)
    assert (first, last) == (0.0, 2**31 - 1 - 2 * 86400)
    assert periods.parse_time("2038-01-01", BERLIN, (first, last)) < last
    for text in (str(2**31), "2038-01-19T03:14:08Z", "1e18"):
        with pytest.raises(ValueError, match="out of range: times from 1970-01-01T00:00:00Z"
                                             " to 2038-01-17"):
            periods.parse_time(text, BERLIN, (first, last))
    with pytest.raises(ValueError, match="out of range: days from 1970-01-02 to 2038-01-16"):
        periods.parse_day("2038-01-18", BERLIN, (first, last))
    assert periods.parse_day("2038-01-16", BERLIN, (first, last)).end <= last
    _, last_64 = periods.time_range(64)
    assert periods.parse_day("9999-12-28", BERLIN).end <= last_64


@pytest.mark.parametrize("header, allowed", [
    ("127.0.0.1:8080", True), ("[::1]:8080", True), ("10.0.0.7", True), ("LOCALHOST", True),
    ("meter.lan:80", True), ("meter.lan.", True), ("evil.example", False),
    ("meter.lan.evil.example", False), ("localhost.evil.example:8080", False), ("", False),
])
def test_host_headers_allowed_are_ip_addresses_and_our_names(header, allowed):
    from p2p_energy.serve.server import host_allowed, own_host_names
    names = own_host_names("0.0.0.0", ("meter.lan",))
    assert "0.0.0.0" not in names and "localhost" in names
    assert host_allowed(header, names) is allowed


def test_the_connection_cap_fits_the_open_file_limit():
    from p2p_energy.serve.server import connection_cap
    assert connection_cap(64, 1024) == 64
    assert connection_cap(64, 128) == 24  # (128 - 32) / 4
    assert connection_cap(64, 10) == 1


def test_episodes_log_once_until_quiet_then_say_how_many():
    import logging

    from p2p_energy.serve.episodes import Episodes
    now = [0.0]
    records: list[logging.LogRecord] = []
    logger = logging.getLogger("test-episodes")
    logger.setLevel(logging.DEBUG)
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        ep = Episodes(logger, quiet_s=10, clock=lambda: now[0])
        starts = []
        for t in (0, 1, 2, 9, 18, 29, 30):
            now[0] = t
            starts.append(ep.note("reset", logging.INFO, "a client reset %s", "x"))
    finally:
        logger.removeHandler(handler)
    assert starts == [True, False, False, False, False, True, False]
    loud = [r.getMessage() for r in records if r.levelno == logging.INFO]
    assert len(loud) == 2 and "(the last time: 5 in a row)" in loud[1]
