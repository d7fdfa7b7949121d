"""anna's producer meter and bob's consumer, as processes on a real Mosquitto with the
README's passwords and ACL: bob's rounds are priced from anna's signed figures.

Each test reads both ledgers read-only: anna's log (what she signed) and bob's rounds
and round entries (what he was billed, and which of anna's entries he named). Rounds
are half a second, so a test of a dozen rounds takes seconds.

Most tests start bob before anna, so that he follows her log from its first entry
over MQTT alone; his rounds of the slots before her first are priced from his own
channel once her log has passed them (``wait_s`` 1 s). One test starts her first and
has him catch up from her ``serve`` (``log_url``).
"""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest

from p2p_energy import config
from p2p_energy.config.log_key import load_log_signer
from p2p_energy.core.entries import (
    DISPUTE_OWN,
    DISPUTE_PRODUCER,
    FROM_PRODUCER,
    OWN_AFTER_WAIT,
    comparable,
)
from p2p_energy.core.link import average_mw
from p2p_energy.core.note import signer_from_seed
from p2p_energy.runtime.build import build_sensor, wallet_opener
from p2p_energy.runtime.daemon import Daemon
from p2p_energy.runtime.payer import Payer, PayerPolicy
from p2p_energy.runtime.producer_link import ProducerLink
from p2p_energy.store.ledger import Ledger
from p2p_energy.store.signed_log import LogWriter

from support import kernel_clock
from support.link_pair import PASSWORDS, Meter, Relay, Street, leaf_hash_hex
from support.log_daemon import cli
from support.mosquitto_broker import MOSQUITTO, Broker, wait_until

pytestmark = [pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed"),
              pytest.mark.xdist_group("producer_mqtt")]
SLOT_MS = 500  # Street's rounds


@pytest.fixture(autouse=True, scope="module")
def synchronised_clock():
    """anna's entries price bob's rounds only if her clock was synchronised when they
    closed: the kernel's state is set as an NTP client sets it (``kernel_clock``)."""
    why = kernel_clock.synchronise()
    if why:
        message = f"a producer's entries price rounds only with its clock synchronised: {why}"
        if os.environ.get("CI"):
            pytest.fail(message)  # in CI these tests must run, not be skipped away
        pytest.skip(message)


@pytest.fixture
def street(tmp_path):
    s = Street(tmp_path)
    yield s
    s.close()


@pytest.fixture
def persistent_street(tmp_path):
    s = Street(tmp_path, persistent=True)
    yield s
    s.close()


def slot_of(entry) -> int:
    return entry.start_utc_ms // SLOT_MS


def check_priced(anna: Meter, bob: Meter, allowed: tuple[str, ...] = (FROM_PRODUCER,)
                 ) -> dict[str, int]:
    """Every priced round of bob's names anna's entry of its own slot (its leaf hash, of
    her bytes) and carries that entry's figures; or, where her log has no entry for its
    slot, was priced from his own channel after the wait. Returns the count per kind."""
    productions = anna.productions()
    slots = {p.slot: i for i, p in productions.items()}
    data = anna.entries()
    entries = bob.round_entries()
    kinds: dict[str, int] = {}
    for round_id, _start, _end, _waiting, priced_from, index, owed in bob.priced():
        entry = entries[round_id]
        kinds[priced_from] = kinds.get(priced_from, 0) + 1
        assert entry.priced_from == priced_from and entry.owed_nano_units == owed
        if priced_from == OWN_AFTER_WAIT:
            assert slot_of(entry) not in slots, (round_id, entry)  # hers exists: not given up
            assert index is None and entry.producer_index == -1
            assert (entry.producer_energy_uws, entry.producer_metered_us) == (
                entry.own_energy_uws, entry.own_metered_us)
            continue
        assert priced_from in allowed, (round_id, entry)
        theirs = productions[index]
        assert entry.producer_index == index == slots[slot_of(entry)], (round_id, entry)
        assert entry.producer_origin == anna.verifier_key.split("+")[0]
        assert entry.producer_leaf_hash == leaf_hash_hex(data[index])
        if priced_from != DISPUTE_OWN:
            assert (entry.producer_energy_uws, entry.producer_metered_us) == (
                theirs.producer_energy_uws, theirs.producer_metered_us)
    return kinds


