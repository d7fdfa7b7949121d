"""``verify --producer``: the consumer's rounds against the producer's own signed log.

Both logs are real: ledgers written through ``store.ledger.Ledger`` with a
``LogWriter`` (the producer's by ``record_production``, the consumer's by
``record_waiting_round``, the producer's entries accepted through
``core.link.Follower`` and ``accept_producer_entries``, and priced by
``runtime.producer_link.Pricer``), exported by ``p2p-energy log export`` or
published by a real ``serve``, and verified by the real CLI. A dishonest
consumer is one that prices a round through ``Ledger.price_waiting`` with a
link or a figure of its own making: the log it signs is well formed, and only
the producer's log shows what is wrong.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import sqlite3
from pathlib import Path

import pytest

from p2p_energy import config
from p2p_energy.core import note
from p2p_energy.core.entries import DISPUTE_OWN, DISPUTE_PRODUCER, FROM_PRODUCER
from p2p_energy.core.link import Follower
from p2p_energy.core.metering import RoundTotals
from p2p_energy.core.pricing import quote_figures
from p2p_energy.core.tlog import leaf_hash
from p2p_energy.runtime.producer_link import Pricer
from p2p_energy.store.ledger import Ledger
from p2p_energy.store.signed_log import LogView, LogWriter, RoundLink

from support.cli_process import p2p_energy_cli
from support.log_daemon import serve_url, start

T0 = 1_796_515_200.0  # 2026-12-05 00:00 UTC: a slot boundary
SLOT_S = 60
PRODUCER = note.signer_from_seed("anna.lan/p2p-energy/0001", bytes(range(32)))
KEY = PRODUCER.verifier.key()  # the producer's verifier key, as [producer] names it
CONSUMER = note.signer_from_seed("ben.lan/p2p-energy/0001", bytes(range(1, 33)))
FORGER = note.signer_from_seed("anna.lan/p2p-energy/0001", bytes(range(2, 34)))  # same name
ORIGIN = PRODUCER.name
PANEL_MW = 400.0


def closed(i: int, *, consumer_mw: float = 60.0, producer_mw: float = PANEL_MW) -> RoundTotals:
    """Round i: slot i after T0, 60 s, the panel metered for 59.5 s of it."""
    start_s = T0 + SLOT_S * i
    return RoundTotals(started_at=start_s, duration_s=SLOT_S, metered_s=SLOT_S,
                       consumer_mws=consumer_mw * SLOT_S, producer_mws=producer_mw * 59.5,
                       samples=60, expected_samples=60, ended_at=start_s + SLOT_S,
                       consumer_metered_s=SLOT_S, producer_metered_s=59.5)


def producer_ledger(path: Path, slots: range, signer: note.Signer = PRODUCER) -> Path:
    led = Ledger(path, log=LogWriter(signer))
    for i in slots:
        led.record_production(closed(i, consumer_mw=0.0, producer_mw=PANEL_MW + i), SLOT_S,
                              "synchronized")
    led.close()
    return path


def producer_log(path: Path) -> tuple[bytes, list[bytes]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        view = LogView(db)
        return view.checkpoint() or b"", list(view.iter_entries(view.size()))
    finally:
        db.close()


def consumer_config(**producer: object) -> config.Config:
    return config.build({
        "round": {"length_s": SLOT_S},
        "wallet": {"backend": "dry-run", "receiver": "A" * 81},
        "producer": {"verifier_key": PRODUCER.verifier.key(), "topic": "p2p-energy/anna/log",
                     "wait_s": 0, "after_wait": "own_channel", **producer},
    })


def named(priced_from: str, origin: str, index: int, leaf: bytes, own_uws: int,
          own_us: int) -> RoundLink:
    """A round's link naming producer entry ``index`` by ``leaf`` (its figures filled in by
    ``Consumer.by_hand`` when the round is priced from them), with the default band."""
    return RoundLink(priced_from, origin, index, leaf, own_uws, own_us, 0, 0, 10_000, 10_000)


class Consumer:
    """A consumer's ledger, following the producer's log as ``runtime.producer_link`` does."""

    def __init__(self, path: Path, **producer: object) -> None:
        self.ledger = Ledger(path, clock=lambda: T0 - 3600, log=LogWriter(CONSUMER))
        self.cfg = consumer_config(**producer)
        self.pricer = Pricer(self.cfg, KEY, lambda *_: None, wall=lambda: T0 + 10**6)
        state = self.ledger.follow_producer(PRODUCER.verifier.key())
        self.follower = Follower(PRODUCER.verifier, state.frontier, state.checkpoint)
        self.since_ms = state.since_ms

    def accept(self, producer_db: Path) -> None:
        """Every entry of the producer's log, as its messages would bring them."""
        checkpoint, entries = producer_log(producer_db)
        accepted = []
        for index, data in enumerate(entries):
            accepted += self.follower.offer_entry(index, data).accepted
        accepted += self.follower.offer_checkpoint(checkpoint).accepted
        assert accepted, "the producer's log was not accepted"
        self.ledger.accept_producer_entries(KEY, accepted, self.follower.frontier,
                                            self.follower.checkpoint, self.since_ms)

    def rounds(self, slots: range, **kw: float) -> None:
        """Close rounds in ``slots`` and price what can be, as the link's thread does."""
        for i in slots:
            self.ledger.record_waiting_round(closed(i, **kw))
        self.pricer.price_ready(self.ledger)

    def by_hand(self, slot: int, link: RoundLink, energy_uws: int, metered_us: int) -> int:
        """Close round ``slot`` and price it with ``link`` and these figures: what a
        consumer that does not keep the rules could sign. Returns its round id."""
        r = closed(slot)
        if link.priced_from in (FROM_PRODUCER, DISPUTE_PRODUCER) and not link.named_metered_us:
            # it names the entry with the figures it priced from, as the rule wants
            link = dataclasses.replace(link, named_energy_uws=energy_uws,
                                       named_metered_us=metered_us)
        round_id = self.ledger.record_waiting_round(r).round_id
        q = quote_figures(round(r.consumer_mws * 1000), energy_uws, metered_us,
                          self.cfg.price.rule)
        self.ledger.price_waiting(round_id, r, q, link)
        return round_id

    def close(self) -> None:
        self.ledger.close()


