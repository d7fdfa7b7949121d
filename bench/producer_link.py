"""What following the producer's signed log costs a consumer, on a loopback Mosquitto.

anna's producer meter (``role = "producer"``) publishes her log; bob's consumer
follows it (``[producer]``) and dave's does not (his rounds are priced from his own
channel, as before the link). All three are ``p2p-energy run`` processes with
replay sensors and the dry-run wallet, on one Mosquitto with the README's
passwords and ACL (tests/support/link_pair.py). Printed, not asserted:

- CPU per round: each consumer process's user + system time (``/proc/<pid>/stat``,
  whole process: metering, recorder, payer, and for bob the MQTT client and the
  link's thread) over the rounds both recorded after a warm-up, per round; the
  added CPU is bob's minus dave's. anna's is shown for comparison.
- Bytes on MQTT per round, as a subscriber on ``p2p-energy/anna/log/#`` received
  them: each entry, checkpoint and tail message's payload and topic, and the MQTT 3.1.1
  PUBLISH packet that carries them (fixed header, topic length, packet id), per
  entry anna logged.
- Latency: from the end of anna's round (her entry's ``end_utc_ms``) to bob's round
  of that slot being priced (the timestamp of his "round N priced from producer"
  log line, written right after the ledger commit): median, 90th percentile, max,
  over the rounds after the warm-up (the first is late by a round: start-up).

    uv run python bench/producer_link.py                   # 60 rounds of 0.5 s, ~40 s
    uv run python bench/producer_link.py --rounds 30 --round-s 1
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import paho.mqtt.client as paho

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from p2p_energy.core.entries import FROM_PRODUCER

from support import kernel_clock
from support.link_pair import PASSWORDS, ROOT, Street
from support.mosquitto_broker import wait_until

TICK_S = 1 / os.sysconf("SC_CLK_TCK")
PRICED = re.compile(r"^(\S+ \S+) INFO +p2p_energy\.runtime\.daemon: round (\d+) priced from ")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S  # utime, stime (fields 14, 15)


class Counter:
    """A subscriber counting the bytes of anna's log messages, by kind."""

    def __init__(self, port: int) -> None:
        # messages, payload bytes, topic bytes
        self.bytes = {"entry": [0, 0, 0], "checkpoint": [0, 0, 0], "tail": [0, 0, 0]}
        self.lock = threading.Lock()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-counter")
        self.client.username_pw_set("bob", PASSWORDS["bob"])
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"{ROOT}/#", qos=1)
        self.client.loop_start()

    def _on_message(self, _c: object, _u: object, msg: paho.MQTTMessage) -> None:
        kind = msg.topic.rsplit("/", 1)[1]
        kind = kind if kind in ("checkpoint", "tail") else "entry"
        with self.lock:
            counts = self.bytes[kind]
            counts[0] += 1
            counts[1] += len(msg.payload)
            counts[2] += len(msg.topic.encode())

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish_packet_bytes(topic_bytes: int, payload_bytes: int) -> int:
    """An MQTT 3.1.1 QoS 1 PUBLISH on the wire: fixed header (1 byte and the remaining
    length's 1-4), topic length (2), topic, packet id (2), payload."""
    remaining = 2 + topic_bytes + 2 + payload_bytes
    return 1 + (1 if remaining < 128 else 2 if remaining < 16384 else 3) + remaining


def priced_at(log: Path) -> dict[int, float]:
    """Round id: when its "priced from" line was written (epoch s; the log's local time)."""
    out = {}
    for line in log.read_text().splitlines():
        m = PRICED.match(line)
        if m:
            out[int(m[2])] = datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return out