def check_each_round_once(bob: Meter) -> None:
    """Round ids run without a gap, each priced round has one entry, and the ledger owes
    exactly what its priced rounds owe (none counted twice, none left out)."""
    rounds = bob.rounds()
    assert [r[0] for r in rounds] == list(range(1, len(rounds) + 1))
    priced = [r for r in rounds if not r[3]]
    assert sorted(bob.round_entries()) == [r[0] for r in priced]
    assert bob.owed_total() == sum(r[6] for r in priced)
    assert all(r[6] == 0 for r in rounds if r[3])  # a waiting round owes nothing yet
    waiting = [r[0] for r in rounds if r[3]]
    assert waiting == [r[0] for r in rounds[len(rounds) - len(waiting):]]  # in order


def check_kept(anna: Meter, bob: Meter) -> None:
    """The producer's entries bob kept are hers, byte for byte."""
    kept = bob.stored_producer_entries()
    data = anna.entries()
    assert kept and all(data[i] == d for i, d in kept.items())


def from_producer(bob: Meter) -> int:
    return sum(1 for r in bob.priced() if r[4] == FROM_PRODUCER)


def start_after(street: Street, anna: Meter, *consumers: Meter) -> None:
    """The consumers first (each metering, so following on the broker), then anna."""
    for bob in consumers:
        street.start(bob)
    for bob in consumers:
        wait_until(f"{bob.name} metering", lambda b=bob: b.rounds(), 30)
    street.start(anna)


def test_prices_follow_the_producer_from_her_log_already_under_way(street):
    # anna's panel changes every few rounds; bob's own channel is not wired (compare off),
    # so a round priced from another slot than its own shows in its figures.
    anna = street.producer("anna", "0,0,400", "2,0,650", "4,0,250", "6,0,400")
    street.start(anna)
    wait_until("anna's first entries", lambda: len(anna.productions()) >= 3, 20)
    url = street.serve(anna)
    bob = street.consumer("bob", anna.verifier_key, "0,100,0",
                          producer=f'compare = false\nlog_url = "{url}"\n')
    street.start(bob)
    wait_until("eight rounds priced", lambda: from_producer(bob) >= 8, 30)
    street.stop(bob)
    street.stop(anna)
    assert check_priced(anna, bob) == {FROM_PRODUCER: len(bob.priced())}
    check_each_round_once(bob)
    indices = [r[5] for r in bob.priced()]
    assert len(set(indices)) == len(indices)  # one round per producer entry
    assert len({(e.producer_energy_uws, e.producer_metered_us)
                for e in bob.round_entries().values()}) > 3  # the figures did change
    check_kept(anna, bob)
    log = bob.log_text()
    assert log.count("following the producer's log from its entry") == 1  # caught up once
    assert "PRIVATE" not in log and "bob-secret-2" not in log


def test_a_consumer_joining_a_long_log_over_mqtt_alone_starts_from_its_tail(street):
    """No log_url: bob starts at anna's retained tail (her last entry and its inclusion
    proof, checked against her signed checkpoint) and prices from her figures on."""
    anna = street.producer("anna", "0,0,400", "2,0,650", "4,0,250", "6,0,400")
    street.start(anna)
    wait_until("anna's first entries", lambda: len(anna.productions()) >= 4, 20)
    bob = street.consumer("bob", anna.verifier_key, "0,100,0", producer="compare = false\n")
    street.start(bob)
    wait_until("six rounds priced", lambda: from_producer(bob) >= 6, 30)
    street.stop(bob)
    street.stop(anna)
    assert check_priced(anna, bob, (FROM_PRODUCER, OWN_AFTER_WAIT)).get(FROM_PRODUCER, 0) >= 6
    check_each_round_once(bob)
    check_kept(anna, bob)
    assert min(bob.stored_producer_entries()) >= 4  # her entries before it were never read
    assert bob.log_text().count("following the producer's log from its entry") == 1


