"""``p2p-energy verify`` end to end: a real process, real HTTP from a log server of the
core's making, real export files; tampering caught at its entry, bad input refused."""

from __future__ import annotations

import base64
import io
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest

from p2p_energy.core import entries
from p2p_energy.core.export import write_export
from p2p_energy.verify.sources import HttpSource

from support.cli_process import p2p_energy_cli
from support.log_server import LogServer, SignedLog

RECEIVER = "0x" + "e1" * 32
DIGEST = "4vJ9JU1bJJE96FWSJKvHsmmFADCg4gpZQff4P3bkLKi"  # any 32 bytes in base58


def verify(*args: str, home: Path | None = None) -> tuple[int, list[str], str]:
    """(exit code, stdout lines, stderr) of ``p2p-energy verify ARGS``."""
    env = dict(os.environ, XDG_STATE_HOME=str(home)) if home else None
    out = p2p_energy_cli("verify", *args, env=env)
    assert "Traceback" not in out.stderr
    return out.returncode, out.stdout.splitlines(), out.stderr


def problems(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith(("entry ", "entries ", "checkpoint:"))]


def grown_log(rounds: int = 40) -> SignedLog:
    """Rounds, with a payment every ten of them."""
    log = SignedLog()
    for i in range(rounds):
        log.add_round()
        if i % 10 == 9:
            log.add_payment(DIGEST[:-2] + f"{i:02d}", RECEIVER)
    return log


def export(log: SignedLog, path: Path) -> Path:
    buf = io.BytesIO()
    write_export(buf, log.checkpoint(), log.entries)
    path.write_bytes(buf.getvalue())
    return path


def snapshot(folder: Path) -> bytes | None:
    path = folder / "state.json"
    return path.read_bytes() if path.exists() else None


# -- the happy path, twice ------------------------------------------------------------------

def test_over_http_twice_the_second_run_reads_only_the_new_entries(tmp_path: Path) -> None:
    log = grown_log(40)  # 44 entries
    state = tmp_path / "state"
    with LogServer(log, page=16) as server:
        code, lines, err = verify(server.url, "--key", log.verifier_key, "--state", str(state))
        assert (code, err) == (0, "")
        assert lines[0] == "log consumer.example/p2p-energy: 44 entries in its signed checkpoint"
        assert lines[1] == ("verified: 44 entries (40 rounds, 4 payments) this run (from entry"
                            " 0); 44 entries (40 rounds, 4 payments) in all")
        owed = sum(entries.parse_entry(e).owed_nano_units for e in log.entries
                   if b'"kind":"round"' in e)
        assert f"owed: {owed // 10**9}.{owed % 10**9:09d}".rstrip("0") + " µIOTA" in lines
        assert lines[-1] == f"verified; state saved in {state}"
        assert json.loads((state / "state.json").read_text())["size"] == 44

        log.add_rounds(25)
        log.add_payment(DIGEST, RECEIVER)
        server.publish(log)
        server.requests.clear()
        code, lines, err = verify(server.url, "--key", log.verifier_key, "--state", str(state))
        assert (code, err) == (0, "")
        assert lines[1] == ("verified: 26 entries (25 rounds, 1 payment) this run (from entry"
                            " 44); 70 entries (65 rounds, 5 payments) in all")
    assert server.requests == ["/log/checkpoint", "/log/proof/consistency?from=44&to=70",
                               "/log/entries?start=44&end=70", "/log/entries?start=60&end=70"]
    assert json.loads((state / "state.json").read_text())["size"] == 70
    assert oct((state / "state.json").stat().st_mode & 0o777) == "0o600"


def test_an_export_twice_in_the_default_state_folder(tmp_path: Path) -> None:
    log = grown_log(30)
    code, lines, _ = verify(str(export(log, tmp_path / "a.export")), "--key", log.verifier_key,
                            home=tmp_path)
    folder = tmp_path / "p2p-energy" / "verify" / "consumer.example%2Fp2p-energy"
    assert code == 0 and lines[-1] == f"verified; state saved in {folder}"
    log.add_rounds(7)
    code, lines, _ = verify(str(export(log, tmp_path / "b.export")), "--key", log.verifier_key,
                            home=tmp_path)
    assert code == 0
    assert lines[1].startswith("verified: 7 entries (7 rounds, 0 payments) this run (from entry"
                               " 33); 40 entries (37 rounds, 3 payments) in all")
    code, lines, _ = verify(str(tmp_path / "b.export"), "--key", log.verifier_key, home=tmp_path)
    assert code == 0 and lines[-1].startswith("verified: nothing new since the last run")


