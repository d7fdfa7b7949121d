"""Pytest fixtures and helpers for today's IOTA network: our test node and a wallet on it.

    def test_pays(iota_node):
        wallet = iota_wallet(iota_node)          # PAYER_KEY, funded with FUNDS_NANOS
        signed = wallet.prepare(1000, 0)
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from p2p_energy.wallet.iota_keys import Keypair

from .iota_node import IotaNode

# Fixed keys: tests must be reproducible. Never a real key.
PAYER_KEY = Keypair(bytes.fromhex("5eed" * 16))
RECEIVER = "0x" + "e1" * 32
FUNDS_NANOS = 10 * 10**9  # 10 IOTA

__all__ = ["FUNDS_NANOS", "PAYER_KEY", "RECEIVER", "funded_iota_node", "iota_node",
           "iota_wallet", "judged"]


def iota_wallet(node: IotaNode, **overrides: Any) -> Any:
    """An ``IotaWallet`` of ``PAYER_KEY`` paying ``RECEIVER`` through ``node`` (2 s timeout)."""
    from p2p_energy.wallet.iota_wallet import IotaWallet
    args: dict[str, Any] = dict(node_url=node.url, receiver=RECEIVER, keypair=PAYER_KEY,
                                timeout_s=2.0)
    return IotaWallet(**(args | overrides))


def judged(payloads: list[str]) -> list[dict[str, Any]]:
    """The SDK's verdicts on signed payloads (with the SDK's own signature to compare)."""
    from .sdk_judge import judge
    items = [json.loads(p) for p in payloads]
    return judge(transactions=[{"tx_bytes": i["tx_bytes"], "signature": i["signature"],
                                "secret": PAYER_KEY.export()} for i in items])["transactions"]


def tx_bytes_of(payload: str) -> bytes:
    return base64.b64decode(json.loads(payload)["tx_bytes"])


@contextmanager
def funded_iota_node(**kwargs: Any) -> Iterator[IotaNode]:
    """A started node where ``PAYER_KEY`` holds one coin of ``FUNDS_NANOS``."""
    node = IotaNode(hang_s=10.0, **kwargs)
    node.fund(PAYER_KEY.address, FUNDS_NANOS)
    node.start()
    try:
        yield node
    finally:
        node.clear_fault()
        node.stop()


@pytest.fixture
def iota_node() -> Iterator[IotaNode]:
    """A started node where ``PAYER_KEY`` holds one coin of ``FUNDS_NANOS``."""
    with funded_iota_node() as node:
        yield node
