"""Go's golang.org/x/mod/sumdb ``note`` and ``tlog``: the judges of the signed log's formats.

``go_sumdb/main.go`` is built once per test session against the Debian package
``golang-golang-x-mod-dev`` (sources under /usr/share/gocode, GOPATH mode), so
no module is downloaded. Tests skip only when ``go`` itself is missing; CI
(``.ci/run``) installs it, so CI never skips.
"""

from __future__ import annotations

import atexit
import base64
import functools
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

SOURCE = Path(__file__).with_name("go_sumdb") / "main.go"
GOPATH = Path("/usr/share/gocode")  # where golang-golang-x-mod-dev puts golang.org/x/mod
NEEDED = GOPATH / "src/golang.org/x/mod/sumdb/note/note.go"


@functools.cache
def _build() -> Path:
    if not NEEDED.exists():
        raise RuntimeError(f"{NEEDED} missing: apt-get install golang-golang-x-mod-dev")
    out = Path(tempfile.mkdtemp(prefix="p2p-go-sumdb-"))
    atexit.register(shutil.rmtree, out, True)  # the binary and Go's build cache
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": str(GOPATH), "GOFLAGS": "",
           "GOCACHE": str(out / "cache"), "CGO_ENABLED": "0"}
    subprocess.run(["go", "build", "-o", str(out / "go_sumdb"), SOURCE.name],
                   cwd=SOURCE.parent, env=env, check=True, capture_output=True, timeout=600)
    return out / "go_sumdb"


class GoSumdb:
    """Runs the Go checker: one command per call, JSON out."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def run(self, *args: str, stdin: bytes = b"") -> Any:
        done = subprocess.run([str(self.path), *args], input=stdin, capture_output=True,
                              timeout=120, check=False)
        assert done.returncode == 0, done.stderr.decode()
        return json.loads(done.stdout)

    def tree(self, leaves: Sequence[bytes],
             inclusion: Sequence[tuple[int, int, Sequence[bytes]]] = (),
             consistency: Sequence[tuple[int, int, Sequence[bytes]]] = ()) -> dict[str, Any]:
        """Go's stored hashes, roots (Go's size 0 root is zeros) and verdicts on our proofs."""
        request = {"leaves": [b64(h) for h in leaves],
                   "inclusion": [{"index": i, "size": s, "proof": [b64(h) for h in p]}
                                 for i, s, p in inclusion],
                   "consistency": [{"old": m, "new": n, "proof": [b64(h) for h in p]}
                                   for m, n, p in consistency]}
        return self.run("tree", stdin=json.dumps(request).encode())

    def open(self, verifier_key: str, message: bytes) -> dict[str, Any]:
        return self.run("open", verifier_key, stdin=message)

    def sign(self, signer_key: str, text: str) -> dict[str, Any]:
        return self.run("sign", signer_key, stdin=text.encode())

    def keygen(self, name: str, seed: bytes) -> dict[str, str]:
        return self.run("keygen", name, seed.hex())

    def keys(self, verifiers: list[str], signers: list[str]) -> dict[str, list[str]]:
        """Go's NewVerifier and NewSigner errors ("" when accepted), one per key."""
        request = {"verifiers": verifiers, "signers": signers}
        return self.run("keys", stdin=json.dumps(request).encode())


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def judge() -> GoSumdb:
    """The built checker; skips the test only when there is no Go toolchain."""
    if shutil.which("go") is None:
        pytest.skip("no Go toolchain: apt-get install golang-go golang-golang-x-mod-dev")
    return GoSumdb(_build())