def test_without_a_node_the_statement_says_payments_were_not_checked(tmp_path: Path) -> None:
    log = grown_log(20)
    code, lines, _ = verify(str(export(log, tmp_path / "e")), "--key", log.verifier_key,
                            "--state", str(tmp_path / "s"))
    paid = sum(entries.parse_entry(e).amount_units for e in log.entries
               if b'"kind":"payment"' in e)
    assert code == 0
    assert f"paid as the log says: {paid} µIOTA (2 executed payments)" in lines
    assert ("payments were not checked on the network (give --node URL and --address ADDRESS)"
            in lines)


def test_an_address_without_a_node_checks_each_recipient(tmp_path: Path) -> None:
    log = SignedLog()
    log.add_rounds(3)
    log.add_payment(DIGEST, RECEIVER)
    log.add_payment(DIGEST[:-1] + "B", "0x" + "ab" * 32, 5)
    code, lines, _ = verify(str(export(log, tmp_path / "e")), "--key", log.verifier_key,
                            "--state", str(tmp_path / "s"), "--address", RECEIVER.upper()[2:]
                            .join(["0x", ""]))
    assert code == 1
    assert problems(lines) == [f"entry 4: payment 2 was paid to 0x{'ab' * 32}, not to {RECEIVER}"]
    assert ("payments were not checked on the network (give --node URL and --address ADDRESS)"
            in lines)


def test_a_kept_alive_connection_the_server_closed_is_opened_again() -> None:
    """serve closes a connection idle for its timeout_s: a verifier that spent that long
    asking a node goes on with a new one."""
    log = grown_log(30)
    with LogServer(log, keep_alive_s=0.2) as server:
        source = HttpSource(server.url)
        try:
            assert source.checkpoint() == log.checkpoint()
            assert list(source.entries(0, 3)) == log.entries[:3]
            assert server.connections == 1  # kept alive
            time.sleep(0.6)  # the server has closed it meanwhile
            assert list(source.entries(3, 33)) == log.entries[3:]
        finally:
            source.close()
    assert server.connections == 2


# -- tampering: each caught at its entry, exit 1, the state untouched ----------------------

def _verified_once(log: SignedLog, server: LogServer, state: Path) -> bytes:
    assert verify(server.url, "--key", log.verifier_key, "--state", str(state))[0] == 0
    before = snapshot(state)
    assert before is not None
    return before


@pytest.mark.parametrize("k", [22, 3210, 4095, 4096, 5021])
def test_one_byte_changed_in_a_served_entry_is_named(tmp_path: Path, k: int) -> None:
    """A byte that still parses and bills alike (an end time): only the root tells, and
    the consistency proofs find which entry it is: the first of this run, within a block
    and at either side of a snapshot (every 4096 leaves), the last."""
    log = grown_log(20)  # 22 entries
    state = tmp_path / "state"
    with LogServer(log) as server:
        before = _verified_once(log, server, state)
        log.add_rounds(5000)
        server.publish(log)
        assert b'"kind":"round"' in server.served[k]
        server.served[k] = server.served[k].replace(b'"end_utc_ms":1', b'"end_utc_ms":2')
        code, lines, _ = verify(server.url, "--key", log.verifier_key, "--state", str(state))
    assert code == 1
    assert problems(lines) == [f"entry {k}: not the entry the checkpoint signed: the entries"
                               " up to it lead to the signed root, with it they do not"]
    assert lines[-1] == "NOT VERIFIED: 1 problem(s); the state is unchanged"
    assert snapshot(state) == before