def test_a_broker_away_15_s_loses_no_round_and_prices_each_from_the_producer_after(
        persistent_street):
    street = persistent_street
    anna = street.producer("anna", "0,0,400")
    bob = street.consumer("bob", anna.verifier_key, "0,100,398")
    start_after(street, anna, bob)
    wait_until("rounds priced from anna's figures", lambda: from_producer(bob) >= 3, 30)
    street.broker.stop()
    away = time.time()
    time.sleep(15)  # the outage itself: what the test is about
    during = [r[0] for r in bob.rounds() if r[1] >= away]
    assert len(during) >= 25 and all(r[3] for r in bob.rounds() if r[0] in during)
    street.broker.start()
    wait_until("the rounds of the outage priced",
               lambda: all(not r[3] for r in bob.rounds() if r[0] <= during[-1]), 60)
    street.stop(bob)
    street.stop(anna)
    kinds = check_priced(anna, bob)
    assert set(kinds) <= {FROM_PRODUCER, OWN_AFTER_WAIT}
    assert all(r[4] == FROM_PRODUCER for r in bob.rounds() if r[0] in during)
    check_each_round_once(bob)
    check_kept(anna, bob)
    log = bob.log_text()
    assert log.count("closed rounds wait for the producer's figures") == 1  # once an outage
    assert log.count("connected to mqtt://127.0.0.1") == 1


def test_an_entry_altered_on_the_broker_is_never_used(street, tmp_path):
    # anna publishes to her own broker; a relay carries her messages to the street's,
    # and changes one byte of one entry on the way.
    (tmp_path / "hers").mkdir()
    hers = Broker(tmp_path / "hers")
    hers.start()
    relay = Relay(hers, street.broker)
    try:
        anna = street.producer("anna", "0,0,400", broker=hers)
        street.start(anna)
        wait_until("anna's first entries", lambda: anna.entries(), 20)
        url = street.serve(anna)
        bob = street.consumer("bob", anna.verifier_key, "0,100,398",
                              producer=f'log_url = "{url}"\n')
        street.start(bob)
        wait_until("bob following", lambda: from_producer(bob) >= 2, 30)
        relay.alter_next()
        wait_until("an altered entry sent", lambda: relay.altered, 10)
        [(index, forged)] = relay.altered.items()
        wait_until("bob past it", lambda: bob.followed_size() > index + 3, 30)
        wait_until("its round priced", lambda: from_producer(bob) >= 8, 30)
        street.stop(bob)
        street.stop(anna)
    finally:
        relay.close()
        hers.stop()
    assert anna.entries()[index] != forged
    assert bob.stored_producer_entries()[index] == anna.entries()[index]
    check_kept(anna, bob)
    check_priced(anna, bob)  # with her figure, not the forged one
    assert index in {r[5] for r in bob.priced()}
    check_each_round_once(bob)
    log = bob.log_text()
    assert log.count("at least one was altered on the way; none is used") == 1


