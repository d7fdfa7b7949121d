"""Run the IOTA Foundation's TypeScript SDK (``tests/support/iota_sdk_judge``) on what we made.

``judge(transactions=[{"tx_bytes": b64, "signature": b64, "secret"?: str}],
secrets=[...])`` returns the SDK's verdicts (see ``judge.mjs``).

The test run installs the SDK itself: the session fixture ``iota_sdk_judge``
(and ``judge`` when called without it) runs ``npm ci`` in that folder when its
``node_modules`` is missing or older than ``package-lock.json``, once, under a
lock on the folder, so that pytest-xdist workers starting together install it
once and the others wait for it. Without node 20+ and npm, the tests that need
the judge fail with one line naming what to install.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import pytest

JUDGE_DIR = Path(__file__).resolve().parent / "iota_sdk_judge"
# npm writes this after an install completed; a cut-short install leaves none.
INSTALLED = JUDGE_DIR / "node_modules" / ".package-lock.json"
SDK = JUDGE_DIR / "node_modules" / "@iota" / "iota-sdk"
NODE_MAJOR_MIN = 20
NEEDS = (f"the IOTA SDK judge needs node {NODE_MAJOR_MIN} or later and npm"
         " (Debian: apt-get install nodejs npm; or https://nodejs.org)")

_installed_here = False  # this process checked or installed it


def _up_to_date() -> bool:
    return (SDK.is_dir() and INSTALLED.is_file()
            and INSTALLED.stat().st_mtime >= (JUDGE_DIR / "package-lock.json").stat().st_mtime)


@cache
def _node() -> str:
    """The path of node, checked to be new enough (once per process)."""
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"{NEEDS}: node is not on PATH", pytrace=False)
    out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
    m = re.match(r"v(\d+)\.", out.stdout.strip())
    if m is None or int(m.group(1)) < NODE_MAJOR_MIN:
        pytest.fail(f"{NEEDS}: found node {out.stdout.strip() or '?'}", pytrace=False)
    return node


@contextmanager
def _folder_locked() -> Iterator[None]:
    """An exclusive lock on ``JUDGE_DIR`` across processes (flock on the folder itself)."""
    fd = os.open(JUDGE_DIR, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def install() -> None:
    """``npm ci`` in ``JUDGE_DIR`` unless already done; fails the test naming what is missing."""
    global _installed_here
    if _installed_here:
        return
    _node()
    if not _up_to_date():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail(f"{NEEDS}: npm is not on PATH", pytrace=False)
        with _folder_locked():
            if not _up_to_date():  # another worker may have installed it while we waited
                cmd = [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"]
                out = subprocess.run(cmd, cwd=JUDGE_DIR, capture_output=True, text=True,
                                     timeout=600)
                if out.returncode != 0 or not _up_to_date():
                    tail = "\n".join((out.stderr or out.stdout).strip().splitlines()[-15:])
                    pytest.fail(f"installing the IOTA SDK judge failed: `npm ci` in {JUDGE_DIR}"
                                f" exited with {out.returncode}:\n{tail}", pytrace=False)
    _installed_here = True


@pytest.fixture(scope="session")
def iota_sdk_judge() -> Callable[..., dict[str, Any]]:
    """``judge``, with the SDK installed first (once per run; see the module's docstring)."""
    install()
    return judge


def judge(*, transactions: list[dict[str, Any]] = (), secrets: list[str] = (),
          builds: list[dict[str, Any]] = (), signed: list[str] = ()) -> dict[str, Any]:
    install()
    request = json.dumps({"transactions": list(transactions), "secrets": list(secrets),
                          "builds": list(builds), "signed": list(signed)})
    out = subprocess.run([_node(), str(JUDGE_DIR / "judge.mjs")], input=request,
                         capture_output=True, text=True, timeout=120, cwd=JUDGE_DIR)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)
