"""``p2p-energy serve``: wires the HTTP server and the MQTT publisher to the ledger.

Its own process, its own systemd unit. It only reads the ledger, may start
before the daemon has created it, and keeps serving while the daemon restarts.
Signals only set a flag; the main thread then stops both sides and returns.
"""

from __future__ import annotations

import argparse
import logging
import threading

from ..config import Config, load_mqtt_password, require_serve
from ..errors import P2PEnergyError
from ..logs import redact
from ..notify import Notifier
from ..signals import stop_on_signals
from .figures import LedgerSource
from .periods import resolve_timezone, zone_name
from .server import Limits, connection_cap, open_files_limit, own_host_names

log = logging.getLogger(__name__)


def stale_after_s(cfg: Config) -> float:
    """Live power older than this is not shown: three checkpoints missed, and a margin."""
    return 3 * cfg.round.checkpoint_s + 5.0


def limits(cfg: Config) -> Limits:
    """What one HTTP client may take, from ``[serve]``; the connection cap lowered (and
    said so) where the open-file limit could not hold that many."""
    s = cfg.serve
    cap = connection_cap(s.max_connections, open_files_limit())
    if cap < s.max_connections:
        log.warning("serve.max_connections = %d lowered to %d: the open-file limit (%d)"
                    " holds no more", s.max_connections, cap, open_files_limit())
    return Limits(timeout_s=s.timeout_s, max_connections=cap,
                  allowed_hosts=own_host_names(s.address[0], s.allowed_hosts))


def cmd_serve(cfg: Config, _args: argparse.Namespace) -> int:
    """Run until SIGTERM/SIGINT. Raises ConfigError, P2PEnergyError (cannot listen)."""
    require_serve(cfg)
    password = load_mqtt_password(cfg)
    redact(password)  # from here on no log line can carry it
    tz = resolve_timezone(cfg.serve.timezone)
    source = LedgerSource(cfg.ledger.path, tz, stale_after_s=stale_after_s(cfg),
                          backend=cfg.wallet.backend)
    stop = threading.Event()
    stop_on_signals(stop)  # the handler itself takes no lock (signals.py)
    server = publisher = None
    try:
        if cfg.serve.enabled:
            from . import web
            try:
                server = web.start(cfg.serve.address, source, limits(cfg))
            except OSError as err:
                where = f"{cfg.source}: " if cfg.source else ""  # "": --simulate, no file
                raise P2PEnergyError(f'{where}serve.listen = "{cfg.serve.listen}":'
                                     f" cannot listen: {err.strerror or err}") from None
            log.info("dashboard and /metrics on %s (ledger %s, times in %s)", server.url,
                     cfg.ledger.path, zone_name(tz))
        if cfg.mqtt.enabled:
            from .mqtt import Publisher
            publisher = Publisher(cfg.mqtt, source, password=password)
            publisher.start()
        Notifier.from_env().ready()
        stop.wait()
    finally:
        if publisher is not None:
            publisher.stop()
        if server is not None:
            server.stop()
    log.info("stopped")
    return 0
