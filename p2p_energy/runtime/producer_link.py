"""A consumer priced by its producer's own meter (``[producer]``): follow, accept, price.

The producer (``role = "producer"``) publishes each entry of its signed log and
its latest checkpoint over MQTT (``runtime.log_publisher``). Here, on its own
thread beside the meter:

1. every message from ``[producer] topic`` goes through ``core.link.Follower``:
   an entry is accepted only when a checkpoint signed by ``verifier_key``
   covers it and extends the last one accepted; the rest is dropped, logged
   once per episode. What is accepted, and how far, is committed to the
   ledger together (``store.producer_log``), so a restart continues there;
2. entries no message brought (a broker that lost them, a log that was long
   before this consumer followed it) are fetched from the producer's ``serve``
   (``log_url``), and checked the same way;
3. the rounds that wait (``Ledger.record_waiting_round``) are priced in order,
   each from the producer's entry for its slot (``core.link.choose``: the
   tolerance band against this meter's own channel, ``on_dispute``), or from
   this meter's own channel once ``wait_s`` is over and ``after_wait =
   "own_channel"``, or once the producer's log has passed its slot without
   one (that figure can never come). Each priced round queues what it makes
   payable and goes into the signed log naming the producer's entry
   (``Ledger.price_waiting``); ``on_priced`` wakes the payer.

A waiting round owes nothing yet: a broker outage delays payments, never loses
or doubles them.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from ..config import Config
from ..core.entries import (
    DISPUTE_OWN,
    DISPUTE_PRODUCER,
    OWN_AFTER_WAIT,
    ProductionEntry,
    parse_entry,
)
from ..core.link import (
    Accepted,
    Band,
    Follower,
    Offer,
    average_mw,
    choose,
)
from ..core.metering import RoundTotals
from ..core.note import parse_verifier
from ..core.pricing import Quote, quote_figures
from ..errors import LogError, SourceError
from ..store.ledger import Ledger, RoundRecorded
from ..store.producer_log import follow_state, usable
from ..store.signed_log import RoundLink
from .mqtt_client import make_client

log = logging.getLogger(__name__)

MAX_NOTE_BYTES = 4096
MAX_MESSAGE_BYTES = 16_384  # asked of the broker (MQTT 5 Maximum Packet Size); more is dropped
QUEUE_MAX = 2000  # messages held for the link's thread; more are dropped (fetched again)
RECEIVE_MAXIMUM = 1000  # unacknowledged at once (MQTT 5): the broker never overfills it
TICK_S = 1.0  # waiting rounds are looked at this often (their wait may be over)
FILL_EVERY_S = 10.0  # how often missing entries are asked of the producer's serve
FILL_PAGE = 1000
FETCH_TIMEOUT_S = 5.0  # each answer of the producer's serve, whole
JUMP_AFTER_S = 60.0  # a gap nothing can fill is passed over after this long
JUMP_WITH_URL_AFTER_S = 600.0  # ... when the producer's serve cannot give it either
SESSION_EXPIRY_S = 7 * 86400  # the broker keeps this consumer's messages while it is away
KEEPALIVE_S = 30

OnPriced = Callable[[RoundRecorded, RoundTotals, Quote, RoundLink], None]


class Pricer:
    """Prices the waiting rounds, oldest first, from the producer's accepted entries."""

    def __init__(self, cfg: Config, producer_key: str, on_priced: OnPriced, *,
                 wall: Callable[[], float] = time.time) -> None:
        """``producer_key``: the verifier key of the log followed ("" for rounds left
        waiting with no log followed: priced from this meter's own channel)."""
        self.p = cfg.producer
        self.producer_key = producer_key
        self.origin = parse_verifier(producer_key).name if producer_key else "unknown"
        self.rule = cfg.price.rule
        self.slot_ms = round(cfg.round.length_s * 1000)
        self.band = Band.from_config(self.p.tolerance_pct, self.p.tolerance_mw)
        self.on_priced = on_priced
        self.wall = wall
        self._disputing = False  # a dispute episode is under way: logged at its start

    def price_ready(self, ledger: Ledger, *, give_up_all: bool = False) -> int:
        """Price every waiting round that can be, in order; stops at the first that must
        wait still. ``give_up_all``: price every one, the producer's figure where it is
        here, this meter's own for the others (the link was taken out of the config)."""
        priced = 0
        # One at a time: most ticks the oldest round still waits, and that is all read.
        while oldest := ledger.oldest_waiting():
            round_id, r = oldest
            own_uws = round(r.producer_mws * 1000)
            own_us = round((r.producer_metered_s or 0.0) * 1_000_000)
            slot = round(r.started_at * 1000) // self.slot_ms
            stored = ledger.producer_entry(self.producer_key, self.slot_ms, slot)
            if stored is not None:
                production = parse_entry(stored.data)
                assert isinstance(production, ProductionEntry)  # kept only if it is one
                if not self.p.compare:  # not wired to the panel: not a figure to compare
                    own_uws = own_us = 0
                choice = choose(own_uws, own_us, production, band=self.band,
                                on_dispute=self.p.on_dispute)
                link = RoundLink(choice.priced_from, self.origin, stored.index,
                                 stored.leaf_hash, own_uws, own_us,
                                 production.producer_energy_uws,
                                 production.producer_metered_us, self.band.ppm, self.band.uw)
                self._dispute(round_id, choice.priced_from, own_uws, own_us, production)
            elif give_up_all or self._given_up(ledger, r, slot):
                choice = choose(own_uws, own_us, None, band=self.band,
                                on_dispute=self.p.on_dispute)
                link = RoundLink(OWN_AFTER_WAIT, self.origin, -1, b"", own_uws, own_us,
                                 0, 0, self.band.ppm, self.band.uw)
            else:
                break
            q = quote_figures(round(r.consumer_mws * 1000), choice.energy_uws,
                              choice.metered_us, self.rule)
            rec = ledger.price_waiting(round_id, r, q, link)
            priced += 1
            try:
                self.on_priced(rec, r, q, link)
            except Exception:  # the caller's: logging, waking the payer
                log.exception("after pricing round %d", round_id)
        return priced

    def _given_up(self, ledger: Ledger, r: RoundTotals, slot: int) -> bool:
        """Whether a round without the producer's figure is priced from this meter's own:
        after ``wait_s``, when the owner chose so, or when the producer's log has passed
        its slot (a round of its that ended later was accepted, whether or not it could
        price: that figure can never come)."""
        if self.wall() - r.ended_at < self.p.wait_s:
            return False
        if self.p.after_wait == "own_channel":
            return True
        reached = ledger.producer_reached_ms()
        return reached is not None and reached > (slot + 1) * self.slot_ms

    def _dispute(self, round_id: int, priced_from: str, own_uws: int, own_us: int,
                 production: ProductionEntry) -> None:
        disputed = priced_from in (DISPUTE_PRODUCER, DISPUTE_OWN)
        if disputed and not self._disputing:
            log.warning(
                "round %d: the producer's meter says %.1f mW on average, this meter's own"
                " channel %.1f mW: outside the band (%g %% + %g mW); the round is marked"
                " disputed and priced from %s ([producer] on_dispute); further disputes are"
                " counted in the log, not logged, until the two agree again", round_id,
                average_mw(production.producer_energy_uws, production.producer_metered_us),
                average_mw(own_uws, own_us), self.band.ppm / 10_000, self.band.uw / 1000,
                "the producer's figure" if priced_from == DISPUTE_PRODUCER
                else "this meter's own channel")
        elif not disputed and self._disputing:
            log.info("round %d: the producer's meter and this one agree again", round_id)
        self._disputing = disputed


