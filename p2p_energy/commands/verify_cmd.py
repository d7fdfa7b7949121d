"""``p2p-energy verify SOURCE --key KEY [--state DIR] [--node URL --address ADDRESS]
[--producer PSOURCE --producer-key PKEY [--producer-state DIR]]``.

The neighbour's side of the signed log (``p2p_energy.verify``): no config, no
ledger. Prints a statement (entries verified, energy, owed, paid, outstanding)
on stdout, then every problem on one line (``entry N: ...``; the producer's
log's own as ``producer's log: entry N: ...``).

``--producer``: the producer's own signed log (its serve or an export), verified
as any log, and each consumer round naming one of its entries checked against
it (``verify.crossref``). Either side runs it: the producer with its own log.

Exit codes: 0 everything checks (only then the state is saved); 1 something
does not: a problem in an entry, a rewritten history, or a checkpoint the key
did not sign (a wrong key looks exactly like a forged log); 2 the run could not
be made: a malformed key, a SOURCE that cannot be reached or is not a log, an
address of neither form, ``--node`` without ``--address``, a node that cannot
be asked, an unusable state folder, Ctrl-C. Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import KeyFormatError, SourceError, VerifyError, WalletError

if TYPE_CHECKING:
    from ..core.note import Verifier
    from ..verify.audit import Problems
    from ..wallet.receipts import Receipts

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2
DEFAULT_TIMEOUT_S = 30.0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``verify`` on the CLI's subcommands."""
    verify = sub.add_parser(
        "verify", help="check the consumer's signed log (the neighbour's side; no config)",
        description="check the consumer's signed log: the checkpoint's signature, that the"
                    " history only grew, every round's bill and the carry chain, and with"
                    " --node the payments on the network; exit 0 all checks, 1 a problem,"
                    " 2 bad input")
    verify.add_argument("source", metavar="SOURCE",
                        help="http(s)://host:port of the consumer's serve, or a log export"
                             " file")
    verify.add_argument("--key", required=True, metavar="VERIFIER_KEY",
                        help="the log's verifier key, <name>+<8 hex>+<base64>")
    verify.add_argument("--state", metavar="DIR",
                        help="where to keep what was verified (default"
                             " $XDG_STATE_HOME/p2p-energy/verify/<origin>)")
    verify.add_argument("--node", metavar="URL",
                        help="check the payments on this node (needs --address)")
    verify.add_argument("--address", metavar="ADDRESS",
                        help="the producer's address: 0x + 64 hex (today's IOTA network) or"
                             " 81/90 trytes (legacy)")
    verify.add_argument("--producer", metavar="PSOURCE",
                        help="the producer's own signed log (its serve's http(s)://host:port"
                             " or a log export file): verified too, and every round priced"
                             " from it checked against it (needs --producer-key)")
    verify.add_argument("--producer-key", metavar="VERIFIER_KEY",
                        help="the producer's log's verifier key (its 'p2p-energy log key')")
    verify.add_argument("--producer-state", metavar="DIR",
                        help="where to keep what was verified of the producer's log (default"
                             " $XDG_STATE_HOME/p2p-energy/verify/<its origin>)")
    verify.add_argument("--timeout-s", type=_seconds, default=DEFAULT_TIMEOUT_S,
                        metavar="SECONDS", help="per request to SOURCE and the node"
                                                f" (default {DEFAULT_TIMEOUT_S:g})")
    verify.add_argument("-v", "--verbose", action="store_true", help=argparse.SUPPRESS)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


def _fail(message: str) -> int:
    print(f"p2p-energy: verify: {message}", file=sys.stderr)
    return EXIT_USAGE


