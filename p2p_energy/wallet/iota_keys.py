"""Ed25519 keys and addresses of today's IOTA network (no network, no PyOTA).

A secret is given in one of the two forms IOTA's own tools use:

- a private key in bech32, ``iotaprivkey1...``, as ``iota keytool export`` prints
  it: the 33 bytes ``flag || key``, flag 0x00 meaning Ed25519;
- a BIP-39 mnemonic of 12 or 24 English words, derived with SLIP-10 for
  Ed25519 along IOTA's path m/44'/4218'/0'/0'/0' (coin type 4218).

The address is ``0x`` + hex of blake2b-256(public key). For Ed25519, and only
for it, no scheme-flag byte goes into that hash (``SignatureScheme::
update_hasher_with_flag`` in iota-types); the other schemes prefix their flag.

No function here ever puts a secret into an exception message. PyNaCl is
imported on first use of a key, not at import.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

PRIVATE_KEY_HRP = "iotaprivkey"
ED25519_FLAG = 0x00
COIN_TYPE = 4218
DERIVATION_PATH = (44, COIN_TYPE, 0, 0, 0)  # every step hardened
_HARDENED = 0x8000_0000
ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{64}")

# -- bech32 (BIP-173; IOTA's private keys use bech32, not bech32m) ----------------

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values: list[int]) -> int:
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i, g in enumerate(_GENERATOR):
            if (top >> i) & 1:
                chk ^= g
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _regroup(data: bytes | list[int], from_bits: int, to_bits: int, pad: bool) -> list[int]:
    acc = bits = 0
    out: list[int] = []
    top = (1 << to_bits) - 1
    for value in data:
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & top)
    if pad and bits:
        out.append((acc << (to_bits - bits)) & top)
    elif not pad and (bits >= from_bits or (acc << (to_bits - bits)) & top):
        raise ValueError("has padding bits that bech32 forbids")
    return out


def bech32_encode(hrp: str, data: bytes) -> str:
    """``data`` as bech32 text with human-readable part ``hrp`` (lower case)."""
    words = _regroup(data, 8, 5, pad=True)
    check = _polymod(_hrp_expand(hrp) + words + [0] * 6) ^ 1
    words += [(check >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[w] for w in words)


def bech32_decode(text: str, hrp: str) -> bytes:
    """The bytes of bech32 ``text`` whose human-readable part must be ``hrp``.

    Raises:
        ValueError: not bech32, another prefix, or a wrong checksum (the message
            never repeats ``text``, which may be a secret).
    """
    if text.lower() != text and text.upper() != text:
        raise ValueError("mixes upper and lower case")
    text = text.lower()
    sep = text.rfind("1")
    if sep < 1 or text[:sep] != hrp:
        raise ValueError(f"does not start with {hrp}1")
    try:
        words = [_CHARSET.index(c) for c in text[sep + 1:]]
    except ValueError:
        raise ValueError("has a character bech32 does not use") from None
    if len(words) < 6 or _polymod(_hrp_expand(hrp) + words) != 1:
        raise ValueError("has a wrong bech32 checksum (a typo?)")
    return bytes(_regroup(words[:-6], 5, 8, pad=False))


# -- BIP-39 and SLIP-10 -----------------------------------------------------------

def _mnemonic_words(text: str) -> list[str]:
    return unicodedata.normalize("NFKD", text).lower().split()


def check_mnemonic(words: list[str]) -> None:
    """Raise ``ValueError`` unless ``words`` are 12 or 24 BIP-39 English words with a
    valid checksum. The message names a word's position, never the word."""
    from .bip39_english import WORDS

    if len(words) not in (12, 24):
        raise ValueError(f"has {len(words)} words; a mnemonic has 12 or 24")
    index = {w: i for i, w in enumerate(WORDS)}
    bits = 0
    for n, w in enumerate(words, 1):
        if w not in index:
            raise ValueError(f"has word {n} outside the BIP-39 English word list")
        bits = bits << 11 | index[w]
    total = len(words) * 11
    check_bits = total // 33
    entropy = (bits >> check_bits).to_bytes((total - check_bits) // 8, "big")
    if hashlib.sha256(entropy).digest()[0] >> (8 - check_bits) != bits & ((1 << check_bits) - 1):
        raise ValueError("has a wrong checksum (a word mistyped or out of order?)")


def mnemonic_seed(words: list[str], passphrase: str = "") -> bytes:
    """The 64-byte BIP-39 seed: PBKDF2-HMAC-SHA512, 2048 rounds."""
    salt = unicodedata.normalize("NFKD", "mnemonic" + passphrase).encode()
    return hashlib.pbkdf2_hmac("sha512", " ".join(words).encode(), salt, 2048)


def slip10_ed25519(seed: bytes, path: tuple[int, ...] = DERIVATION_PATH) -> bytes:
    """The Ed25519 private key at ``path`` (every step hardened), SLIP-10."""
    digest = hmac.new(b"ed25519 seed", seed, hashlib.sha512).digest()
    key, chain = digest[:32], digest[32:]
    for step in path:
        data = b"\x00" + key + (step | _HARDENED).to_bytes(4, "big")
        digest = hmac.new(chain, data, hashlib.sha512).digest()
        key, chain = digest[:32], digest[32:]
    return key


# -- keys and addresses -----------------------------------------------------------

def address_of(public_key: bytes) -> str:
    """``0x`` + hex blake2b-256(public key): an Ed25519 key's IOTA address (no flag byte)."""
    return "0x" + hashlib.blake2b(public_key, digest_size=32).hexdigest()


def address_bytes(address: str) -> bytes:
    """The 32 bytes of a ``0x`` + 64 hex address.

    Raises:
        ValueError: not ``0x`` followed by 64 hex digits.
    """
    if not isinstance(address, str) or not ADDRESS_RE.fullmatch(address):
        raise ValueError("must be an IOTA address: 0x followed by 64 hex digits")
    return bytes.fromhex(address[2:])


@dataclass(frozen=True)
class Keypair:
    """An Ed25519 key pair. ``repr`` never shows the private key."""

    private_key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.private_key) != 32:
            raise ValueError("an Ed25519 private key is 32 bytes")

    def _signing_key(self) -> Any:
        from nacl.signing import SigningKey
        key = self.__dict__.get("_sk")
        if key is None:
            key = SigningKey(self.private_key)
            object.__setattr__(self, "_sk", key)
        return key

    @property
    def public_key(self) -> bytes:
        return bytes(self._signing_key().verify_key)

    @property
    def address(self) -> str:
        return address_of(self.public_key)

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        return self._signing_key().sign(message).signature

    def export(self) -> str:
        """The private key as ``iotaprivkey1...`` (for ``wallet new`` to write to a file)."""
        return bech32_encode(PRIVATE_KEY_HRP, bytes([ED25519_FLAG]) + self.private_key)