def price_left_waiting(ledger: Ledger, cfg: Config, on_priced: OnPriced) -> int:
    """Rounds left waiting by a link the config no longer has: priced now, the producer's
    figure where it was accepted, this meter's own for the rest (nothing stays unbilled)."""
    if ledger.oldest_waiting() is None:
        return 0
    state = follow_state(ledger.db)  # None: the link stopped before it recorded one
    count = Pricer(cfg, state.verifier_key if state else "", on_priced).price_ready(
        ledger, give_up_all=True)
    log.warning("%d rounds waited for the producer's figure and [producer] verifier_key is"
                " no longer set: priced now (its figure where it came, this meter's own"
                " channel for the others)", count)
    return count


class ProducerLink:
    """``start``; ``wake`` after each waiting round is recorded; ``stop``."""

    def __init__(self, open_ledger: Callable[[], Ledger], cfg: Config, client_name: str,
                 on_priced: OnPriced = lambda *_: None, *, password: str = "",
                 wall: Callable[[], float] = time.time) -> None:
        self._open_ledger = open_ledger
        self.cfg = cfg
        self.verifier = parse_verifier(cfg.producer.verifier_key)
        self.origin = self.verifier.name
        self.topic = cfg.producer.topic
        self.pricer = Pricer(cfg, cfg.producer.verifier_key, on_priced, wall=wall)
        self._messages: queue.Queue[tuple[str, bytes, bool, int, int]] = queue.Queue(QUEUE_MAX)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="producer-link", daemon=True)
        self._logged: set[str] = set()  # problem kinds logged in this episode
        self._dropped = 0
        self._down_since: float | None = None
        self._next_fill = 0.0
        self._gap_since: float | None = None  # monotonic time a gap was first seen
        self.follower: Follower | None = None
        # Acknowledged once handled (and what was accepted committed), not on arrival: a
        # consumer killed in between gets the message again from the broker's session.
        client = make_client(cfg.mqtt, "link", client_name, password, manual_ack=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = lambda *_: self._outage("cannot connect")
        client.on_message = self._on_message
        self.client = client

    def start(self) -> None:
        host, port = self.cfg.mqtt.address
        log.info("MQTT: following the producer's signed log %s under %s/ on %s", self.origin,
                 self.topic, self.cfg.mqtt.broker)
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        props.MaximumPacketSize = MAX_MESSAGE_BYTES
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        self.client.connect_async(host, port, keepalive=KEEPALIVE_S, clean_start=False,
                                  properties=props)
        self.client.loop_start()
        self._thread.start()

    def wake(self) -> None:
        """A round was recorded waiting: price it now if its figure is here."""
        self._wake.set()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout_s)
        self.client.disconnect()
        self.client.loop_stop()

    # -- paho's thread: flags, log lines and the queue only -------------------------------

    def _on_connect(self, client: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._outage(f"the broker refused the connection: {reason}")
            return
        if self._down_since is not None:
            log.info("MQTT: connected to %s again after %.0f s", self.cfg.mqtt.broker,
                     time.monotonic() - self._down_since)
        self._down_since = None
        client.subscribe([(f"{self.topic}/entry/+", 1), (f"{self.topic}/checkpoint", 1),
                          (f"{self.topic}/tail", 1)])

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not self._stop.is_set():
            self._outage(f"disconnected ({reason})")

    def _outage(self, why: str) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("MQTT: %s to %s; closed rounds wait for the producer's figures (and"
                        " owe nothing until priced)", why, self.cfg.mqtt.broker)

    def _on_message(self, client: Any, _u: Any, msg: Any) -> None:
        if len(msg.payload) > MAX_MESSAGE_BYTES:  # a broker that ignored our maximum
            client.ack(msg.mid, msg.qos)
            return
        try:
            self._messages.put_nowait((msg.topic, bytes(msg.payload), bool(msg.retain),
                                       msg.mid, msg.qos))
        except queue.Full:
            self._dropped += 1  # missing now: fetched again, or passed over (``_fill``)
            client.ack(msg.mid, msg.qos)
        self._wake.set()

    # -- the link's thread ----------------------------------------------------------------

    def _run(self) -> None:
        ledger = None
        try:
            ledger = self._open()
            if ledger is None:
                return
            while not self._stop.is_set():
                try:
                    self._step(ledger)
                except Exception:  # the loop boundary: tried again at the next tick
                    if self._once("step"):
                        log.exception("following the producer's log failed; retrying")
                self._wake.wait(TICK_S)
                self._wake.clear()
        finally:
            if ledger is not None:
                ledger.close()

    def _open(self) -> Ledger | None:
        while not self._stop.is_set():
            try:
                ledger = self._open_ledger()
                state = ledger.follow_producer(self.cfg.producer.verifier_key)
                self.follower = Follower(self.verifier, state.frontier, state.checkpoint)
                self._since_ms = state.since_ms
                return ledger
            except Exception as err:  # as the recorder: a locked ledger may free itself
                if self._once("open"):
                    log.error("cannot open the ledger to follow the producer (%s); trying"
                              " again", err)
                self._stop.wait(5.0)
        return None

    def _step(self, ledger: Ledger) -> None:
        follower = self.follower
        assert follower is not None
        before = follower.size
        accepted: list[Accepted] = []
        handled: list[tuple[int, int]] = []
        try:
            while len(handled) < QUEUE_MAX:
                try:
                    topic, payload, retained, mid, qos = self._messages.get_nowait()
                except queue.Empty:
                    break
                handled.append((mid, qos))
                try:
                    offer = self._offer(follower, topic, payload, retained)
                except Exception as err:  # one message's boundary: the rest still count
                    offer = Offer(problem=f"a message on {topic[:200]!r} could not be read:"
                                          f" {type(err).__name__}", kind="error")
                accepted += offer.accepted
                self._report(offer)
            if self._dropped and self._once("dropped"):
                log.warning("%d of the producer's messages came faster than they could be"
                            " handled and were dropped: missing now (fetched, or passed"
                            " over)", self._dropped)
            if follower.missing() is None:
                self._gap_since = None
                self._logged.discard("gap")
            elif time.monotonic() >= self._next_fill:
                accepted += self._fill(follower)
                self._next_fill = time.monotonic() + FILL_EVERY_S
            if accepted:
                self._commit(ledger, follower, accepted, before)
        except BaseException:
            # Whatever failed, the follower goes back to what the ledger holds: what these
            # messages brought is missing again (fetched, or passed over), never taken as
            # accepted when it was not kept.
            self._reset(ledger)
            raise
        finally:
            # Acknowledged either way: not acknowledged, they would hold back the broker's
            # next ones (its in-flight window) until a reconnect.
            for mid, qos in handled:
                self.client.ack(mid, qos)
        self.pricer.price_ready(ledger)
        self._logged.discard("step")

    def _reset(self, ledger: Ledger) -> None:
        state = follow_state(ledger.db)  # a read: it works while writes are refused
        if state is not None:
            self.follower = Follower(self.verifier, state.frontier, state.checkpoint)

    def _commit(self, ledger: Ledger, follower: Follower, accepted: list[Accepted],
                before: int) -> None:
        """Keep the entries accepted, and how far the log was followed, together (if that
        fails, ``_step`` puts the follower back: nothing is kept half)."""
        kept = ledger.accept_producer_entries(self.pricer.producer_key, accepted,
                                              follower.frontier, follower.checkpoint,
                                              self._since_ms)
        log.debug("accepted the producer's entries %d to %d (%d kept)", accepted[0].index,
                  accepted[-1].index, kept)
        if before == 0 and accepted[0].index > 0:  # started from a tail: those before unread
            log.info("following the producer's log from its entry %d (its last, checked"
                     " against its signed checkpoint)", accepted[0].index)
        unusable = [a.index for a in accepted if a.production is not None and not usable(a)]
        if unusable and self._once("unusable"):
            log.warning("the producer's entry %d (and %d more of this batch) metered nothing,"
                        " or closed while its clock was not synchronised: it prices no round"
                        " (its slot may not be the same minutes as this meter's)",
                        unusable[0], len(unusable) - 1)
        other = next((a.production.slot_ms for a in accepted if a.production is not None
                      and a.production.slot_ms != self.pricer.slot_ms), None)
        if other is not None and self._once("slot"):
            log.warning("the producer's rounds are %g s long, this meter's %g s: no round of"
                        " this meter matches one of its; set round.length_s alike on both",
                        other / 1000, self.pricer.slot_ms / 1000)
        self._logged.discard("root")
        self._logged.discard("signature")

    def _offer(self, follower: Follower, topic: str, payload: bytes, retained: bool) -> Offer:
        rest = topic[len(self.topic) + 1:]
        if rest == "checkpoint":
            if len(payload) > MAX_NOTE_BYTES:
                return Offer(problem="a checkpoint message too long to be one", kind="size")
            return follower.offer_checkpoint(payload, retained=retained)
        if rest == "tail":
            return follower.offer_tail(payload)
        index_text = rest.removeprefix("entry/")
        if not index_text.isdigit() or len(index_text) > 15 or index_text != str(int(index_text)):
            return Offer(problem=f"a message on {topic}, not an entry's topic", kind="topic")
        return follower.offer_entry(int(index_text), payload)

    def _fill(self, follower: Follower) -> list[Accepted]:
        """Entries no message brought, from the producer's serve (``log_url``); what it
        cannot give is passed over in the end (``_pass_over``)."""
        url = self.cfg.producer.log_url
        missing = follower.missing()
        if missing is None:
            return []
        if not url:
            return self._pass_over(follower, JUMP_AFTER_S)
        from ..verify.sources import HttpSource

        accepted: list[Accepted] = []
        source = None
        try:
            source = HttpSource(url, timeout_s=FETCH_TIMEOUT_S)
            newest = follower.newest_checkpoint()
            if follower.size == 0 and newest is not None and newest.size > 1:
                last = list(source.entries(newest.size - 1, newest.size))
                if last:
                    offer = follower.bootstrap(last[0], source.inclusion(newest.size - 1,
                                                                         newest.size))
                    accepted += offer.accepted
                missing = follower.missing()
            if missing is not None:
                start, end = missing
                end = min(end, start + FILL_PAGE)
                got = 0
                for i, data in enumerate(source.entries(start, end)):
                    offer = follower.offer_entry(start + i, data)
                    accepted += offer.accepted
                    got += 1
                    self._report(offer)
                if not got:
                    raise SourceError(f"{url} has none of entries {start} to {end - 1}")
            self._logged.discard("fetch")
        except (SourceError, LogError, OSError) as err:
            if self._once("fetch"):
                log.warning("cannot fetch the producer's missing entries from %s: %s (tried"
                            " again every %g s; passed over after %g s)", url, err,
                            FILL_EVERY_S, JUMP_WITH_URL_AFTER_S)
            accepted += self._pass_over(follower, JUMP_WITH_URL_AFTER_S)
        finally:
            if source is not None:
                source.close()
        return accepted

    def _pass_over(self, follower: Follower, after_s: float) -> list[Accepted]:
        """Entries that did not come and cannot be fetched: once a gap has lasted
        ``after_s``, go on from the newest checkpoint's tail (``Follower.jump``)."""
        now = time.monotonic()
        if self._gap_since is None:
            self._gap_since = now
            return []
        if now - self._gap_since < after_s:
            return []
        offer = follower.jump()
        if offer.accepted:
            self._gap_since = None
            log.warning("%s", offer.problem)
        elif self._once("gap"):
            gap = follower.missing()
            log.warning("the producer's entries from %d on did not come over MQTT and"
                        " cannot be fetched: waiting for its next checkpoint and tail to go"
                        " on from", gap[0] if gap else follower.size)
        return offer.accepted

    def _report(self, offer: Offer) -> None:
        if offer.problem and self._once(offer.kind):
            log.warning("the producer's log: %s (dropped; further ones of this kind are not"
                        " logged until an entry is accepted again)", offer.problem)

    def _once(self, kind: str) -> bool:
        if kind in self._logged:
            return False
        self._logged.add(kind)
        return True
