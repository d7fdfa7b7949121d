"""``p2p-energy check``: is everything the daemon needs there and answering?

Validates the config (already done by the CLI), reads the sensor once, asks
the node for its info and the wallet's balance, and prints a short report.
It never writes to the INA3221: the running service may be using it, so check
reads the configuration it finds, says how it differs from the config file,
and takes one reading with it.
Exit 0 only if every line is ``ok``. Never prints the seed.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import time
from collections.abc import Callable
from pathlib import Path

from .. import backends
from ..config import PRODUCER, Config, load_mqtt_password
from ..errors import P2PEnergyError
from ..sensors.ina3221 import Probe
from ..store.ledger import SCHEMA_VERSION, Ledger, Payment, iso
from ..store.lock import ledger_path_problem
from ..wallet.base import FAIL, INFO, OK, WARN, Position


def cmd_check(cfg: Config, args: argparse.Namespace,
              print_line: Callable[[str], None] = print) -> int:
    """Run the checks and print one line each. Returns the exit code (0 or 1)."""
    failures = 0

    def report(status: str, what: str) -> None:
        nonlocal failures
        failures += status == FAIL
        print_line(f"{status:4} {what}")

    report(OK, f"config {cfg.source or '(defaults, --simulate)'}")
    producer = cfg.role == PRODUCER
    if producer:
        report(OK, f"role producer: meters its own panel (channel {cfg.meter.producer_channel})"
                   " and signs its figures; no wallet, nothing paid")
    _check_sensor(cfg, report)
    _check_clock(report)
    _check_ledger(cfg, report)
    _check_log(cfg, report)
    if not producer:
        _check_producer_link(cfg, report)
        _check_wallet(cfg, report)
    if producer:
        _check_publishing(cfg, report)
    _check_mqtt(cfg, report)
    print_line("all checks passed" if not failures else f"{failures} check(s) failed")
    return 0 if not failures else 1


def _check_sensor(cfg: Config, report: Callable[[str, str], None]) -> None:
    from ..runtime.build import build_sensor  # the same construction the daemon uses

    try:
        sensor = build_sensor(cfg)
        probe = getattr(sensor, "probe", None)
        if probe is not None:  # a chip the running service may be using: look, never write
            _report_probe(sensor.describe(), probe(), report)
            return
        sensor.open()
    except P2PEnergyError as err:
        report(FAIL, f"sensor: {err}")
        return
    try:
        time.sleep(getattr(sensor, "warmup_s", 0.0))
        report(OK, f"sensor: {sensor.describe()}")
        channels = getattr(sensor, "read_channels", None)
        if channels is not None:
            for role, r in channels().items():
                report(OK, f"{role} CH{r.channel}: {r.bus_voltage_v:.3f} V,"
                           f" {r.shunt_voltage_mv:+.3f} mV shunt,"
                           f" {r.current_ma:+.2f} mA, {r.power_mw:+.1f} mW")
        else:
            s = sensor.read(time.monotonic())
            report(OK, f"reading: consumer {s.consumer_mw:.1f} mW, producer {s.producer_mw:.1f} mW")
    except P2PEnergyError as err:
        report(FAIL, f"sensor reading: {err}")
    finally:
        sensor.close()


def _report_probe(description: str, probe: Probe, report: Callable[[str, str], None]) -> None:
    """The chip as found: its configuration against the config file's, one reading each."""
    found, wanted = probe.found, probe.wanted
    report(OK, f"sensor: {description}")
    same = "; matches the config file" if found.word == wanted.word else ""
    report(OK, f"chip configuration 0x{found.word:04x}: {found.describe()}{same}")
    if not same:
        report(INFO, f"differs from the config file, which wants 0x{wanted.word:04x}: "
                     f"{', '.join(found.changes_to(wanted))} (the daemon writes it when it starts)")
    for role, r in probe.readings.items():
        line = (f"{role} CH{r.channel}: {r.bus_voltage_v:.3f} V, {r.shunt_voltage_mv:+.3f} mV"
                f" shunt, {r.current_ma:+.2f} mA, {r.power_mw:+.1f} mW")
        if not r.measured:
            report(INFO, f"{line} (not measuring with the configuration found: these are "
                         "the registers' last values)")
        elif r.problem:
            report(FAIL, f"{line}: {r.problem.removeprefix(f'{role} CH{r.channel} ')}")
        else:
            report(OK, line)


