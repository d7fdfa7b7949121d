"""Rules that involve more than one key, and the forms only a backend knows.

Each rule raises a one-line ``ConfigError`` naming the key it blames.
"""

from __future__ import annotations

import dataclasses

from .. import backends
from ..core.pricing import INT64_MAX, SUMS_LAST_S, most_owed_iota_per_s, most_owed_niota
from .model import Config
from .secrets import beside_config, file_value, seed_file_path
from .text import error
from .wallet import tryte_seed


def check_together(c: Config) -> None:
    """Rules that involve more than one key."""
    m, src = c.meter, c.source
    if m.consumer_channel == m.producer_channel:
        raise error("must differ from meter.consumer_channel", path=src,
                     key="meter.producer_channel", value=m.producer_channel)
    if m.sensor == "replay" and not m.replay_file:
        raise error('is required when meter.sensor = "replay"', path=src,
                     key="meter.replay_file", value=m.replay_file)
    if c.round.length_s < m.sample_interval_s:
        raise error(f"must be at least meter.sample_interval_s ({m.sample_interval_s:g})",
                     path=src, key="round.length_s", value=c.round.length_s)
    if c.wallet.seed and c.wallet.seed_file:
        raise error("set wallet.seed or wallet.seed_file, not both", path=src,
                     key="wallet.seed_file",
                     value=file_value(seed_file_path(c), c.wallet.seed_file))
    if c.mqtt.password_file and not c.mqtt.username:
        raise error("needs mqtt.username (MQTT sends no password without a user name)",
                     path=src, key="mqtt.password_file",
                     value=file_value(beside_config(c, c.mqtt.password_file),
                                       c.mqtt.password_file))
    if c.mqtt.ca_file and not c.mqtt.tls:
        raise error('is only used with broker = "mqtts://..."', path=src,
                     key="mqtt.ca_file", value=c.mqtt.ca_file)
    check_link(c)
    check_amounts(c)


def check_link(c: Config) -> None:
    """``[producer]``: a consumer's link to its producer's meter."""
    p, src = c.producer, c.source
    if not p.linked:
        return
    if c.role == "producer":
        raise error("is a consumer's setting: a producer's meter prices nothing", path=src,
                     key="producer.verifier_key", value=p.verifier_key)
    if not p.topic:
        raise error('is required with producer.verifier_key: where the producer publishes'
                     ' its log, "<topic_prefix>/<its MQTT user>/log" (its check shows it)',
                     path=src, key="producer.topic", value=p.topic)


def with_backend_forms(c: Config) -> Config:
    """``c`` with the receiver and seed in the backend's form (its descriptor's rules).

    Raises:
        ConfigError: a receiver or seed of a form the backend does not take.
    """
    w, src = c.wallet, c.source
    backend = backends.backend(w.backend)
    try:
        receiver = backend.receiver(w.receiver) if w.receiver else ""
    except ValueError as err:
        raise error(str(err), path=src, key="wallet.receiver", value=w.receiver) from None
    rule = backend.seed_rule(w.seed) if w.seed else ""
    if rule:
        raise error(rule, path=src, key="wallet.seed")
    if receiver == w.receiver:
        return c
    return dataclasses.replace(c, wallet=dataclasses.replace(w, receiver=receiver))


def seed_rule(seed: str) -> str:
    """"" for a legacy seed given in ``wallet.seed`` (or none), else the rule it breaks."""
    try:
        tryte_seed(seed)
    except ValueError as err:
        return str(err)
    return ""


def check_amounts(c: Config) -> None:
    """Every amount the ledger stores, and every sum of them, must fit SQLite's INTEGER.

    One round owes at most max_power_mw x length_s x max_price; whole IOTA paid
    over a century of such rounds must fit too. (The total owed in nano-IOTA is
    kept as exact decimal text, so it has no bound.)
    """
    m, p, src = c.meter, c.price, c.source
    hint = "lower price.max_price, round.length_s or meter.max_power_mw"
    per_round = most_owed_niota(m.max_power_mw, c.round.length_s, p.max_price)
    if per_round > INT64_MAX:
        raise error(f"with meter.max_power_mw = {m.max_power_mw:g} and round.length_s ="
                     f" {c.round.length_s:g}, one round could owe {per_round:.3g} nano-IOTA,"
                     f" more than the ledger holds ({INT64_MAX:.3g}): {hint}", path=src,
                     key="price.max_price", value=p.max_price)
    per_century = most_owed_iota_per_s(m.max_power_mw, p.max_price) * SUMS_LAST_S
    if per_century > INT64_MAX:
        raise error(f"with meter.max_power_mw = {m.max_power_mw:g}, a century of rounds"
                     f" could owe {per_century:.3g} IOTA, more than the ledger's sums hold"
                     f" ({INT64_MAX:.3g}): {hint}", path=src, key="price.max_price",
                     value=p.max_price)

