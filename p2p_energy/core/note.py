"""Signed notes, tlog checkpoints and Ed25519 keys in Go's note formats: pure, no I/O.

What is implemented:

- C2SP signed-note (https://c2sp.org/signed-note): a note is UTF-8 text with no
  ASCII control character but newline, ending in a newline; then a blank line;
  then signature lines ``— <key name> <base64(key ID || signature)>``. Key
  names are non-empty, without Unicode White_Space and without "+". An Ed25519
  key (signature type 0x01) has key ID = the first 4 bytes of
  SHA-256(key name || 0x0A || 0x01 || public key). Lines signed by other keys
  are allowed and kept, but never trusted.
- C2SP tlog-checkpoint (https://c2sp.org/tlog-checkpoint): the note text is the
  origin, the tree size in decimal and the base64 root hash, one line each.
- Go ``golang.org/x/mod/sumdb/note`` key strings: signer
  ``PRIVATE+KEY+<name>+<8 hex key ID>+<base64(0x01 || 32-byte seed)>``,
  verifier ``<name>+<8 hex key ID>+<base64(0x01 || public key)>``.

Parsing refuses everything Go's ``note.NewSigner``, ``note.NewVerifier`` and
``note.Open`` refuse, and a little more: base64 that does not re-encode to the
same text, public keys that are not valid Ed25519 points, names with control
characters, checkpoints with extension lines or a tree size with leading zeros.
No message ever contains any part of a signer key string.

Randomness is passed in: ``signer_key(name, os.urandom(32))`` at the edge.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field

import nacl.bindings
import nacl.exceptions
import nacl.signing

from ..errors import KeyFormatError, NoteError, NoteSignatureError

ALG_ED25519 = 0x01  # C2SP signed-note signature type of Ed25519
SEED_SIZE = 32
PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
MAX_SIGNATURES = 100  # as Go's note.Open: a note with more is refused unread
SIGNATURE_PREFIX = "— "  # U+2014 EM DASH, then a space

# Unicode White_Space (PropList.txt), Go's unicode.IsSpace: never in a key name.
_WHITE_SPACE = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")
_TREE_SIZE = re.compile(r"0|[1-9][0-9]*")
MAX_TREE_SIZE = 2**63 - 1  # Go's int64, SQLite's INTEGER


# -- keys ------------------------------------------------------------------------------


def _control_free(text: str) -> bool:
    """No ASCII control character (U+0000..U+001F) other than newline."""
    return not any(c < " " and c != "\n" for c in text)


def check_key_name(name: str) -> None:
    """Refuse a key name C2SP signed-note does not allow (ValueError says why).

    Non-empty, well-formed UTF-8, no Unicode White_Space, no "+"; and here also
    no control character, which no note could carry.
    """
    if not name:
        raise KeyFormatError("key name is empty")
    if "+" in name:
        raise KeyFormatError(f"key name {name!r} contains '+'")
    if any(c in _WHITE_SPACE for c in name):
        raise KeyFormatError(f"key name {name!r} contains a space")
    if not _control_free(name) or not _utf8_encodable(name):
        raise KeyFormatError(f"key name {name!r} contains a control character or a lone"
                             " surrogate")


def _utf8_encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def key_id(name: str, public_key: bytes) -> int:
    """The Ed25519 key ID: SHA-256(name || 0x0A || 0x01 || public key), first 4 bytes (C2SP)."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode_strict(text: str) -> bytes | None:
    """Standard base64 with padding that re-encodes to exactly ``text``; None otherwise."""
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        return None
    return data if _b64(data) == text else None


@dataclass(frozen=True)
class Verifier:
    """An Ed25519 public key with its name and key ID: checks signatures."""

    name: str
    key_id: int
    public_key: bytes = field(repr=False)

    def key(self) -> str:
        """The Go note verifier key string ``<name>+<8 hex key ID>+<base64(0x01 || key)>``."""
        return f"{self.name}+{self.key_id:08x}+{_b64(bytes([ALG_ED25519]) + self.public_key)}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``message``."""
        if len(signature) != SIGNATURE_SIZE:
            return False
        try:
            nacl.signing.VerifyKey(self.public_key).verify(message, signature)
        except nacl.exceptions.BadSignatureError:
            return False
        return True