def run(rounds: int, round_s: float, workdir: Path) -> None:
    why = kernel_clock.synchronise()  # anna's entries price rounds only when it is
    if why:
        raise SystemExit(f"the kernel's clock must be synchronised for anna's entries: {why}")
    street = Street(workdir, round_s=round_s)
    counter = None
    try:
        anna = street.producer("anna", "0,0,400")  # bob's own channel agrees
        bob = street.consumer("bob", anna.verifier_key, "0,100,400")
        dave = street.consumer("dave", anna.verifier_key, "0,100,400")
        dave.cfg.write_text(re.sub(r'verifier_key = "[^"]*"', 'verifier_key = ""',
                                   dave.cfg.read_text()))  # not linked: his own channel
        counter = Counter(street.broker.port)
        for meter in (bob, dave):
            street.start(meter)
        wait_until("consumers metering", lambda: bob.rounds() and dave.rounds(), 30)
        street.start(anna)
        warm = 4  # rounds: start-up (imports, first connect) is not a round's cost
        wait_until("warm-up", lambda: sum(1 for r in bob.priced() if r[4] == FROM_PRODUCER)
                   >= warm, 60)
        procs = {m.name: m.proc for m in (anna, bob, dave)}
        start_cpu = {n: cpu_s(p.pid) for n, p in procs.items()}
        start_rounds = {m.name: len(m.rounds()) for m in (bob, dave)}
        start_entries = len(anna.entries())
        wait_until("the rounds", lambda: len(bob.rounds()) >= start_rounds["bob"] + rounds,
                   rounds * round_s * 3 + 30)
        end_cpu = {n: cpu_s(p.pid) for n, p in procs.items()}
        made = {m.name: len(m.rounds()) - start_rounds[m.name] for m in (bob, dave)}
        made["anna"] = len(anna.entries()) - start_entries
        wait_until("bob's last rounds priced", lambda: len(
            [r for r in bob.rounds() if r[3]]) <= 2, 30)
        for meter in (bob, dave, anna):
            street.stop(meter)
        time.sleep(0.3)  # the last messages reach the counter
    finally:
        if counter is not None:
            counter.close()
        street.close()

    per_round = {n: (end_cpu[n] - start_cpu[n]) / made[n] * 1000 for n in made}
    entries = len(anna.entries())
    productions = anna.productions()
    priced = priced_at(bob.log)
    latency = sorted(priced[r[0]] - productions[r[5]].end_utc_ms / 1000
                     for r in bob.priced() if r[4] == FROM_PRODUCER and r[0] in priced
                     and r[0] > start_rounds["bob"])  # after the warm-up, as the CPU

    print(f"rounds of {round_s:g} s; CPU over {made['bob']} rounds of bob's after {warm}"
          f" warm-up rounds; /proc resolution {TICK_S * 1000:g} ms")
    print(f"{'figure':44} {'value':>12}")
    print(f"{'CPU per round, bob (linked)':44} {per_round['bob']:>9.2f} ms")
    print(f"{'CPU per round, dave (not linked)':44} {per_round['dave']:>9.2f} ms")
    print(f"{'CPU per round added by the link':44} {per_round['bob'] - per_round['dave']:>9.2f} ms")
    print(f"{'CPU per round, anna (producer, publishing)':44} {per_round['anna']:>9.2f} ms")
    total_app = total_wire = 0
    for kind, (count, payload, topic) in counter.bytes.items():
        if not count:
            continue
        wire = sum(publish_packet_bytes(topic // count, payload // count) for _ in range(count))
        total_app += payload + topic
        total_wire += wire
        print(f"{kind + ' message: payload + topic':44} {payload / count:>6.0f} +"
              f" {topic / count:>3.0f} B  ({count} received)")
    print(f"{'MQTT per round: payload + topic':44} {total_app / entries:>9.0f} B")
    print(f"{'MQTT per round: PUBLISH packets (3.1.1)':44} {total_wire / entries:>9.0f} B")
    if latency:
        q90 = latency[min(len(latency) - 1, round(0.9 * (len(latency) - 1)))]
        print(f"{'round end -> priced: median':44} {statistics.median(latency) * 1000:>9.0f} ms")
        print(f"{'round end -> priced: 90th percentile':44} {q90 * 1000:>9.0f} ms")
        print(f"{'round end -> priced: max':44} {latency[-1] * 1000:>9.0f} ms"
              f"  ({len(latency)} rounds)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--round-s", type=float, default=0.5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-link-") as tmp:
        run(args.rounds, args.round_s, Path(tmp))


if __name__ == "__main__":
    main()
