"""Keys of today's IOTA network: bech32, BIP-39, SLIP-10, addresses; judged by the SDK."""

from __future__ import annotations

import hashlib

import pytest

from p2p_energy.wallet import iota_keys
from p2p_energy.wallet.bip39_english import WORDS
from p2p_energy.wallet.iota_keys import Keypair, parse_secret

from support.sdk_judge import judge

MNEMONIC_12 = "legal winner thank year wave sausage worth useful legal winner thank yellow"
MNEMONIC_24 = " ".join(["abandon"] * 23 + ["art"])
ABOUT_12 = " ".join(["abandon"] * 11 + ["about"])


def test_word_list_is_the_published_one() -> None:
    text = "\n".join(WORDS) + "\n"
    assert len(WORDS) == 2048
    assert hashlib.sha256(text.encode()).hexdigest() == \
        "2f5eed53a4727b4bf8880d8f3f199efc90e58503646d9ff8eff3a2ed3b24dbda"


def test_bip39_seed_matches_the_published_vector() -> None:
    seed = iota_keys.mnemonic_seed(ABOUT_12.split(), "TREZOR")
    assert seed.hex() == ("c55257c360c07c72029aebc1b53c05ed0362ada38ead3e3e9efa3708e534955"
                          "31f09a6987599d18264c1e1c92f2cf141630c7a3c4ab7c81b2f001698e7463b04")


def test_slip10_matches_the_published_vector() -> None:
    # SLIP-0010, test vector 1 for ed25519: seed 000102...0f.
    seed = bytes(range(16))
    assert iota_keys.slip10_ed25519(seed, ()).hex() == \
        "2b4be7f19ee27bbf30c667b642d5f4aa69fd169872f8fc3059c08ebae2eb19e7"
    assert iota_keys.slip10_ed25519(seed, (0,)).hex() == \
        "68e0fe46dfb67e368c75379acec591dad19df3cde26e63b93a8e704f1dade7a3"


def test_bech32_round_trip_and_published_vectors() -> None:
    assert iota_keys.bech32_decode("A12UEL5L", "a") == b""
    assert iota_keys.bech32_decode(
        "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw", "abcdef") == bytes(
        iota_keys._regroup(list(range(32)), 5, 8, pad=False))
    key = iota_keys.generate()
    text = key.export()
    assert text.startswith("iotaprivkey1") and len(text) == 71
    assert parse_secret(text).private_key == key.private_key
    assert parse_secret(text.upper()).private_key == key.private_key


@pytest.mark.usefixtures("iota_sdk_judge")
def test_keys_and_mnemonics_give_the_sdks_addresses() -> None:
    keys = [iota_keys.generate() for _ in range(3)]
    secrets = [k.export() for k in keys] + [MNEMONIC_12, MNEMONIC_24, ABOUT_12]
    verdicts = judge(secrets=secrets)["secrets"]
    ours = [parse_secret(s).address for s in secrets]
    assert [v.get("address") for v in verdicts] == ours
    assert [k.address for k in keys] == ours[:3]
    # The address hashes the bare public key (no flag byte) ...
    assert ours[0] == "0x" + hashlib.blake2b(keys[0].public_key, digest_size=32).hexdigest()
    # ... which is not what a flag-prefixed hash (Sui's rule) would give.
    assert ours[0] != "0x" + hashlib.blake2b(b"\0" + keys[0].public_key,
                                             digest_size=32).hexdigest()


def test_mnemonic_whitespace_and_case_do_not_matter() -> None:
    assert parse_secret("  " + MNEMONIC_12.upper().replace(" ", "  \n") + "\n").address \
        == parse_secret(MNEMONIC_12).address


@pytest.mark.parametrize(("secret", "reason"), [
    (MNEMONIC_12.replace("yellow", "year"), "wrong checksum"),
    (MNEMONIC_12.replace("thank", "thnak", 1), "has word 3 outside the BIP-39"),
    (MNEMONIC_12 + " legal", "has 13 words"),
    ("correct horse", "has 2 words"),
    ("hunter2", "neither an iotaprivkey1"),
])
def test_bad_mnemonics_are_refused_without_showing_them(secret: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as err:
        parse_secret(secret)
    for word in set(secret.split()) - {"legal", "winner"}:
        assert word not in str(err.value)


def test_bad_private_keys_are_refused_without_showing_them() -> None:
    good = iota_keys.generate().export()
    flipped = good[:-1] + ("q" if good[-1] != "q" else "p")
    secp = iota_keys.bech32_encode("iotaprivkey", b"\x01" + bytes(32))
    short = iota_keys.bech32_encode("iotaprivkey", b"\x00" + bytes(31))
    for bad, reason in [(flipped, "checksum"), (secp, "only Ed25519"),
                        (short, "32 bytes, not 33"), (good + "q", "checksum")]:
        with pytest.raises(ValueError, match=reason) as err:
            parse_secret(bad)
        assert good[12:40] not in str(err.value)


def test_repr_never_shows_the_private_key() -> None:
    key = Keypair(bytes(range(32)))
    assert bytes(range(32)).hex() not in repr(key) and "private" not in repr(key)


def test_addresses_are_checked() -> None:
    assert iota_keys.address_bytes("0x" + "aB" * 32) == bytes([0xAB] * 32)
    for bad in ["", "0x" + "a" * 63, "a" * 64, "0x" + "g" * 64, "0x" + "a" * 66]:
        with pytest.raises(ValueError, match="0x followed by 64 hex digits"):
            iota_keys.address_bytes(bad)
