"""Price and amount owed: pure functions, no I/O.

``price = numerator / average producer mW`` (IOTA per mW·s): more sun, cheaper
energy. When the panel produces (almost) nothing the price is capped at
``max_price`` instead of dividing by zero, and the round is marked capped.

Amounts are kept as whole nano-IOTA (1e-9 IOTA) so that sums are exact and
``floor(total owed)`` never depends on the order floats were added in.
"""

from __future__ import annotations

from dataclasses import dataclass

NANO = 1_000_000_000  # nano-IOTA per IOTA
INT64_MAX = 2**63 - 1  # the largest INTEGER SQLite stores
# Running sums of whole IOTA (paid, queued) must fit SQLite's INTEGER for this
# long of non-stop metering at the highest price and power (a century).
SUMS_LAST_S = 100 * 365.25 * 86400


@dataclass(frozen=True, slots=True)
class Quote:
    """The price of one round and the amount owed for it."""

    price: float  # IOTA per mW·s
    capped: bool
    owed_niota: int  # nano-IOTA

    @property
    def owed_iota(self) -> float:
        return self.owed_niota / NANO


def price_per_mws(avg_producer_mw: float, numerator: float, max_price: float) -> tuple[float, bool]:
    """Return ``(price, capped)`` for a round's time-weighted average production.

    Zero, negative or tiny production gives ``max_price`` with ``capped=True``.
    """
    if avg_producer_mw <= 0 or numerator >= max_price * avg_producer_mw:
        return max_price, True
    return numerator / avg_producer_mw, False


def quote(consumer_mws: float, avg_producer_mw: float, numerator: float,
          max_price: float) -> Quote:
    """Price a round. Negative consumer energy (sensor noise at zero load) owes nothing."""
    price, capped = price_per_mws(avg_producer_mw, numerator, max_price)
    owed = max(consumer_mws, 0.0) * price
    return Quote(price=price, capped=capped, owed_niota=round(owed * NANO))


def most_owed_niota(max_power_mw: float, length_s: float, max_price: float) -> float:
    """The most one round can owe (nano-IOTA): full power for a whole round, at the cap."""
    return max_power_mw * length_s * max_price * NANO


def most_owed_iota_per_s(max_power_mw: float, max_price: float) -> float:
    """The most that can be owed per second of metering (IOTA)."""
    return max_power_mw * max_price


def payable_iota(total_owed_niota: int, paid_or_queued_iota: int) -> int:
    """Whole IOTA that can be queued now so that paid + queued = floor(total owed).

    The fraction below one IOTA is carried to later rounds, never dropped.
    """
    return max(total_owed_niota // NANO - paid_or_queued_iota, 0)


def carry_iota(total_owed_niota: int, paid_or_queued_iota: int) -> float:
    """The owed fraction not yet queued, in IOTA (in [0, 1) when books are balanced)."""
    return (total_owed_niota - paid_or_queued_iota * NANO) / NANO
