"""Did a payment reach the producer on today's IOTA network? Read-only, over JSON-RPC.

For one executed payment entry (its ``reference`` is the transaction digest),
one call: ``iota_getTransactionBlock(digest, {"showEffects": true,
"showBalanceChanges": true})``.

- A digest the node does not serve (error "Could not find the referenced
  transaction") is a problem: never executed, or pruned by that node (ask an
  archive node then).
- ``effects.status.status`` "failure" is a problem: it paid nothing.
- What arrived is the sum of ``balanceChanges`` of coin type
  ``0x2::iota::IOTA`` owned by ``{"AddressOwner": address}``, in nanos; it must
  be the entry's ``amount_units`` x 1,000 (one ledger unit is one micro-IOTA).

Any other error, or an answer out of shape, raises ``WalletError``: the
payment could not be checked, which says nothing of the payment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import RpcError, WalletError
from .base import MICRO_UNIT
from .iota_rpc import RpcClient, one_line
from .iota_tx import digest_bytes
from .iota_units import IOTA_COIN, NANOS_PER_UNIT, NOT_FOUND
from .receipt import Receipt, recipient_problem

if TYPE_CHECKING:
    from ..core.entries import PaymentEntry

NANO_UNITS_PER_NANO = 1_000_000_000 // NANOS_PER_UNIT  # nano-units of a micro-IOTA per nano
BACKEND = "iota"  # the wallet backend whose payments live on this network
_OPTIONS = {"showEffects": True, "showBalanceChanges": True}


class IotaReceipts:
    """Checks payments to ``address`` (0x, lower case) through the fullnode at ``node_url``.

    Raises WalletError when ``node_url`` is no http(s) URL; nothing is contacted here.
    """

    def __init__(self, node_url: str, address: str, timeout_s: float) -> None:
        self.rpc = RpcClient(node_url, timeout_s)
        self.address = address
        self.network = f"today's IOTA network (node {node_url})"

    def check(self, payment: PaymentEntry) -> Receipt:
        """What ``payment`` came to on the network (see the module docstring).

        Raises:
            WalletError: the node cannot be asked, or answers out of shape.
        """
        problem = recipient_problem(payment, self.address) or _form_problem(payment)
        if problem:
            return Receipt((problem,), 0)
        pid, digest = payment.payment_id, payment.reference
        try:
            answer = self.rpc.call("iota_getTransactionBlock", digest, _OPTIONS)
        except RpcError as err:
            if NOT_FOUND not in err.node_message:
                raise
            return Receipt((f"payment {pid}: transaction {digest} is unknown to node"
                            f" {self.rpc.url} (never executed there, or pruned)",), 0)
        status, error, arrived = self._read(digest, answer)
        if status != "success":
            return Receipt((f"payment {pid}: transaction {digest} failed on the network:"
                            f" {one_line(error, 120) or 'no reason given'}",), 0)
        wanted = payment.amount_units * NANOS_PER_UNIT
        problems: tuple[str, ...] = ()
        if arrived != wanted:
            problems = (f"payment {pid}: transaction {digest} moved {arrived} nanos to"
                        f" {self.address}, the entry says {payment.amount_units}"
                        f" {MICRO_UNIT} ({wanted} nanos)",)
        return Receipt(problems, arrived * NANO_UNITS_PER_NANO)

    def _read(self, digest: str, answer: Any) -> tuple[str, str, int]:
        """(status, error, nanos to the address) of a ``getTransactionBlock`` answer.

        Raises:
            WalletError: not the answer for this digest, or not its shape.
        """
        try:
            if answer["digest"] != digest:
                raise ValueError(f"the answer is for transaction {answer['digest']}")
            status = answer["effects"]["status"]
            if status["status"] not in ("success", "failure"):
                raise ValueError(f"status {status['status']!r}")
            arrived = 0
            for change in answer["balanceChanges"]:
                amount = int(change["amount"])  # a decimal string, i128
                if change["owner"] == {"AddressOwner": self.address} \
                        and change["coinType"] == IOTA_COIN:
                    arrived += amount
            return status["status"], str(status.get("error") or ""), arrived
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            said = one_line(f"{type(err).__name__}: {err}", 120)
            raise WalletError(f"iota_getTransactionBlock: node {self.rpc.url} answered"
                              f" something that is not transaction {digest} with its effects"
                              f" and balance changes ({said})", kind="garbage") from None

    def close(self) -> None:
        pass


def _form_problem(payment: PaymentEntry) -> str:
    pid = payment.payment_id
    if payment.backend != BACKEND:
        return (f"payment {pid} was made with wallet backend \"{payment.backend}\", not on"
                " today's IOTA network")
    if payment.unit != MICRO_UNIT:
        return f"payment {pid} is in {payment.unit}, not in {MICRO_UNIT}"
    try:
        digest_bytes(payment.reference)
    except ValueError:
        return f"payment {pid}: reference {payment.reference} is not a transaction digest"
    return ""
