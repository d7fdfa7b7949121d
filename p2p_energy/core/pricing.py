"""Price and amount owed: pure functions, no I/O.

``price = numerator / average producer mW`` (ledger units per mW·s): more sun,
cheaper energy. When the panel produces (almost) nothing the price is capped at
``max_price`` instead of dividing by zero, and the round is marked capped.

The rule is computed exactly, on the integers a round's log entry holds
(``core.entries``), so that anyone can recompute every bill and get the same
nano-units: with E_c, E_p the consumer's and producer's energy (whole µW·s),
T_p the producer's metered time (whole µs), N the numerator (nano-units per s)
and C the cap (nano-units per mW·s)::

    capped  iff  E_p <= 0  or  T_p <= 0  or  N x T_p >= 1000 x C x E_p
    price   =    C if capped, else N x T_p / (1000 x E_p)   (nano-units per mW·s)
    owed    =    round_half_even(max(E_c, 0) x price / 1000)   (nano-units)

in rational arithmetic. Amounts are kept as whole nano-units (1e-9 of the
ledger's unit) so that sums are exact and ``floor(total owed)`` never depends
on the order anything was added in.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

NANO = 1_000_000_000  # nano-units per ledger unit
INT64_MAX = 2**63 - 1  # the largest INTEGER SQLite stores
MAX_U64 = 2**64 - 1
# Running sums of whole units (paid, queued) must fit SQLite's INTEGER for this
# long of non-stop metering at the highest price and power (a century).
SUMS_LAST_S = 100 * 365.25 * 86400


@dataclass(frozen=True, slots=True)
class PriceRule:
    """The rule's two parameters, in whole nano-units (what a round entry records)."""

    numerator_nano_units_per_s: int
    cap_nano_units_per_mws: int

    @classmethod
    def from_units(cls, numerator: float, max_price: float) -> PriceRule:
        """From ``[price]`` as configured (units per s, units per mW·s).

        Raises ValueError unless each is a whole number of nano-units in [1, 2**64 - 1].
        """
        return cls(whole_nanos(numerator), whole_nanos(max_price))


def whole_nanos(value: float) -> int:
    """``value`` units as whole nano-units, from the decimal it was written as.

    Raises ValueError for more than 9 decimal places, or outside [1, 2**64 - 1].
    """
    nanos = Decimal(repr(float(value))) * NANO
    if nanos != nanos.to_integral_value():
        raise ValueError("more than 9 decimal places (nano-units are the smallest step)")
    if not 1 <= nanos <= MAX_U64:
        raise ValueError(f"must be between 1e-9 and {MAX_U64 / NANO:.4g}")
    return int(nanos)


@dataclass(frozen=True, slots=True)
class Quote:
    """The price of one round and the amount owed for it, with the integers it came from."""

    price: float  # units per mW·s (for display; the exact price is a fraction)
    capped: bool
    owed_nano_units: int
    consumer_energy_uws: int = 0
    producer_energy_uws: int = 0
    producer_metered_us: int = 0
    rule: PriceRule | None = None  # None: made by hand (tests), not by ``quote_round``

    @property
    def owed_iota(self) -> float:
        """What is owed, in ledger units (for display)."""
        return self.owed_nano_units / NANO


def price_round(consumer_energy_uws: int, producer_energy_uws: int, producer_metered_us: int,
                numerator_nano_units_per_s: int,
                cap_nano_units_per_mws: int) -> tuple[bool, Fraction, int]:
    """``(capped, price in nano-units per mW·s, owed nano-units)``: the rule, exactly."""
    capped = (producer_energy_uws <= 0 or producer_metered_us <= 0
              or numerator_nano_units_per_s * producer_metered_us
              >= 1000 * cap_nano_units_per_mws * producer_energy_uws)
    if capped:
        price = Fraction(cap_nano_units_per_mws)
    else:
        price = Fraction(numerator_nano_units_per_s * producer_metered_us,
                         1000 * producer_energy_uws)
    owed = round(max(consumer_energy_uws, 0) * price / 1000)  # ties to even
    return capped, price, owed


def quote_round(consumer_mws: float, producer_mws: float, producer_metered_s: float,
                rule: PriceRule) -> Quote:
    """Price a closed round: its figures become whole µW·s and µs once, here, and the
    rule prices those integers (the same ones its log entry records)."""
    return quote_figures(round(consumer_mws * 1000), round(producer_mws * 1000),
                         round(producer_metered_s * 1_000_000), rule)


def quote_figures(ec: int, ep: int, tp: int, rule: PriceRule) -> Quote:
    """Price a round from the integers its entry records: the consumer's energy ``ec``
    and the producer's ``ep`` (µW·s) over ``tp`` (µs)."""
    capped, price, owed = price_round(ec, ep, tp, rule.numerator_nano_units_per_s,
                                      rule.cap_nano_units_per_mws)
    return Quote(price=float(price) / NANO, capped=capped, owed_nano_units=owed,
                 consumer_energy_uws=ec, producer_energy_uws=ep, producer_metered_us=tp,
                 rule=rule)


def settle(carry_in_nano_units: int, owed_nano_units: int) -> tuple[int, int]:
    """``(whole units queued, carry out)`` after a round: what ``payable_units`` does for the
    ledger's running totals, for one round. A carry below zero (a ledger that paid ahead)
    queues nothing until the amounts owed have caught up."""
    total = carry_in_nano_units + owed_nano_units
    return divmod(total, NANO) if total >= 0 else (0, total)


def most_owed_niota(max_power_mw: float, length_s: float, max_price: float) -> float:
    """The most one round can owe (nano-units): full power for a whole round, at the cap."""
    return max_power_mw * length_s * max_price * NANO


def most_owed_iota_per_s(max_power_mw: float, max_price: float) -> float:
    """The most that can be owed per second of metering (units)."""
    return max_power_mw * max_price


def payable_units(total_owed_nano_units: int, paid_or_queued_units: int) -> int:
    """Whole units that can be queued now so that paid + queued = floor(total owed).

    The fraction below one unit is carried to later rounds, never dropped.
    """
    return max(total_owed_nano_units // NANO - paid_or_queued_units, 0)


def carry_units(total_owed_nano_units: int, paid_or_queued_units: int) -> float:
    """The owed fraction not yet queued, in units (in [0, 1) when books are balanced)."""
    return (total_owed_nano_units - paid_or_queued_units * NANO) / NANO
