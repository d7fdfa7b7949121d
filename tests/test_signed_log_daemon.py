"""The signed log as the daemon keeps it and serve publishes it: its key, HTTP, kill -9.

Real processes: ``p2p-energy run`` (replay sensor, dry-run wallet) writes the
ledger, ``p2p-energy serve`` answers over HTTP, Go's ``sumdb/note`` and
``sumdb/tlog`` judge what comes out.
"""

from __future__ import annotations

import base64
import json
import random
import re
import signal
import sqlite3
import stat
import time
import urllib.error
import urllib.request

import pytest

from p2p_energy.core import entries, note, tlog
from p2p_energy.store.signed_log import LogView

from support import go_sumdb
from support.go_sumdb import b64
from support.log_daemon import cli, log_size, run_until, serve_url, start, write_config
from support.mosquitto_broker import wait_until

pytestmark = pytest.mark.xdist_group("signed_log_daemon")


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_the_first_run_makes_the_key_and_log_key_prints_only_its_public_half(tmp_path):
    cfg = write_config(tmp_path)
    key_file = tmp_path / "log.key"
    run_until(cfg, tmp_path, 2)
    mode = stat.S_IMODE(key_file.stat().st_mode)
    assert mode == 0o600
    secret = key_file.read_text().strip()
    signer = note.parse_signer(secret)  # Go's PRIVATE+KEY+name+id+key form
    assert re.fullmatch(r"[\w.-]+/p2p-energy/[0-9a-f]{8}", signer.name)
    out = cli("log", "key", "-c", str(cfg))
    assert out.returncode == 0 and out.stdout.strip() == signer.verifier.key()
    assert "PRIVATE" not in out.stdout + out.stderr
    run_log = (tmp_path / "run.log").read_text()
    assert signer.verifier.key() in run_log and secret.split("+", 4)[4] not in run_log
    run_until(cfg, tmp_path, log_size(tmp_path / "ledger.db") + 2)  # the same key again
    assert key_file.read_text().strip() == secret
    check = cli("check", "-c", str(cfg))
    assert f"ok   log key {key_file}: verifier key (for your neighbour) {signer.verifier.key()}" \
        in check.stdout
    assert re.search(rf"ok   signed log {re.escape(signer.name)}: \d+ entries", check.stdout)
    assert "PRIVATE" not in check.stdout + check.stderr and secret.split("+", 4)[4] not in \
        check.stdout


def test_a_key_others_can_read_or_another_name_is_refused_in_one_line(tmp_path):
    cfg = write_config(tmp_path)
    run_until(cfg, tmp_path, 1)
    (tmp_path / "log.key").chmod(0o640)
    out = cli("run", "-c", str(cfg))
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "log.key_file" in out.stderr and "readable by group" in out.stderr
    assert "PRIVATE" not in out.stderr
    check = cli("check", "-c", str(cfg))
    assert check.returncode == 1 and "FAIL log key:" in check.stdout
    (tmp_path / "log.key").chmod(0o600)
    renamed = write_config(tmp_path, extra='[log]\nname = "another.name"\n')
    out = cli("log", "key", "-c", str(renamed))
    assert out.returncode == 2 and "log.name = 'another.name'" in out.stderr


def test_a_lost_key_is_not_replaced_by_a_new_one(tmp_path):
    cfg = write_config(tmp_path)
    run_until(cfg, tmp_path, 2)
    verifier = cli("log", "key", "-c", str(cfg)).stdout.strip()
    (tmp_path / "log.key").unlink()
    out = cli("run", "-c", str(cfg))
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert f"its signed log was begun with key {verifier}" in out.stderr
    assert "restore it from your backup" in out.stderr
    assert not (tmp_path / "log.key").exists()  # no stray key to hand over by mistake
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".log-key-")] == []


def test_a_key_file_holding_no_key_is_named_without_its_content(tmp_path):
    cfg = write_config(tmp_path)
    (tmp_path / "log.key").write_text("PRIVATE+KEY+not a key\n")
    (tmp_path / "log.key").chmod(0o600)
    out = cli("log", "key", "-c", str(cfg))
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "log.key_file: " in out.stderr and "holds no log key" in out.stderr
    assert "object at" not in out.stderr and "not a key" not in out.stderr


