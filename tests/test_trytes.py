"""The light checksum code against PyOTA itself, which is the reference."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2p_energy.core import trytes

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # PyOTA imports pkg_resources, which warns
    from iota import Address

tryte_strings = st.text(alphabet=trytes.TRYTE_ALPHABET, min_size=81, max_size=81)


@given(tryte_strings)
@settings(max_examples=300)
def test_checksum_matches_pyota(address: str) -> None:
    expected = str(Address(address).with_valid_checksum())
    assert trytes.with_checksum(address) == expected
    assert trytes.address_checksum(address) == expected[81:]
    assert trytes.has_valid_checksum(expected)


@pytest.mark.parametrize("address", ["9" * 81, "M" * 81, "N" * 81, "Z" * 81, "A" * 81])
def test_checksum_matches_pyota_at_the_extremes(address: str) -> None:
    # All-M and all-N are the largest and smallest integers 243 trits can hold.
    assert trytes.with_checksum(address) == str(Address(address).with_valid_checksum())


@given(tryte_strings, st.integers(0, 89), st.sampled_from(trytes.TRYTE_ALPHABET))
@settings(max_examples=200)
def test_a_changed_tryte_breaks_the_checksum(address: str, where: int, char: str) -> None:
    good = trytes.with_checksum(address)
    bad = good[:where] + char + good[where + 1:]
    assert trytes.has_valid_checksum(bad) == Address(bad).is_checksum_valid()
    if where != 80:  # Kerl ignores the top trit of tryte 80 (the 243rd trit), as PyOTA does
        assert trytes.has_valid_checksum(bad) == (bad == good)


@given(st.text(alphabet=trytes.TRYTE_ALPHABET, max_size=60).map(lambda s: s[: len(s) // 3 * 3]))
def test_trits_round_trip(s: str) -> None:
    trits = trytes.trytes_to_trits(s)
    assert len(trits) == 3 * len(s)
    assert set(trits) <= {-1, 0, 1}
    assert trytes.trits_to_trytes(trits) == s


def test_known_tryte_values() -> None:
    assert trytes.trytes_to_trits("9ABMNZ") == [0, 0, 0, 1, 0, 0, -1, 1, 0, 1, 1, 1,
                                              -1, -1, -1, -1, 0, 0]


@pytest.mark.parametrize(("s", "length", "ok"), [
    ("", None, True), ("ABC9", None, True), ("ABC9", 4, True), ("ABC9", 5, False),
    ("abc", None, False), ("AB C", None, False), ("ÄBC", None, False),
    (b"ABC", None, False), (None, None, False), (123, 3, False),
])
def test_is_trytes(s: object, length: int | None, ok: bool) -> None:
    assert trytes.is_trytes(s, length) is ok


@pytest.mark.parametrize("bad", ["", "A" * 80, "A" * 82, "a" * 81, "A" * 91])
def test_checksum_rejects_what_is_not_an_address(bad: str) -> None:
    with pytest.raises(ValueError):
        trytes.address_checksum(bad)
    assert not trytes.has_valid_checksum(bad)


def test_bad_tryte_is_named() -> None:
    with pytest.raises(ValueError, match="'a'"):
        trytes.trytes_to_trits("Aa")


def test_config_validation_does_not_import_pyota() -> None:
    # Start-up must stay fast on a Pi: the config path may not pull in `iota`.
    code = ("import sys, p2p_energy.config, p2p_energy.core.trytes; "
            "sys.exit('iota' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
