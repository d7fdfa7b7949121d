"""Did a payment reach the producer on the legacy network? Read-only, through PyOTA.

For one executed payment entry (its ``reference`` is the bundle hash):

1. ``findTransactions {"bundles": [hash]}``: every transaction of every
   attachment of the bundle the node holds; none is "unknown to the node";
2. ``getTrytes`` of those; the tails (current index 0) are the attachments;
3. ``getInclusionStates {"transactions": [tails]}``: exactly one attachment of a
   confirmed bundle is included (PYOTA.md); none is "not confirmed";
4. the included attachment, followed from its tail along the trunks, must be
   whole, and its essence must hash (Kerl) to the bundle hash: a node cannot
   show other addresses or values for the hash the log names (PyOTA's own
   ``BundleValidator`` does not recompute it);
5. what arrived is the sum of its outputs (value > 0) to the producer's
   address, in IOTA; it must equal the entry's ``amount_units``.

The node is never given a seed. PyOTA is imported on the first check, and its
synchronous API would need the calling thread's event loop, so the async one
runs on an event loop of this object's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from ..core.trytes import is_trytes
from ..errors import WalletError
from .base import LEGACY_UNIT
from .iota_rpc import one_line
from .pyota_api import import_iota, node_error
from .receipt import Receipt, recipient_problem

if TYPE_CHECKING:
    from ..core.entries import PaymentEntry

T = TypeVar("T")
NANO_UNITS_PER_IOTA = 1_000_000_000  # one legacy IOTA is one ledger unit here
BACKEND = "pyota"  # the wallet backend whose payments live on this network
_TX_TRYTES = 2673
_ESSENCE = slice(2187, 2349)  # address, value, obsolete tag, timestamp, indexes


class PyotaReceipts:
    """Checks payments to ``address`` (81 trytes) through the legacy node at ``node_url``."""

    def __init__(self, node_url: str, address: str, timeout_s: float) -> None:
        """Nothing is contacted here. Raises WalletError for a node URL other than
        http(s)://host."""
        parts = urlsplit(node_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise WalletError(f"node URL {node_url!r} is not an http:// or https:// URL",
                              retryable=False)
        self.node_url = node_url
        self.address = address
        self.timeout_s = timeout_s
        self.network = f"the legacy IOTA network (node {node_url})"
        self._api: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def check(self, payment: PaymentEntry) -> Receipt:
        """What ``payment`` came to on the network (see the module docstring).

        Raises:
            WalletError: the node cannot be reached or answers out of shape.
        """
        problem = recipient_problem(payment, self.address) or self._form_problem(payment)
        if problem:
            return Receipt((problem,), 0)
        reference = payment.reference
        by_hash = self._bundle_transactions(reference)
        if not by_hash:
            return Receipt((f"payment {payment.payment_id}: bundle {reference} is unknown to"
                            f" node {self.node_url}",), 0)
        tails = [h for h, tx in by_hash.items() if tx.current_index == 0]
        included = self._included(tails)
        if not included:
            return Receipt((f"payment {payment.payment_id}: bundle {reference} is not"
                            " confirmed (no attachment of it is included)",), 0)
        attachment = _attachment(by_hash, included[0])
        if attachment is None or self._bundle_hash(attachment) != reference:
            return Receipt((f"payment {payment.payment_id}: node {self.node_url} shows"
                            f" transactions for bundle {reference} that do not hash to it",), 0)
        arrived = sum(tx.value for tx in attachment
                      if tx.value > 0 and str(tx.address) == self.address)
        receipt_problems: tuple[str, ...] = ()
        if arrived != payment.amount_units:
            receipt_problems = (f"payment {payment.payment_id}: bundle {reference} moved"
                                f" {arrived} IOTA to {self.address}, the entry says"
                                f" {payment.amount_units}",)
        return Receipt(receipt_problems, arrived * NANO_UNITS_PER_IOTA)

    def _form_problem(self, payment: PaymentEntry) -> str:
        pid = payment.payment_id
        if payment.backend != BACKEND:
            return (f"payment {pid} was made with wallet backend \"{payment.backend}\", not on"
                    " the legacy network")
        if payment.unit != LEGACY_UNIT:
            return f"payment {pid} is in {payment.unit}, not in legacy {LEGACY_UNIT}"
        if not is_trytes(payment.reference, 81):
            return f"payment {pid}: reference {payment.reference} is not a bundle hash"
        return ""

    def _bundle_transactions(self, reference: str) -> dict[str, Any]:
        """Transaction hash -> PyOTA ``Transaction`` of the bundle, as the node holds them
        (the trytes it holds for a hash, not recomputed: the essence is what counts)."""
        iota = import_iota()
        answer = self._call("findTransactions", lambda api: api.find_transactions(
            bundles=[iota.BundleHash(reference)]))
        hashes = [str(h) for h in self._list(answer, "hashes", "findTransactions")]
        if not hashes:
            return {}
        answer = self._call("getTrytes", lambda api: api.get_trytes(
            hashes=[iota.TransactionHash(h) for h in hashes]))
        trytes = [str(t) for t in self._list(answer, "trytes", "getTrytes")]
        if len(trytes) != len(hashes) or not all(is_trytes(t, _TX_TRYTES) for t in trytes):
            raise self._garbage("getTrytes", f"{len(trytes)} transactions for"
                                             f" {len(hashes)} hashes")
        return {h: iota.Transaction.from_tryte_string(t, hash_=iota.TransactionHash(h))
                for h, t in zip(hashes, trytes, strict=True) if t[2349:2430] == reference}

    def _included(self, tails: list[str]) -> list[str]:
        if not tails:
            return []
        iota = import_iota()
        answer = self._call("getInclusionStates", lambda api: api.get_inclusion_states(
            transactions=[iota.TransactionHash(t) for t in tails]))
        states = self._list(answer, "states", "getInclusionStates")
        if len(states) != len(tails) or not all(isinstance(s, bool) for s in states):
            raise self._garbage("getInclusionStates", f"{states!r} for {len(tails)} tails")
        return [t for t, s in zip(tails, states, strict=True) if s]

    @staticmethod
    def _bundle_hash(attachment: list[Any]) -> str:
        """Kerl over each transaction's essence, tail first: the hash its sender signed."""
        iota = import_iota()
        from iota.crypto.kerl import Kerl

        sponge = Kerl()
        for tx in attachment:
            sponge.absorb(iota.TryteString(str(tx.as_tryte_string())[_ESSENCE]).as_trits())
        out = [0] * 243
        sponge.squeeze(out)
        return str(iota.BundleHash.from_trits(out))

    def _list(self, answer: Any, key: str, step: str) -> list[Any]:
        found = answer.get(key) if isinstance(answer, dict) else None
        if not isinstance(found, list):
            raise self._garbage(step, f"no list of {key!r}")
        return found

    def _garbage(self, step: str, what: str) -> WalletError:
        return WalletError(one_line(f"{step}: node {self.node_url} answered {what}"),
                           kind="unexpected answer")

    def _call(self, step: str, make: Callable[[Any], Awaitable[T]]) -> T:
        """Run one API coroutine on this object's loop; every failure a WalletError."""
        try:
            if self._api is None:
                iota = import_iota()
                self._api = iota.AsyncIota(iota.HttpAdapter(self.node_url,
                                                            timeout=self.timeout_s))
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
            return self._loop.run_until_complete(make(self._api))
        except WalletError:
            raise
        except Exception as err:
            raise node_error(step, err, self.node_url, self.timeout_s, one_line) from None

    def close(self) -> None:
        """Close the HTTP client and the event loop."""
        if self._loop is None:
            return
        try:
            if self._api is not None:
                self._loop.run_until_complete(self._api.adapter.client.aclose())
        finally:
            self._loop.close()
            self._loop = None
            self._api = None


def _attachment(by_hash: dict[str, Any], tail: str) -> list[Any] | None:
    """The transactions of the attachment whose tail is ``tail``, tail first (trunk to
    trunk); None when the node does not hold it whole."""
    tx = by_hash[tail]
    out = [tx]
    while tx.current_index < tx.last_index:
        nxt = by_hash.get(str(tx.trunk_transaction_hash))
        if nxt is None or nxt.current_index != tx.current_index + 1 \
                or nxt.last_index != tx.last_index:
            return None
        out.append(nxt)
        tx = nxt
    return out