def _check_clock(report: Callable[[str, str], None]) -> None:
    """Rounds are slots of the wall clock: only a synchronised clock puts them where
    another meter's are."""
    from ..runtime.clock import SYNCHRONIZED, UNKNOWN, clock_state

    state = clock_state()
    if state == SYNCHRONIZED:
        report(OK, "clock: synchronised (NTP)")
    elif state == UNKNOWN:
        report(WARN, "clock: the kernel cannot say whether it is synchronised")
    else:
        report(WARN, "clock: not synchronised (rounds are slots of the wall clock; the"
                     " producer's and the consumer's must agree): enable NTP, e.g."
                     " sudo timedatectl set-ntp true")


def _check_log(cfg: Config, report: Callable[[str, str], None]) -> None:
    """The signed log's key (its public half only) and whether the ledger's log is its."""
    from ..config.log_key import key_file_path, load_log_signer
    from ..store.reader import LedgerReader
    from ..store.signed_log import LogView

    key_path = key_file_path(cfg)
    if not os.path.lexists(key_path):
        report(INFO, f"log key {key_path}: not made yet (the daemon makes it when it starts)")
        return
    try:
        signer, _ = load_log_signer(cfg)
    except P2PEnergyError as err:
        report(FAIL, f"log key: {err}")
        return
    verifier = signer.verifier.key()
    report(OK, f"log key {key_path}: verifier key (for your neighbour) {verifier}")
    if not Path(cfg.ledger.path).exists():
        return
    try:
        with LedgerReader(cfg.ledger.path) as reader, reader.snapshot():
            view = LogView(reader.db)
            meta, size = view.meta(), view.size()
    except P2PEnergyError as err:
        report(FAIL, f"signed log: {err}")
        return
    if not meta:
        report(INFO, "signed log: not started yet (the daemon starts it)")
    elif meta.get("log_verifier") != verifier:
        report(FAIL, f"signed log: signed by {meta.get('log_verifier')}, not by the key in"
                     f" {key_path}: the daemon refuses to start with this key")
    else:
        after = int(meta.get("log_started_after_round", "0"))
        since = f" (rounds 1-{after} were recorded before it began)" if after else ""
        report(OK, f"signed log {meta.get('log_origin')}: {size} entries{since}")


def _check_producer_link(cfg: Config, report: Callable[[str, str], None],
                         now: float | None = None) -> None:
    """A consumer priced from its producer's signed figures (``[producer]``): whose, over
    which broker, how far its log was followed, and the rounds waiting for its figures."""
    from ..core.note import parse_verifier
    from ..store.reader import LedgerReader

    p = cfg.producer
    if p.linked:
        origin = parse_verifier(p.verifier_key).name  # validated with the config
        report(OK, f"producer {origin}: its signed figures price the rounds; its log on"
                   f" topic {p.topic} at {cfg.mqtt.broker}")  # the broker holds no secret
        if p.log_url:
            report(OK, f"producer log_url {p.log_url}: entries the broker did not bring are"
                       " fetched there")
        else:
            report(WARN, "producer log_url not set: entries the broker did not bring (it"
                         " lost them) cannot be fetched; after a minute they are passed"
                         " over, and the rounds of their slots go by after_wait; set"
                         " [producer] log_url to the producer's serve, e.g."
                         " http://anna.lan:8080")
    if not Path(cfg.ledger.path).is_file():
        return
    try:
        with LedgerReader(cfg.ledger.path) as reader, reader.snapshot():
            follow, waiting = reader.producer_follow(), reader.waiting()
    except P2PEnergyError:
        return  # the ledger's own line said why
    if p.linked:
        if follow is None:
            report(INFO, "producer log: not followed yet (the daemon follows it once it runs)")
        elif follow.verifier_key != p.verifier_key:
            report(INFO, f"producer log: the ledger followed {follow.origin}, another key; the"
                         " daemon follows the configured one from its start when it starts")
        else:
            report(OK, f"producer log {follow.origin}: {follow.size} entries accepted under"
                       f" its signed checkpoints, followed since {iso(follow.since)}")
    _report_waiting(cfg, waiting.rounds, waiting.oldest_end, report,
                    time.time() if now is None else now)


def _report_waiting(cfg: Config, rounds: int, oldest_end: float | None,
                    report: Callable[[str, str], None], now: float) -> None:
    """Rounds waiting for the producer's figure; a warning when the oldest has waited
    longer than ``[producer] wait_s``, with what the owner can do."""
    p = cfg.producer
    if not rounds or oldest_end is None:
        if p.linked:
            report(OK, "no rounds waiting for the producer's figure")
        return
    what = (f"{rounds} round(s) waiting for the producer's figure, the oldest since"
            f" {iso(oldest_end)}")
    waited_s = now - oldest_end
    if not p.linked:
        report(WARN, f"{what}, but no [producer] verifier_key is set: the daemon prices them"
                     " from this meter's own channel when it starts")
    elif waited_s <= p.wait_s:
        report(OK, f"{what} (within wait_s = {p.wait_s:g} s); they owe nothing until priced")
    elif p.after_wait == "own_channel":
        report(WARN, f"{what}: longer than wait_s = {p.wait_s:g} s, after which"
                     " after_wait = \"own_channel\" prices them from this meter's own channel:"
                     " is the daemon running? (systemctl status p2p-energy)")
    else:
        report(WARN, f"{what}: longer than wait_s = {p.wait_s:g} s; they owe nothing until"
                     " the producer's figures come. Is the producer's Pi running and"
                     f" publishing, and the broker {cfg.mqtt.broker} reachable? To price"
                     " them from this meter's own channel after wait_s, set [producer]"
                     " after_wait = \"own_channel\"")