def test_a_producer_signed_with_another_key_prices_nothing(street):
    anna = street.producer("anna", "0,0,400")
    origin = anna.verifier_key.split("+")[0]
    impostor = signer_from_seed(origin, bytes(range(32))).verifier.key()  # her name, not her key
    bob = street.consumer("bob", impostor, "0,100,398")
    carol = street.consumer("carol", impostor, "0,100,398",
                            producer='after_wait = "own_channel"\n')
    start_after(street, anna, bob, carol)
    wait_until("carol's rounds priced after the wait", lambda: len(carol.priced()) >= 4, 30)
    wait_until("anna's checkpoints", lambda: len(anna.entries()) >= 6, 30)
    street.stop(bob)
    street.stop(carol)
    street.stop(anna)
    for consumer in (bob, carol):
        assert consumer.followed_size() == 0 and not consumer.stored_producer_entries()
        log = consumer.log_text()
        assert log.count("a checkpoint not signed by the producer's key") == 1, log[-3000:]
        check_each_round_once(consumer)
    assert bob.rounds() and not bob.priced()  # they wait: nothing owed
    for round_id, *_, priced_from, index, _owed in carol.priced():  # her own channel's
        entry = carol.round_entries()[round_id]
        assert priced_from == entry.priced_from == OWN_AFTER_WAIT and index is None
        assert entry.producer_index == -1 and entry.producer_leaf_hash == ""
        assert average_mw(entry.producer_energy_uws, entry.producer_metered_us) == \
            pytest.approx(398, abs=1)
    assert len(carol.priced()) >= len(carol.rounds()) - 3  # all but those still in the wait


def test_a_disagreement_beyond_the_band_is_marked_disputed_with_both_figures(street):
    anna = street.producer("anna", "0,0,400")
    bob = street.consumer("bob", anna.verifier_key, "0,100,300")
    carol = street.consumer("carol", anna.verifier_key, "0,100,300",
                            producer='on_dispute = "own_channel"\n')
    start_after(street, anna, bob, carol)
    wait_until("disputed rounds", lambda: sum(1 for r in bob.priced() if r[4] ==
                                              DISPUTE_PRODUCER) >= 4, 30)
    wait_until("disputed rounds", lambda: sum(1 for r in carol.priced() if r[4] ==
                                              DISPUTE_OWN) >= 4, 30)
    street.stop(bob)
    street.stop(carol)
    street.stop(anna)
    for consumer, rule in ((bob, DISPUTE_PRODUCER), (carol, DISPUTE_OWN)):
        kinds = check_priced(anna, consumer, allowed=(rule, FROM_PRODUCER))
        assert set(kinds) <= {rule, FROM_PRODUCER, OWN_AFTER_WAIT}
        check_each_round_once(consumer)
        productions = anna.productions()
        for entry in consumer.round_entries().values():
            if entry.priced_from == FROM_PRODUCER:  # only where the two are not comparable:
                # a round cut short on one side (anna's first, a start) is not compared
                assert not comparable(entry.own_metered_us, entry.named_metered_us), entry
            if entry.priced_from != rule:
                continue
            theirs = productions[entry.producer_index]
            own_mw = average_mw(entry.own_energy_uws, entry.own_metered_us)
            their_mw = average_mw(theirs.producer_energy_uws, theirs.producer_metered_us)
            assert own_mw == pytest.approx(300, abs=1) and their_mw == pytest.approx(400, abs=1)
            priced_mw = average_mw(entry.producer_energy_uws, entry.producer_metered_us)
            assert priced_mw == pytest.approx(400 if rule == DISPUTE_PRODUCER else 300, abs=1)
        log = consumer.log_text()
        assert log.count("outside the band") == 1, log[-3000:]  # once for the episode


