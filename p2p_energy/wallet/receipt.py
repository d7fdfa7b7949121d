"""One payment's receipt, and whether a payment entry names the producer's address.

Shared by the payment checks of ``verify`` (``receipts`` picks one;
``iota_receipts``, ``pyota_receipts`` ask their networks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .addresses import is_hex

if TYPE_CHECKING:
    from ..core.entries import PaymentEntry


@dataclass(frozen=True)
class Receipt:
    """What one executed payment entry came to.

    ``problems``: one line each, without the entry's index (the caller adds it).
    ``arrived_nano_units``: what reached the address by this payment, as the
    network shows it; None when no network was asked.
    """

    problems: tuple[str, ...] = ()
    arrived_nano_units: int | None = None


class Receipts(Protocol):
    address: str
    network: str  # e.g. "today's IOTA network (node http://...)"; "" when none is asked

    def check(self, payment: PaymentEntry) -> Receipt:
        """Raises WalletError when the node cannot be asked (not for what it says)."""
        ...

    def close(self) -> None: ...


def same_address(recipient: str, address: str) -> bool:
    """Whether a payment entry's recipient is ``address`` (normal form), in either form."""
    if is_hex(address):
        return recipient.lower() == address
    return len(recipient) in (81, 90) and recipient[:81] == address


def recipient_problem(payment: PaymentEntry, address: str) -> str:
    """The problem line when ``payment`` names another recipient than ``address``, else ""."""
    if same_address(payment.recipient, address):
        return ""
    return f"payment {payment.payment_id} was paid to {payment.recipient}, not to {address}"
