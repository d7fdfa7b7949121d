"""core.link: the consumer accepts the producer's entries only under its signed checkpoints,
and chooses the figure each round is priced from."""

from __future__ import annotations

import json

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from p2p_energy.core import entries, link, note, tlog
from p2p_energy.core.entries import (
    DISPUTE_OWN,
    DISPUTE_PRODUCER,
    FROM_PRODUCER,
    OWN_AFTER_WAIT,
    LinkedRoundEntry,
    ProductionEntry,
    encode_production,
    encode_round,
    parse_entry,
)
from p2p_energy.errors import EntryError, ProofError

ORIGIN = "anna.lan/p2p-energy/0001"
SIGNER = note.signer_from_seed(ORIGIN, bytes(range(32)))
VERIFIER = SIGNER.verifier


def production(i: int, mw: int = 400, slot_ms: int = 60_000) -> bytes:
    return encode_production(ProductionEntry(
        round_id=i + 1, slot_ms=slot_ms, start_utc_ms=i * slot_ms, end_utc_ms=(i + 1) * slot_ms,
        producer_energy_uws=mw * slot_ms, producer_metered_us=slot_ms * 1000,
        clock="synchronized"))


def log_of(n: int) -> list[bytes]:
    return [production(i) for i in range(n)]


def checkpoint(entries: list[bytes], size: int | None = None,
               signer: note.Signer = SIGNER) -> bytes:
    size = len(entries) if size is None else size
    root = tlog.root_from_leaves(tlog.leaf_hash(e) for e in entries[:size])
    return note.sign_checkpoint(note.Checkpoint(signer.name, size, root), signer)


def test_entries_are_accepted_only_once_a_signed_checkpoint_covers_them():
    f = link.Follower(VERIFIER)
    entries = log_of(5)
    for i, data in enumerate(entries[:3]):
        assert f.offer_entry(i, data).accepted == []  # not trusted yet
    got = f.offer_checkpoint(checkpoint(entries, 3))
    assert [a.index for a in got.accepted] == [0, 1, 2] and f.size == 3
    assert got.accepted[1].production == parse_entry(entries[1])
    assert got.accepted[1].leaf_hash == tlog.leaf_hash(entries[1])
    # the checkpoint first, then its entries (in any order)
    assert f.offer_checkpoint(checkpoint(entries)).accepted == []
    assert f.offer_entry(4, entries[4]).accepted == []
    assert f.missing() == (3, 4)
    got = f.offer_entry(3, entries[3])
    assert [a.index for a in got.accepted] == [3, 4] and f.missing() is None
    assert f.frontier.root() == tlog.root_from_leaves(tlog.leaf_hash(e) for e in entries)


@pytest.mark.parametrize("position", [0, 7, -1])
def test_one_altered_byte_is_never_used(position):
    entries = log_of(4)
    altered = bytearray(entries[2])
    altered[position] ^= 0x01
    f = link.Follower(VERIFIER)
    for i, data in enumerate(entries):
        f.offer_entry(i, bytes(altered) if i == 2 else data)
    offer = f.offer_checkpoint(checkpoint(entries))
    assert offer.accepted == [] and offer.kind == "root" and f.size == 0
    assert f.missing() == (0, 4)  # dropped: to be fetched again
    # the true entries (fetched from the producer's serve) are accepted under it again
    f.offer_checkpoint(checkpoint(entries))
    for i, data in enumerate(entries[:3]):
        f.offer_entry(i, data)
    assert len(f.offer_entry(3, entries[3]).accepted) == 4


def test_a_checkpoint_altered_or_signed_by_another_key_is_refused():
    entries = log_of(2)
    f = link.Follower(VERIFIER)
    for i, data in enumerate(entries):
        f.offer_entry(i, data)
    impostor = note.signer_from_seed(ORIGIN, bytes(32))  # the same name, another key
    offer = f.offer_checkpoint(checkpoint(entries, signer=impostor))
    assert offer.accepted == [] and offer.kind == "signature"
    good = checkpoint(entries)
    altered = good.replace(b"\n2\n", b"\n1\n")
    assert f.offer_checkpoint(altered).kind == "signature"
    assert len(f.offer_checkpoint(good).accepted) == 2


