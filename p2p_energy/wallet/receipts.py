"""Did a logged payment reach the producer? Read-only lookups for ``p2p-energy verify``.

``open_receipts(address, node_url, timeout_s)`` picks the network by the form
of the producer's ``address``: ``0x`` and 64 hex digits is today's IOTA network
(``iota_receipts``, JSON-RPC); 81 trytes, or 90 with a valid checksum, is the
legacy network (``pyota_receipts``, PyOTA, imported only then). Anything else
is refused. Without a node it only checks that each payment names the address
as its recipient, and says nothing of the network.

Amounts that arrived are counted in nano-units, 1e-9 of the ledger unit the
payment entry names (``core.entries``), so that the verifier adds them exactly:
one legacy IOTA is 1e9 nano-units; one nano on today's network, a thousandth
of a micro-IOTA, is 1e6.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .addresses import iota_address, is_hex
from .receipt import Receipt, Receipts, recipient_problem

if TYPE_CHECKING:
    from ..core.entries import PaymentEntry

__all__ = ["Receipt", "Receipts", "open_receipts", "producer_address"]


def producer_address(text: str) -> str:
    """The producer's address in its normal form (today's: lower case; legacy: 81 trytes).

    Raises:
        ValueError: neither form, or a legacy address whose checksum is wrong
            (the message is the rule).
    """
    address = iota_address(text)
    if not address:
        raise ValueError("must be an IOTA address: 0x followed by 64 hex digits, or 81"
                         " trytes (90 with its checksum)")
    return address if is_hex(address) else address[:81]


class OfflineReceipts:
    """No node: only the recipient of each payment is checked."""

    network = ""

    def __init__(self, address: str) -> None:
        self.address = address

    def check(self, payment: PaymentEntry) -> Receipt:
        problem = recipient_problem(payment, self.address)
        return Receipt((problem,) if problem else ())

    def close(self) -> None:
        pass


def open_receipts(address: str, node_url: str | None, timeout_s: float) -> Receipts:
    """The checks for payments to ``address``: through ``node_url``, or offline (None).

    Nothing is contacted here. Raises:
        ValueError: ``address`` is of neither form (the message is the rule).
        WalletError: ``node_url`` is no http(s) URL.
    """
    address = producer_address(address)
    if node_url is None:
        return OfflineReceipts(address)
    if is_hex(address):
        from .iota_receipts import IotaReceipts
        return IotaReceipts(node_url, address, timeout_s)
    from .pyota_receipts import PyotaReceipts
    return PyotaReceipts(node_url, address, timeout_s)