def test_kill_9_of_either_side_loses_no_round_and_prices_none_twice(street, tmp_path):
    anna = street.producer("anna", "0,0,400", "2,0,650")
    bob = street.consumer("bob", anna.verifier_key, "0,100,0", producer="compare = false\n")
    start_after(street, anna, bob)
    wait_until("rounds priced", lambda: from_producer(bob) >= 4, 30)
    street.kill(bob)
    time.sleep(1.5)  # anna's entries of these rounds wait for him on the broker
    street.start(bob)
    wait_until("priced again", lambda: from_producer(bob) >= 8, 30)
    street.kill(anna)
    killed = time.time()
    wait_until("bob's rounds waiting", lambda: len([r for r in bob.rounds() if r[3]]) >= 3, 30)
    street.start(anna)
    wait_until("the rounds of her absence priced", lambda: all(
        not r[3] for r in bob.rounds() if r[2] <= killed + 3), 30)
    street.stop(bob)
    street.stop(anna)
    kinds = check_priced(anna, bob)
    assert set(kinds) <= {FROM_PRODUCER, OWN_AFTER_WAIT} and kinds[FROM_PRODUCER] >= 8
    check_each_round_once(bob)
    check_kept(anna, bob)
    export = tmp_path / "bob.export"
    done = cli("log", "export", "-c", str(bob.cfg), "-o", str(export))
    assert done.returncode == 0, done.stderr
    judged = cli("verify", "--key", bob.verifier_key, "--state", str(tmp_path / "verify"),
                 str(export))
    assert judged.returncode == 0, judged.stdout + judged.stderr


def test_a_clock_step_on_the_consumer_side(street, caplog):
    """bob's Pi boots a month behind (no real-time clock) and NTP steps it right while he
    runs, in-process here to step his wall clock; anna and the broker are real. His rounds
    of last month's slots wait (her log has nothing then; his wait is not over on his
    clock) and owe nothing; once the clock is right their wait is long over and her log
    has passed them: priced from his own channel, in order; his rounds from then on are
    priced from her entries of their slots. None lost, none twice."""
    synced = threading.Event()

    def wall() -> float:
        return time.time() - (0.0 if synced.is_set() else 30 * 86400.0)

    anna = street.producer("anna", "0,0,400")
    bob = street.consumer("bob", anna.verifier_key, "0,100,398", producer="wait_s = 300\n")
    cfg = config.load(bob.cfg)
    writer = LogWriter(load_log_signer(cfg)[0], recipient=cfg.wallet.receiver)
    path = cfg.ledger.path

    def open_ledger() -> Ledger:
        return Ledger(path, log=writer)

    first = Ledger(path)  # what 'run' records before it starts (cmd_run)
    first.record_role(cfg.role)
    first.record_unit(cfg.wallet.backend)
    first.close()
    payer = Payer(open_ledger, wallet_opener(cfg), PayerPolicy.from_config(cfg.wallet))
    link = ProducerLink(open_ledger, cfg, writer.origin, password=PASSWORDS["bob"], wall=wall)
    daemon = Daemon(cfg, build_sensor(cfg), path, payer, open_ledger=open_ledger, link=link,
                    wall=wall)
    running = threading.Thread(target=daemon.run, name="bob")
    with caplog.at_level(logging.INFO, logger="p2p_energy"):
        running.start()
        try:
            wait_until("bob metering", lambda: len(bob.rounds()) >= 2, 30)
            street.start(anna)
            wait_until("anna's entries accepted", lambda: bob.followed_size() >= 4, 30)
            before = bob.rounds()
            assert all(r[3] and r[6] == 0 for r in before)  # waiting, owing nothing
            synced.set()
            wait_until("rounds priced from anna's", lambda: from_producer(bob) >= 6, 30)
        finally:
            daemon.request_stop()
            running.join(30)
    assert not running.is_alive() and not daemon.fatal_reason
    street.stop(anna)
    kinds = check_priced(anna, bob)
    assert kinds[OWN_AFTER_WAIT] >= len(before) and kinds[FROM_PRODUCER] >= 6
    rounds = bob.rounds()
    month_old = [r for r in rounds if r[1] < time.time() - 15 * 86400]
    assert all(r[4] == OWN_AFTER_WAIT for r in month_old)
    assert all(r[4] == FROM_PRODUCER for r in rounds[len(month_old) + 1:] if not r[3])
    check_each_round_once(bob)
    steps = [r.getMessage() for r in caplog.records if "wall clock stepped" in r.getMessage()]
    assert len(steps) == 1 and steps[0].startswith("wall clock stepped by +2592000.")