def test_a_rewritten_history_under_the_same_key_is_refused():
    entries = log_of(3)
    f = link.Follower(VERIFIER)
    for i, data in enumerate(entries):
        f.offer_entry(i, data)
    f.offer_checkpoint(checkpoint(entries))
    rewritten = [entries[0], production(1, mw=50), entries[2], production(3)]
    assert f.offer_checkpoint(checkpoint(rewritten, 3)).kind == "fork"
    # a longer checkpoint over the rewritten history never gives the root of ours + more
    f.offer_checkpoint(checkpoint(rewritten))
    offer = f.offer_entry(3, rewritten[3])
    assert offer.accepted == [] and offer.kind == "root" and f.size == 3


def test_duplicates_and_old_checkpoints_change_nothing():
    entries = log_of(3)
    f = link.Follower(VERIFIER)
    for i, data in enumerate(entries):
        f.offer_entry(i, data)
    assert len(f.offer_checkpoint(checkpoint(entries)).accepted) == 3
    assert f.offer_entry(1, entries[1]) == link.Offer()  # delivered twice by the broker
    assert f.offer_checkpoint(checkpoint(entries, 2)) == link.Offer()  # a retained old one
    assert f.size == 3


def test_an_entry_far_ahead_is_not_held():
    f = link.Follower(VERIFIER)
    offer = f.offer_entry(link.MAX_PENDING, production(0))
    assert offer.kind == "ahead" and offer.accepted == []


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 70))
def test_the_frontier_from_the_last_entry_and_its_proof_is_the_trees(size):
    leaves = [tlog.leaf_hash(e) for e in log_of(size)]
    store = tlog.MemoryHashStore.from_leaves(leaves)
    proof = tlog.inclusion_proof(size - 1, size, store.hash_at)
    frontier = link.frontier_from_last_leaf(size, leaves[-1], proof, store.root())
    want = tlog.Frontier.from_hash_at(size, store.hash_at)
    assert frontier.hashes == want.hashes and frontier.size == size


def test_a_bootstrap_with_a_wrong_proof_is_refused():
    entries = log_of(6)
    f = link.Follower(VERIFIER)
    f.offer_checkpoint(checkpoint(entries))
    store = tlog.MemoryHashStore.from_leaves(tlog.leaf_hash(e) for e in entries)
    proof = tlog.inclusion_proof(5, 6, store.hash_at)
    with pytest.raises(ProofError):
        f.bootstrap(production(9), proof)  # not the entry the producer logged
    offer = f.bootstrap(entries[5], proof)
    assert [a.index for a in offer.accepted] == [5] and f.size == 6
    entries.append(production(6))
    f.offer_entry(6, entries[6])
    assert [a.index for a in f.offer_checkpoint(checkpoint(entries)).accepted] == [6]


BAND = link.Band.from_config(1.0, 10.0)


def choose(own_mw: float, their_mw: float, **kw):
    entry = parse_entry(production(0, mw=int(their_mw)))
    args = {"band": BAND, "on_dispute": "producer"} | kw
    return link.choose(round(own_mw * 60_000), 60_000_000, entry, **args)


def test_within_the_band_the_producers_figure_prices_the_round():
    c = choose(395, 400)  # 5 mW apart; the band is 4 + 10 mW
    assert (c.priced_from, c.energy_uws, c.metered_us) == (FROM_PRODUCER, 24_000_000,
                                                           60_000_000)


@pytest.mark.parametrize(("rule", "expected"), [("producer", DISPUTE_PRODUCER),
                                                ("own_channel", DISPUTE_OWN)])
def test_outside_the_band_the_owners_rule_decides(rule, expected):
    c = choose(380, 400, on_dispute=rule)  # 20 mW apart, the band 14 mW
    assert c.priced_from == expected
    assert c.energy_uws == (24_000_000 if rule == "producer" else 380 * 60_000)


