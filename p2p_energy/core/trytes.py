"""Trytes and the IOTA address checksum, without importing PyOTA.

Config validation runs at every start-up and must stay fast, so this module
re-implements the one piece of Kerl it needs (the 9-tryte address checksum) on
the small ``sha3`` C module instead of importing the ``iota`` package.

Kerl, as IOTA defines it: 243 balanced trits (little-endian, the last one forced
to 0) are read as one signed integer, written as 48 big-endian two's-complement
bytes, and hashed with Keccak-384; the digest is read back the same way into
243 trits, the last one again forced to 0. An address checksum is the last 27
trits (9 trytes) of the Kerl hash of the 81-tryte address.
"""

from __future__ import annotations

from collections.abc import Sequence

from sha3 import keccak_384

TRYTE_ALPHABET = "9ABCDEFGHIJKLMNOPQRSTUVWXYZ"
ADDRESS_TRYTES = 81
CHECKSUM_TRYTES = 9
SEED_TRYTES = 81

_TRITS_PER_HASH = 243
_BYTES_PER_HASH = 48
_ALPHABET_SET = frozenset(TRYTE_ALPHABET)


def is_trytes(s: object, length: int | None = None) -> bool:
    """True if ``s`` is a str of trytes (``9`` and capital ``A``-``Z``).

    ``length``: the exact number of trytes required; ``None`` accepts any
    length, including the empty string.
    """
    if not isinstance(s, str):
        return False
    if length is not None and len(s) != length:
        return False
    return set(s) <= _ALPHABET_SET


def trytes_to_trits(trytes: str) -> list[int]:
    """Three balanced trits (-1, 0, 1) per tryte, least significant first.

    Raises:
        ValueError: ``trytes`` holds a character outside the tryte alphabet.
    """
    trits: list[int] = []
    for char in trytes:
        value = TRYTE_ALPHABET.find(char)
        if value < 0:
            raise ValueError(f"not a tryte: {char!r}")
        if value > 13:  # 'N'..'Z' stand for -13..-1
            value -= 27
        for _ in range(3):
            trit = (value + 1) % 3 - 1
            trits.append(trit)
            value = (value - trit) // 3
    return trits


def trits_to_trytes(trits: Sequence[int]) -> str:
    """The inverse of ``trytes_to_trits``; ``len(trits)`` must be a multiple of 3."""
    if len(trits) % 3:
        raise ValueError("the number of trits must be a multiple of 3")
    chars = []
    for i in range(0, len(trits), 3):
        value = trits[i] + 3 * trits[i + 1] + 9 * trits[i + 2]
        chars.append(TRYTE_ALPHABET[value % 27])
    return "".join(chars)


def _trits_to_int(trits: Sequence[int]) -> int:
    value = 0
    for trit in reversed(trits):
        value = value * 3 + trit
    return value


def _int_to_trits(value: int, count: int) -> list[int]:
    trits = []
    for _ in range(count):
        trit = (value + 1) % 3 - 1  # balanced remainder; Python's % keeps it exact for value < 0
        trits.append(trit)
        value = (value - trit) // 3
    return trits


def kerl_hash(trits: Sequence[int]) -> list[int]:
    """Kerl over exactly one 243-trit chunk: the 243-trit hash IOTA computes.

    Raises:
        ValueError: ``trits`` is not 243 long.
    """
    if len(trits) != _TRITS_PER_HASH:
        raise ValueError(f"Kerl here takes exactly {_TRITS_PER_HASH} trits")
    chunk = list(trits)
    chunk[-1] = 0  # Kerl ignores the last trit so that 242 trits always fit in 48 bytes
    data = _trits_to_int(chunk).to_bytes(_BYTES_PER_HASH, "big", signed=True)
    digest = keccak_384(data).digest()
    out = _int_to_trits(int.from_bytes(digest, "big", signed=True), _TRITS_PER_HASH)
    out[-1] = 0
    return out


def address_checksum(address: str) -> str:
    """The 9-tryte checksum of an 81-tryte IOTA address (a 90-tryte one is cut to 81).

    Raises:
        ValueError: ``address`` is not 81 or 90 trytes.
    """
    if not (is_trytes(address, ADDRESS_TRYTES) or is_trytes(address, ADDRESS_TRYTES
                                                              + CHECKSUM_TRYTES)):
        raise ValueError("an IOTA address is 81 trytes, or 90 with its checksum")
    digest = kerl_hash(trytes_to_trits(address[:ADDRESS_TRYTES]))
    return trits_to_trytes(digest[-3 * CHECKSUM_TRYTES:])


def with_checksum(address: str) -> str:
    """The 90-tryte form of an 81- or 90-tryte address, with the correct checksum."""
    return address[:ADDRESS_TRYTES] + address_checksum(address)


def has_valid_checksum(address: str) -> bool:
    """True if ``address`` is 90 trytes whose last 9 are the checksum of the first 81."""
    if not is_trytes(address, ADDRESS_TRYTES + CHECKSUM_TRYTES):
        return False
    return address[ADDRESS_TRYTES:] == address_checksum(address)