@dataclass(frozen=True)
class Signer:
    """An Ed25519 private key with its name and key ID: signs notes.

    The seed never appears in ``repr`` or in any message.
    """

    name: str
    key_id: int
    _seed: bytes = field(repr=False)
    _key: nacl.signing.SigningKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_key", nacl.signing.SigningKey(self._seed))

    @property
    def verifier(self) -> Verifier:
        """The public half, to hand to whoever checks the notes."""
        return Verifier(self.name, self.key_id, bytes(self._key.verify_key))

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message`` (RFC 8032)."""
        return self._key.sign(message).signature

    def key(self) -> str:
        """The Go note signer key string. Secret: for the key file only."""
        return (f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+"
                f"{_b64(bytes([ALG_ED25519]) + self._seed)}")


def signer_from_seed(name: str, seed: bytes) -> Signer:
    """The signer for ``name`` with this 32-byte Ed25519 seed (RFC 8032 private key)."""
    check_key_name(name)
    if len(seed) != SEED_SIZE:
        raise KeyFormatError(f"an Ed25519 seed has {SEED_SIZE} bytes, not {len(seed)}")
    public_key = bytes(nacl.signing.SigningKey(seed).verify_key)
    return Signer(name, key_id(name, public_key), seed)


def signer_key(name: str, seed: bytes) -> str:
    """A new signer key string for ``name``, as Go's ``note.GenerateKey`` writes it.

    ``seed``: 32 random bytes, e.g. ``os.urandom(32)`` at the edge. Raises
    KeyFormatError for a bad name or seed length.
    """
    return signer_from_seed(name, seed).key()


def _split_key(key: str, parts: int) -> list[str]:
    """Go's ``chop`` applied ``parts - 1`` times: split at the first "+" each time."""
    return key.split("+", parts - 1) if key.count("+") >= parts - 1 else []


def _key_fields(id_hex: str, key_b64: str, what: str) -> tuple[int, bytes]:
    """Check a key string's key ID text and key text; return (ID, key bytes).

    Messages name nothing of the key: this also reads signer keys.
    """
    key = _b64decode_strict(key_b64)
    if not _HEX8.fullmatch(id_hex) or key is None:
        raise KeyFormatError(f"malformed {what} key: want <name>+<8 hex digits>+<base64>")
    if len(key) != 1 + SEED_SIZE or key[0] != ALG_ED25519:
        raise KeyFormatError(f"{what} key is not an Ed25519 key (type 0x01, 32 bytes)")
    return int(id_hex, 16), key[1:]


def parse_verifier(key: str) -> Verifier:
    """Parse a Go note verifier key ``<name>+<8 hex key ID>+<base64(0x01 || key)>``.

    No surrounding white space. Raises KeyFormatError (a ValueError) naming
    what is wrong: the form, the name, the algorithm, a key that is no Ed25519
    point, a key ID that does not match.
    """
    parts = _split_key(key, 3)
    if not parts:
        raise KeyFormatError("malformed verifier key: want <name>+<8 hex digits>+<base64>")
    name, id_hex, key_b64 = parts
    check_key_name(name)
    claimed, public_key = _key_fields(id_hex, key_b64, "verifier")
    if claimed != key_id(name, public_key):
        raise KeyFormatError(f"verifier key {name!r}: key ID {id_hex} does not match the key")
    if not nacl.bindings.crypto_core_ed25519_is_valid_point(public_key):
        raise KeyFormatError(f"verifier key {name!r}: not a usable Ed25519 public key")
    return Verifier(name, claimed, public_key)


def parse_signer(key: str) -> Signer:
    """Parse a Go note signer key ``PRIVATE+KEY+<name>+<8 hex ID>+<base64(0x01 || seed)>``.

    No surrounding white space. Raises KeyFormatError; its message never
    contains any part of ``key`` (in a mangled key, even the "name" may be
    key material).
    """
    parts = _split_key(key, 5)
    if not parts or parts[0] != "PRIVATE" or parts[1] != "KEY":
        raise KeyFormatError("malformed signer key: want PRIVATE+KEY+<name>+<8 hex digits>"
                             "+<base64>")
    name, id_hex, key_b64 = parts[2:]
    try:
        check_key_name(name)
    except KeyFormatError:
        raise KeyFormatError("malformed signer key: the key name is empty or has a space,"
                             " '+' or a control character") from None
    claimed, seed = _key_fields(id_hex, key_b64, "signer")
    signer = signer_from_seed(name, seed)
    if signer.key_id != claimed:
        raise KeyFormatError("signer key: key ID does not match the key")
    return signer


# -- notes -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SignatureLine:
    """One signature line of a note: who claims to have signed, and the raw signature."""

    name: str
    key_id: int
    signature: bytes = field(repr=False)


@dataclass(frozen=True)
class Note:
    """A note whose signature by the verifier checked.

    ``others``: lines by keys the caller did not ask about. Allowed by the
    spec, kept for display, never trusted.
    """

    text: str
    others: tuple[SignatureLine, ...] = ()


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    if not _control_free(text) or not _utf8_encodable(text):
        raise NoteError("note text must be UTF-8 without control characters but newline")


def sign_note(text: str, signer: Signer) -> bytes:
    """The signed note: ``text``, a blank line, then ``— <name> <base64(ID || sig)>``.

    C2SP signed-note; the signature is over the UTF-8 bytes of ``text``
    (including its final newline). Raises NoteError for an unsignable text.
    """
    _check_text(text)
    message = text.encode()
    blob = signer.key_id.to_bytes(4, "big") + signer.sign(message)
    return message + f"\n{SIGNATURE_PREFIX}{signer.name} {_b64(blob)}\n".encode()