def test_serve_publishes_what_go_verifies(tmp_path):
    judge = go_sumdb.judge()
    cfg = write_config(tmp_path)
    run_until(cfg, tmp_path, 12)
    verifier = cli("log", "key", "-c", str(cfg)).stdout.strip()
    serve = start("serve", cfg, tmp_path / "serve.log")
    try:
        url = serve_url(tmp_path / "serve.log")
        status, checkpoint = get(url + "/log/checkpoint")
        assert status == 200
        opened = judge.open(verifier, checkpoint)
        size = note.parse_checkpoint(opened["text"]).size
        data: list[bytes] = []
        while len(data) < size:  # pages, as a client reads them
            status, body = get(f"{url}/log/entries?start={len(data)}&end={len(data) + 5}")
            assert status == 200
            page = [base64.b64decode(e) for e in json.loads(body)["entries"]]
            assert 0 < len(page) <= 5
            data += page
        parsed = [entries.parse_entry(d) for d in data]
        assert all(entries.round_problems(e) == [] for e in parsed
                   if isinstance(e, entries.RoundEntry))
        assert any(isinstance(e, entries.PaymentEntry) for e in parsed)
        leaves = [tlog.leaf_hash(d) for d in data]

        def proof(path: str) -> list[bytes]:
            status, body = get(url + path)
            assert status == 200, body
            return [base64.b64decode(h) for h in json.loads(body)["proof"]]
        inclusion = [(i, size, proof(f"/log/proof/inclusion?index={i}&size={size}"))
                     for i in range(size)]
        consistency = [(m, size, proof(f"/log/proof/consistency?from={m}&to={size}"))
                       for m in range(1, size + 1)]
        answer = judge.tree(leaves, inclusion, consistency)
        assert answer["roots"][size] == b64(note.parse_checkpoint(opened["text"]).root_hash)
        assert all(v["err"] == "" for v in answer["inclusion"] + answer["consistency"])
        for bad in ("/log/entries?start=5&end=5", "/log/entries?start=-1&end=3",
                    f"/log/proof/inclusion?index=0&size={size + 1}",
                    "/log/proof/consistency?from=3&to=2", "/log/entries?start=1e3&end=2000"):
            status, body = get(url + bad)
            assert status == 400 and body.count(b"\n") == 1, bad
        assert get(f"{url}/log/entries?start={size}&end={size + 9}")[0] == 404
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(30)


def test_kill_9_while_appending_leaves_a_log_consistent_with_every_checkpoint_seen(tmp_path):
    """kill -9 at random moments: every checkpoint seen before stays a prefix of the log,
    and every round and ended payment has its entry."""
    judge = go_sumdb.judge()
    cfg = write_config(tmp_path, round_s=0.1)
    db_path = tmp_path / "ledger.db"
    rng = random.Random(1606)
    seen: list[bytes] = []
    for _ in range(6):
        before = log_size(db_path)
        proc = start("run", cfg, tmp_path / "run.log")
        try:
            wait_until("a new entry", lambda b=before: log_size(db_path) > b, 30)
            time.sleep(rng.uniform(0.05, 0.8))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        seen.append(LogView(conn).checkpoint() or b"")
        conn.close()
    run_until(cfg, tmp_path, log_size(db_path) + 1)  # a clean run after the last crash

    verifier = note.parse_verifier(cli("log", "key", "-c", str(cfg)).stdout.strip())
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    view = LogView(conn)
    size = view.size()
    final = note.open_checkpoint(view.checkpoint() or b"", verifier)
    data = list(view.iter_entries(size))
    assert tlog.root_from_leaves(tlog.leaf_hash(d) for d in data) == final.root_hash
    checkpoints = [note.open_checkpoint(s, verifier) for s in seen]
    assert [c.size for c in checkpoints] == sorted(c.size for c in checkpoints)
    for c in checkpoints:
        tlog.verify_consistency(c.size, size, c.root_hash, final.root_hash,
                                view.consistency_proof(c.size, size))
    cases = [(c.size, size, view.consistency_proof(c.size, size)) for c in checkpoints]
    answer = judge.tree([tlog.leaf_hash(d) for d in data], consistency=cases)
    assert all(v["err"] == "" for v in answer["consistency"])
    for c in checkpoints:  # each seen root is the root of that many of today's entries
        assert view.root(c.size) == c.root_hash
    rounds = [r for (r,) in conn.execute("SELECT id FROM rounds ORDER BY id")]
    logged = [e.round_id for e in map(entries.parse_entry, data)
              if isinstance(e, entries.RoundEntry)]
    assert logged == rounds and len(rounds) > 6
    ended = {p for (p,) in conn.execute(
        "SELECT id FROM payments WHERE status IN ('confirmed', 'failed')")}
    assert {e.payment_id for e in map(entries.parse_entry, data)
            if isinstance(e, entries.PaymentEntry)} == ended
    conn.close()

