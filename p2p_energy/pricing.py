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


def payable_iota(total_owed_niota: int, paid_or_queued_iota: int) -> int:
    """Whole IOTA that can be queued now so that paid + queued = floor(total owed).

    The fraction below one IOTA is carried to later rounds, never dropped.
    """
    return max(total_owed_niota // NANO - paid_or_queued_iota, 0)


def carry_iota(total_owed_niota: int, paid_or_queued_iota: int) -> float:
    """The owed fraction not yet queued, in IOTA (in [0, 1) when books are balanced)."""
    return (total_owed_niota - paid_or_queued_iota * NANO) / NANO
