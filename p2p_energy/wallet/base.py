"""The interface between the payer and whatever moves the tokens.

The payer owns the policy (what is owed, which key index to spend from, when to
promote or reattach); a wallet only performs single steps. Every step may raise
``WalletError`` (``retryable`` says whether to wait and try again) and must
never put the seed into a message.

The steps, in the order the payer calls them:
1. ``prepare`` builds and signs a bundle paying ``value_iota`` to the receiver
   from the address at ``input_index``, the rest going to ``change_index``.
   No network write; the payer commits the result to the ledger before step 2.
2. ``broadcast`` attaches (proof of work) and broadcasts a stored bundle and
   returns the tail transaction hash of this attachment.
3. ``is_confirmed`` asks whether any of the given tails is confirmed.
4. ``promote`` / ``reattach`` help a stuck bundle; ``reattach`` returns the new tail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SignedBundle:
    """A signed, not yet attached bundle: everything needed to send it again."""

    bundle_hash: str
    trytes: tuple[str, ...]  # transaction trytes in the order attachToTangle takes them
    value_iota: int
    input_index: int
    change_index: int


class Wallet(Protocol):
    def prepare(self, value_iota: int, input_index: int, change_index: int) -> SignedBundle: ...

    def broadcast(self, bundle: SignedBundle) -> str: ...

    def is_confirmed(self, tails: list[str]) -> bool: ...

    def promote(self, tail: str) -> None: ...

    def reattach(self, tail: str) -> str: ...

    def describe(self) -> str: ...

    def close(self) -> None: ...
