"""``wallet.backend = "pyota"``: the legacy IOTA network, through PyOTA.

Its descriptor (``BACKEND``): one ledger unit is one IOTA; a payment is named by
its bundle hash; an 81- or 90-tryte address receives; an 81-tryte seed signs
(read at start-up; PyOTA is imported only when the payer opens the wallet).

Its ``check`` lines: the node's name and milestone; the balance at the key index
the ledger says the funds are at, with its address; while a bundle is in flight,
the change address as the one to fund (a deposit to the input's address after
signing would stay behind on a spent address). Never prints the seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from ..config import load_seed, seed_rule
from ..errors import P2PEnergyError
from .addresses import TRYTE_RULE, iota_address, is_hex
from .base import FAIL, LEGACY_UNIT, OK, Backend, Position, Report, Wallet

if TYPE_CHECKING:
    from ..config import Config


def _receiver(text: str) -> str:
    address = iota_address(text)
    if is_hex(address):
        raise ValueError(f'{TRYTE_RULE} with backend = "pyota" (0x addresses are for'
                         ' backend = "iota")')
    return address


def _opener(cfg: Config) -> Callable[[], Wallet]:
    from ..logs import redact

    seed = load_seed(cfg)
    redact(seed)  # from here on no log line can carry it
    with_seed = replace(cfg.wallet, seed=seed)

    def open_pyota() -> Wallet:
        from .pyota_wallet import PyotaWallet
        return PyotaWallet(with_seed)
    return open_pyota


def _check(cfg: Config, report: Report, position: Position) -> None:
    w = cfg.wallet
    if not w.receiver:
        report(FAIL, f"{cfg.source}: wallet.receiver: not set (the producer's address)")
    try:
        seed = load_seed(cfg)
    except P2PEnergyError as err:
        report(FAIL, f"wallet seed: {err}")
        return
    from .pyota_wallet import PyotaWallet
    wallet = PyotaWallet(replace(w, seed=seed))
    try:
        info = wallet.node_info()
        report(OK, f"node {w.node_url}: {info.get('appName', '?')} {info.get('appVersion', '')},"
                   f" milestone {info.get('latestMilestoneIndex', '?')}")
        index = position.index
        balance = wallet.balance(index)
        if position.flying_id is None:
            report(OK if balance > 0 else FAIL, f"wallet: {balance} IOTA at key index {index},"
                                                f" address {wallet.address(index)}")
            return
        # Until the payment in flight confirms, the funds may be at either address. The
        # input's address is being spent from: a deposit there now stays behind on a
        # spent address. The change address becomes the next input: fund that one.
        change_index = position.change_index or index + 1
        balance += wallet.balance(change_index)
        report(OK, f"payment {position.flying_id} of {position.flying_value} IOTA in flight"
                   f" from key index {index}, change to {change_index}")
        report(OK if balance > 0 else FAIL,
               f"wallet: {balance} IOTA at key indexes {index} and {change_index}; to deposit,"
               f" use key index {change_index}, address {wallet.address(change_index)} (key"
               f" index {index} is being spent from: a deposit there would stay behind)")
    except P2PEnergyError as err:
        report(FAIL, f"node {w.node_url}: {err}")
    finally:
        wallet.close()


BACKEND = Backend(
    name="pyota", unit=LEGACY_UNIT, reference_key="bundle_hash",
    node_url="http://127.0.0.1:14265", min_payment=1,  # no fees: pay every whole IOTA
    needs_receiver=True, receiver=_receiver, seed_rule=seed_rule,
    opener=_opener, check=_check)