def production(producer_db: Path, index: int) -> tuple[bytes, dict]:
    """The producer's entry ``index``: its leaf hash and fields."""
    data = producer_log(producer_db)[1][index]
    return leaf_hash(data), json.loads(data)


def write_cfg(tmp: Path, name: str, ledger: Path, role: str = "consumer") -> Path:
    """A config for ``log export`` and ``serve`` of ``ledger`` (no meter runs)."""
    trace = tmp / "trace.csv"
    trace.write_text("t_s,consumer_mw,producer_mw\n0,60,400\n")
    cfg = tmp / f"{name}.toml"
    wallet = ("" if role == "producer" else
              f'[wallet]\nbackend = "dry-run"\nreceiver = "{"A" * 81}"\n')
    cfg.write_text(f"""role = "{role}"
[meter]
sensor = "replay"
replay_file = "{trace}"
[ledger]
path = "{ledger}"
[serve]
enabled = true
listen = "127.0.0.1:0"
{wallet}""")
    cfg.chmod(0o600)
    return cfg


def export(tmp: Path, ledger: Path, name: str, role: str = "consumer") -> Path:
    out = tmp / f"{name}.log.txt"
    done = p2p_energy_cli("log", "export", "-c", str(write_cfg(tmp, name, ledger, role)),
                          "-o", str(out))
    assert done.returncode == 0, done.stderr
    return out


def verify(tmp: Path, consumer: Path | str, producer: Path | str,
           producer_key: str = PRODUCER.verifier.key()) -> tuple[int, str]:
    done = p2p_energy_cli("verify", str(consumer), "--key", CONSUMER.verifier.key(),
                          "--state", str(tmp / "state"), "--producer", str(producer),
                          "--producer-key", producer_key,
                          "--producer-state", str(tmp / "producer-state"),
                          env=dict(os.environ, XDG_STATE_HOME=str(tmp / "xdg")))
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout + done.stderr


def problem_lines(output: str) -> list[str]:
    return [line for line in output.splitlines()
            if line.startswith(("entry ", "producer's log: ", "cross-references:"))
            and "problem(s), below" not in line]


@pytest.fixture
def logs(tmp_path: Path) -> tuple[Path, Consumer]:
    """The producer's log of slots 0-7; a consumer following it."""
    producer_db = producer_ledger(tmp_path / "producer.db", range(8))
    consumer = Consumer(tmp_path / "consumer.db")
    consumer.accept(producer_db)
    yield producer_db, consumer
    consumer.close()


