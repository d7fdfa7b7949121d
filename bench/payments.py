"""Does payment number 200 cost more than payment number 1? Ours vs PyOTA's default.

Times one payment of 100 IOTA to the receiver, prepare + send (sign, node PoW at
MWM 2, broadcast, store), against the legacy test node on 127.0.0.1:

- ours: ``PyotaWallet.prepare(value, input_index)`` + ``attach`` + ``send``
  (one ``getBalances``, no scan of the seed);
- PyOTA's default ``send_transfer(inputs=None)``: it scans the seed's addresses
  from index 0 (``findTransactions``/``wereAddressesSpentFrom`` per address,
  generating each address) to find the inputs, and again for the change address.

Payment 1: address #0 holds the funds (one deposit transaction on it). Payment 200:
the seed's history looks like 199 earlier payments: addresses #0-#198 each have a
transaction on the node and are spent from, #199 has one and holds the funds.
That history is made with ``history_transaction`` in worker processes (real
addresses, real PoW) and stored with ``LegacyNode.add_history``; signing 199 real
bundles would take minutes and is not what is measured. Each of the four payments
gets a fresh node and a fresh wallet (cold address cache, as after a restart).
Ours is timed 5 times each (median; payments 1 and 200 interleaved so that load
drift cancels: signing and PoW work vary from bundle to bundle by ±0.3 s), PyOTA's
default once (its payment 200 takes ~1.5 min).
Goal: ours, payment 200 / payment 1 <= 1.2. Prints figures, asserts nothing.

    uv run python bench/payments.py          # about 3 minutes on 2 cores
    uv run python bench/payments.py --history 50

``--backend iota`` measures today's IOTA network instead (``IotaWallet``, our
JSON-RPC test node on 127.0.0.1, a few seconds):

- CPU time (``time.process_time``) to build and sign one payment: BCS
  TransactionData, digest, intent signature, payload JSON, from coins already
  fetched (median and worst of 200; goal <= 50 ms), and the first one in a fresh
  process (PyNaCl import and key set-up included);
- wall time of a whole ``prepare`` (getCoins, gas price, dry run, sign) over HTTP;
- fee / value of one payment at the default ``wallet.min_payment``, with the
  fee from a dry run on the test node, whose gas schedule copies the network's
  (1,000 computation units at 1,000 nanos, 988,000 nanos of storage per object,
  99 % rebated).

    uv run python bench/payments.py --backend iota
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from p2p_energy.wallet.pyota_wallet import PyotaWallet, import_iota

from support.legacy_node import LegacyNode, address_of, history_transaction
from support.node_fixtures import PAYER_SEED, RECEIVER, TEST_MWM, wallet_config

FUNDS_IOTA = 1_000_000
REPEAT = 5  # ours is cheap: median of 5 (signing and PoW work vary from bundle to bundle)
VALUE_IOTA = 100


def _history_entry(index: int) -> tuple[str, tuple[str, str]]:
    """Worker: the seed's address at ``index`` and an attached transaction on it."""
    address = address_of(PAYER_SEED, index)
    return address, history_transaction(address, TEST_MWM)


def make_history(count: int) -> list[tuple[str, tuple[str, str]]]:
    """Addresses #0..#count-1 with one transaction each, made on all cores."""
    with multiprocessing.Pool() as pool:
        return pool.map(_history_entry, range(count), chunksize=4)


def node_with(history: list[tuple[str, tuple[str, str]]], payment_number: int) -> LegacyNode:
    """A node on which the seed has made ``payment_number - 1`` payments before."""
    used = history[:payment_number]
    node = LegacyNode(mwm=TEST_MWM)
    node.add_history([tx for _, tx in used], spent=[a for a, _ in used[:-1]])
    node.fund(used[-1][0], FUNDS_IOTA)
    return node.start()


def pay_ours(node: LegacyNode, index: int) -> tuple[float, float]:
    """(prepare s, attach + send s) with an explicit input index."""
    wallet = PyotaWallet(wallet_config(node, timeout_s=60.0))
    try:
        start = time.perf_counter()
        bundle = wallet.prepare(VALUE_IOTA, index)
        signed = time.perf_counter()
        wallet.send(wallet.attach(bundle))
        return signed - start, time.perf_counter() - signed
    finally:
        wallet.close()


def pay_pyota_default(node: LegacyNode) -> tuple[float, int]:
    """(seconds, input index used) for ``send_transfer`` finding inputs itself."""
    iota = import_iota()
    api = iota.Iota(iota.HttpAdapter(node.url, timeout=60.0), seed=PAYER_SEED)
    transfer = iota.ProposedTransaction(address=iota.Address(RECEIVER), value=VALUE_IOTA,
                                        tag=iota.Tag("ENERGYTRADE"))
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # httpx's data= deprecation inside PyOTA
        result: Any = api.send_transfer(transfers=[transfer], depth=3,
                                        min_weight_magnitude=TEST_MWM)
    elapsed = time.perf_counter() - start
    spent = [str(tx.address) for tx in result["bundle"] if tx.value < 0]
    return elapsed, [a for a, _ in HISTORY].index(spent[0])


def pay_once(number: int, run: Any) -> tuple[Any, int]:
    """Run one payment on a fresh node; return what ``run`` returned and the API calls."""
    node = node_with(HISTORY, number)
    try:
        before = len(node.requests)
        detail = run(node)
        node.confirm_all()
        if node.rejected or node.balance(RECEIVER) != VALUE_IOTA:
            print(f"  payment {number} did not go through: {node.rejected}")
        return detail, len(node.requests) - before
    finally:
        node.stop()


