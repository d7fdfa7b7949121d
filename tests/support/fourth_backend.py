"""A throwaway fourth wallet backend for tests/test_architecture.py: a descriptor and a
wallet that records transfers, registered with one line (``backends.REGISTRY``)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from p2p_energy.config import int_in
from p2p_energy.wallet.base import (
    CONFIRMED,
    OK,
    Attachment,
    Backend,
    Position,
    Report,
    Signed,
    Status,
    Table,
    WalletCommand,
    address_command,
)

UNIT = "mTEST"


@dataclass(frozen=True)
class TestCoinConfig:
    confirmations: int = 1


class TestCoinWallet:
    backend = "test-coin"
    unit = UNIT

    def __init__(self, receiver: str) -> None:
        self.receiver = receiver
        self.sent: list[int] = []

    def prepare(self, value: int, input_index: int) -> Signed:
        return Signed(f"tc-{len(self.sent)}-{value}", "{}", value, input_index, input_index)

    def attach(self, signed: Signed) -> Attachment:
        return Attachment(signed.reference, signed.payload)

    def send(self, attachment: Attachment) -> None:
        self.sent.append(int(attachment.id.rsplit("-", 1)[1]))

    def status(self, signed: Signed, known: Any) -> Status:
        return Status(CONFIRMED, (signed.reference,))

    def promote(self, signed: Signed, known: Any) -> None: ...

    def describe(self) -> str:
        return "test coin"

    def close(self) -> None: ...


def _receiver(text: str) -> str:
    if not text.startswith("tc:"):
        raise ValueError("must start with tc:")
    return text


def _check(cfg: Any, report: Report, position: Position) -> None:
    report(OK, f"test coin: {cfg.wallet.testcoin.confirmations} confirmation(s), key index"
               f" {position.index}")


def _mint(_cfg: None, args: argparse.Namespace) -> str:
    return f"minted {args.amount} {UNIT}"


MINT = WalletCommand("mint", help="mint test coins", description="mint test coins",
                     run=_mint, needs_config=False,
                     arguments=lambda parser: parser.add_argument("amount", type=int))

BACKEND = Backend(
    name="test-coin", unit=UNIT, reference_key="tc_reference", node_url="http://127.0.0.1:1",
    min_payment=7, needs_receiver=True,
    receiver=_receiver,
    seed_rule=lambda s: "", opener=lambda cfg: lambda: TestCoinWallet(cfg.wallet.receiver),
    check=_check, commands=(address_command(lambda cfg: "tc:me"), MINT),
    table=Table("testcoin", TestCoinConfig, {"confirmations": int_in(1, 10)}))
