"""The interface between the payer and whatever moves the tokens (protocol v2).

The payer owns the policy (what is owed, which key index to spend from, when to
promote or send again); a wallet only performs single steps and answers
questions about the network it speaks. The payer never asks which network
that is: a legacy bundle and a transaction on today's IOTA network go through
the same steps.

The steps, in the order the payer calls them:
1. ``prepare`` signs a transfer of ``value`` ledger units from the key at
   ``input_index``. No network write; the payer commits the ``Signed`` result
   to the ledger before anything is sent.
2. ``attach`` makes one attempt to put it on the network, without sending
   anything that can confirm (legacy: tips + proof of work; the tail hash is
   computed locally). The payer records the attachment's id first.
3. ``send`` broadcasts (or executes) one attachment. Sending the same
   attachment again is harmless.
4. ``status`` says where the payment stands, and names every attachment the
   network knows (the payer records them all).
5. ``promote`` helps a pending payment along; ``NotPromotable`` means: attach
   it again (from the ledger's payload, never from a node's copy).

Every step may raise ``WalletError`` (``retryable`` says whether to wait and
try again) and must never put a secret into a message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .. import backends

if TYPE_CHECKING:
    import argparse

PENDING, CONFIRMED, FAILED, DEAD = "pending", "confirmed", "failed", "dead"
STATES = (PENDING, CONFIRMED, FAILED, DEAD)

# What one ledger unit is called, and what it is. Legacy network ("pyota", "dry-run"):
# one IOTA (i), the smallest the legacy network knows. Today's network ("iota"): one
# micro-IOTA, 1,000 nanos (iota_wallet.NANOS_PER_UNIT).
LEGACY_UNIT, MICRO_UNIT = "IOTA", "µIOTA"
UNIT_MEANING = {LEGACY_UNIT: "one legacy IOTA (i)", MICRO_UNIT: "one micro-IOTA, 1000 nanos"}


def unit_slug(unit: str) -> str:
    """The unit in a name (CSV columns, metric names, MQTT object ids): ``iota``,
    ``microiota``."""
    return unit.replace("µ", "micro").lower()


LEGACY_REFERENCE_KEY = "bundle_hash"  # how ledgers before backends named a payment

# ``check`` lines: a status and a text.
OK, FAIL, WARN, INFO = "ok", "FAIL", "warn", "  "
Report = Callable[[str, str], None]


def ledger_unit(backend: str | None) -> str:
    """What one ledger unit is called with this ``wallet.backend`` (LEGACY_UNIT for a
    payment recorded before backends were named)."""
    if backend in backends.REGISTRY:
        return backends.backend(backend).unit
    return LEGACY_UNIT


def reference_key(backend: str | None) -> str:
    """How ``ledger --json`` names a payment's reference, by the backend that signed it."""
    if backend in backends.REGISTRY:
        return backends.backend(backend).reference_key
    return LEGACY_REFERENCE_KEY


@dataclass(frozen=True)
class Position:
    """Where the ledger says the funds are: the key index spent from next, and the
    payment in flight (signed, not ended), if any. For ``check``."""

    index: int
    flying_id: int | None = None
    flying_value: int = 0
    change_index: int | None = None


@dataclass(frozen=True)
class Table:
    """A backend's own config table, ``[wallet.<name>]``: its frozen dataclass, and
    one validator per key (raising ``ValueError`` with the rule)."""

    name: str
    type: type
    schema: Mapping[str, Callable[[Any], Any]]


def no_arguments(_parser: argparse.ArgumentParser) -> None:
    """A wallet subcommand with no options of its own."""


@dataclass(frozen=True)
class WalletCommand:
    """A ``p2p-energy wallet <name>`` subcommand a backend offers (``Backend.commands``).

    ``run(config, args)`` does it and returns the line to print on stdout. With
    ``needs_config`` the command takes ``-c FILE`` and runs only under a config whose
    ``wallet.backend`` offers it (``config`` is that config); without, ``config`` is
    None. ``arguments(parser)`` adds its own options (argparse). Errors are raised as
    ``P2PEnergyError`` or ``ConfigError``, one line, never carrying a secret.
    """

    name: str
    help: str  # a line in ``wallet --help``
    description: str  # the first line of ``wallet <name> --help``
    run: Callable[[Any, argparse.Namespace], str]
    needs_config: bool = True
    arguments: Callable[[argparse.ArgumentParser], None] = no_arguments


