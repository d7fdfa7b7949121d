"""Did a payment reach the producer on today's IOTA network? Read-only, over JSON-RPC.

For one executed payment entry (its ``reference`` is the transaction digest),
one call: ``iota_getTransactionBlock(digest, {"showEffects": true,
"showBalanceChanges": true, "showRawInput": true})``.

- A digest the node does not serve (error "Could not find the referenced
  transaction") is a problem: never executed, or dropped by a pruning node (a
  fullnode keeps transactions about two epochs; an archive node keeps them all).
- ``effects.status.status`` "failure" is a problem: it paid nothing.
- What arrived is the sum of ``balanceChanges`` of coin type
  ``0x2::iota::IOTA`` owned by ``{"AddressOwner": address}``, in nanos; it must
  be the entry's ``amount_units`` x 1,000 (one ledger unit is one micro-IOTA).
- A fullnode derives balance changes from the coins' past versions; once it has
  pruned those (``num-epochs-to-retain``, about a day), it leaves
  ``balanceChanges`` out and says why in ``errors``. What arrived then comes
  from the transaction's own bytes, ``rawTransaction`` (BCS ``SenderSignedData``):
  they must hash to the digest and be the transfer our wallet builds
  (``iota_tx_read``: split the amount from the gas coin, transfer it to the
  receiver); with the effects' success, that amount reached that receiver (less
  the net gas when the sender is the address itself, as balance changes count
  it). Bytes of any other shape, or of another digest, are a problem naming
  the payment: ask an archive node.

Any other error, or an answer out of shape, raises ``WalletError``: the
payment could not be checked, which says nothing of the payment.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from ..errors import RpcError, WalletError
from .base import MICRO_UNIT
from .iota_rpc import RpcClient, one_line
from .iota_tx import digest_bytes
from .iota_tx_read import read_signed_transfer
from .iota_units import IOTA_COIN, NANOS_PER_UNIT, NOT_FOUND
from .receipt import Receipt, recipient_problem

if TYPE_CHECKING:
    from ..core.entries import PaymentEntry

NANO_UNITS_PER_NANO = 1_000_000_000 // NANOS_PER_UNIT  # nano-units of a micro-IOTA per nano
BACKEND = "iota"  # the wallet backend whose payments live on this network
_OPTIONS = {"showEffects": True, "showBalanceChanges": True, "showRawInput": True}
_ARCHIVE_HINT = "ask an archive node"


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
                            f" {self.rpc.url} (never executed, or dropped by a pruning node:"
                            f" a fullnode keeps transactions about two epochs;"
                            f" {_ARCHIVE_HINT})",), 0)
        status, error, arrived = self._read(digest, answer)
        if status != "success":
            return Receipt((f"payment {pid}: transaction {digest} failed on the network:"
                            f" {one_line(error, 120) or 'no reason given'}",), 0)
        if arrived is None:  # pruned balance changes: the transaction's own bytes say
            arrived, problem = self._from_bytes(pid, digest, answer)
            if problem:
                return Receipt((problem,), 0)
        wanted = payment.amount_units * NANOS_PER_UNIT
        problems: tuple[str, ...] = ()
        if arrived != wanted:
            problems = (f"payment {pid}: transaction {digest} moved {arrived} nanos to"
                        f" {self.address}, the entry says {payment.amount_units}"
                        f" {MICRO_UNIT} ({wanted} nanos)",)
        return Receipt(problems, arrived * NANO_UNITS_PER_NANO)

    def _read(self, digest: str, answer: Any) -> tuple[str, str, int | None]:
        """(status, error, nanos to the address) of a ``getTransactionBlock`` answer;
        None for the nanos when the node left the balance changes out.

        Raises:
            WalletError: not the answer for this digest, or not its shape.
        """
        try:
            if answer["digest"] != digest:
                raise ValueError(f"the answer is for transaction {answer['digest']}")
            status = answer["effects"]["status"]
            if status["status"] not in ("success", "failure"):
                raise ValueError(f"status {status['status']!r}")
            changes = answer.get("balanceChanges")  # left out when the node pruned them
            arrived = None if changes is None else self._sum(changes)
            return status["status"], str(status.get("error") or ""), arrived
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise self._garbage(digest, err) from None

    def _sum(self, changes: Any) -> int:
        """Nanos of IOTA to the address in ``balanceChanges`` (KeyError etc. out of shape)."""
        arrived = 0
        for change in changes:
            amount = int(change["amount"])  # a decimal string, i128
            if change["owner"] == {"AddressOwner": self.address} \
                    and change["coinType"] == IOTA_COIN:
                arrived += amount
        return arrived

    def _from_bytes(self, pid: int, digest: str, answer: dict[str, Any]) -> tuple[int, str]:
        """(nanos to the address, "") from the transaction's own bytes, or (0, the problem
        line) when they are not a transfer of ours with this digest.

        Raises:
            WalletError: effects out of shape (their gas, when the sender is the address).
        """
        try:
            raw = answer.get("rawTransaction")
            if not isinstance(raw, str):
                raise ValueError("the node gave no rawTransaction")
            transfer = read_signed_transfer(base64.b64decode(raw, validate=True))
            if transfer.digest != digest:
                raise ValueError(f"they are the bytes of transaction {transfer.digest}")
        except ValueError as err:  # binascii.Error is one
            return 0, (f"payment {pid}: node {self.rpc.url} no longer has the balance changes"
                       f" of transaction {digest}{_why(answer)} and its bytes are not a payment"
                       f" this verifier can read ({one_line(str(err), 120)}); {_ARCHIVE_HINT}")
        arrived = transfer.amount_nanos if transfer.receiver == self.address else 0
        if transfer.sender == self.address:  # it paid the amount and the gas (it owns the gas)
            try:
                gas = answer["effects"]["gasUsed"]
                net_gas = (int(gas["computationCost"]) + int(gas["storageCost"])
                           - int(gas["storageRebate"]))
            except (KeyError, TypeError, ValueError) as err:
                raise self._garbage(digest, err) from None
            arrived -= transfer.amount_nanos + net_gas
        return arrived, ""

    def _garbage(self, digest: str, err: Exception) -> WalletError:
        said = one_line(f"{type(err).__name__}: {err}", 120)
        return WalletError(f"iota_getTransactionBlock: node {self.rpc.url} answered something"
                           f" that is not transaction {digest} with its effects and balance"
                           f" changes ({said})", kind="garbage")

    def close(self) -> None:
        pass


def _why(answer: dict[str, Any]) -> str:
    """`` (what the node said)`` of an answer's ``errors``, or ""."""
    errors = answer.get("errors")
    if isinstance(errors, list) and errors:
        return f" ({one_line('; '.join(map(str, errors)), 240)})"
    return ""


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
