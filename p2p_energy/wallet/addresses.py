"""The two forms of an IOTA address, as a config gives them: the legacy network's (81
trytes, or 90 with a checksum) and today's (0x + 64 hex digits). Which form a backend
takes is its descriptor's rule."""

from __future__ import annotations

import re

from ..core.trytes import has_valid_checksum

TRYTE_ALPHABET = frozenset("9ABCDEFGHIJKLMNOPQRSTUVWXYZ")
HEX_RULE = "must be an IOTA address: 0x followed by 64 hex digits"
TRYTE_RULE = "must be an IOTA address: 81 trytes, or 90 with its checksum (A-Z, 9)"
_HEX_ADDRESS = re.compile(r"0x[0-9a-fA-F]{64}")


def iota_address(v: str) -> str:
    """An address of either form, today's in lower case ("" stays "").

    Raises:
        ValueError: neither form (the message is the rule), or a wrong checksum.
    """
    if v.startswith(("0x", "0X")):
        if not _HEX_ADDRESS.fullmatch(v):
            raise ValueError(HEX_RULE)
        return v.lower()
    if v and (len(v) not in (81, 90) or not set(v) <= TRYTE_ALPHABET):
        raise ValueError(TRYTE_RULE)
    if len(v) == 90 and not has_valid_checksum(v):
        # Never suggest the right checksum: it exists to catch a mistyped address.
        raise ValueError("has a wrong checksum (its last 9 trytes): check the address for a typo")
    return v


def is_hex(address: str) -> bool:
    return address.startswith("0x")
