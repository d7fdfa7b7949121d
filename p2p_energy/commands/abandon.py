"""``p2p-energy wallet abandon N``: give up a signed payment that can never be followed.

A signed payment is followed by the daemon until its network says it was paid
or can never be. When that network cannot be asked any more (a legacy node
that is gone for good, a ``wallet.backend`` switched away from while the
payment was in flight), this is the owner's way out:

- with the backend that signed it configured, the network is asked first: a
  payment it shows as paid is refused (the daemon records it), one it shows as
  dead or failed ends and is owed again, one still pending is refused;
- ``--force`` gives it up without asking, in a warning line: if it confirms
  after all, that amount was paid twice.

Either way the amount is owed again (a new queued payment for the same rounds)
and the event is recorded in the ledger (``wallet_events``). Refused while the
daemon runs (it holds the ledger's lock).
"""

from __future__ import annotations

import argparse
import logging
import os

from ..config import Config
from ..core.note import Signer
from ..errors import P2PEnergyError, WalletError
from ..store.ledger import Ledger, Payment
from ..store.lock import LedgerLock
from ..store.signed_log import LogWriter
from ..wallet.base import CONFIRMED, PENDING, Status

log = logging.getLogger(__name__)

FORCED = "given up by the owner without asking its network (wallet abandon --force)"


def _log_signer(cfg: Config) -> Signer | None:
    """The log's key, when there is one: ending a payment is an entry of the signed log."""
    from ..config.log_key import key_file_path, load_log_signer
    if not os.path.lexists(key_file_path(cfg)):
        return None  # a ledger whose log has started refuses then, naming the key
    return load_log_signer(cfg)[0]


def cmd_abandon(cfg: Config, args: argparse.Namespace, print_line=print) -> int:
    """Abandon payment ``args.payment``; returns the exit code (0).

    Raises:
        P2PEnergyError: refused (not in flight, paid, still pending, its network
            cannot be asked without ``--force``, or the daemon runs).
    """
    signer = _log_signer(cfg)
    with LedgerLock(cfg.ledger.path).acquire("abandon a payment"):
        ledger = Ledger(cfg.ledger.path, log=signer and LogWriter(signer, cfg.wallet.receiver))
        try:
            p = _in_flight(ledger, args.payment)
            if args.force:
                log.warning("payment %d (%d units, %s, reference %s) %s: if it confirms"
                            " after all, it was paid twice", p.id, p.value_units, p.backend,
                            p.reference, FORCED)
                state, detail, fee, why = "abandoned", FORCED, 0, FORCED
            else:
                status = _ask_its_network(cfg, p)
                state, detail, fee = status.state, status.detail, status.fee_nanos
                why = f"its network says {state}: {detail or 'no detail'}"
            again = ledger.mark_ended(p.id, state, detail, fee, owner_note=why,
                                      default_index=cfg.wallet.start_index)
        finally:
            ledger.close()
    print_line(f"payment {p.id} ended ({why}); its {p.value_units} units are owed again as"
               f" payment {again}, paid when the daemon runs")
    return 0


def _in_flight(ledger: Ledger, payment_id: int) -> Payment:
    flying = ledger.in_flight()
    if flying is None or flying.id != payment_id:
        now = f"payment {flying.id} is" if flying else "no payment is"
        raise P2PEnergyError(f"{ledger.path}: payment {payment_id} is not in flight ({now});"
                             " only a signed payment that has not ended can be abandoned")
    return flying


def _ask_its_network(cfg: Config, p: Payment) -> Status:
    """The network's word that payment ``p`` can never pay (dead or failed).

    Raises:
        P2PEnergyError: another backend signed it, the network says it was paid or
            may still be, or cannot be asked.
    """
    if p.backend != cfg.wallet.backend:
        raise P2PEnergyError(
            f"payment {p.id} was signed by wallet.backend = \"{p.backend}\", and the config"
            f" says \"{cfg.wallet.backend}\": its network cannot be asked; set the backend"
            " back until it confirms, or add --force to give it up (if it confirms after"
            " all, it is paid twice)")
    from ..runtime.build import wallet_opener

    wallet = wallet_opener(cfg)()
    try:
        assert p.signed is not None
        status = wallet.status(p.signed, p.attachments)
    except WalletError as err:
        raise P2PEnergyError(f"payment {p.id}: its network cannot be asked now ({err}); try"
                             " again, or add --force to give it up") from None
    finally:
        wallet.close()
    if status.state == CONFIRMED:
        raise P2PEnergyError(f"payment {p.id} was paid (reference {p.reference}); start the"
                             " daemon: it records it")
    if status.state == PENDING:
        raise P2PEnergyError(f"payment {p.id} may still confirm ({status.detail or 'pending'});"
                             " the daemon follows it; add --force to give it up anyway (if"
                             " it confirms after all, it is paid twice)")
    return status
