"""Command line: ``p2p-energy run | ledger | check | serve | statement | wallet | verify``.

Builds the concrete objects; ``serve`` and ``statement`` live in ``serve/``,
``wallet set-index`` in ``keyindex.py``, the subcommands the wallet backends offer
(``wallet new | address``: their parsers built from the descriptors) in ``wallet_cmd.py``,
``verify`` (the neighbour's side, no config) in ``verify_cmd.py``.

Exit codes: 0 success (also after SIGTERM/SIGINT), 2 usage or config error,
1 anything else (``verify``: a problem found). Every error is one line on stderr,
never a traceback and never the seed.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from .. import __version__, backends
from .. import config as config_mod
from ..config import Config
from ..errors import ConfigError, P2PEnergyError
from ..wallet.base import ledger_unit
from .wallet_cmd import cmd_wallet, offered

if TYPE_CHECKING:
    from ..core.note import Signer
    from ..sensors.base import Sensor
    from ..wallet.base import Wallet

log = logging.getLogger("p2p_energy")

DEFAULT_CONFIG = "/etc/p2p-energy/config.toml"
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, like every other error, with exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="p2p-energy",
        description="Meter a solar panel and a load with an INA3221 and pay for the energy "
                    "in IOTA.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("-c", "--config", metavar="FILE",
                       help=f"TOML config file (default {DEFAULT_CONFIG})")
        p.add_argument("--simulate", action="store_true",
                       help="simulated sensor and dry-run wallet; no config file needed")
        p.add_argument("-v", "--verbose", action="store_true", help="log every sample (DEBUG)")
        return p

    run = add("run", "run the daemon: meter, price, record and pay")
    run.add_argument("--round-s", type=float, metavar="SECONDS",
                     help="seconds per billing round (round.length_s), e.g. 10 to try it")
    ledger = add("ledger", "print the rounds, payments and totals from the ledger")
    shape = ledger.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true", help="one JSON object on stdout")
    shape.add_argument("--csv", action="store_true", help="every round as CSV on stdout")
    add("check", "validate the config, read the sensor once and ask the node; "
                 "exit 0 if all is well")
    wallet = sub.add_parser("wallet", help="the wallet: its key index; keys for today's IOTA"
                            " network", description="the wallet: its key index (legacy API);"
                            " keys and addresses for today's IOTA network")
    wallet_sub = wallet.add_subparsers(dest="wallet_command", required=True, metavar="COMMAND")
    set_index = wallet_sub.add_parser(
        "set-index", help="the funds are at key index N now (the daemon must be stopped)",
        description="record in the ledger that the funds are at key index N now; refused "
                    "while a payment is in flight or the daemon runs")
    set_index.add_argument("index", type=int, metavar="N", help="key index (0 or more)")
    set_index.add_argument("-c", "--config", metavar="FILE",
                           help=f"TOML config file (default {DEFAULT_CONFIG})")
    set_index.set_defaults(simulate=False, verbose=False)
    abandon = wallet_sub.add_parser(
        "abandon", help="give up signed payment N whose network cannot confirm it (the daemon"
        " must be stopped)", description="end a signed payment that can never be followed"
        " (a retired legacy network, a wallet.backend switched away from): its network is"
        " asked first; --force gives it up without asking. Its amount is owed again.")
    abandon.add_argument("payment", type=int, metavar="N", help="payment id (p2p-energy ledger)")
    abandon.add_argument("--force", action="store_true",
                         help="do not ask its network (if it confirms after all, it is paid"
                              " twice)")
    abandon.add_argument("-c", "--config", metavar="FILE",
                         help=f"TOML config file (default {DEFAULT_CONFIG})")
    abandon.set_defaults(simulate=False, verbose=False)
    _add_backend_commands(wallet_sub)
    log_group = sub.add_parser(
        "log", help="the signed log your neighbour checks: its verifier key, an export",
        description="the signed log of every round and payment, which your neighbour checks"
                    " with p2p-energy verify")
    log_sub = log_group.add_subparsers(dest="log_command", required=True, metavar="COMMAND")
    for name, help_text in (
            ("key", "print the log's verifier key: the line to give your neighbour (public;"
                    " the signing key is never printed)"),
            ("export", "write the latest checkpoint and every entry to one file, for a"
                       " neighbour who cannot reach serve")):
        p = log_sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("-c", "--config", metavar="FILE",
                       help=f"TOML config file (default {DEFAULT_CONFIG})")
        p.add_argument("--simulate", action="store_true",
                       help="the log of run --simulate (no config file needed)")
        p.add_argument("-v", "--verbose", action="store_true", help=argparse.SUPPRESS)
        if name == "export":
            p.add_argument("-o", "--output", metavar="OUT", required=True,
                           help="file to write (replaced whole, never half-written)")
    serve = add("serve", "show the ledger: dashboard, JSON and /metrics over HTTP, MQTT for "
                         "Home Assistant ([serve], [mqtt]); only reads the ledger")
    serve.add_argument("--listen", metavar="HOST:PORT",
                       help="serve the dashboard here (serve.listen; turns it on), e.g."
                            " 0.0.0.0:8080 for the LAN")
    serve.add_argument("--mqtt", metavar="BROKER",
                       help="publish to this MQTT broker for Home Assistant (mqtt.broker;"
                            " turns it on), e.g. mqtt://homeassistant.local:1883")
    statement = add("statement", "energy, price, owed, paid and payments of one day or month,"
                                 " in [serve] timezone")
    when = statement.add_mutually_exclusive_group(required=True)
    when.add_argument("--day", metavar="YYYY-MM-DD", type=_day, help="one local day")
    when.add_argument("--month", metavar="YYYY-MM", type=_month,
                      help="one local month, day by day")
    statement.add_argument("--csv", action="store_true", help="CSV on stdout")
    from .verify_cmd import add_parser as add_verify
    add_verify(sub)
    return parser


def _add_backend_commands(wallet_sub: argparse._SubParsersAction) -> None:
    """A parser for each ``wallet`` subcommand the backends offer (``Backend.commands``)."""
    for command in offered().values():
        p = wallet_sub.add_parser(command.name, help=command.help,
                                  description=command.description)
        command.arguments(p)
        if command.needs_config:
            p.add_argument("-c", "--config", metavar="FILE",
                           help=f"TOML config file (default {DEFAULT_CONFIG})")
            p.set_defaults(simulate=False)
        p.add_argument("-v", "--verbose", action="store_true", help=argparse.SUPPRESS)
        p.set_defaults(backend_command=command.needs_config)


def _day(text: str) -> str:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a day: use YYYY-MM-DD")
    try:
        date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day of the calendar") from None
    return text


def _month(text: str) -> str:
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", text) or text.startswith("0000"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a month: use YYYY-MM")
    return text


def load_config(args: argparse.Namespace) -> Config:
    """The config the arguments ask for. ``--simulate`` overrides sensor and wallet.

    Raises:
        ConfigError: unreadable, malformed or invalid file.
    """
    if args.config is None and args.simulate:
        cfg = Config(ledger=config_mod.LedgerConfig(
            path=str(config_mod.default_state_dir() / "simulate.db")))
    else:
        cfg = config_mod.load(args.config or DEFAULT_CONFIG)
    if args.simulate:
        cfg = replace(cfg, meter=replace(cfg.meter, sensor="simulated"),
                      wallet=replace(cfg.wallet, backend=backends.SIMULATION))
        if args.command == "serve" and (args.config is None or not (cfg.serve.enabled
                                                                    or cfg.mqtt.enabled)):
            cfg = replace(cfg, serve=replace(cfg.serve, enabled=True))  # the dashboard
    for option, key, value in _overrides(args):
        cfg = config_mod.override(cfg, key, value, option=option)
    return cfg


def _overrides(args: argparse.Namespace) -> list[tuple[str, str, object]]:
    """(option, config key, value) of each option given that stands for a config key."""
    out: list[tuple[str, str, object]] = []
    if getattr(args, "round_s", None) is not None:
        out.append(("--round-s", "round.length_s", args.round_s))
    if getattr(args, "listen", None) is not None:
        out += [("--listen", "serve.listen", args.listen), ("--listen", "serve.enabled", True)]
    if getattr(args, "mqtt", None) is not None:
        out += [("--mqtt", "mqtt.broker", args.mqtt), ("--mqtt", "mqtt.enabled", True)]
    return out


def cmd_run(cfg: Config, args: argparse.Namespace) -> int:
    import os

    from ..config.log_key import key_file_path, load_log_signer
    from ..runtime.build import build_sensor, wallet_opener
    from ..store.ledger import holds_simulation
    from ..store.lock import LedgerLock
    from ..store.signed_log import started_with

    path = cfg.ledger.path
    # The config's own errors first (the key is read here): they leave nothing behind,
    # no ledger, no lock file, no folder.
    producer = cfg.role == config_mod.PRODUCER  # meters its own panel, pays nothing
    open_wallet = None if producer else wallet_opener(cfg)
    # A producer with [mqtt] publishes its signed log: its password is read here, with
    # the config's other errors, before anything is made.
    linked = cfg.producer.linked  # a consumer priced from its producer's signed figures
    mqtt_password = config_mod.load_mqtt_password(cfg) \
        if (producer and cfg.mqtt.enabled) or linked else None
    if mqtt_password is not None and cfg.mqtt.tls and cfg.mqtt.ca_file \
            and not os.access(cfg.mqtt.ca_file, os.R_OK):
        raise ConfigError("cannot be read (the CA certificates the broker's is checked"
                          " against)", path=cfg.source, key="mqtt.ca_file",
                          value=cfg.mqtt.ca_file)
    sensor = build_sensor(cfg)
    key_path = key_file_path(cfg)
    signer = load_log_signer(cfg)[0] if os.path.lexists(key_path) else None
    with LedgerLock(path):  # before the ledger is opened or changed
        simulation = holds_simulation(path)  # None: not a ledger yet
        _claim_ledger(path, simulation, simulate=args.simulate,
                      own_default=args.simulate and args.config is None)
        if simulation is not None and not producer:
            _refuse_a_payment_of_another_backend(path, cfg.wallet.backend)
        if signer is None:  # the first run: made under the lock, so made once
            begun = started_with(path)
            if begun is not None:
                raise P2PEnergyError(
                    f"{path}: its signed log was begun with key {begun}, and {key_path}"
                    " (log.key_file) is missing: restore it from your backup; a new key"
                    " cannot continue the log")
            signer, made = load_log_signer(cfg, make=True)
            if made:
                log.info("made the signed log's key %s (mode 0600): keep it, and back it up",
                         key_path)
        _record_what_this_run_writes(path, cfg.role, None if producer else cfg.wallet.backend)
        return _run(cfg, args, sensor, open_wallet, signer, mqtt_password)


def _claim_ledger(path: str, simulation: bool | None, *, simulate: bool,
                  own_default: bool) -> None:
    """Refuse a ledger made for the other purpose; mark one made for simulation.

    ``--simulate`` writes only to a ledger made for simulation (or a new one), so
    it never marks real debts paid by its dry-run wallet nor adds simulated
    rounds to a real bill; a real ``run`` never pays simulated rounds.
    ``simulation``: what the ledger says (``holds_simulation``); ``own_default``: the
    simulation's own default file (always a simulation).

    Raises:
        P2PEnergyError: the ledger at ``path`` was made for the other purpose.
    """
    from ..store.ledger import Ledger

    if simulate and simulation is False and not own_default:
        raise P2PEnergyError(
            f"{path}: a real ledger (ledger.path); --simulate never writes to one: give it"
            " a config whose ledger.path names a new file, or leave out -c")
    if not simulate and simulation:
        raise P2PEnergyError(
            f"{path}: a ledger made by run --simulate (simulated rounds); a real run never"
            " pays them: set ledger.path to a new file")
    if simulate and not simulation:  # new, or our own default made before marking
        ledger = Ledger(path)
        try:
            ledger.mark_simulation()
        finally:
            ledger.close()


def _refuse_a_payment_of_another_backend(path: str, backend: str) -> None:
    """Only the backend that signed the payment in flight can follow it.

    Raises:
        P2PEnergyError: another backend signed it (the message names the way out).
    """
    from ..store.ledger import Ledger

    ledger = Ledger(path)  # under the lock: made or upgraded here, as the daemon would
    try:
        flying = ledger.in_flight()
    finally:
        ledger.close()
    if flying is not None and flying.backend and flying.backend != backend:
        raise P2PEnergyError(
            f"{path}: payment {flying.id} ({flying.value_units} units, reference"
            f" {flying.reference}) was signed by wallet.backend = \"{flying.backend}\" and is"
            " in flight; only that backend can follow it: set it back until the payment"
            f" confirms, or give it up with 'p2p-energy wallet abandon {flying.id}' (README:"
            " switching backends)")


def _record_what_this_run_writes(path: str, role: str, backend: str | None) -> None:
    """The ledger is a consumer's or a producer's for good (``Ledger.record_role``) and,
    with a wallet ``backend``, speaks its unit from now on: the amounts this run writes are
    in it (``Ledger.record_unit``, ``reader.ledger_unit_of``).

    Raises:
        LedgerError: the ledger holds rounds of the other role, or amounts in another unit.
    """
    from ..store.ledger import Ledger

    ledger = Ledger(path)  # under the lock
    try:
        ledger.record_role(role)
        if backend is not None:
            ledger.record_unit(backend)
    finally:
        ledger.close()


def _run(cfg: Config, args: argparse.Namespace, sensor: Sensor,
         open_wallet: Callable[[], Wallet] | None, signer: Signer,
         mqtt_password: str | None = None) -> int:
    from ..notify import Notifier, watchdog_interval_s
    from ..runtime.daemon import Daemon
    from ..runtime.payer import Payer, PayerPolicy
    from ..signals import stop_on_signals
    from ..store.ledger import Ledger
    from ..store.signed_log import LogWriter

    policy = PayerPolicy.from_config(cfg.wallet)
    path = cfg.ledger.path
    writer = LogWriter(signer, recipient=cfg.wallet.receiver)

    def open_ledger() -> Ledger:
        return Ledger(path, log=writer)

    payer = None if open_wallet is None else Payer(open_ledger, open_wallet, policy)
    publisher = link = None
    if cfg.role == config_mod.PRODUCER and mqtt_password is not None:  # publishes its log
        from ..runtime.log_publisher import LogPublisher
        publisher = LogPublisher(open_ledger, cfg.mqtt, writer.origin, password=mqtt_password)
    elif cfg.producer.linked:  # a consumer follows its producer's
        from ..runtime.producer_link import ProducerLink
        # Its own MQTT session: a --simulate run beside the real daemon must not take it.
        link = ProducerLink(open_ledger, cfg, writer.origin + ("-simulate" if args.simulate
                                                               else ""),
                            password=mqtt_password or "")
    watchdog = watchdog_interval_s()
    daemon = Daemon(cfg, sensor, path, payer, notifier=Notifier.from_env(),
                    watchdog_s=watchdog / 2 if watchdog else 0.0, open_ledger=open_ledger,
                    publisher=publisher, link=link)
    stop_on_signals(daemon.stop)  # the handler itself takes no lock (signals.py)
    log.info("p2p-energy %s starting (%s)%s", __version__,
             "simulated sensor, dry-run wallet" if args.simulate else cfg.source,
             "; role producer: meters its own panel on channel"
             f" {cfg.meter.producer_channel}, pays nothing" if payer is None else "")
    log.info("signed log %s; its verifier key (for your neighbour): %s", writer.origin,
             writer.verifier_key)
    if args.simulate:
        log.info("simulated day: morning sun, noon, a cloud, dusk and night every 10 minutes; "
                 "one line per %g s round (add -v to see every sample)", cfg.round.length_s)
    daemon.run()
    if daemon.fatal_reason:
        raise P2PEnergyError(f"stopped: {daemon.fatal_reason}")
    log.info("stopped; the open round was closed and recorded")
    return EXIT_OK


def cmd_ledger(cfg: Config, args: argparse.Namespace) -> int:
    from ..store.ledger import Ledger
    path = Path(cfg.ledger.path)
    if not path.exists():
        raise P2PEnergyError(f"{path}: no ledger yet (has the daemon run with this config?)")
    if args.csv:
        from ..serve.statement import write_rounds_csv
        from ..store.reader import ledger_unit_at
        write_rounds_csv(str(path), sys.stdout, ledger_unit_at(path, cfg.wallet.backend))
        return EXIT_OK
    ledger = Ledger(path, readonly=True)  # never upgraded here: only the daemon does
    try:
        ledger.require_current()
        unit = ledger.unit(cfg.wallet.backend)
        report = ledger.report(unit)
    finally:
        ledger.close()
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(_ledger_text(report, unit))
    return EXIT_OK


def _ledger_text(report: dict, unit: str) -> str:
    """The ledger for a person; rounds' price and owed, and the totals, in ``unit``, the
    ledger's (``reader.ledger_unit_of``); each payment in the unit it was paid in."""
    lines = ["rounds (last 20):",
             f"  {'id':>5} {'ended (UTC)':24} {'mW·s':>10} {'prod mW':>9}"
             f" {'price ' + unit + '/mW·s':>17} {'owed ' + unit:>10} samples"]
    for r in report["rounds"][-20:]:
        cap = "*" if r["price_capped"] else " "
        lines.append(f"  {r['id']:>5} {r['ended_at']:24} {r['consumer_mws']:>10.1f}"
                     f" {r['producer_avg_mw']:>9.1f} {r['price']:>17.4g}{cap}"
                     f"{r['owed_iota']:>10.3f} {r['samples']}/{r['expected_samples']}")
    lines.append("payments (last 20):")
    for p in report["payments"][-20:]:
        paid_in = ledger_unit(p.get("backend") or "") if p.get("backend") else unit
        lines.append(f"  {p['id']:>5} {p['value_iota']:>8} {paid_in:5} {p['status']:9}"
                     f" attempts {p['attempts']:<3} rounds {_span(p['round_ids'])}"
                     f" {p.get('bundle_hash') or p.get('digest') or ''}")
    t = report["totals"]
    lines.append(f"totals: energy {t['consumer_mws']:.1f} mW·s, owed {t['owed_iota']:.3f}"
                 f" {unit},"
                 f" paid {t['paid_iota']}, queued {t['queued_iota']}, carry {t['carry_iota']:.3f}"
                 f", fees {t.get('fees_nanos', 0) / 1e9:.6f} IOTA")
    lines.append("(* = price capped: too little production)")
    return "\n".join(lines)


