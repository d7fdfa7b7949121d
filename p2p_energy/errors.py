"""Every exception p2p-energy raises on purpose, in one place.

Each carries the data a caller needs to decide what to do, and its message is
one line that a person can act on. None of them ever holds the wallet seed.
"""

from __future__ import annotations


class P2PEnergyError(Exception):
    """Base class: anything the daemon knows how to report in one line."""


class ConfigError(P2PEnergyError):
    """The configuration is wrong: names the file, the key and the value.

    The CLI prints ``str(err)`` on one line and exits with code 2.
    """

    def __init__(self, message: str, *, path: str = "", key: str = "", value: object = None,
                 show_value: bool = True) -> None:
        self.path = path
        self.key = key
        self.value = value
        self.reason = message
        where = path or "<config>"
        if key:
            where += f": {key}"
            if show_value and value is not None:
                where += f" = {value!r}"
        super().__init__(f"{where}: {message}")


class SensorError(P2PEnergyError):
    """The sensor cannot be used at all (wrong chip, bad wiring at start-up)."""


class SensorReadError(SensorError):
    """One sample could not be taken; the daemon counts it and goes on.

    ``errno`` is the OS error number when the cause was an I2C ``OSError``.
    """

    def __init__(self, message: str, *, errno: int | None = None) -> None:
        self.errno = errno
        super().__init__(message)


class ImplausibleReading(SensorReadError):
    """The chip answered, but with a value no real circuit gives (counted, excluded)."""


class LedgerError(P2PEnergyError):
    """The ledger file cannot be opened or has a schema this version cannot use.

    ``reason`` says why without naming the file: what an HTTP client may be told.
    """

    def __init__(self, message: str, *, reason: str = "the ledger cannot be read") -> None:
        self.reason = reason
        super().__init__(message)


class LedgerBusy(P2PEnergyError):
    """Another process writes this ledger. ``pid``: its pid, if known."""

    def __init__(self, message: str, pid: int | None) -> None:
        self.pid = pid
        super().__init__(message)


class WalletError(P2PEnergyError):
    """A payment step failed. ``retryable`` says whether waiting can help.

    ``node_message`` is what the node said, when it said anything. ``kind``
    groups failures that are one condition ("timeout", "unreachable", "HTTP 500"),
    so that an outage is logged once, not once per step that met it.
    """

    def __init__(self, message: str, *, retryable: bool = True, node_message: str = "",
                 kind: str = "") -> None:
        self.retryable = retryable
        self.node_message = node_message
        self.kind = kind
        super().__init__(message)


class InsufficientBalance(WalletError):
    """The input holds less than the payment. ``available``: the whole units it holds.

    The payer pays what is there (when it is something) and waits for a deposit
    for the rest.
    """

    def __init__(self, message: str, *, available: int = 0, **kwargs: object) -> None:
        self.available = available
        kwargs.setdefault("kind", "insufficient balance")
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class NotPromotable(WalletError):
    """A pending payment cannot be promoted: attach it again instead."""

    def __init__(self, message: str, **kwargs: object) -> None:
        kwargs.setdefault("retryable", False)
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class RpcError(WalletError):
    """A node answered a JSON-RPC error object: ``code`` and ``node_message`` are its own."""

    def __init__(self, message: str, *, code: int, node_message: str,
                 retryable: bool = True) -> None:
        self.code = code
        super().__init__(message, retryable=retryable, node_message=node_message,
                         kind="JSON-RPC error")


class LogError(P2PEnergyError, ValueError):
    """Something of the signed log does not parse or does not check (``p2p_energy.core``).

    A ``ValueError`` too, so that pure-core callers may catch either. Messages
    never contain a private key.
    """


class EntryError(LogError):
    """A log entry is not in the one canonical form of its kind and schema version."""


class KeyFormatError(LogError):
    """A signer or verifier key string is malformed or its key ID does not match."""


class NoteError(LogError):
    """A signed note or checkpoint is malformed, unsigned by the key, or badly signed."""


class ProofError(LogError):
    """An inclusion or consistency proof does not check (RFC 9162 sections 2.1.3, 2.1.4)."""


class NoteSignatureError(NoteError):
    """A well-formed note the key did not sign, signed badly, or another log's checkpoint.

    What a forged or substituted log looks like (``verify`` exits 1), where a plain
    ``NoteError`` is text that is no signed checkpoint at all (``verify`` exits 2).
    """


class ExportError(LogError):
    """A log export file (``core.export``) is malformed: names the line or entry."""


class SourceError(P2PEnergyError):
    """``verify`` cannot read its SOURCE as a log: unreachable, or not a log (exit 2)."""


class VerifyError(P2PEnergyError):
    """``verify`` cannot start: a bad option, address or state folder (exit 2)."""