def generate() -> Keypair:
    """A new key pair from the operating system's random source."""
    return Keypair(os.urandom(32))


def parse_secret(text: str) -> Keypair:
    """The key pair of an ``iotaprivkey1...`` key or a 12/24-word BIP-39 mnemonic.

    Raises:
        ValueError: neither form, or a malformed one; the message never holds the secret.
    """
    text = text.strip()
    if text.lower().startswith(PRIVATE_KEY_HRP + "1"):
        try:
            raw = bech32_decode(text, PRIVATE_KEY_HRP)
        except ValueError as err:
            raise ValueError(f"is not a valid iotaprivkey: it {err}") from None
        if len(raw) != 33:
            raise ValueError(f"is not a valid iotaprivkey: it holds {len(raw)} bytes, not 33")
        if raw[0] != ED25519_FLAG:
            raise ValueError(f"is a key of scheme flag {raw[0]}; only Ed25519 keys (flag 0)"
                             " are supported")
        return Keypair(raw[1:])
    words = _mnemonic_words(text)
    if len(words) < 2:
        raise ValueError("is neither an iotaprivkey1... private key nor a 12- or 24-word"
                         " mnemonic")
    try:
        check_mnemonic(words)
    except ValueError as err:
        raise ValueError(f"is not a valid mnemonic: it {err}") from None
    return Keypair(slip10_ed25519(mnemonic_seed(words)))


def secret_fragments(text: str) -> list[str]:
    """The pieces of a secret that must never appear in a log line (for redaction)."""
    text = text.strip()
    if text.lower().startswith(PRIVATE_KEY_HRP):
        return [text]
    return [text, " ".join(text.split())]
