"""``[producer]``: a consumer priced from its neighbour's own meter (issue 17).

When ``verifier_key`` is set, this consumer's rounds are priced from the
production figures the producer's meter signs (``role = "producer"`` on the
neighbour's Pi), which arrive over the ``[mqtt]`` broker; its own producer
channel, if still wired to the panel, becomes a cross-check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.link import AFTER_WAIT, ON_DISPUTE
from ..core.note import parse_verifier
from ..errors import KeyFormatError
from .fields import boolean, choice, float_in, refuse_url_secrets, setting, string
from .serving import mqtt_topic


def _verifier_key(v: Any) -> str:
    v = string(v)
    if v:
        try:
            parse_verifier(v)
        except KeyFormatError as err:
            raise ValueError(f"is not a verifier key ({err}): paste the line the producer's"
                             " 'p2p-energy log key' prints") from None
    return v


def _topic(v: Any) -> str:
    """"" (no link), or a topic as ``[mqtt]``'s are (``serving.mqtt_topic``)."""
    if string(v) == "":
        return v
    try:
        return mqtt_topic(v)
    except ValueError as err:
        raise ValueError(f'{err}, e.g. "p2p-energy/anna/log"') from None


def _log_url(v: Any) -> str:
    v = string(v)
    if v:
        if not v.startswith(("http://", "https://")):
            raise ValueError('must be the producer\'s serve address, e.g. "http://anna.lan:8080"')
        refuse_url_secrets(v, "give the plain address of the producer's serve")
    return v.rstrip("/")


@dataclass(frozen=True)
class ProducerConfig:
    """``[producer]``: whose signed figures price this consumer's rounds."""

    # The producer's verifier key ("p2p-energy log key" on its Pi); "" = no link: rounds
    # are priced from this meter's own producer channel, as before.
    verifier_key: str = setting("", _verifier_key)
    # Where the producer publishes its log: "<topic_prefix>/<its MQTT user>/log".
    topic: str = setting("", _topic)
    # The producer's serve (http://host:port): its entries this consumer missed (a broker
    # that lost them, the entries before this consumer first linked) are fetched there.
    log_url: str = setting("", _log_url)
    # How long a closed round waits for the producer's entry of its slot (seconds).
    wait_s: float = setting(300.0, float_in(0.0, 30 * 86400.0))
    # After wait_s: "wait" (keep waiting: nothing is owed until the figure comes) or
    # "own_channel" (price it from this meter's own producer channel).
    after_wait: str = setting("wait", choice(AFTER_WAIT))
    # This meter's producer channel is wired to the panel: compare it with the producer's.
    compare: bool = setting(True, boolean)
    # The band two INA3221s agree within (see README): |a - b| <= pct% of the larger + mw.
    tolerance_pct: float = setting(1.0, float_in(0.0, 100.0))
    tolerance_mw: float = setting(10.0, float_in(0.0, 1e6))
    # Outside the band: "producer" (its figure stands; the round is marked disputed) or
    # "own_channel" (this meter's figure prices the round; marked disputed).
    on_dispute: str = setting("producer", choice(ON_DISPUTE))

    @property
    def linked(self) -> bool:
        return bool(self.verifier_key)