def _span(ids: list[int]) -> str:
    if not ids:
        return "-"
    return str(ids[0]) if len(ids) == 1 else f"{ids[0]}-{ids[-1]}"


def main(argv: Sequence[str] | None = None) -> int:
    from .hardening import no_core_dumps
    no_core_dumps()  # before any secret is read
    args = _parser().parse_args(argv)
    from ..logs import setup_logging
    setup_logging(verbose=args.verbose)
    try:
        needs_config = getattr(args, "backend_command", None)  # None: not a backend's
        if needs_config is False:
            return cmd_wallet(None, args)
        if args.command == "verify":  # the neighbour's side: no config
            from .verify_cmd import cmd_verify
            return cmd_verify(args)
        cfg = load_config(args)
        if needs_config:
            return cmd_wallet(cfg, args)
        if args.command == "run":
            return cmd_run(cfg, args)
        if args.command == "ledger":
            return cmd_ledger(cfg, args)
        if args.command == "wallet" and args.wallet_command == "abandon":
            from .abandon import cmd_abandon
            return cmd_abandon(cfg, args)
        if args.command == "wallet":
            from .keyindex import cmd_set_index
            return cmd_set_index(cfg, args)
        if args.command == "log":
            from .log_cmd import cmd_log
            return cmd_log(cfg, args)
        if args.command == "serve":
            from ..serve.app import cmd_serve
            return cmd_serve(cfg, args)
        if args.command == "statement":
            from ..serve.statement import cmd_statement
            return cmd_statement(cfg, args)
        from .check import cmd_check
        return cmd_check(cfg, args)
    except ConfigError as err:
        print(f"p2p-energy: {err}", file=sys.stderr)
        return EXIT_USAGE
    except P2PEnergyError as err:
        print(f"p2p-energy: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:  # the reader stopped early (`| head`): end quietly, like cat
        _drop_stdout()
        return EXIT_FAILURE
    except Exception as err:  # the last boundary: one line, never a traceback
        log.debug("unexpected error", exc_info=True)
        print(f"p2p-energy: unexpected {type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_FAILURE


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so that the flush at exit cannot fail again."""
    import os
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
