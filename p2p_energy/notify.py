"""systemd's sd_notify protocol in a few lines, without libsystemd.

Under ``Type=notify`` systemd passes ``NOTIFY_SOCKET``: a Unix datagram socket
(a path, or ``@name`` in the abstract namespace) that takes newline-separated
``KEY=value`` messages: ``READY=1``, ``STATUS=...``, ``WATCHDOG=1``,
``STOPPING=1``. Outside systemd the variable is unset and ``Notifier`` does
nothing. Telling systemd is never worth crashing the daemon for, so no method
raises: the first ``OSError`` is logged as a warning, later ones at debug level.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends sd_notify messages to ``address``; a no-op when ``address`` is empty."""

    def __init__(self, address: str = "") -> None:
        self.address = address
        self._sock: socket.socket | None = None
        self._failed = False
        if address.startswith("@"):
            self._target: str | bytes = "\0" + address[1:]  # abstract: no file behind it
        elif address.startswith("/"):
            self._target = address
        else:
            if address:  # e.g. vsock: addresses, which this daemon never runs under
                log.warning("NOTIFY_SOCKET=%r is not a path or @name: not notifying systemd",
                            address)
            self._target = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """The notifier systemd asked for through ``$NOTIFY_SOCKET`` (a no-op if unset)."""
        env = os.environ if environ is None else environ
        return cls(env.get("NOTIFY_SOCKET", ""))

    @property
    def enabled(self) -> bool:
        return bool(self._target)

    def ready(self) -> None:
        """Start-up is done: systemd marks the unit started, ``systemctl start`` returns."""
        self.send("READY=1")

    def status(self, text: str) -> None:
        """A one-line status shown by ``systemctl status``."""
        # A newline would start a new KEY=value assignment (e.g. WATCHDOG=trigger).
        self.send("STATUS=" + " ".join(text.splitlines()))

    def watchdog(self) -> None:
        """Still alive: must be sent more often than ``WatchdogSec=`` (we send at half)."""
        self.send("WATCHDOG=1")

    def stopping(self) -> None:
        """Shutting down on purpose: the stop is not a failure."""
        self.send("STOPPING=1")

    def send(self, message: str) -> bool:
        """Send one raw message; True if it went out. Never raises."""
        if not self._target:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                # Never block the sampling loop on a full receive queue: drop instead.
                self._sock.setblocking(False)
            self._sock.sendto(message.encode("utf-8"), self._target)
        except OSError as err:
            self._log_failure(message, err)
            return False
        return True

    def _log_failure(self, message: str, err: OSError) -> None:
        first = not self._failed
        self._failed = True
        later = "; further failures are logged at debug level" if first else ""
        log.log(logging.WARNING if first else logging.DEBUG,
                "cannot notify systemd at %s (%s): %s%s", self.address, message.split("=")[0],
                err.strerror or err, later)

    def close(self) -> None:
        """Close the socket; a later message opens it again."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval_s(environ: Mapping[str, str] | None = None) -> float | None:
    """The watchdog timeout systemd set (``WatchdogSec=``) in seconds, or None.

    None when ``WATCHDOG_USEC`` is unset or invalid, or when ``WATCHDOG_PID``
    names another process (the watchdog is then not ours to feed). Send
    ``WATCHDOG=1`` at half this interval, as sd_watchdog_enabled(3) advises.
    """
    env = os.environ if environ is None else environ
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    return usec / 1_000_000