def test_an_honest_pair_verifies_and_the_rounds_are_counted_by_whose_figure_priced_them(
        tmp_path, logs):
    producer_db, consumer = logs
    consumer.rounds(range(0, 3))  # within the band: the producer's figure
    consumer.rounds(range(3, 4), producer_mw=200.0)  # this meter says half: disputed
    consumer.rounds(range(4, 6))
    consumer.ledger.record_waiting_round(closed(9))  # the producer never logged slot 9
    consumer.pricer.price_ready(consumer.ledger)
    consumer.close()
    code, out = verify(tmp_path, export(tmp_path, tmp_path / "consumer.db", "consumer"),
                       export(tmp_path, producer_db, "producer", "producer"))
    assert code == 0, out
    assert ("priced by the producer's meter: 5 rounds from its signed figures; 1 disputed"
            " (the two meters disagreed beyond the band: 1 priced from the producer's"
            " figure, 0 from the consumer's own channel); 1 from the consumer's own channel"
            " after waiting for the producer's figure") in out
    assert f"producer's log {ORIGIN}: 9 entries in its signed checkpoint" in out
    assert "cross-references hold: the 6 rounds of this run naming a producer entry" in out
    assert problem_lines(out) == []
    assert "note:" not in out  # slot 9's round waited for a minute the producer never logged
    # the next run has nothing new, from a state saved for each log
    code, again = verify(tmp_path, tmp_path / "consumer.log.txt", tmp_path / "producer.log.txt")
    assert code == 0 and "nothing new since the last run" in again, again
    assert (tmp_path / "producer-state" / "state.json").exists()


def test_a_round_naming_an_entry_the_producers_log_does_not_hold(tmp_path, logs):
    producer_db, consumer = logs
    consumer.rounds(range(0, 2))
    leaf, fields = production(producer_db, 3)  # slot 2's entry, at an index beyond the log
    round_id = consumer.by_hand(2, named(FROM_PRODUCER, ORIGIN, 40, leaf, 0, 0),
                                fields["producer_energy_uws"], fields["producer_metered_us"])
    consumer.close()
    code, out = verify(tmp_path, export(tmp_path, tmp_path / "consumer.db", "consumer"),
                       export(tmp_path, producer_db, "producer", "producer"))
    assert code == 1, out
    assert problem_lines(out) == [f"entry {round_id}: round {round_id}: names producer entry"
                                  " 40; the producer's log holds 9 (its signed checkpoint)"]
    assert "NOT VERIFIED: 1 problem(s)" in out


def test_a_round_naming_another_leaf_hash(tmp_path, logs):
    producer_db, consumer = logs
    consumer.rounds(range(0, 2))
    leaf, fields = production(producer_db, 3)
    other = hashlib.sha256(b"\x00another entry").digest()
    round_id = consumer.by_hand(2, named(FROM_PRODUCER, ORIGIN, 3, other, 0, 0),
                                fields["producer_energy_uws"], fields["producer_metered_us"])
    consumer.close()
    code, out = verify(tmp_path, export(tmp_path, tmp_path / "consumer.db", "consumer"),
                       export(tmp_path, producer_db, "producer", "producer"))
    assert code == 1, out
    assert problem_lines(out) == [f"entry {round_id}: round {round_id}: producer entry 3 has"
                                  f" leaf hash {leaf.hex()} in the producer's log, not"
                                  f" {other.hex()} as the round says"]


def test_a_round_priced_from_another_figure_than_the_entry_it_names(tmp_path, logs):
    producer_db, consumer = logs
    consumer.rounds(range(0, 2))
    leaf, fields = production(producer_db, 3)
    energy = fields["producer_energy_uws"] * 2  # a brighter sun makes a cheaper round
    round_id = consumer.by_hand(2, named(FROM_PRODUCER, ORIGIN, 3, leaf, 0, 0),
                                energy, fields["producer_metered_us"])
    consumer.close()
    code, out = verify(tmp_path, export(tmp_path, tmp_path / "consumer.db", "consumer"),
                       export(tmp_path, producer_db, "producer", "producer"))
    assert code == 1, out
    assert problem_lines(out) == [
        f"entry {round_id}: round {round_id}: producer entry 3 says"
        f" {fields['producer_energy_uws']} µW·s over {fields['producer_metered_us']} µs;"
        f" the round names it with {energy} µW·s over {fields['producer_metered_us']} µs"]


