"""Logging set-up for the CLI: journald-aware format, and secret redaction.

Under systemd, stderr is a stream to journald, which stamps every line itself
and reads a leading ``<N>`` as that line's syslog priority, so
``journalctl -p warning`` works. journald splits the stream at newlines and
treats each line as its own entry, so a multi-line message (a traceback) gets
the prefix on EVERY line: otherwise its later lines would be stored at the
default priority (info) and ``journalctl -p err`` would show the first line of a
traceback and hide the rest. The lines stay readable, and stay consecutive.

Elsewhere (a terminal, a pipe) the format is the usual timestamped one.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import TextIO

# syslog priorities, as in <syslog.h>; NOTICE (5) has no logging level
_PRIORITY = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4),
             (logging.INFO, 6))
_DEBUG_PRIORITY = 7
REDACTED = "<redacted>"

_handler: logging.Handler | None = None


def syslog_priority(levelno: int) -> int:
    """The syslog priority for a logging level: CRITICAL 2, ERROR 3, WARNING 4, INFO 6, DEBUG 7."""
    for level, priority in _PRIORITY:
        if levelno >= level:
            return priority
    return _DEBUG_PRIORITY


class JournalFormatter(logging.Formatter):
    """``<N>logger: message``, the prefix repeated on every line; no timestamp."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        text = super().format(record)
        return "\n".join(prefix + line for line in text.splitlines() or [""])


class RedactFilter(logging.Filter):
    """Replaces every registered secret in a record's message and exception text.

    Installed on a handler it sees every record that handler writes, whichever
    logger it came from. It rewrites the record itself (``msg``, ``args``,
    ``exc_text``, ``stack_info``), so the secret is gone for every later handler too.
    """

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()

    def add(self, secret: str) -> None:
        if secret:  # "" would match between every two characters
            self._secrets.add(secret)

    def _clean(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # bad %-args: logging would print them (and the secret) later
            message = f"{record.msg} (unformattable log arguments)"
        record.msg, record.args = self._clean(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._clean(record.exc_text)
        if record.stack_info:
            record.stack_info = self._clean(record.stack_info)
        return True


_redactor = RedactFilter()


def redact(secret: str) -> None:
    """Never let ``secret`` (the seed) reach the log: it is shown as ``<redacted>``.

    Applies to the handler ``setup_logging`` installed, before or after this call.
    """
    _redactor.add(secret)


def under_journal(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """True if ``stream`` is the journald stream systemd gave us.

    systemd sets ``JOURNAL_STREAM=<dev>:<inode>`` of that stream; comparing it
    with the stream's own device and inode rules out an inherited variable
    whose stderr was since redirected (e.g. ``p2p-energy check 2>file``).
    """
    env = os.environ if environ is None else environ
    try:
        dev, ino = (int(part) for part in env.get("JOURNAL_STREAM", "").split(":"))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):  # unset, malformed, or no real fd
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def setup_logging(verbose: bool, *, stream: TextIO | None = None,
                  environ: Mapping[str, str] | None = None) -> logging.Handler:
    """Send all logging to stderr, journald-style under systemd. Call once, from the CLI.

    ``verbose`` shows DEBUG records, else INFO and above. Calling again replaces
    the handler installed before. Python warnings are logged too.
    """
    global _handler
    out = sys.stderr if stream is None else stream
    handler = logging.StreamHandler(out)
    if under_journal(out, environ):
        handler.setFormatter(JournalFormatter())
    else:
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(_redactor)
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # Libraries' per-request chatter (httpx logs every POST at INFO) is not ours to show.
    for noisy in ("httpx", "httpcore", "iota"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _handler = handler
    logging.captureWarnings(True)
    return handler