def measure_ours(late: int) -> dict[int, float]:
    """Median time of our payment 1 and payment ``late``, interleaved so load drift cancels."""
    times: dict[int, list[float]] = {1: [], late: []}
    splits: dict[int, list[str]] = {1: [], late: []}
    calls = 0
    for _ in range(REPEAT):
        for number in (1, late):
            (prepare_s, send_s), calls = pay_once(number, lambda n, i=number - 1: pay_ours(n, i))
            times[number].append(prepare_s + send_s)
            splits[number].append(f"{prepare_s:.2f}+{send_s:.2f}")
    for number, each in times.items():
        print(f"{'ours':>13} payment {number:>3}: {statistics.median(each):6.2f} s median "
              f"(prepare+send: {', '.join(splits[number])}; {calls} API calls)", flush=True)
    return {n: statistics.median(t) for n, t in times.items()}


def measure_default(number: int) -> float:
    (elapsed, index), calls = pay_once(number, pay_pyota_default)
    print(f"{'send_transfer':>13} payment {number:>3}: {elapsed:6.2f} s  (found input #{index}; "
          f"{calls} API calls)", flush=True)
    return elapsed


HISTORY: list[tuple[str, tuple[str, str]]] = []


def bench_iota() -> None:
    """Today's IOTA network: CPU per build+sign, a whole prepare, fee / value."""
    import base64
    import json
    import subprocess

    from p2p_energy import backends
    from p2p_energy.wallet import iota_tx
    from p2p_energy.wallet.iota_wallet import NANOS_PER_UNIT

    from support.iota_fixtures import FUNDS_NANOS, PAYER_KEY, iota_wallet
    from support.iota_node import IotaNode

    first = subprocess.run([sys.executable, "-c", _FIRST_SIGN], capture_output=True, text=True,
                           cwd=Path(__file__).resolve().parent.parent, check=True)
    print(f"first build+sign in a fresh process: {float(first.stdout):.1f} ms CPU "
          "(PyNaCl import and key set-up included)")
    min_payment = backends.backend("iota").min_payment
    with IotaNode() as node:
        node.fund(PAYER_KEY.address, FUNDS_NANOS)
        wallet = iota_wallet(node)
        coins = wallet.coins()
        price = wallet.reference_gas_price()
        cpu_ms = []
        for _ in range(200):
            start = time.process_time()
            tx = wallet._build(min_payment * NANOS_PER_UNIT, coins, price, 3_000_000)
            json.dumps({"tx_bytes": base64.b64encode(tx).decode(),
                        "signature": iota_tx.sign_transaction(PAYER_KEY, tx),
                        "digest": iota_tx.transaction_digest(tx)})
            cpu_ms.append((time.process_time() - start) * 1000)
        print(f"build+sign one payment: {statistics.median(cpu_ms):.2f} ms CPU median, "
              f"{max(cpu_ms):.2f} ms worst of {len(cpu_ms)} (goal <= 50 ms)")
        walls = []
        for _ in range(20):
            start = time.perf_counter()
            wallet.prepare(min_payment, 0)
            walls.append((time.perf_counter() - start) * 1000)
        print(f"whole prepare (getCoins, gas price, dry run, sign; node on 127.0.0.1, "
              f"in this process): {statistics.median(walls):.1f} ms wall median")
        fee = wallet.estimate_fee_nanos(min_payment)
        value = min_payment * NANOS_PER_UNIT
        print(f"default min_payment {min_payment} units = {value / 1e9:g} IOTA; fee {fee} nanos"
              f" = {fee / 1e9:.6f} IOTA; fee / value = {100 * fee / value:.3f} % (goal <= 1 %)")


_FIRST_SIGN = """
import time
start = time.process_time()
from p2p_energy.wallet import iota_keys, iota_tx
key = iota_keys.Keypair(bytes(32))
coin = iota_tx.ObjectRef("0x" + "11" * 32, 1, iota_tx.b58encode(bytes(32)))
tx = iota_tx.transfer_bytes(sender=iota_keys.address_bytes(key.address), receiver=bytes(32),
                            amount_nanos=10**8, gas_coins=[coin], gas_price=1000,
                            gas_budget=3 * 10**6)
iota_tx.sign_transaction(key, tx)
print((time.process_time() - start) * 1000)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--history", type=int, default=200,
                        help="the later payment's number (default 200)")
    parser.add_argument("--backend", choices=("pyota", "iota"), default="pyota",
                        help="which wallet to measure (default pyota)")
    args = parser.parse_args()
    if args.backend == "iota":
        bench_iota()
        return
    import_iota()
    started = time.perf_counter()
    HISTORY[:] = make_history(args.history)
    print(f"history: {args.history} addresses with a transaction each, made in "
          f"{time.perf_counter() - started:.0f} s (MWM {TEST_MWM}, node PoW in pure Python)",
          flush=True)
    late = args.history
    ours = measure_ours(late)
    default_1 = measure_default(1)
    default_n = measure_default(late)
    print(f"ratio payment {late} / payment 1: ours {ours[late] / ours[1]:.2f} (goal <= 1.2), "
          f"send_transfer(inputs=None) {default_n / default_1:.2f}")
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
