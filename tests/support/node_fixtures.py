"""Pytest fixtures for the legacy IOTA test node (``legacy_node.py``).

Use from any test (conftest.py imports these)::

    def test_pays(legacy_node):                     # a started node, mwm 2
        legacy_node.fund_seed(PAYER_SEED, 0, 1000)  # address #0 of the seed
        wallet = PyotaWallet(wallet_config(legacy_node))
        ...
        legacy_node.confirm_all()
        assert legacy_node.rejected == []
        assert legacy_node.addresses_signed_by_more_than_one_bundle() == {}

Faults: ``legacy_node.set_fault("hang", commands={"attachToTangle"}, times=1)``,
``with legacy_node.fault("http500"): ...``, ``legacy_node.clear_fault()``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from p2p_energy.config import WalletConfig

from .legacy_node import LegacyNode, address_of

TEST_MWM = 2
# Fixed seeds: tests must be reproducible. Never a real seed.
PAYER_SEED = "PAYER9TEST9SEED9" + "9" * 65
OTHER_SEED = "OTHER9TEST9SEED9" + "9" * 65
# Any 81 trytes ending in 9 work (a value address's last trit must be 0).
RECEIVER = "PRODUCER9RECEIVER9ADDRESS9FOR9TESTS" + "9" * 46

__all__ = ["OTHER_SEED", "PAYER_SEED", "RECEIVER", "TEST_MWM", "address_of",
           "legacy_node", "wallet_config"]


def wallet_config(node: LegacyNode, **overrides: Any) -> WalletConfig:
    """A WalletConfig for ``node``: PAYER_SEED paying RECEIVER, mwm TEST_MWM, 5 s timeout."""
    base = WalletConfig(node_url=node.url, seed=PAYER_SEED, receiver=RECEIVER,
                        min_weight_magnitude=TEST_MWM, timeout_s=5.0)
    return dataclasses.replace(base, **overrides)


@pytest.fixture
def legacy_node() -> Iterator[LegacyNode]:
    """A started test node on an ephemeral 127.0.0.1 port (mwm 2, manual confirmation)."""
    node = LegacyNode(mwm=TEST_MWM, hang_s=10.0).start()
    try:
        yield node
    finally:
        node.clear_fault()
        node.stop()