def cmd_verify(args: argparse.Namespace) -> int:
    """Run ``verify``; returns the exit code (see the module docstring)."""
    from ..core.note import parse_verifier  # here: the parser is built for every command
    from ..verify.sources import plain_url_problem

    try:
        verifier = parse_verifier(args.key)
    except KeyFormatError as err:
        return _fail(f"--key: {err}")
    if bool(args.producer) != bool(args.producer_key):
        return _fail("--producer and --producer-key go together: the producer's log and the"
                     " key it is signed with")
    if args.producer_state and not args.producer:
        return _fail("--producer-state needs --producer")
    producer_verifier = None
    if args.producer_key:
        try:
            producer_verifier = parse_verifier(args.producer_key)
        except KeyFormatError as err:
            return _fail(f"--producer-key: {err}")
    if args.node and not args.address:
        return _fail("--node needs --address: the producer's address the payments go to")
    if args.node and plain_url_problem(args.node):
        return _fail(f"--node {plain_url_problem(args.node)}")
    try:
        receipts = _receipts(args)
    except (ValueError, WalletError) as err:
        return _fail(str(err))
    try:
        return _verify(args, verifier, receipts, producer_verifier)
    except KeyboardInterrupt:  # not 0, as for run and serve: nothing was verified
        return _fail("interrupted; the state is unchanged")
    finally:
        if receipts is not None:
            receipts.close()


def _receipts(args: argparse.Namespace) -> Receipts | None:
    """The payment checks the options ask for (nothing is contacted yet).

    Raises ValueError (a bad --address, named) or WalletError (a bad --node URL)."""
    if not args.address:
        return None
    from ..wallet.receipts import open_receipts
    try:
        return open_receipts(args.address, args.node, args.timeout_s)
    except ValueError as err:
        raise ValueError(f"--address {args.address!r}: {err}") from None


def _verify(args: argparse.Namespace, verifier: Verifier, receipts: Receipts | None,
            producer_verifier: Verifier | None) -> int:
    from ..verify import state
    from ..verify.report import statement
    from ..verify.run import verify_log, verify_with_producer
    from ..verify.sources import open_source

    state_dir = Path(args.state) if args.state else None
    sources = []
    try:
        sources.append(open_source(args.source, args.timeout_s))
        if producer_verifier is not None:
            sources.append(open_source(args.producer, args.timeout_s))
    except SourceError as err:
        for source in sources:
            source.close()
        return _fail(f"--producer: {err}" if sources else str(err))
    try:
        if producer_verifier is None:
            out = verify_log(sources[0], verifier, state_dir, receipts)
        else:
            out = verify_with_producer(
                sources[0], verifier, state_dir, receipts, sources[1], producer_verifier,
                Path(args.producer_state) if args.producer_state else None)
    except (SourceError, VerifyError) as err:
        return _fail(str(err))
    except WalletError as err:
        return _fail(f"cannot check the payments: {err}")
    finally:
        for source in sources:
            source.close()
    network = receipts.network if receipts is not None else ""
    address = receipts.address if receipts is not None else ""
    lines = statement(out, out.unit, network, address)
    count = _problem_lines(out.problems, "", lines)
    if out.producer is not None:
        count += _problem_lines(out.producer.problems, "producer's log: ", lines)
    if count:
        lines.append(f"NOT VERIFIED: {count} problem(s); the state is unchanged")
        print("\n".join(lines))
        return EXIT_PROBLEMS
    saves = out.saves
    for folder, new in saves:
        try:
            state.save(folder, new)
        except VerifyError as err:
            print("\n".join(lines))
            return _fail(str(err))
    if saves:
        lines.append(f"verified; state saved in {', '.join(str(f) for f, _ in saves)}")
    else:
        lines.append(f"verified: nothing new since the last run (state in {out.state_dir})")
    print("\n".join(lines))
    return EXIT_OK


def _problem_lines(problems: Problems, prefix: str, lines: list[str]) -> int:
    """Add the problem lines (``prefix`` before each) to ``lines``; returns their count."""
    lines += [prefix + line for line in problems.lines]
    if problems.count > len(problems.lines):
        lines.append(f"{prefix}... and {problems.count - len(problems.lines)} more problems")
    return problems.count
