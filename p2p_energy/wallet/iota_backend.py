"""``wallet.backend = "iota"``: today's IOTA network (Move, Ed25519, JSON-RPC).

Its descriptor (``BACKEND``): one ledger unit is one micro-IOTA; a payment is
named by its transaction digest; a 0x address receives; its own table
``[wallet.iota]`` (gas margin and cap); the key is read at start-up, the wallet
(``iota_wallet``) made in the payer thread.

Its ``wallet`` subcommands: ``new -o FILE`` writes a new Ed25519 private key
(``iotaprivkey1...``, the form ``iota keytool import`` takes) to a new file of
mode 0600 and prints the address to fund, never the key; ``address`` prints the
address of the key the config names (``wallet.seed``, ``seed_file`` or the
systemd credential).

Its ``check`` lines: the node's chain identifier and latest checkpoint; the
address and its balance in IOTA; the reference gas price and what one transfer
costs (a dry run, nothing signed or sent); a warning when ``wallet.min_payment``
lets fees pass 1 % of a payment. Never prints the key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..config import float_in, int_in, load_seed
from ..errors import InsufficientBalance, P2PEnergyError
from .addresses import HEX_RULE, iota_address, is_hex
from .base import (
    FAIL,
    MICRO_UNIT,
    OK,
    WARN,
    Backend,
    Position,
    Report,
    Table,
    Wallet,
    WalletCommand,
    address_command,
    no_rule,
)
from .key_file import write_new_key_file

if TYPE_CHECKING:
    import argparse

    from ..config import Config

# Fees on today's IOTA network are ~0.002 IOTA a transfer (computation 1,000 units
# at the reference gas price of 1,000 nanos, plus storage less its rebate: about
# 2,000,000 nanos). A payment of at least 100 times that, 0.2 IOTA = 200,000
# micro-IOTA units, keeps fees at or below 1 % of the value paid.
IOTA_TYPICAL_FEE_NANOS = 2_000_000


@dataclass(frozen=True)
class IotaWalletConfig:
    """``[wallet.iota]``: what only today's IOTA network needs."""

    gas_margin: float = 1.5  # budget = dry run's computation + storage, times this
    max_budget_nanos: int = 50_000_000  # 0.05 IOTA: never sign a larger gas budget



FEE_SHARE_MAX = 0.01  # fees above 1 % of a payment are worth a warning
# Chain identifiers (first 4 bytes of the genesis checkpoint digest, as the node
# shows them) of the long-lived networks; a devnet's changes at each reset.
KNOWN_CHAINS = {"6364aad5": "IOTA mainnet", "2304aa97": "IOTA testnet"}


def check_iota_wallet(cfg: Config, report: Report, position: Position | None = None) -> None:
    """Report the wallet's lines through ``report(status, text)``.

    The fee line and the ``wallet.min_payment`` warning come last, and come offline
    too: without a key or a node, from the typical fee (``IOTA_TYPICAL_FEE_NANOS``).
    """
    w = cfg.wallet
    if not w.receiver:
        report(FAIL, f"{cfg.source}: wallet.receiver: not set (the producer's 0x address)")
    fee = _ask_the_node(cfg, report)
    warning = min_payment_warning(w.min_payment, fee.nanos if fee else IOTA_TYPICAL_FEE_NANOS)
    if warning:
        how = "" if fee else " (the typical fee of 0.002 IOTA: the node was not asked)"
        report(WARN, warning + how)


@dataclass(frozen=True)
class _Fee:
    nanos: int  # what one transfer costs
    how: str  # "a dry run", or why it is the typical figure


