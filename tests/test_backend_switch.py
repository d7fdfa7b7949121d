"""A payment in flight is followed only by the backend that signed it; ``wallet abandon``.

Through the CLI (subprocesses and ``main``), real SQLite, our IOTA node on 127.0.0.1.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from p2p_energy.commands.cli import main
from p2p_energy.core.metering import RoundTotals
from p2p_energy.core.pricing import NANO, Quote
from p2p_energy.store.ledger import Ledger
from p2p_energy.wallet.dryrun import DryRunWallet

from support.cli_process import p2p_energy_cli
from support.iota_fixtures import PAYER_KEY, RECEIVER, funded_iota_node, iota_wallet
from support.iota_node import IotaNode

OWED = 300_000  # units: above backend iota's min_payment


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def iota_config(tmp: Path, node: IotaNode) -> Path:
    key = write(tmp / "key", PAYER_KEY.export() + "\n")
    return write(tmp / "c.toml", f"""
[meter]
sensor = "simulated"
[round]
length_s = 1
checkpoint_s = 0.5
[wallet]
backend = "iota"
seed_file = "{key}"
receiver = "{RECEIVER}"
node_url = "{node.url}"
poll_s = 0.2
[ledger]
path = "{tmp / 'l.db'}"
""")


def owing_in_flight(path: Path, signer) -> int:
    """A ledger owing OWED units, signed by ``signer`` (not sent); returns the payment id."""
    ledger = Ledger(path)
    try:
        r = RoundTotals(started_at=0, duration_s=60, metered_s=60, consumer_mws=1e6,
                        producer_mws=1e6, samples=60, expected_samples=60, ended_at=60)
        ledger.record_round(r, Quote(1.0, False, OWED * NANO))
        p = ledger.claim_queued()
        assert p is not None
        ledger.store_signed(p.id, signer.prepare(OWED, 0), signer.backend)
        return p.id
    finally:
        ledger.close()


def confirmed(path: Path) -> list[dict]:
    ledger = Ledger(path, readonly=True)
    try:
        return [p for p in ledger.report()["payments"] if p["status"] == "confirmed"]
    finally:
        ledger.close()


def test_switched_backend_refuses_then_abandon_force_then_paid_once(tmp_path) -> None:
    with funded_iota_node() as node:
        cfg = iota_config(tmp_path, node)
        pid = owing_in_flight(tmp_path / "l.db", DryRunWallet(receiver=RECEIVER))
        refused = p2p_energy_cli("run", "-c", str(cfg))
        assert refused.returncode == 1
        [line] = refused.stderr.strip().splitlines()
        assert f"payment {pid} ({OWED} units" in line and '"dry-run"' in line
        assert f"p2p-energy wallet abandon {pid}" in line
        assert node.executed == {} and node.requests == []

        asked = p2p_energy_cli("wallet", "abandon", str(pid), "-c", str(cfg))
        assert asked.returncode == 1
        [line] = asked.stderr.strip().splitlines()
        assert "its network cannot be asked" in line and "--force" in line

        forced = p2p_energy_cli("wallet", "abandon", str(pid), "--force", "-c", str(cfg))
        assert forced.returncode == 0, forced.stderr
        assert "paid twice" in forced.stderr  # the warning line
        assert f"owed again as payment {pid + 1}" in forced.stdout
        ledger = Ledger(tmp_path / "l.db", readonly=True)
        try:
            report = ledger.report()
        finally:
            ledger.close()
        first, again = report["payments"]
        assert first["status"] == "failed" and first["last_error"].startswith("abandoned:")
        assert (again["status"], again["value_iota"]) == ("queued", OWED)
        assert [e["kind"] for e in report["wallet_events"]] == ["abandon"]

        ran = p2p_energy_cli("run", "-c", str(cfg), until=lambda: confirmed(tmp_path / "l.db"))
        assert ran.returncode == 0, ran.stderr
        paid = confirmed(tmp_path / "l.db")
        assert paid and paid[0]["value_iota"] >= OWED
        assert node.paid_to(RECEIVER) == {p["digest"]: p["value_iota"] * 1000 for p in paid}


def test_abandon_asks_the_network_that_signed_it(tmp_path, capsys) -> None:
    with funded_iota_node() as node:
        cfg = iota_config(tmp_path, node)
        wallet = iota_wallet(node)
        pid = owing_in_flight(tmp_path / "l.db", wallet)
        # Still able to run: refused, it is followed by the daemon.
        assert main(["wallet", "abandon", str(pid), "-c", str(cfg)]) == 1
        assert "may still confirm" in capsys.readouterr().err
        [coin] = node.coins_of(PAYER_KEY.address)
        node.spend_elsewhere(coin.object_id)  # now it can never run
        assert main(["wallet", "abandon", str(pid), "-c", str(cfg)]) == 0
        assert "its network says dead" in capsys.readouterr().out
        ledger = Ledger(tmp_path / "l.db", readonly=True)
        try:
            [event] = ledger.wallet_events()
            report = ledger.report()
        finally:
            ledger.close()
        assert event["kind"] == "abandon" and event["note"].startswith(f"payment {pid}: its")
        assert [(p["status"], p["value_iota"]) for p in report["payments"]] == [
            ("failed", OWED), ("queued", OWED)]
        assert main(["wallet", "abandon", str(pid), "-c", str(cfg)]) == 1
        assert f"payment {pid} is not in flight" in capsys.readouterr().err


@pytest.mark.parametrize("forgotten", [False, True])
def test_abandon_refuses_a_payment_that_ran(tmp_path, capsys, forgotten) -> None:
    with funded_iota_node() as node:
        cfg = iota_config(tmp_path, node)
        wallet = iota_wallet(node)
        pid = owing_in_flight(tmp_path / "l.db", wallet)
        ledger = Ledger(tmp_path / "l.db")
        try:
            signed = ledger.payment(pid).signed
        finally:
            ledger.close()
        wallet.send(wallet.attach(signed))  # it ran; the ledger was not told
        if forgotten:
            node.forget(signed.reference)  # and the node no longer serves it
        assert main(["wallet", "abandon", str(pid), "-c", str(cfg)]) == 1
        assert "was paid" in capsys.readouterr().err


def test_abandon_refuses_a_payment_that_does_not_exist(tmp_path, capsys) -> None:
    with funded_iota_node() as node:
        cfg = iota_config(tmp_path, node)
        owing_in_flight(tmp_path / "l.db", iota_wallet(node))
        assert main(["wallet", "abandon", "7", "--force", "-c", str(cfg)]) == 1
        [line] = capsys.readouterr().err.strip().splitlines()
        assert "payment 7 is not in flight (payment 1 is)" in line
