"""``p2p-energy wallet set-index N``: say which key index holds the funds now.

The ledger, not ``wallet.start_index``, knows the key index once a payment has
confirmed (each payment moves it to its change index). When the owner moves
the funds by hand (a new deposit to a fresh address of the same seed, or after
a refusal to sign with a spent key), this is how the daemon learns it.

Refused while a payment is in flight (its change goes to an index already
chosen) and while a daemon writes the ledger. The change is recorded in the
ledger (``wallet_events``). Offline: no node, no seed is needed; ``check``
then shows the address and balance at the new index.
"""

from __future__ import annotations

import argparse

from ..config import Config
from ..errors import P2PEnergyError
from ..store.ledger import Ledger
from ..store.lock import LedgerLock

MAX_INDEX = 2**31  # as wallet.start_index


def cmd_set_index(cfg: Config, args: argparse.Namespace, print_line=print) -> int:
    """Set the key index; returns the exit code (0). Raises P2PEnergyError on refusal."""
    index = args.index
    if not 0 <= index <= MAX_INDEX:
        raise P2PEnergyError(f"key index {index} is out of range: 0 to {MAX_INDEX}")
    with LedgerLock(cfg.ledger.path).acquire("set the key index"):
        ledger = Ledger(cfg.ledger.path)
        try:
            old = ledger.input_index(cfg.wallet.start_index)
            if old == index:
                print_line(f"key index is {index} already; nothing changed")
                return 0
            ledger.set_input_index(index, "wallet set-index", default=cfg.wallet.start_index)
        finally:
            ledger.close()
    print_line(f"key index {index} (was {old}) recorded in {cfg.ledger.path}; payments now"
               f" spend from the address at key index {index}")
    print_line("run 'p2p-energy check' to see that address and its balance")
    return 0