def test_a_round_naming_the_entry_of_another_slot(tmp_path, logs):
    producer_db, consumer = logs
    consumer.rounds(range(0, 2))
    leaf, fields = production(producer_db, 6)  # slot 5's entry, the sunniest, for slot 2
    round_id = consumer.by_hand(2, named(FROM_PRODUCER, ORIGIN, 6, leaf, 0, 0),
                                fields["producer_energy_uws"], fields["producer_metered_us"])
    consumer.close()
    code, out = verify(tmp_path, export(tmp_path, tmp_path / "consumer.db", "consumer"),
                       export(tmp_path, producer_db, "producer", "producer"))
    assert code == 1, out
    slot_ms, start_ms = SLOT_S * 1000, round(T0 * 1000) + 2 * SLOT_S * 1000
    assert problem_lines(out) == [
        f"entry {round_id}: round {round_id}: producer entry 6 is of slot"
        f" [{start_ms + 3 * slot_ms}, {start_ms + 4 * slot_ms}) ms, which does not hold the"
        f" round's start ({start_ms} ms)"]


def test_a_round_naming_another_producers_log(tmp_path, logs):
    producer_db, consumer = logs
    leaf, fields = production(producer_db, 1)
    round_id = consumer.by_hand(
        0, named(FROM_PRODUCER, "eve.lan/p2p-energy/0001", 1, leaf, 0, 0),
        fields["producer_energy_uws"], fields["producer_metered_us"])
    consumer.close()
    code, out = verify(tmp_path, export(tmp_path, tmp_path / "consumer.db", "consumer"),
                       export(tmp_path, producer_db, "producer", "producer"))
    assert code == 1, out
    assert problem_lines(out) == [f"entry {round_id}: round {round_id}: names an entry of log"
                                  f" 'eve.lan/p2p-energy/0001', not of the producer's log"
                                  f" {ORIGIN!r}"]


def test_a_round_whose_link_fields_break_their_own_rules_is_named_without_the_producers_log(
        tmp_path, logs):
    """Disputed and priced from its own channel, with other figures than its own: wrong
    whatever the producer's log holds (``LinkedRoundEntry.link_problems``)."""
    producer_db, consumer = logs
    leaf, fields = production(producer_db, 1)
    round_id = consumer.by_hand(0, named(DISPUTE_OWN, ORIGIN, 1, leaf, 5_000_000, 59_500_000),
                                fields["producer_energy_uws"], fields["producer_metered_us"])
    consumer.close()
    done = p2p_energy_cli("verify", str(export(tmp_path, tmp_path / "consumer.db", "consumer")),
                          "--key", CONSUMER.verifier.key(), "--state", str(tmp_path / "s"))
    assert done.returncode == 1, done.stdout
    assert problem_lines(done.stdout) == [
        f"entry {round_id}: round {round_id}: priced from its own channel (dispute_own_channel)"
        " with other figures than its own"]
    assert "1 round naming a producer entry: not checked in the producer's log" in done.stdout


def test_a_producers_log_signed_by_another_key_is_refused(tmp_path, logs):
    producer_db, consumer = logs
    consumer.rounds(range(0, 4))
    consumer.close()
    forged = producer_ledger(tmp_path / "forged.db", range(8), FORGER)  # the same figures
    assert producer_log(forged)[1] == producer_log(producer_db)[1]
    consumer_log = export(tmp_path, tmp_path / "consumer.db", "consumer")
    code, out = verify(tmp_path, consumer_log, export(tmp_path, forged, "forged", "producer"))
    assert code == 1, out
    lines = problem_lines(out)
    assert lines[0] == ("cross-references: 4 rounds name producer entries; none was checked:"
                        " the producer's checkpoint does not check")
    assert lines[1].startswith("producer's log: checkpoint: ") and len(lines) == 2
    assert "the producer's log does not check: its checkpoint is not signed by" in out
    assert not (tmp_path / "state").exists() and not (tmp_path / "producer-state").exists()
    # the key it is signed with is named as the producer's: that log checks
    code, out = verify(tmp_path, consumer_log, tmp_path / "forged.log.txt",
                       FORGER.verifier.key())
    assert code == 0, out