def _ask_the_node(cfg: Config, report: Report) -> _Fee | None:
    """The node, address, balance and gas lines; the fee of one transfer, None offline."""
    from .iota_keys import parse_secret
    from .iota_wallet import NANOS_PER_IOTA, IotaWallet

    w = cfg.wallet
    try:
        keypair = parse_secret(load_seed(cfg, check=parse_secret))
    except P2PEnergyError as err:
        report(FAIL, f"wallet key: {err}")
        return None
    # Without a receiver the node can still be asked; the dry run pays the wallet itself.
    wallet = IotaWallet.from_config(replace(w, receiver=w.receiver or keypair.address), keypair)
    try:
        chain = wallet.chain_identifier()
        name = f" ({KNOWN_CHAINS[chain]})" if chain in KNOWN_CHAINS else ""
        report(OK, f"node {w.node_url}: chain {chain}{name},"
                   f" checkpoint {wallet.latest_checkpoint()}")
        balance = wallet.balance_nanos()
        report(OK if balance > 0 else FAIL,
               f"wallet: {balance / NANOS_PER_IOTA:.9f} IOTA at address {wallet.address}")
        price = wallet.reference_gas_price()
        try:
            fee = _Fee(wallet.estimate_fee_nanos(w.min_payment), "a dry run")
        except InsufficientBalance:
            fee = _Fee(IOTA_TYPICAL_FEE_NANOS * price // 1000, "typical, no funds to dry-run")
        report(OK, f"gas: reference price {price} nanos per unit; a transfer costs"
                   f" {fee.nanos / NANOS_PER_IOTA:.9f} IOTA ({fee.how})")
        return fee
    except P2PEnergyError as err:
        report(FAIL, f"node {w.node_url}: {err}")
        return None
    finally:
        wallet.close()


def min_payment_warning(min_payment: int, fee_nanos: int) -> str:
    """The warning when a payment of ``min_payment`` units pays more than 1 % in fees,
    else ""; ``fee_nanos`` is what one transfer costs."""
    from .iota_wallet import NANOS_PER_IOTA, NANOS_PER_UNIT

    value = min_payment * NANOS_PER_UNIT
    if fee_nanos <= FEE_SHARE_MAX * value:
        return ""
    least = -(-int(fee_nanos / FEE_SHARE_MAX) // NANOS_PER_UNIT)
    return (f"wallet.min_payment = {min_payment} ({value / NANOS_PER_IOTA:.6f} IOTA): fees are"
            f" {100 * fee_nanos / value:.1f} % of such a payment; set at least {least} to"
            " keep them at or below 1 %")


def _receiver(text: str) -> str:
    address = iota_address(text)
    if not is_hex(address):
        raise ValueError(f'{HEX_RULE} with backend = "iota"')
    return address


def _opener(cfg: Config) -> Callable[[], Wallet]:
    """The key is read and checked now; the wallet (and its HTTP client) made later."""
    from ..logs import redact
    from .iota_keys import parse_secret, secret_fragments

    secret = load_seed(cfg, check=parse_secret)
    for fragment in secret_fragments(secret):
        redact(fragment)  # from here on no log line can carry it
    keypair = parse_secret(secret)

    def open_iota() -> Wallet:
        from .iota_wallet import IotaWallet
        return IotaWallet.from_config(cfg.wallet, keypair)
    return open_iota


def _address(cfg: Config) -> str:
    from .iota_keys import parse_secret
    return parse_secret(load_seed(cfg, check=parse_secret)).address


def _new_key(_cfg: None, args: argparse.Namespace) -> str:
    """``wallet new``: a new key in the file ``args.output``; its address, to print.

    Raises:
        P2PEnergyError: the file exists or cannot be written (nothing is left behind).
    """
    from .iota_keys import generate

    keypair = generate()
    write_new_key_file(args.output, keypair.export() + "\n")
    return keypair.address


def _output_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", metavar="FILE", required=True)


NEW_KEY = WalletCommand(
    "new", help="write a new key to FILE (mode 0600), print its address",
    description="write a new key to FILE (mode 0600), print its address; the key is never"
                " printed",
    run=_new_key, needs_config=False, arguments=_output_option)

_TABLE_SCHEMA: dict[str, Callable[[Any], Any]] = {
    "gas_margin": float_in(1.0, 10.0),
    "max_budget_nanos": int_in(1_000_000, 50_000_000_000),
}

BACKEND = Backend(
    name="iota", unit=MICRO_UNIT, reference_key="digest",
    node_url="http://127.0.0.1:9000",
    min_payment=100 * IOTA_TYPICAL_FEE_NANOS // 1000,  # micro-IOTA: fees at most 1 %
    needs_receiver=True, receiver=_receiver, seed_rule=no_rule,
    opener=_opener, check=check_iota_wallet, commands=(NEW_KEY, address_command(_address)),
    table=Table("iota", IotaWalletConfig, _TABLE_SCHEMA))
