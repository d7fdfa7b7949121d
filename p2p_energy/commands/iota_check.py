"""``p2p-energy check`` for ``wallet.backend = "iota"``: the node, the address, its funds, gas.

Lines: the node's chain identifier and latest checkpoint; the address and its
balance in IOTA; the reference gas price and what one transfer costs (a dry
run, nothing signed or sent); a warning when ``wallet.min_payment`` lets fees
pass 1 % of a payment. Never prints the key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from ..config import IOTA_TYPICAL_FEE_NANOS, Config, load_seed
from ..errors import InsufficientBalance, P2PEnergyError

FEE_SHARE_MAX = 0.01  # fees above 1 % of a payment are worth a warning
# Chain identifiers (first 4 bytes of the genesis checkpoint digest, as the node
# shows them) of the long-lived networks; a devnet's changes at each reset.
KNOWN_CHAINS = {"6364aad5": "IOTA mainnet", "2304aa97": "IOTA testnet"}


def check_iota_wallet(cfg: Config, report: Callable[[str, str], None]) -> None:
    """Report the wallet's lines through ``report(status, text)``.

    The fee line and the ``wallet.min_payment`` warning come last, and come offline
    too: without a key or a node, from the typical fee (``IOTA_TYPICAL_FEE_NANOS``).
    """
    from .check import FAIL

    w = cfg.wallet
    if not w.receiver:
        report(FAIL, f"{cfg.source}: wallet.receiver: not set (the producer's 0x address)")
    fee = _ask_the_node(cfg, report)
    warning = min_payment_warning(w.min_payment, fee.nanos if fee else IOTA_TYPICAL_FEE_NANOS)
    if warning:
        from .check import WARN
        how = "" if fee else " (the typical fee of 0.002 IOTA: the node was not asked)"
        report(WARN, warning + how)


@dataclass(frozen=True)
class _Fee:
    nanos: int  # what one transfer costs
    how: str  # "a dry run", or why it is the typical figure


def _ask_the_node(cfg: Config, report: Callable[[str, str], None]) -> _Fee | None:
    """The node, address, balance and gas lines; the fee of one transfer, None offline."""
    from ..wallet.iota_keys import parse_secret
    from ..wallet.iota_wallet import NANOS_PER_IOTA, IotaWallet
    from .check import FAIL, OK

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
    from ..wallet.iota_wallet import NANOS_PER_IOTA, NANOS_PER_UNIT

    value = min_payment * NANOS_PER_UNIT
    if fee_nanos <= FEE_SHARE_MAX * value:
        return ""
    least = -(-int(fee_nanos / FEE_SHARE_MAX) // NANOS_PER_UNIT)
    return (f"wallet.min_payment = {min_payment} ({value / NANOS_PER_IOTA:.6f} IOTA): fees are"
            f" {100 * fee_nanos / value:.1f} % of such a payment; set at least {least} to"
            " keep them at or below 1 %")