def test_a_dispute_priced_from_the_own_channel_is_counted_and_not_held_to_the_producers_figure(
        tmp_path):
    producer_db = producer_ledger(tmp_path / "producer.db", range(4))
    consumer = Consumer(tmp_path / "consumer.db", on_dispute="own_channel")
    consumer.accept(producer_db)
    consumer.rounds(range(0, 2))
    consumer.rounds(range(2, 4), producer_mw=100.0)
    consumer.close()
    code, out = verify(tmp_path, export(tmp_path, tmp_path / "consumer.db", "consumer"),
                       export(tmp_path, producer_db, "producer", "producer"))
    assert code == 0, out
    assert ("2 rounds from its signed figures; 2 disputed (the two meters disagreed beyond"
            " the band: 0 priced from the producer's figure, 2 from the consumer's own"
            " channel); 0 from the consumer's own channel after waiting") in out
    assert "cross-references hold: the 4 rounds of this run" in out


def test_over_http_the_next_run_checks_earlier_producer_entries_by_inclusion_proof(
        tmp_path):
    """The producer's log from its real ``serve``, verified in two runs: the second
    consumer run names entries the first producer run verified already."""
    producer_db = producer_ledger(tmp_path / "producer.db", range(4))
    consumer = Consumer(tmp_path / "consumer.db")
    consumer.accept(producer_db)
    consumer.rounds(range(0, 2))
    serve_log = tmp_path / "serve.log"
    serve = start("serve", write_cfg(tmp_path, "producer", producer_db, "producer"), serve_log)
    try:
        url = serve_url(serve_log)
        consumer_log = export(tmp_path, tmp_path / "consumer.db", "consumer")
        code, out = verify(tmp_path, consumer_log, url)
        assert code == 0 and "cross-references hold: the 2 rounds" in out, out
        # slots 2 and 3 were in the producer's log then; the consumer prices them now,
        # one of them dishonestly
        leaf, fields = production(producer_db, 4)
        consumer.rounds(range(2, 3))
        round_id = consumer.by_hand(3, named(FROM_PRODUCER, ORIGIN, 4, leaf, 0, 0),
                                    fields["producer_energy_uws"] + 1,
                                    fields["producer_metered_us"])
        consumer.close()
        consumer_log = export(tmp_path, tmp_path / "consumer.db", "consumer")
        code, out = verify(tmp_path, consumer_log, url)
        assert code == 1, out
        assert [line.split(":")[:2] for line in problem_lines(out)] == [
            [f"entry {round_id}", f" round {round_id}"]]
        assert "the round names it with" in out
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(30)


def test_a_state_saved_before_the_link_counts_existed_still_loads(tmp_path, logs):
    producer_db, consumer = logs
    consumer.rounds(range(0, 2))
    consumer.close()
    consumer_log = export(tmp_path, tmp_path / "consumer.db", "consumer")
    producer_export = export(tmp_path, producer_db, "producer", "producer")
    assert verify(tmp_path, consumer_log, producer_export)[0] == 0
    path = tmp_path / "state" / "state.json"
    saved = json.loads(path.read_text())
    for name in [n for n in saved["totals"] if n.startswith("link")]:
        del saved["totals"][name]  # as a verifier before issue 17 wrote it
    path.write_text(json.dumps(saved))
    code, out = verify(tmp_path, consumer_log, producer_export)
    assert code == 0 and "nothing new since the last run" in out, out


def test_rounds_that_waited_in_vain_for_a_minute_the_producers_log_holds_are_noted(tmp_path):
    """The consumer gave up waiting (after_wait = "own_channel") for slots 2 and 3, whose
    figures the producer's log holds (they came late, or never reached it): not a
    problem, but the producer reading the statement is told which rounds."""
    producer_db = producer_ledger(tmp_path / "producer.db", range(6))
    consumer = Consumer(tmp_path / "consumer.db")
    early = producer_ledger(tmp_path / "early.db", range(2))  # what reached the consumer
    consumer.accept(early)
    consumer.rounds(range(0, 4))  # slots 2 and 3: no figure yet, priced from its own
    consumer.close()
    code, out = verify(tmp_path, export(tmp_path, tmp_path / "consumer.db", "consumer"),
                       export(tmp_path, producer_db, "producer", "producer"))
    assert code == 0, out
    assert problem_lines(out) == []
    assert ("note: 2 rounds priced from the consumer's own channel after waiting are of"
            " minutes the producer's log holds a figure for (it came after their wait, or"
            " never reached the consumer): round 3, 4") in out