def address_command(address: Callable[[Any], str]) -> WalletCommand:
    """``wallet address``: the configured key's address, ``address(config)``, for a
    backend with keys of its own."""
    what = "print the address of the configured key"
    return WalletCommand("address", help=what, description=what,
                         run=lambda config, _args: address(config))


@dataclass(frozen=True)
class Backend:
    """Everything that differs between wallet backends (registered in ``backends``).

    ``opener(config)`` reads and checks the key now and returns a function that
    opens the wallet later, in the payer thread. ``check(config, report,
    position)`` reports its lines. ``receiver(text)`` is the receiver in its
    normal form (raises ``ValueError`` naming the rule for a form this backend
    does not take); ``seed_rule(text)`` is "" for a ``wallet.seed`` of its form,
    else the rule it breaks.
    ``commands`` are the ``p2p-energy wallet`` subcommands it offers (the command
    line is built from them).
    """

    name: str
    unit: str  # what one ledger unit is called
    reference_key: str  # how ``ledger --json`` names a payment's reference
    node_url: str  # the default wallet.node_url
    min_payment: int  # the default wallet.min_payment, ledger units
    needs_receiver: bool
    receiver: Callable[[str], str]
    seed_rule: Callable[[str], str]
    opener: Callable[[Any], Callable[[], Wallet]]
    check: Callable[[Any, Report, Position], None]
    commands: tuple[WalletCommand, ...] = ()
    table: Table | None = None

    def command(self, name: str) -> WalletCommand | None:
        """Its ``wallet <name>`` subcommand, None if it offers none of that name."""
        return next((c for c in self.commands if c.name == name), None)


def no_rule(_value: str) -> str:
    return ""


@dataclass(frozen=True)
class Signed:
    """A signed transfer, committed to the ledger before anything is sent."""

    reference: str  # bundle hash (legacy) / transaction digest (IOTA today)
    payload: str  # opaque text (JSON) the wallet can attach and send again from
    value: int  # ledger units (whole legacy IOTA; 1 unit = 1,000 nanos today)
    input_index: int  # key index spent from (wallets without one: 0)
    change_index: int  # key index holding the rest once confirmed (== input_index if none)
    recipient: str = ""  # the address paid, as the network writes it (for the signed log)


@dataclass(frozen=True)
class Attachment:
    """One attempt to put a ``Signed`` on the network."""

    id: str  # legacy: tail hash, computed locally; today: the digest
    data: str  # what ``send`` needs (attached trytes / signed transaction)


@dataclass(frozen=True)
class Status:
    """Where a signed payment stands, as the network sees it now.

    ``state``: ``pending``; ``confirmed``; ``failed`` (executed, paid nothing,
    the fee was spent: the value is owed again); ``dead`` (can never execute:
    the value is owed again).
    """

    state: str
    attachments: tuple[str, ...] = ()  # every attachment the network knows: recorded
    fee_nanos: int = 0
    detail: str = ""


class Wallet(Protocol):
    backend: str  # the config's ``wallet.backend`` name, stored with each payment
    unit: str  # what one ledger unit is called: ledger_unit(backend)

    def prepare(self, value: int, input_index: int) -> Signed:
        """Sign ``value`` units from ``input_index``.

        Raises ``InsufficientBalance`` (with ``available``) when the funds are short."""
        ...

    def attach(self, signed: Signed) -> Attachment: ...

    def send(self, attachment: Attachment) -> None: ...

    def status(self, signed: Signed, known: Sequence[str]) -> Status: ...

    def promote(self, signed: Signed, known: Sequence[str]) -> None: ...

    def describe(self) -> str: ...

    def close(self) -> None: ...