def test_one_byte_changed_in_an_export_is_named(tmp_path: Path) -> None:
    log = grown_log(20)
    path = export(log, tmp_path / "log.export")
    line = base64.b64encode(log.entries[7])
    owed = b'"owed_nano_units":"'
    changed = base64.b64encode(log.entries[7].replace(owed, owed + b"1"))
    path.write_bytes(path.read_bytes().replace(line, changed))
    code, lines, _ = verify(str(path), "--key", log.verifier_key, "--state", str(tmp_path / "s"))
    assert code == 1
    found = problems(lines)
    assert found[0].startswith("entry 7: round 8: owed_nano_units is 1")  # after a payment
    assert found[-1] == ("entries 0-21: they do not lead to the checkpoint's root; an export"
                         " holds no proofs to tell which one differs")
    assert snapshot(tmp_path / "s") is None


def test_an_entry_left_out_breaks_the_carry_chain_at_its_place(tmp_path: Path) -> None:
    log = grown_log(30)
    state = tmp_path / "state"
    with LogServer(log) as server:
        before = _verified_once(log, server, state)
        log.add_rounds(20)
        server.publish(log)
        assert entries.parse_entry(server.served[40]).round_id == 38
        del server.served[40]  # served no more: round 39 moves up to its place
        code, lines, _ = verify(server.url, "--key", log.verifier_key, "--state", str(state))
    assert code == 1
    found = problems(lines)
    assert found[0].startswith("entry 40: round 39: carry_in_nano_units is ")
    assert found[0].endswith(", the round before it ended with carry_out_nano_units"
                             f" {entries.parse_entry(log.entries[39]).carry_out_nano_units}")
    assert found[-1] == ("entry 52: missing: " + server.url + " gives no entry 52 (nor any"
                         " after it); its checkpoint holds 53")
    assert snapshot(state) == before


def test_an_export_with_an_entry_left_out(tmp_path: Path) -> None:
    """Its count line mended to match: the signed checkpoint still says how many."""
    log = grown_log(10)
    data = export(log, tmp_path / "e").read_bytes()
    line = base64.b64encode(log.entries[4]) + b"\n"
    (tmp_path / "e").write_bytes(data.replace(b"entries 11\n", b"entries 10\n")
                                 .replace(line, b""))
    code, lines, _ = verify(str(tmp_path / "e"), "--key", log.verifier_key, "--state",
                            str(tmp_path / "s"))
    assert code == 1
    assert problems(lines) == ["checkpoint: the export holds 10 entries, its signed checkpoint"
                               " 11"]
    # Not mended, the file is no log export at all.
    (tmp_path / "e").write_bytes(data.replace(line, b""))
    code, lines, err = verify(str(tmp_path / "e"), "--key", log.verifier_key, "--state",
                              str(tmp_path / "s"))
    assert code == 2 and lines == []
    assert err == (f"p2p-energy: verify: {tmp_path / 'e'}: not a log: entry 10: the file ends"
                   " (the export says 11 entries)\n")


def test_an_owed_amount_changed_and_signed_again_with_the_stolen_key(tmp_path: Path) -> None:
    honest = grown_log(12)
    forged = SignedLog()  # the same key
    for data in honest.entries:
        entry = entries.parse_entry(data)
        if isinstance(entry, entries.RoundEntry) and entry.round_id == 6:
            data = entries.encode_round(replace(entry, owed_nano_units=entry.owed_nano_units
                                                - 5 * 10**9))
        forged.append(data)
    assert forged.verifier_key == honest.verifier_key
    with LogServer(forged) as server:
        code, lines, _ = verify(server.url, "--key", forged.verifier_key, "--state",
                                str(tmp_path / "s"))
    assert code == 1
    [problem] = problems(lines)
    owed = entries.parse_entry(honest.entries[5]).owed_nano_units
    assert problem == (f"entry 5: round 6: owed_nano_units is {owed - 5 * 10**9}, the rule"
                       f" gives {owed}")
    assert snapshot(tmp_path / "s") is None


def _rebuilt(rounds: int) -> SignedLog:
    """A whole history made up afresh and signed with the same key: every round billed by
    the rule, the carry chained, each consumer's energy 10 % higher."""
    log = SignedLog()
    for _ in range(rounds):
        log.add_round(consumer_uws=4_000_000)
    return log