def test_the_band_is_decided_exactly_at_its_edge():
    assert link.Band(ppm=10_000, uw=10_000) == BAND
    # 1000 mW against 1000 - (10 + 10) mW: exactly on the edge agrees, a µW more does not
    assert entries.band_agrees(60_000_000, 60_000_000, 58_800_000, 60_000_000, 10_000, 10_000)
    assert not entries.band_agrees(60_000_000, 60_000_000, 58_799_999, 60_000_000, 10_000,
                                   10_000)


def test_not_wired_or_not_metered_is_not_compared():
    entry = parse_entry(production(0))
    assert link.choose(0, 0, entry, band=BAND,
                       on_dispute="own_channel").priced_from == FROM_PRODUCER
    after = link.choose(123, 456, None, band=BAND, on_dispute="producer")
    assert (after.priced_from, after.energy_uws, after.metered_us) == (OWN_AFTER_WAIT, 123, 456)


def linked(**changes) -> LinkedRoundEntry:
    fields = dict(round_id=3, start_utc_ms=0, end_utc_ms=60_000, unit="µIOTA",
                  consumer_energy_uws=6_000_000, producer_energy_uws=24_000_000,
                  producer_metered_us=60_000_000, numerator_nano_units_per_s=10_000_000_000,
                  cap_nano_units_per_mws=10_000_000_000, carry_in_nano_units=0,
                  owed_nano_units=25_000_000_000, queued_units=25, carry_out_nano_units=0,
                  priced_from=FROM_PRODUCER, producer_origin=ORIGIN, producer_index=7,
                  producer_leaf_hash="ab" * 32, named_energy_uws=24_000_000,
                  named_metered_us=60_000_000, own_energy_uws=23_800_000,
                  own_metered_us=60_000_000, band_ppm=10_000, band_uw=10_000)
    return LinkedRoundEntry(**(fields | changes))


def test_a_linked_round_entry_is_round_version_2_and_reads_back():
    e = linked()
    data = encode_round(e)
    assert b'"kind":"round"' in data and data.endswith(b'"v":2}')
    assert parse_entry(data) == e and e.link_problems() == []
    assert rfc8785.dumps(json.loads(data)) == data  # canonical, as judged by rfc8785


@pytest.mark.parametrize("changes", [
    {"priced_from": OWN_AFTER_WAIT},  # names an entry though it waited for none
    {"producer_index": -1, "producer_leaf_hash": ""},  # from the producer, naming none
    {"priced_from": DISPUTE_OWN},  # its own channel, with the producer's figures
    {"named_energy_uws": 25_000_000},  # priced from the producer, not with its figure
    {"priced_from": DISPUTE_PRODUCER},  # disputed, though the two agree within the band
    {"own_energy_uws": 20_000_000},  # 333 mW against 400: outside the band, not disputed
])
def test_a_linked_round_whose_figures_disagree_is_named(changes):
    assert linked(**changes).link_problems()


def test_a_linked_round_entry_refuses_bad_fields():
    data = encode_round(linked())
    with pytest.raises(EntryError):
        parse_entry(data.replace(b'"priced_from":"producer"', b'"priced_from":"guess"'))
    with pytest.raises(EntryError):
        parse_entry(data.replace(b'"ababab', b'"ABABAB'))


def test_a_follower_starts_from_the_tail_of_a_long_log_and_goes_on():
    entries = log_of(9)
    store = tlog.MemoryHashStore.from_leaves(tlog.leaf_hash(e) for e in entries)
    tail = link.encode_tail(8, entries[8], tlog.inclusion_proof(8, 9, store.hash_at))
    f = link.Follower(VERIFIER)
    assert f.offer_tail(tail).accepted == []  # kept until its checkpoint comes
    offer = f.offer_checkpoint(checkpoint(entries))
    assert [a.index for a in offer.accepted] == [8] and f.size == 9
    entries.append(production(9))
    f.offer_entry(9, entries[9])
    assert [a.index for a in f.offer_checkpoint(checkpoint(entries)).accepted] == [9]


