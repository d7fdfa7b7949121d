"""Pricing: the formula, the night cap, and exact carrying of fractions."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2p_energy.core.pricing import (
    NANO,
    PriceRule,
    carry_units,
    payable_units,
    quote_round,
    whole_nanos,
)

RULE = PriceRule(10 * NANO, 10 * NANO)


def price_per_mws(avg_producer_mw: float, numerator: float, max_price: float):
    """The displayed price of a 60 s round at this average production."""
    q = quote_round(0.0, avg_producer_mw * 60, 60.0, PriceRule.from_units(numerator, max_price))
    return q.price, q.capped


def quote(consumer_mws: float, avg_producer_mw: float, numerator: float, max_price: float):
    return quote_round(consumer_mws, avg_producer_mw * 60, 60.0,
                       PriceRule.from_units(numerator, max_price))


def test_price_is_numerator_over_average_production():
    assert price_per_mws(500.0, 10.0, 10.0) == (0.02, False)


def test_zero_and_negative_production_apply_the_cap_without_dividing():
    assert price_per_mws(0.0, 10.0, 10.0) == (10.0, True)
    assert price_per_mws(-3.0, 10.0, 10.0) == (10.0, True)
    assert price_per_mws(0.5, 10.0, 10.0) == (10.0, True)  # 20 > cap


def test_cap_boundary_is_capped_exactly_at_max_price():
    price, capped = price_per_mws(1.0, 10.0, 10.0)
    assert price == 10.0 and capped


def test_quote_owes_energy_times_price_in_nano_iota():
    q = quote(consumer_mws=3000.0, avg_producer_mw=500.0, numerator=10.0, max_price=10.0)
    assert q.owed_nano_units == 60 * NANO and q.owed_iota == 60.0 and not q.capped


def test_negative_consumer_energy_owes_nothing():
    assert quote(-5.0, 100.0, 10.0, 10.0).owed_nano_units == 0


@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=200),
       st.floats(0.001, 1e5, allow_nan=False))
def test_queued_always_equals_floor_of_owed(energies, producer_mw):
    owed = live = 0
    for e in energies:
        owed += quote(e, producer_mw, 10.0, 10.0).owed_nano_units
        live += payable_units(owed, live)
        assert live == owed // NANO
        assert 0 <= carry_units(owed, live) < 1
    assert live == math.floor(owed / NANO) or owed % NANO == 0


def test_config_figures_become_whole_nano_units_from_their_decimals():
    assert PriceRule.from_units(10.0, 0.1) == PriceRule(10 * NANO, 100_000_000)
    assert whole_nanos(0.000000001) == 1 and whole_nanos(1.000000001) == NANO + 1
    for bad in (0.0000000001, 1.0000000001, 0.0, 2.0**64):
        with pytest.raises(ValueError):
            whole_nanos(bad)
