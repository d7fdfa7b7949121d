"""PyOTA, imported quietly and late, and its failures as one-line ``WalletError``s.

Shared by the wallet (``pyota_wallet``) and the read-only payment checks of
``verify`` (``pyota_receipts``). Importing PyOTA costs ~0.4 s and prints
pkg_resources warnings: nothing here imports it before it is asked for.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from typing import Any

from ..errors import WalletError

_STATUS = re.compile(r"^(?:Non-JSON |Empty |Malformed )?(\d{3}) response from node:?\s*(.*)$",
                     re.DOTALL)


def import_iota() -> Any:
    """Import PyOTA without its pkg_resources DeprecationWarning/UserWarning noise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import iota
    return iota


def node_error(step: str, err: Exception, node_url: str, timeout_s: float,
               one_line: Callable[[str], str]) -> WalletError:
    """The one-line ``WalletError`` for PyOTA's ``err`` in API call ``step``.

    ``kind`` names the condition ("timeout", "unreachable", "HTTP <status>",
    "unexpected answer"); ``retryable`` is False for an unusable URL and for a
    4xx the node answered (but 408 and 429). ``one_line`` makes each message one
    line (the wallet's also redacts its seed).
    """
    import httpx
    from iota.adapter import BadApiResponse, InvalidUri

    if isinstance(err, InvalidUri):
        return WalletError(one_line(f"wallet.node_url {node_url!r} is not usable: {err}"),
                           retryable=False)
    if isinstance(err, httpx.TimeoutException):
        return WalletError(one_line(f"{step}: node {node_url} did not answer within"
                                    f" {timeout_s:g} s"), kind="timeout")
    if isinstance(err, httpx.TransportError):
        return WalletError(one_line(f"{step}: cannot reach node {node_url}:"
                                    f" {type(err).__name__}: {err}"), kind="unreachable")
    if isinstance(err, BadApiResponse):
        text = one_line(str(err))
        match = _STATUS.match(text)
        status, said = (int(match[1]), match[2]) if match else (None, text)
        # 4xx: the node refused this request; waiting will not change its mind.
        retryable = status is None or not 400 <= status < 500 or status in (408, 429)
        where = f"HTTP {status}" if status else "error"
        return WalletError(one_line(f"{step}: node {node_url} answered {where}: {said}"),
                           retryable=retryable, node_message=said, kind=where)
    return WalletError(one_line(f"{step}: unexpected answer from node {node_url}:"
                                f" {type(err).__name__}: {err}"), kind="unexpected answer")