def test_a_tail_that_does_not_give_the_signed_root_is_not_used():
    entries = log_of(5)
    store = tlog.MemoryHashStore.from_leaves(tlog.leaf_hash(e) for e in entries)
    forged = link.encode_tail(4, production(4, mw=9000), tlog.inclusion_proof(4, 5,
                                                                            store.hash_at))
    f = link.Follower(VERIFIER)
    f.offer_tail(forged)
    offer = f.offer_checkpoint(checkpoint(entries))
    assert offer.accepted == [] and offer.kind == "tail" and f.size == 0
    for bad in (b"{", b'{"index": -1, "entry": "", "proof": []}', b"x" * 9000):
        assert f.offer_tail(bad).kind == "tail"


def test_a_gap_that_will_not_be_filled_is_passed_over_from_the_newest_tail():
    entries = log_of(12)
    store = tlog.MemoryHashStore.from_leaves(tlog.leaf_hash(e) for e in entries)
    f = link.Follower(VERIFIER)
    for i in range(4):
        f.offer_entry(i, entries[i])
    assert len(f.offer_checkpoint(checkpoint(entries, 4)).accepted) == 4
    for i in (9, 10, 11):  # 4 to 8 never come
        f.offer_entry(i, entries[i])
    assert f.offer_checkpoint(checkpoint(entries)).accepted == [] and f.missing() == (4, 9)
    assert f.jump() == link.Offer()  # no tail of that checkpoint yet: nothing to go on from
    f.offer_tail(link.encode_tail(11, entries[11], tlog.inclusion_proof(11, 12, store.hash_at)))
    offer = f.jump()
    assert [a.index for a in offer.accepted] == [11] and offer.kind == "jump"
    assert "from 4 on did not come" in offer.problem
    assert f.size == 12 and f.missing() is None
    assert f.frontier.root() == store.root()  # and it goes on from there, checked as before
    entries.append(production(12))
    f.offer_entry(12, entries[12])
    assert [a.index for a in f.offer_checkpoint(checkpoint(entries)).accepted] == [12]


def test_hostile_messages_are_refused_without_holding_their_bytes():
    f = link.Follower(VERIFIER)
    deep = b"[" * (link.MAX_TAIL_BYTES - 1)
    assert f.offer_tail(deep).kind == "tail"  # no RecursionError out of json
    big = production(0) + b" " * link.MAX_LINK_ENTRY_BYTES
    assert f.offer_entry(0, big).kind == "size" and f.missing() is None


def test_a_backlog_longer_than_the_pending_bound_is_accepted_checkpoint_by_checkpoint():
    """Back from days away: the broker sends the retained newest checkpoint first, then
    every entry and checkpoint queued for this consumer, in order."""
    n = link.MAX_PENDING + 300
    entries = log_of(n)
    store = tlog.MemoryHashStore()
    notes = []
    for e in entries:
        store.append(tlog.leaf_hash(e))
        notes.append(note.sign_checkpoint(note.Checkpoint(ORIGIN, store.size, store.root()),
                                          SIGNER))
    f = link.Follower(VERIFIER)
    f.offer_entry(0, entries[0])
    f.offer_checkpoint(notes[0])
    assert f.size == 1
    f.offer_checkpoint(notes[-1], retained=True)  # the newest, first
    accepted = 1
    for i in range(1, n):
        accepted += len(f.offer_entry(i, entries[i]).accepted)
        accepted += len(f.offer_checkpoint(notes[i]).accepted)
    assert accepted == n and f.size == n and f.missing() is None
    assert f.frontier.root() == store.root()


def test_a_retained_checkpoint_shorter_than_the_accepted_log_says_it_was_started_again():
    entries = log_of(5)
    f = link.Follower(VERIFIER)
    for i, d in enumerate(entries):
        f.offer_entry(i, d)
    f.offer_checkpoint(checkpoint(entries))
    assert f.offer_checkpoint(checkpoint(entries, 3)) == link.Offer()  # queued earlier
    again = log_of(2)  # the same key, a new log: 2 entries
    assert f.offer_checkpoint(checkpoint(again), retained=True).kind == "rewound"
