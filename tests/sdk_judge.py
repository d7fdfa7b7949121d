"""Run the IOTA Foundation's TypeScript SDK (``tests/iota_sdk_judge``) on what we made.

``judge(transactions=[{"tx_bytes": b64, "signature": b64, "secret"?: str}],
secrets=[...])`` returns the SDK's verdicts (see ``judge.mjs``). The SDK is
installed by ``npm ci`` in that folder (``.ci/run`` does it); a missing install
fails the test that needs it, with the command to run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

JUDGE_DIR = Path(__file__).resolve().parent / "iota_sdk_judge"


def judge(*, transactions: list[dict[str, Any]] = (), secrets: list[str] = (),
          builds: list[dict[str, Any]] = ()) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node (v20 or later) is needed to run the IOTA SDK judge")
    if not (JUDGE_DIR / "node_modules" / "@iota" / "iota-sdk").is_dir():
        pytest.fail(f"the IOTA SDK is not installed: run npm ci in {JUDGE_DIR}")
    request = json.dumps({"transactions": list(transactions), "secrets": list(secrets),
                          "builds": list(builds)})
    out = subprocess.run([node, str(JUDGE_DIR / "judge.mjs")], input=request,
                         capture_output=True, text=True, timeout=120, cwd=JUDGE_DIR)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)
