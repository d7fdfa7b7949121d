"""A small JSON-RPC 2.0 client for an IOTA fullnode, on the standard library only.

One HTTP POST per call on a fresh connection (a Pi makes a few calls a
minute; keep-alive would only add states to get wrong). Every failure becomes
a one-line ``WalletError`` whose ``kind`` names the condition, so an outage
is logged once: ``unreachable``, ``timeout``, ``HTTP <status>``, ``garbage``
(an answer that is not JSON-RPC), or ``RpcError`` (the node answered with a
JSON-RPC error: ``code`` and ``node_message`` say what it said).
"""

from __future__ import annotations

import itertools
import json
from typing import Any
from urllib.parse import urlsplit

from ..errors import RpcError, WalletError

_MAX_MESSAGE = 300
_MAX_ANSWER_BYTES = 16 * 1024 * 1024


def one_line(text: str, limit: int = _MAX_MESSAGE) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


class RpcClient:
    """Calls JSON-RPC methods on ``url`` (http:// or https://), ``timeout_s`` per call."""

    def __init__(self, url: str, timeout_s: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise WalletError(f"node URL {url!r} is not an http:// or https:// URL",
                              retryable=False)
        self.url = url
        self.timeout_s = timeout_s
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._path = parts.path or "/"
        self._ids = itertools.count(1)

    def call(self, method: str, *params: Any) -> Any:
        """The ``result`` of ``method(*params)``.

        Raises:
            RpcError: the node answered a JSON-RPC error.
            WalletError: no answer, an HTTP error, or an answer that is not JSON-RPC.
        """
        request_id = next(self._ids)
        body = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method,
                           "params": list(params)}).encode()
        status, raw = self._post(method, body)
        where = f"{method}: node {self.url}"
        if status != 200:
            said = one_line(raw.decode("utf-8", "replace"), 120)
            # 4xx: the node refused this request; waiting will not change its mind.
            retryable = not 400 <= status < 500 or status in (408, 429)
            raise WalletError(f"{where} answered HTTP {status}: {said}", retryable=retryable,
                              node_message=said, kind=f"HTTP {status}")
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or answer.get("id") != request_id \
                or ("result" not in answer and not isinstance(answer.get("error"), dict)):
            said = one_line(raw.decode("utf-8", "replace"), 80)
            raise WalletError(f"{where} answered something that is not JSON-RPC: {said}",
                              kind="garbage")
        if "error" in answer and answer["error"] is not None:
            err = answer["error"]
            message = one_line(str(err.get("message", "")))
            code = err.get("code") if isinstance(err.get("code"), int) else 0
            raise RpcError(f"{where} answered error {code}: {message}", code=code,
                           node_message=message)
        return answer["result"]

    def _post(self, method: str, body: bytes) -> tuple[int, bytes]:
        import http.client  # here, not at import: the daemon starts before it pays
        import ssl

        if self._https:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self._host, self._port, timeout=self.timeout_s,
                context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout_s)
        where = f"{method}: node {self.url}"
        try:
            conn.request("POST", self._path, body=body,
                         headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            return response.status, response.read(_MAX_ANSWER_BYTES)
        except TimeoutError:
            raise WalletError(f"{where} did not answer within {self.timeout_s:g} s",
                              kind="timeout") from None
        except (OSError, http.client.HTTPException) as err:
            reason = one_line(str(err) or type(err).__name__, 120)
            raise WalletError(f"{where} cannot be reached: {reason}",
                              kind="unreachable") from None
        finally:
            conn.close()
