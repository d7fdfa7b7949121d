"""``p2p-energy log key`` and ``p2p-energy log export``: the signed log, for the neighbour.

``log key`` prints the verifier key (public: the one line the owner hands to the
neighbour, who passes it to ``verify --key``); the signer key in the key file is
never printed. ``log export`` writes the latest checkpoint and every entry it
covers to one file (``core.export``'s format), for a neighbour who cannot reach
the Pi's ``serve``: written to a temporary file in the same folder, synced,
then renamed, so a file named OUT is always whole.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from ..config import Config
from ..config.log_key import load_log_signer
from ..errors import P2PEnergyError


def cmd_log(cfg: Config, args: argparse.Namespace, print_line=print) -> int:
    """Run ``log key`` or ``log export``; returns the exit code (0).

    Raises:
        ConfigError: no readable key file (``log key``).
        P2PEnergyError: no ledger, no log in it yet, or OUT cannot be written.
    """
    if args.log_command == "key":
        signer, _ = load_log_signer(cfg)
        print_line(signer.verifier.key())
        return 0
    size = export(cfg.ledger.path, args.output)
    print_line(f"wrote the checkpoint and {size} entries to {args.output}")
    return 0


def export(ledger_path: str, out: str) -> int:
    """Write the log of the ledger at ``ledger_path`` to ``out``; returns the entries written.

    Raises:
        P2PEnergyError: no ledger or no log entry yet; ``out`` cannot be written.
    """
    from ..core.export import write_export
    from ..store.reader import LedgerReader
    from ..store.signed_log import LogView

    if not Path(ledger_path).exists():
        raise P2PEnergyError(f"{ledger_path}: no ledger yet (has the daemon run with this"
                             " config?)")
    reader = LedgerReader(ledger_path)
    try:
        with reader.snapshot():  # the checkpoint and its entries from one moment
            view = LogView(reader.db)
            note = view.checkpoint()
            if note is None:
                raise P2PEnergyError(f"{ledger_path}: its signed log has no entry yet (the"
                                     " daemon starts it; the first round ends it)")
            size = view.size()
            folder = Path(out).parent
            try:
                fd, tmp = tempfile.mkstemp(prefix=".export-", dir=folder)
            except OSError as err:
                raise P2PEnergyError(f"{out}: cannot write: {err.strerror}") from None
            try:
                with os.fdopen(fd, "wb") as f:
                    write_export(f, note, view.iter_entries(size))
                    f.flush()
                    os.fsync(f.fileno())
                os.chmod(tmp, 0o644)  # public: the neighbour reads it
                os.replace(tmp, out)
            except OSError as err:
                os.unlink(tmp)
                raise P2PEnergyError(f"{out}: cannot write: {err.strerror}") from None
            except BaseException:
                os.unlink(tmp)
                raise
    finally:
        reader.close()
    return size
