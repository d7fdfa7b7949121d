"""``/metrics`` for Prometheus, read from the ledger at every scrape.

Names follow the Prometheus naming guide: base units (joules, watts, seconds),
``_total`` on counters. Counters come from the ledger's totals, so they keep
counting across restarts of the daemon and of ``serve``; energy 1 mW·s = 0.001 J.
Money is in ledger units, the ledger's (``reader.ledger_unit_of``), and the names
say which, as the statement's CSV columns do: ``p2p_energy_owed_iota_total`` in
legacy IOTA, ``p2p_energy_owed_microiota_total`` in micro-IOTA on today's network
(a series whose unit changed is a new series, never one that jumps a millionfold).
The HELP texts say what one unit is. Fees are real IOTA on either network.
A scrape while the ledger cannot be read answers ``p2p_energy_ledger_up 0``.
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from .. import __version__
from ..errors import LedgerError
from ..wallet.base import LEGACY_UNIT, UNIT_MEANING, unit_slug
from .figures import Figures, LedgerSource

log = logging.getLogger(__name__)

STATUSES = ("queued", "sent", "confirmed", "failed")


class LedgerCollector(Collector):
    """Collects every p2p_energy_* metric from one snapshot of the ledger."""

    def __init__(self, source: LedgerSource) -> None:
        self.source = source
        self._failing = False

    def collect(self) -> Iterator[Metric]:
        build = GaugeMetricFamily("p2p_energy_build_info", "Version of p2p-energy serving these",
                                  labels=["version", "python"])
        build.add_metric([__version__, platform.python_version()], 1.0)
        yield build
        try:
            with self.source.open() as reader:
                f = self.source.figures(reader)
        except LedgerError as err:
            if not self._failing:
                log.warning("metrics: %s", err)
            self._failing = True
            yield GaugeMetricFamily("p2p_energy_ledger_up", "1 if the ledger could be read",
                                    value=0.0)
            return
        if self._failing:
            log.info("metrics: the ledger is readable again")
            self._failing = False
        yield GaugeMetricFamily("p2p_energy_ledger_up", "1 if the ledger could be read",
                                value=1.0)
        yield from figures_metrics(f, f.unit)


def figures_metrics(f: Figures, unit: str = LEGACY_UNIT) -> Iterator[Metric]:
    """The metric families for one reading of the ledger; money in ``unit`` (``ledger_unit``)."""
    in_units = f"in {unit} (one ledger unit: {UNIT_MEANING[unit]})"
    u = unit_slug(unit)

    def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
        return CounterMetricFamily(name, doc, value=value)

    yield counter("p2p_energy_consumer_energy_joules", "Energy the consumer used", f.consumer_mws
                  / 1000)
    yield counter("p2p_energy_producer_energy_joules", "Energy the producer's panel delivered",
                  f.producer_mws / 1000)
    yield counter(f"p2p_energy_owed_{u}", f"Owed for the energy of closed rounds, {in_units}",
                  f.owed_nano_units / 1e9)
    yield counter(f"p2p_energy_paid_{u}", f"Paid in confirmed payments, {in_units}",
                  f.paid_units)
    yield counter("p2p_energy_fees_iota",
                  "Network fees spent by payments, in IOTA (not ledger units)",
                  f.fees_nanos / 1e9)
    yield counter("p2p_energy_rounds", "Billing rounds closed and priced", f.rounds)
    yield GaugeMetricFamily("p2p_energy_rounds_waiting",
                            "Closed rounds waiting for the producer's signed figure (they owe"
                            " nothing until priced)", value=f.waiting.rounds)
    if f.waiting.oldest_end is not None:
        yield GaugeMetricFamily("p2p_energy_oldest_waiting_round_end_timestamp_seconds",
                                "When the oldest round waiting for the producer's figure ended"
                                " (Unix time)", value=f.waiting.oldest_end)
    yield counter("p2p_energy_rounds_disputed",
                  "Rounds whose producer's figure and this meter's differed beyond the band",
                  f.priced.disputed)
    yield counter("p2p_energy_samples_taken", "Sensor samples taken", f.samples)
    yield counter("p2p_energy_samples_missed",
                  "Sample deadlines without a sample (late ticks and failed reads)",
                  f.missed_samples)
    yield counter("p2p_energy_sample_failures", "Sensor reads that failed", f.failed_samples)
    count = GaugeMetricFamily("p2p_energy_payments", "Payments in the ledger, by status",
                              labels=["status"])
    value = GaugeMetricFamily(f"p2p_energy_payment_value_{u}",
                              f"Value of the payments in the ledger by status, {in_units}",
                              labels=["status"])
    for status in STATUSES:
        n, v = f.payments_by_status.get(status, (0, 0))
        count.add_metric([status], n)
        value.add_metric([status], v)
    yield count
    yield value
    if f.last_round_end is not None:
        yield GaugeMetricFamily("p2p_energy_last_round_end_timestamp_seconds",
                                "When the last closed round ended (Unix time)",
                                value=f.last_round_end)
    if f.price is not None:
        yield GaugeMetricFamily(f"p2p_energy_price_{u}_per_joule",
                                f"Price of the last closed round, {unit} per joule"
                                f" (1 {unit}/mW·s = 1000 {unit}/J; {unit}: {UNIT_MEANING[unit]})",
                                value=f.price * 1000)
    if f.live is not None:  # no gauge at all rather than a stale one
        yield GaugeMetricFamily("p2p_energy_consumer_power_watts", "Consumer power, latest",
                                value=f.live.consumer_mw / 1000)
        yield GaugeMetricFamily("p2p_energy_producer_power_watts", "Producer power, latest",
                                value=f.live.producer_mw / 1000)
    if f.live_seen is not None:
        yield GaugeMetricFamily("p2p_energy_last_sample_timestamp_seconds",
                                "When the latest power reading was taken (Unix time)",
                                value=f.live_seen.sampled_at)


def registry(source: LedgerSource) -> CollectorRegistry:
    """A registry holding only our metrics (no process or Python ones)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(LedgerCollector(source))
    return reg