def test_a_history_rebuilt_with_the_same_key_is_caught_by_consistency(tmp_path: Path) -> None:
    log = grown_log(30)
    state = tmp_path / "state"
    with LogServer(log) as server:
        before = _verified_once(log, server, state)
        forged = _rebuilt(60)
        server.publish(forged)
        code, lines, _ = verify(server.url, "--key", forged.verifier_key, "--state", str(state))
        assert code == 1
        assert problems(lines) == [
            "checkpoint: history rewritten: its 60 entries do not extend the 33 verified"
            " before (consistency proof does not lead to the root of size 33)"]
        assert not any(r.startswith("/log/entries") for r in server.requests[-2:])
        assert snapshot(state) == before
        for shorter in (_rebuilt(20), _rebuilt(33)):
            server.publish(shorter)
            code, lines, _ = verify(server.url, "--key", log.verifier_key, "--state", str(state))
            assert code == 1 and problems(lines)[0].startswith("checkpoint: history rewritten")
    # The same from an export: its first 33 entries are rebuilt and compared.
    path = export(_rebuilt(60), tmp_path / "forged.export")
    code, lines, _ = verify(str(path), "--key", log.verifier_key, "--state", str(state))
    assert code == 1
    assert problems(lines) == ["checkpoint: history rewritten: its first 33 entries are not those"
                               " verified before"]
    assert snapshot(state) == before


def test_a_bad_carry_chain_is_named_at_its_round(tmp_path: Path) -> None:
    log = SignedLog()
    log.add_rounds(8)
    # Round 9 starts from a carry the round before did not end with; billed from it.
    wrong = log.next_round()
    wrong = replace(wrong, carry_in_nano_units=wrong.carry_in_nano_units + 400_000_000)
    bill = entries.recompute(wrong)
    log.add_round(replace(wrong, queued_units=bill.queued_units,
                          carry_out_nano_units=bill.carry_out_nano_units))
    log.add_rounds(3)
    code, lines, _ = verify(str(export(log, tmp_path / "e")), "--key", log.verifier_key,
                            "--state", str(tmp_path / "s"))
    assert code == 1
    carry = entries.parse_entry(log.entries[7]).carry_out_nano_units
    assert problems(lines) == [f"entry 8: round 9: carry_in_nano_units is {carry + 400_000_000},"
                               f" the round before it ended with carry_out_nano_units {carry}"]


def test_a_payment_for_rounds_not_yet_logged_and_a_reference_paid_twice(tmp_path: Path) -> None:
    log = SignedLog()
    log.add_rounds(5)
    log.add_payment(DIGEST, RECEIVER, 10, settles=((1, 5),))
    log.add_round()
    log.add_payment(DIGEST, RECEIVER, 10, settles=((6, 6),))
    log.add_payment(DIGEST[:-1] + "A", RECEIVER, 10, settles=((7, 9),))
    code, lines, _ = verify(str(export(log, tmp_path / "e")), "--key", log.verifier_key,
                            "--state", str(tmp_path / "s"))
    assert code == 1
    assert problems(lines) == [
        f"entry 7: payment 2: reference {DIGEST} was paid already, in entry 5",
        "entry 8: payment 3 settles round 9, which the log has not recorded before it (last"
        " round 6)"]


def test_a_reference_paid_in_an_earlier_run_is_remembered(tmp_path: Path) -> None:
    log = SignedLog()
    log.add_rounds(3)
    log.add_payment(DIGEST, RECEIVER)
    state = str(tmp_path / "s")
    assert verify(str(export(log, tmp_path / "a")), "--key", log.verifier_key, "--state",
                  state)[0] == 0
    log.add_rounds(2)
    log.add_payment(DIGEST, RECEIVER)
    code, lines, _ = verify(str(export(log, tmp_path / "b")), "--key", log.verifier_key,
                            "--state", state)
    assert code == 1
    assert problems(lines) == [f"entry 6: payment 2: reference {DIGEST} was paid already,"
                               " in entry 3"]


# -- keys and bad input ------------------------------------------------------------------

def test_a_wrong_key_fails_verification(tmp_path: Path) -> None:
    log = grown_log(5)
    other = SignedLog(seed=bytes(32))
    code, lines, err = verify(str(export(log, tmp_path / "e")), "--key", other.verifier_key,
                              "--state", str(tmp_path / "s"))
    assert (code, err) == (1, "")
    key_id = other.verifier_key.split("+")[1]
    assert problems(lines) == [f"checkpoint: note is not signed by"
                               f" consumer.example/p2p-energy+{key_id}"]


