"""Headless Chromium driven over the DevTools protocol on a pipe (no websocket, no driver).

``--remote-debugging-pipe`` makes Chromium read commands from fd 3 and write
answers and events to fd 4, each a JSON text ended by a NUL byte. That is
enough to turn scripts off (``Emulation.setScriptExecutionDisabled``; the
command line's ``--blink-settings=scriptEnabled=false`` also stops
``--dump-dom`` from printing anything), load a page, read the DOM it built
and take a screenshot.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _high(*fds: int) -> tuple[int, ...]:
    """The same pipes on fds >= 10, so that moving them to 3 and 4 cannot clobber one."""
    out = tuple(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in fds)
    for fd in fds:
        os.close(fd)
    return out


class Browser:
    """One headless Chromium with one page. Use as a context manager."""

    def __init__(self, *, javascript: bool, width: int = 412, height: int = 900,
                 mobile: bool = True) -> None:
        assert CHROMIUM is not None
        self.width = width
        # Helper processes may still write to the profile as the browser exits.
        self._profile = tempfile.TemporaryDirectory(ignore_cleanup_errors=True)
        to_child_r, self._to_child = _high(*os.pipe())
        self._from_child, from_child_w = _high(*os.pipe())
        # The child's fd 3 reads our commands, its fd 4 writes its answers.
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", "--hide-scrollbars", f"--user-data-dir={self._profile.name}",
             "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(3, 4, to_child_r, from_child_w), preexec_fn=lambda: (os.dup2(to_child_r, 3),
                                                 os.dup2(from_child_w, 4)))
        os.close(to_child_r)
        os.close(from_child_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target,
                                 flatten=True)["sessionId"]
        self.call("Page.enable", session=True)
        self.call("Emulation.setScriptExecutionDisabled", value=not javascript, session=True)
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=mobile, session=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *_exc: object) -> None:
        try:
            self.call("Browser.close", timeout_s=5)
            self.proc.wait(10)
        except (OSError, TimeoutError, ConnectionError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(10)
        os.close(self._to_child)
        os.close(self._from_child)
        self._profile.cleanup()

    def _read(self, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while b"\0" not in self._buf:
            if time.monotonic() > deadline:
                raise TimeoutError("Chromium did not answer")
            chunk = os.read(self._from_child, 65536)
            if not chunk:
                raise ConnectionError("Chromium closed the pipe")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method: str, *, session: bool = False, timeout_s: float = 30.0,
             **params: Any) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read(timeout_s)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def load(self, url: str, timeout_s: float = 30.0) -> None:
        """Navigate and wait for the load event."""
        self.events.clear()
        self.call("Page.navigate", url=url, session=True)
        deadline = time.monotonic() + timeout_s
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            self.events.append(self._read(max(deadline - time.monotonic(), 0.01)))

    def dom(self) -> str:
        """The DOM as the page holds it now (after any script ran)."""
        root = self.call("DOM.getDocument", depth=0, session=True)["root"]["nodeId"]
        return self.call("DOM.getOuterHTML", nodeId=root, session=True)["outerHTML"]

    def screenshot(self) -> bytes:
        """A PNG of the whole page."""
        size = self.call("Page.getLayoutMetrics", session=True)["cssContentSize"]
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": self.width,
                               "height": size["height"], "scale": 1}, session=True)["data"]
        return base64.b64decode(data)
