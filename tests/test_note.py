"""core.note against Go's golang.org/x/mod/sumdb/note and OpenSSL 3's Ed25519."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import traceback
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2p_energy.core import note
from p2p_energy.errors import KeyFormatError, NoteError

from support import go_sumdb

# The example of Go's note package documentation (sumdb/note/note.go).
GO_SIGNER = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = ("If you think cryptography is the answer to your problem,\n"
           "then you don't know what your problem is.\n")
GO_NOTE = (GO_TEXT + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1"
           "FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n").encode()

SEED = bytes(range(32))
ORIGIN = "p2p-energy.example/meter-7f3a"
ROOT = hashlib.sha256(b"a root").digest()


@pytest.fixture(scope="module")
def judge() -> go_sumdb.GoSumdb:
    return go_sumdb.judge()


@pytest.fixture(scope="module")
def signer() -> note.Signer:
    return note.parse_signer(note.signer_key(ORIGIN, SEED))


def signed_checkpoint(signer: note.Signer, size: int = 42) -> bytes:
    return note.sign_checkpoint(note.Checkpoint(ORIGIN, size, ROOT), signer)


# -- Go's published example ------------------------------------------------------------


def test_go_documentation_example_signed_byte_for_byte() -> None:
    signer = note.parse_signer(GO_SIGNER)
    assert signer.key() == GO_SIGNER
    assert signer.verifier.key() == GO_VERIFIER
    assert note.sign_note(GO_TEXT, signer) == GO_NOTE
    opened = note.open_note(GO_NOTE, note.parse_verifier(GO_VERIFIER))
    assert opened.text == GO_TEXT and opened.others == ()


def test_key_id_is_sha256_of_name_newline_type_and_key() -> None:
    verifier = note.parse_verifier(GO_VERIFIER)
    raw = hashlib.sha256(b"PeterNeumann\n\x01" + verifier.public_key).digest()
    assert verifier.key_id == int.from_bytes(raw[:4], "big") == 0xc74f20a3


# -- Go as the judge -------------------------------------------------------------------


def test_go_opens_our_signed_checkpoint_with_our_verifier_key(judge: go_sumdb.GoSumdb,
                                                              signer: note.Signer) -> None:
    message = signed_checkpoint(signer)
    answer = judge.open(signer.verifier.key(), message)
    assert answer["err"] == ""
    assert answer["text"] == f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()}\n"
    assert answer["sigs"] == [{"name": ORIGIN, "hash": signer.key_id}]


def test_go_generates_the_same_keys_from_the_same_seed(judge: go_sumdb.GoSumdb) -> None:
    for seed in (SEED, bytes(32), hashlib.sha256(b"x").digest()):
        keys = judge.keygen(ORIGIN, seed)
        assert note.signer_key(ORIGIN, seed) == keys["skey"]
        assert note.parse_signer(keys["skey"]).verifier.key() == keys["vkey"]


def test_we_open_what_go_signs(judge: go_sumdb.GoSumdb) -> None:
    keys = judge.keygen("go.example/log", hashlib.sha256(b"go").digest())
    text = "go.example/log\n7\n" + base64.b64encode(ROOT).decode() + "\n"
    answer = judge.sign(keys["skey"], text)
    verifier = note.parse_verifier(keys["vkey"])
    checkpoint = note.open_checkpoint(answer["msg"].encode(), verifier)
    assert (checkpoint.origin, checkpoint.size, checkpoint.root_hash) == ("go.example/log", 7,
                                                                          ROOT)
    assert answer["msg"].encode() == note.sign_note(text, note.parse_signer(keys["skey"]))


def key_variants(skey: str, vkey: str) -> tuple[list[str], list[str]]:
    """Mangled signer and verifier keys: what Go refuses, we must refuse."""
    name, id_hex, key_b64 = vkey.split("+", 2)
    s_b64 = skey.split("+", 4)[4]
    bad_b64 = key_b64[:-2] + ("B=" if key_b64[-2] != "B" else "C=")  # other key, same ID
    verifiers = [vkey, f"{name}+{id_hex.upper()}+{key_b64}", "", name, f"{name}+{id_hex}",
                 f"{name}+{id_hex}+", f"+{id_hex}+{key_b64}", f"{name}+{id_hex[:7]}+{key_b64}",
                 f"{name}+0x{id_hex[2:]}+{key_b64}", f"{name}+{id_hex}+{bad_b64}",
                 f"{name}+{id_hex}+{key_b64[:-1]}", f"{name}+{id_hex}+B{key_b64[1:]}",
                 f"{name}+{id_hex}+" + base64.b64encode(b"\x01" + bytes(31)).decode(),
                 f"{name} x+{id_hex}+{key_b64}", f"{name}+{id_hex}+{key_b64} ",
                 f" {vkey}", f"{vkey}\n", f"{name}+{id_hex}+{key_b64}+extra"]
    signers = [skey, f"PRIVATE+KEY+{name}+{id_hex.upper()}+{s_b64}", "", "PRIVATE+KEY",
               f"PRIVATE+key+{name}+{id_hex}+{s_b64}", f"KEY+PRIVATE+{name}+{id_hex}+{s_b64}",
               f"PRIVATE+KEY+{name}+{id_hex}", f"PRIVATE+KEY++{id_hex}+{s_b64}",
               f"PRIVATE+KEY+{name}+00000000+{s_b64}",
               f"PRIVATE+KEY+{name}+{id_hex}+{s_b64[:-1]}",
               f"PRIVATE+KEY+{name}+{id_hex}+B{s_b64[1:]}",
               f"PRIVATE+KEY+{name}+{id_hex}+{key_b64}",
               f"PRIVATE+KEY+{name}\u00a0+{id_hex}+{s_b64}", f"{skey}\n", f"{skey} "]
    return verifiers, signers


def test_keys_go_refuses_we_refuse(judge: go_sumdb.GoSumdb) -> None:
    skey = note.signer_key(ORIGIN, SEED)
    vkey = note.parse_signer(skey).verifier.key()
    verifiers, signers = key_variants(skey, vkey)
    answer = judge.keys(verifiers, signers)
    for key, go_err in zip(verifiers, answer["verifiers"], strict=True):
        if go_err:
            with pytest.raises(KeyFormatError):
                note.parse_verifier(key)
    for key, go_err in zip(signers, answer["signers"], strict=True):
        if go_err:
            with pytest.raises(KeyFormatError):
                note.parse_signer(key)
    # And what we accept, Go accepts too: the original keys, and upper-case key IDs.
    assert answer["verifiers"][:2] == ["", ""] and answer["signers"][:2] == ["", ""]
    assert note.parse_verifier(verifiers[1]).key() == vkey
    assert note.parse_signer(signers[1]).key() == skey


NAMES = ["a", "sum.golang.org", "p2p-energy/meter:1", "µ", "zwsp\u200bname", "feff\ufeff",
         "mongol\u180e", "\U0001f600", "a b", "a\tb", "a\u00a0b", "a\u0085b", "a\u2028b",
         "a\u3000b", "a\u1680b", "a\u202fb", "a+b", ""]


def test_key_names_as_go_judges_them(judge: go_sumdb.GoSumdb) -> None:
    """Every name we refuse, Go refuses; every name we accept, Go accepts."""
    skeys, vkeys, ours = [], [], []
    for name in NAMES:
        try:
            note.check_key_name(name)
            ours.append(True)
        except KeyFormatError:
            ours.append(False)
        # Build the strings by hand so that Go also sees the names we refuse.
        seed_b64 = base64.b64encode(b"\x01" + SEED).decode()
        public_key = note.signer_from_seed("x", SEED).verifier.public_key
        key_id = note.key_id(name, public_key)
        skeys.append(f"PRIVATE+KEY+{name}+{key_id:08x}+{seed_b64}")
        vkeys.append(f"{name}+{key_id:08x}+"
                     + base64.b64encode(b"\x01" + public_key).decode())
    answer = judge.keys(vkeys, skeys)
    for name, accepted, go_v, go_s in zip(NAMES, ours, answer["verifiers"], answer["signers"],
                                          strict=True):
        assert accepted == (go_v == "") == (go_s == ""), (name, go_v, go_s)


def malformed_notes(good: bytes) -> dict[str, bytes]:
    text, _, line = good.decode().rpartition("\n\n")
    name, b64 = line[2:-1].split(" ")
    return {
        "control character": good.replace(b"\n42\n", b"\n42\r\n"),
        "not UTF-8": good.replace(b"42", b"4\xff"),
        "no blank line": good.replace(b"\n\n", b"\n"),
        "no final newline": good[:-1],
        "hyphen, not em dash": (text + "\n\n- " + line[2:]).encode(),
        "two spaces": (text + f"\n\n—  {name} {b64}\n").encode(),
        "bad base64": (text + f"\n\n— {name} {b64[:-1]}\n").encode(),
        "short signature": (text + f"\n\n— {name} AAAAAA==\n").encode(),
        "no name": (text + f"\n\n— {b64}\n").encode(),
        "empty signature line": (text + f"\n\n{line}\n").encode(),
        "wrong signature": (text + f"\n\n— {name} {b64[:10]}{'A' if b64[10] != 'A' else 'B'}"
                            f"{b64[11:]}\n").encode(),
        "signed text changed": good.replace(b"\n42\n", b"\n43\n"),
        "only another key's signature": (text + "\n\n— other AAAAAAA=\n").encode(),
        "101 signatures": (text + "\n\n" + "— other AAAAAAA=\n" * 100 + line).encode(),
    }


def test_malformed_notes_refused_by_go_and_by_us(judge: go_sumdb.GoSumdb,
                                                 signer: note.Signer) -> None:
    for what, message in malformed_notes(signed_checkpoint(signer)).items():
        assert judge.open(signer.verifier.key(), message)["err"], what
        with pytest.raises(NoteError):
            note.open_checkpoint(message, signer.verifier)


def test_other_keys_signatures_are_kept_but_not_trusted(judge: go_sumdb.GoSumdb,
                                                        signer: note.Signer) -> None:
    other = note.signer_from_seed("witness.example", bytes(32))
    good = signed_checkpoint(signer)
    cosigned = good + note.sign_checkpoint(note.Checkpoint(ORIGIN, 42, ROOT),
                                           other).split(b"\n\n")[1]
    assert judge.open(signer.verifier.key(), cosigned)["unverified"] == [
        {"name": "witness.example", "hash": other.key_id}]
    opened = note.open_note(cosigned, signer.verifier)
    assert [s.name for s in opened.others] == ["witness.example"]
    # A note signed only by another key is not ours, whatever it says.
    only_other = note.sign_checkpoint(note.Checkpoint(ORIGIN, 42, ROOT), other)
    with pytest.raises(NoteError, match="not signed by"):
        note.open_checkpoint(only_other, signer.verifier)
    # Same name, other key: untrusted, not "ours with a bad signature".
    impostor = note.signer_from_seed(ORIGIN, bytes(32))
    with pytest.raises(NoteError, match="not signed by"):
        note.open_checkpoint(note.sign_checkpoint(note.Checkpoint(ORIGIN, 42, ROOT), impostor),
                             signer.verifier)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_flipped_bit_in_a_signed_checkpoint_is_refused(data: st.DataObject) -> None:
    signer = note.parse_signer(note.signer_key(ORIGIN, SEED))
    message = bytearray(signed_checkpoint(signer))
    bit = data.draw(st.integers(0, len(message) * 8 - 1))
    message[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(NoteError):
        note.open_checkpoint(bytes(message), signer.verifier)


# -- checkpoints -----------------------------------------------------------------------


def test_checkpoint_text_is_origin_size_root() -> None:
    checkpoint = note.Checkpoint(ORIGIN, 525_600, ROOT)
    assert checkpoint.text() == f"{ORIGIN}\n525600\n{base64.b64encode(ROOT).decode()}\n"
    assert note.parse_checkpoint(checkpoint.text()) == checkpoint


@pytest.mark.parametrize("text", [
    f"{ORIGIN}\n042\n{base64.b64encode(ROOT).decode()}\n",
    f"{ORIGIN}\n-1\n{base64.b64encode(ROOT).decode()}\n",
    f"{ORIGIN}\n+1\n{base64.b64encode(ROOT).decode()}\n",
    f"{ORIGIN}\n\u0664\u0662\n{base64.b64encode(ROOT).decode()}\n",  # Arabic-Indic digits
    f"{ORIGIN}\n{2**63}\n{base64.b64encode(ROOT).decode()}\n",
    f"{ORIGIN}\n42\n{base64.b64encode(ROOT[:31]).decode()}\n",
    f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()[:-2]}=\n",
    f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()}\nextension line\n",
    f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()}",
    f"\n42\n{base64.b64encode(ROOT).decode()}\n",
])
def test_checkpoint_parsing_is_strict(text: str) -> None:
    with pytest.raises(NoteError):
        note.parse_checkpoint(text)


def test_checkpoint_of_another_log_is_refused(signer: note.Signer) -> None:
    message = note.sign_checkpoint(note.Checkpoint("other.example/log", 1, ROOT), signer)
    with pytest.raises(NoteError, match="not 'p2p-energy"):
        note.open_checkpoint(message, signer.verifier)
    assert note.open_checkpoint(message, signer.verifier, origin="other.example/log").size == 1


# -- keys: errors and secrets ----------------------------------------------------------


def test_signer_key_errors_never_show_the_key() -> None:
    skey = note.signer_key(ORIGIN, SEED)
    secret = skey.split("+")[4]
    mangled = [skey[:-1], skey.replace("PRIVATE", "PRIVAT"), skey.replace(ORIGIN, "a b"),
               skey.replace(ORIGIN, secret), f"PRIVATE+KEY+{secret}", skey[:-3] + "AAA",
               skey.replace("+" + skey.split("+")[3] + "+", "+00000000+")]
    for key in mangled:
        with pytest.raises(KeyFormatError) as caught:
            note.parse_signer(key)
        printed = "".join(traceback.format_exception(caught.value))
        assert secret[:8] not in printed and secret[-8:] not in printed, printed
    signer = note.parse_signer(skey)
    assert secret not in repr(signer) and SEED.hex() not in repr(signer)


def test_bad_names_and_seeds_when_making_a_key() -> None:
    with pytest.raises(KeyFormatError, match="contains a space"):
        note.signer_key("my meter", SEED)
    with pytest.raises(KeyFormatError, match="32 bytes, not 31"):
        note.signer_key(ORIGIN, SEED[:31])
    with pytest.raises(KeyFormatError, match="empty"):
        note.signer_key("", SEED)


def test_small_order_public_key_is_refused() -> None:
    weak = bytes([1]) + bytes(31)  # the identity point: verifies forged signatures elsewhere
    vkey = f"x+{note.key_id('x', weak):08x}+" + base64.b64encode(b"\x01" + weak).decode()
    with pytest.raises(KeyFormatError, match="not a usable Ed25519"):
        note.parse_verifier(vkey)


# -- OpenSSL 3 as the judge of single Ed25519 signatures -------------------------------

ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")  # RFC 8410 SubjectPublicKeyInfo
ED25519_PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")  # RFC 8410 PKCS #8


@pytest.fixture(scope="module")
def openssl() -> str:
    path = shutil.which("openssl")
    if path is None:
        pytest.fail("openssl missing: the Ed25519 judge of these tests (apt-get install openssl)")
    return path


def pem(label: str, der: bytes) -> bytes:
    body = base64.encodebytes(der).decode()
    return f"-----BEGIN {label}-----\n{body}-----END {label}-----\n".encode()


def test_openssl_verifies_our_checkpoint_signature(openssl: str, signer: note.Signer,
                                                   tmp_path: Path) -> None:
    message = signed_checkpoint(signer)
    text, _, line = message.decode().rpartition("\n\n")
    blob = base64.b64decode(line.split(" ")[2])
    (tmp_path / "pub.pem").write_bytes(
        pem("PUBLIC KEY", ED25519_SPKI_PREFIX + signer.verifier.public_key))
    (tmp_path / "text").write_bytes((text + "\n").encode())
    (tmp_path / "sig").write_bytes(blob[4:])
    (tmp_path / "changed").write_bytes((text + "\n").replace("\n42\n", "\n43\n").encode())
    verify = [openssl, "pkeyutl", "-verify", "-pubin", "-inkey", str(tmp_path / "pub.pem"),
              "-rawin", "-sigfile", str(tmp_path / "sig"), "-in"]
    assert subprocess.run([*verify, str(tmp_path / "text")], capture_output=True).returncode == 0
    assert subprocess.run([*verify, str(tmp_path / "changed")],
                          capture_output=True).returncode != 0


def test_openssl_signs_exactly_as_we_do(openssl: str, signer: note.Signer,
                                        tmp_path: Path) -> None:
    """Ed25519 is deterministic: OpenSSL with our seed makes our signature, bit for bit."""
    (tmp_path / "key.pem").write_bytes(pem("PRIVATE KEY", ED25519_PKCS8_PREFIX + SEED))
    text = note.Checkpoint(ORIGIN, 42, ROOT).text().encode()
    (tmp_path / "text").write_bytes(text)
    done = subprocess.run([openssl, "pkeyutl", "-sign", "-inkey", str(tmp_path / "key.pem"),
                           "-rawin", "-in", str(tmp_path / "text")], capture_output=True,
                          check=True)
    assert done.stdout == signer.sign(text)
    assert signer.verifier.verify(text, done.stdout)