def _check_ledger(cfg: Config, report: Callable[[str, str], None]) -> None:
    path = Path(cfg.ledger.path)
    problem = ledger_path_problem(path)
    if problem:
        report(FAIL, f"ledger {path}: {problem}")
    elif path.exists():
        try:
            ledger = Ledger(path, readonly=True)  # never upgraded here: only the daemon does
        except P2PEnergyError as err:
            report(FAIL, f"ledger: {err}")
            return
        if ledger.outdated:
            ledger.close()
            report(INFO, f"ledger {path}: schema {ledger.version}, older than this program's"
                         f" ({SCHEMA_VERSION}); the daemon upgrades it when it starts"
                         " (restart it once); totals after that")
            return
        try:
            t = ledger.totals()
            unit = ledger.unit(cfg.wallet.backend)
            since, failures, last_error = ledger.health()
        finally:
            ledger.close()
        report(OK, f"ledger {path}: owed {t['owed_iota']:.3f} {unit}, paid {t['paid_iota']},"
                   f" queued {t['queued_iota']}")
        if since is not None:
            report(FAIL, f"payments failing since {iso(since)} ({failures} failed attempts):"
                         f" {last_error}")
    elif path.parent.is_dir() and not os.access(path.parent, os.W_OK | os.X_OK):
        report(FAIL, f"ledger {path}: not created yet, and {path.parent} is not writable")
    else:  # a missing folder is made by the daemon (as root) or by systemd (StateDirectory=)
        report(OK, f"ledger {path}: not created yet (the daemon creates it)")


def _check_wallet(cfg: Config, report: Callable[[str, str], None]) -> None:
    """The backend's own lines (its descriptor), told where the ledger says the funds are."""
    index, flying = _wallet_position(cfg)
    position = Position(index) if flying is None else Position(
        index, flying.id, flying.value_units, flying.change_index)
    backends.backend(cfg.wallet.backend).check(cfg, report, position)


def _check_mqtt(cfg: Config, report: Callable[[str, str], None]) -> None:
    """The MQTT password as ``serve`` reads it: the same reader, the same refusals."""
    if not cfg.mqtt.enabled and not cfg.mqtt.password_file:
        return
    try:
        password = load_mqtt_password(cfg)
    except P2PEnergyError as err:
        report(FAIL, f"mqtt password: {err}")
        return
    if password:
        report(OK, f"mqtt password: read for user {cfg.mqtt.username!r}")
    if password and not cfg.mqtt.tls and not _loopback(cfg.mqtt.address[0]):
        report(WARN, f"mqtt: {cfg.mqtt.broker} is not encrypted: the password crosses the"
                     " network as plain text; use mqtts://host:8883 (TLS) if the broker has it")


def _check_publishing(cfg: Config, report: Callable[[str, str], None]) -> None:
    """Where a producer publishes its signed log: what the consumer's ``[producer] topic``
    names."""
    if not cfg.mqtt.enabled:
        report(INFO, "signed log: not published over MQTT ([mqtt] enabled = false): a"
                     " consumer cannot be priced from it")
        return
    report(OK, f"signed log: published to {cfg.mqtt.broker} under {cfg.mqtt.log_topic}/"
               f" (the consumer's [producer] topic = \"{cfg.mqtt.log_topic}\")")


def _loopback(host: str) -> bool:
    """True for a name or address of this machine's loopback (traffic never leaves it)."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _wallet_position(cfg: Config) -> tuple[int, Payment | None]:
    """The key index the funds are at (the ledger's, or ``start_index``) and any payment
    signed from it that is not confirmed yet."""
    path = Path(cfg.ledger.path)
    if not path.is_file():
        return cfg.wallet.start_index, None
    ledger = Ledger(path, readonly=True)
    try:
        index = ledger.input_index(cfg.wallet.start_index)  # kept the same since schema 1
        return index, None if ledger.outdated else ledger.in_flight()
    finally:
        ledger.close()