@pytest.mark.parametrize("key", ["", "consumer.example+12345678+AAAA",
                                 "nobody+00000000+" + "A" * 44, "a b+12345678+xx"])
def test_a_malformed_key_is_one_line_and_exit_2(tmp_path: Path, key: str) -> None:
    code, lines, err = verify(str(tmp_path), "--key", key)
    assert code == 2 and lines == []
    assert err.startswith("p2p-energy: verify: --key: ") and err.count("\n") == 1


def test_a_source_that_is_not_a_log(tmp_path: Path, iota_node) -> None:
    log = grown_log(3)
    key = log.verifier_key
    text = tmp_path / "notes.txt"
    text.write_text("p2p-energy log export 2\n")
    cases = {
        str(text): f"p2p-energy: verify: {text}: not a log: not a p2p-energy log export",
        str(tmp_path / "missing"): f"p2p-energy: verify: {tmp_path / 'missing'}: cannot be"
                                   " opened: No such file or directory",
        str(tmp_path): f"p2p-energy: verify: {tmp_path}: cannot be",
        # A JSON-RPC node speaks no GET: HTTP 501.
        iota_node.url: f"p2p-energy: verify: {iota_node.url}/log/checkpoint: HTTP 501",
        "http://127.0.0.1:9/": "p2p-energy: verify: http://127.0.0.1:9/log/checkpoint: cannot"
                               " be reached",
        "http://user:s3cret@127.0.0.1:9": "p2p-energy: verify: SOURCE must not hold a user"
                                          " name or password (user:password@)",
        "http://127.0.0.1:9/?token=s3cret": "p2p-energy: verify: SOURCE must not hold a query",
    }
    for source, message in cases.items():
        code, lines, err = verify(source, "--key", key, "--state", str(tmp_path / "s"))
        assert code == 2 and lines == [], source
        assert err.startswith(message) and err.count("\n") == 1, (source, err)
        assert "s3cret" not in err


def test_a_server_whose_checkpoint_is_no_note(tmp_path: Path) -> None:
    log = grown_log(3)
    with LogServer(log) as server:
        server.note = b"<html>It works!</html>\n"
        code, lines, err = verify(server.url, "--key", log.verifier_key, "--state",
                                  str(tmp_path / "s"))
    assert code == 2 and lines == []
    assert err == (f"p2p-energy: verify: {server.url}: not a log: its checkpoint: malformed"
                   " note: no blank line before the signatures\n")


@pytest.mark.parametrize("args, message", [
    (["--node", "http://127.0.0.1:9"], "--node needs --address"),
    (["--address", "0x1234"], "--address '0x1234': must be an IOTA address: 0x followed by 64"),
    (["--address", "HELLO"], "--address 'HELLO': must be an IOTA address: 81 trytes"),
    (["--address", "A" * 81 + "B" * 9], "has a wrong checksum"),
    (["--node", "ftp://x", "--address", RECEIVER], "node URL 'ftp://x' is not an http://"),
    (["--node", "ftp://x", "--address", "A" * 81], "node URL 'ftp://x' is not an http://"),
    (["--node", "http://me:s3cret@node.example", "--address", RECEIVER],
     "--node must not hold a user name or password (user:password@)"),
])
def test_bad_options_are_one_line_and_exit_2(tmp_path: Path, args: list[str],
                                             message: str) -> None:
    log = grown_log(3)
    code, lines, err = verify(str(export(log, tmp_path / "e")), "--key", log.verifier_key,
                              "--state", str(tmp_path / "s"), *args)
    assert code == 2 and lines == [] and err.count("\n") == 1
    assert message in err and "s3cret" not in err


def test_a_state_of_another_log_is_refused(tmp_path: Path) -> None:
    a, b = grown_log(3), SignedLog(origin="other.example/log")
    b.add_rounds(2)
    state = str(tmp_path / "s")
    assert verify(str(export(a, tmp_path / "a")), "--key", a.verifier_key, "--state",
                  state)[0] == 0
    code, _, err = verify(str(export(b, tmp_path / "b")), "--key", b.verifier_key, "--state",
                          state)
    assert code == 2
    assert err == (f"p2p-energy: verify: {state}: the state of log"
                   " 'consumer.example/p2p-energy', not of 'other.example/log': give another"
                   " --state\n")