def _split_note(message: bytes) -> tuple[str, list[str]]:
    """(text, signature lines) of a note, refused as Go's ``note.Open`` refuses."""
    try:
        whole = message.decode("utf-8")
    except UnicodeDecodeError:
        raise NoteError("malformed note: not UTF-8") from None
    if not _control_free(whole):
        raise NoteError("malformed note: control character")
    split = whole.rfind("\n\n")
    if split < 0:
        raise NoteError("malformed note: no blank line before the signatures")
    text, block = whole[:split + 1], whole[split + 2:]
    if not block.endswith("\n"):
        raise NoteError("malformed note: no signature, or no newline after the last one")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"malformed note: more than {MAX_SIGNATURES} signatures")
    return text, lines


def _parse_signature_line(line: str) -> SignatureLine:
    if not line.startswith(SIGNATURE_PREFIX):
        raise NoteError("malformed note: a signature line must start with '— '")
    name, _, b64 = line[len(SIGNATURE_PREFIX):].partition(" ")
    blob = _b64decode_strict(b64)
    try:
        check_key_name(name)
    except KeyFormatError as e:
        raise NoteError(f"malformed signature line: {e}") from None
    if blob is None or len(blob) < 5:
        raise NoteError(f"malformed signature line by {name!r}: bad base64")
    return SignatureLine(name, int.from_bytes(blob[:4], "big"), blob[4:])


def open_note(message: bytes, verifier: Verifier) -> Note:
    """Parse a signed note and check its signature by ``verifier`` (C2SP signed-note).

    Every line claiming the verifier's name and key ID must verify; lines by
    other keys are returned in ``others``, unchecked. Raises NoteError when the
    note is malformed; NoteSignatureError (a NoteError) when it has no signature
    by the verifier, or a bad one.
    """
    text, lines = _split_note(message)
    mine, others = 0, []
    for sig in map(_parse_signature_line, lines):
        if (sig.name, sig.key_id) != (verifier.name, verifier.key_id):
            if sig not in others:
                others.append(sig)
            continue
        if not verifier.verify(text.encode(), sig.signature):
            raise NoteSignatureError(f"invalid signature by"
                                     f" {verifier.name}+{verifier.key_id:08x}")
        mine += 1
    if not mine:
        raise NoteSignatureError(f"note is not signed by"
                                 f" {verifier.name}+{verifier.key_id:08x}")
    return Note(text, tuple(others))


# -- checkpoints -----------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A log's state: origin, tree size, RFC 6962 root hash (C2SP tlog-checkpoint)."""

    origin: str
    size: int
    root_hash: bytes

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin or not _control_free(self.origin):
            raise NoteError(f"checkpoint origin {self.origin!r} must be one non-empty line")
        if isinstance(self.size, bool) or not 0 <= self.size <= MAX_TREE_SIZE:
            raise NoteError(f"checkpoint tree size {self.size!r} out of range")
        if len(self.root_hash) != 32:
            raise NoteError(f"checkpoint root hash has {len(self.root_hash)} bytes, not 32")

    def text(self) -> str:
        """The note text: the one place a checkpoint's signed bytes are made."""
        return f"{self.origin}\n{self.size}\n{_b64(self.root_hash)}\n"


def sign_checkpoint(checkpoint: Checkpoint, signer: Signer) -> bytes:
    """The signed checkpoint note, ready to store and publish."""
    return sign_note(checkpoint.text(), signer)


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint's note text: exactly origin, size and root hash lines.

    Refuses extension lines (this log never writes any), a size with leading
    zeros or beyond 2**63 - 1, and a root that is not canonical base64 of 32 bytes.
    """
    lines = text.split("\n")
    if len(lines) != 4 or lines[3] != "":
        raise NoteError("checkpoint must be exactly three lines: origin, size, root hash")
    origin, size_text, root_b64 = lines[:3]
    if not _TREE_SIZE.fullmatch(size_text) or int(size_text) > MAX_TREE_SIZE:
        raise NoteError(f"checkpoint tree size {size_text!r} is not a decimal number"
                        " without leading zeros")
    root = _b64decode_strict(root_b64)
    if root is None or len(root) != 32:
        raise NoteError(f"checkpoint root hash {root_b64!r} is not base64 of 32 bytes")
    return Checkpoint(origin, int(size_text), root)


def open_checkpoint(message: bytes, verifier: Verifier, origin: str | None = None) -> Checkpoint:
    """Check a signed checkpoint by ``verifier`` and parse it.

    ``origin``: the log expected, by default the verifier's key name. Raises
    NoteError when the note is malformed or no checkpoint; NoteSignatureError (a
    NoteError) when the key did not sign it, or signed another log's.
    """
    note = open_note(message, verifier)
    checkpoint = parse_checkpoint(note.text)
    expected = verifier.name if origin is None else origin
    if checkpoint.origin != expected:
        raise NoteSignatureError(f"checkpoint is of log {checkpoint.origin!r}, not"
                                 f" {expected!r}")
    return checkpoint


def peek_checkpoint(message: bytes) -> Checkpoint:
    """The checkpoint a signed note holds, its signatures NOT checked: for writing an
    export of a note checked elsewhere, never for trusting what it says.

    Raises NoteError when the note is malformed or holds no checkpoint.
    """
    text, lines = _split_note(message)
    for line in lines:
        _parse_signature_line(line)
    return parse_checkpoint(text)
