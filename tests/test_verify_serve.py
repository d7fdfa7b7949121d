"""``verify`` against the real thing: ``p2p-energy run`` signs the log, ``serve`` publishes
it, ``log export`` writes it, and the neighbour's ``verify`` reads both, twice."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from support.log_daemon import cli, run_until, serve_url, start, write_config
from support.log_server import SignedLog

pytestmark = pytest.mark.xdist_group("signed_log_daemon")


def test_verify_reads_what_serve_and_log_export_publish(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    run_until(cfg, tmp_path, 10)
    key = cli("log", "key", "-c", str(cfg)).stdout.strip()
    serve = start("serve", cfg, tmp_path / "serve.log")
    try:
        url = serve_url(tmp_path / "serve.log")
        state = tmp_path / "state"
        first = cli("verify", url, "--key", key, "--state", str(state))
        assert (first.returncode, first.stderr) == (0, ""), first.stdout
        size = int(re.search(r": (\d+) entries in its signed checkpoint", first.stdout)[1])
        assert size >= 10
        assert "payment" in first.stdout and "NOT VERIFIED" not in first.stdout

        run_until(cfg, tmp_path, size + 5)  # the daemon again, serve still up
        again = cli("verify", url, "--key", key, "--state", str(state))
        assert (again.returncode, again.stderr) == (0, ""), again.stdout
        assert f"this run (from entry {size})" in again.stdout
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(30)
    out = tmp_path / "bill-log.txt"
    assert cli("log", "export", "-c", str(cfg), "-o", str(out)).returncode == 0
    fresh = cli("verify", str(out), "--key", key, "--state", str(tmp_path / "fresh"))
    assert (fresh.returncode, fresh.stderr) == (0, ""), fresh.stdout
    assert "this run (from entry 0)" in fresh.stdout
    # The export continues the state the HTTP runs left: nothing rewritten.
    cont = cli("verify", str(out), "--key", key, "--state", str(state))
    assert (cont.returncode, cont.stderr) == (0, ""), cont.stdout


def test_a_serve_whose_ledger_keeps_no_log_yet_is_one_line_not_a_verified_empty_log(tmp_path):
    """The real serve answers 404 while the ledger has no log (the test log server of
    tests/support signs an empty checkpoint instead): verify refuses in one line, exit 2,
    and keeps no state."""
    from p2p_energy.core.metering import RoundTotals
    from p2p_energy.core.pricing import Quote
    from p2p_energy.store.ledger import Ledger

    cfg = write_config(tmp_path)
    before = Ledger(tmp_path / "ledger.db")  # a ledger of a version without the log
    before.record_round(RoundTotals(started_at=1.7e9, duration_s=60, metered_s=60,
                                    consumer_mws=60.0, producer_mws=600.0, ended_at=1.7e9 + 60),
                        Quote(price=0.02, capped=False, owed_nano_units=1_200_000_000))
    before.close()
    serve = start("serve", cfg, tmp_path / "serve.log")
    try:
        url = serve_url(tmp_path / "serve.log")
        out = cli("verify", url, "--key", SignedLog().verifier_key, "--state",
                  str(tmp_path / "state"))
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(30)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "HTTP 404 the signed log has no entry yet" in out.stderr
    assert not (tmp_path / "state").exists()
