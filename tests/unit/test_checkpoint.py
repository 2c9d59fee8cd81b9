"""Checkpoints: real LE Sycamore and Google ParcelYard notes verify with the list keys,
other signature lines are ignored, and any change to the text or the log's signature fails."""

from __future__ import annotations

import base64
import contextlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given
from hypothesis import strategies as st
from tests.support.data import CT_FIXTURES
from tests.support.keys import spki_der

from certstream.core.checkpoint import (
    parse_checkpoint,
    rfc6962_key_id,
    sign_checkpoint,
    verify_checkpoint,
)
from certstream.core.sth import SignatureError
from certstream.errors import DecodeError

CHECKPOINTS = CT_FIXTURES / "static-ct" / "checkpoints"
SYCAMORE = (CHECKPOINTS / "sycamore2026h2.checkpoint").read_bytes()
PARCELYARD = (CHECKPOINTS / "parcelyard2026h2.checkpoint").read_bytes()
SYCAMORE_ORIGIN = "log.sycamore.ct.letsencrypt.org/2026h2"
PARCELYARD_ORIGIN = "parcelyard2026h2.prod.certificate.transparency.goog"
EM = "\u2014"


def _tiled_key(list_file: str, description: str) -> bytes:
    doc = json.loads((CT_FIXTURES / "loglists" / list_file).read_text())
    for op in doc["operators"]:
        for log in op.get("tiled_logs", []):
            if log["description"] == description:
                return base64.b64decode(log["key"])
    raise LookupError(description)


SYCAMORE_KEY = _tiled_key("google_log_list_v3_85.92.json", "Let's Encrypt 'Sycamore2026h2'")
PARCELYARD_KEY = _tiled_key("google_all_logs_list_v3_89.25.json", "Google 'ParcelYard2026h2' log")
REAL = [
    (SYCAMORE, SYCAMORE_ORIGIN, SYCAMORE_KEY, 993762193),
    (PARCELYARD, PARCELYARD_ORIGIN, PARCELYARD_KEY, 1587930800),
]
IDS = ["sycamore", "parcelyard"]


def _split(body: bytes) -> tuple[bytes, list[bytes]]:
    text, _, sigs = body.rpartition(b"\n\n")
    return text + b"\n\n", sigs.splitlines(keepends=True)


def _log_line_index(body: bytes, origin: str, key: bytes) -> int:
    """Which signature line is the log's RFC 6962 one, found from its key ID."""
    _, lines = _split(body)
    want = rfc6962_key_id(origin, key)
    for i, line in enumerate(lines):
        name, b64 = line.decode().rstrip("\n").split(" ")[1:]
        if name == origin and base64.b64decode(b64)[:4] == want:
            return i
    raise LookupError("no RFC 6962 line")


@pytest.mark.parametrize(("body", "origin", "key", "size"), REAL, ids=IDS)
def test_real_checkpoints_verify(body: bytes, origin: str, key: bytes, size: int) -> None:
    cp = verify_checkpoint(body, origin, key)
    assert cp.origin == origin and cp.size == size and len(cp.root_hash) == 32
    assert cp.timestamp is not None
    # Captured in 2026-10 (SOURCES.md): the signed timestamp says so too.
    assert 1790000000000 < cp.timestamp < 1795000000000
    assert len(cp.signatures) == 4
    assert cp.extensions == ()


def test_sycamore_line_inventory() -> None:
    cp = parse_checkpoint(SYCAMORE)
    assert cp.timestamp is None  # not verified yet
    names = [s.name for s in cp.signatures]
    assert names.count(SYCAMORE_ORIGIN) == 3 and "grease.invalid" in names
    assert max(len(s.sig) for s in cp.signatures) > 2400  # the ML-DSA line
    assert rfc6962_key_id(SYCAMORE_ORIGIN, SYCAMORE_KEY).hex() == "aee62413"
    assert rfc6962_key_id(PARCELYARD_ORIGIN, PARCELYARD_KEY).hex() == "93a78ae0"


@pytest.mark.parametrize(("body", "origin", "key", "size"), REAL, ids=IDS)
def test_any_changed_text_byte_fails(body: bytes, origin: str, key: bytes, size: int) -> None:
    text, _ = _split(body)
    for at in range(len(text) - 2):  # every byte of origin, size and root lines
        changed = bytearray(body)
        changed[at] ^= 0x01
        with pytest.raises(DecodeError):
            verify_checkpoint(bytes(changed), origin, key)


@pytest.mark.parametrize(("body", "origin", "key", "size"), REAL, ids=IDS)
def test_any_changed_log_signature_byte_fails(
    body: bytes, origin: str, key: bytes, size: int
) -> None:
    text, lines = _split(body)
    i = _log_line_index(body, origin, key)
    prefix, b64 = lines[i].rstrip(b"\n").rsplit(b" ", 1)
    raw = base64.b64decode(b64)
    for at in range(len(raw)):
        bad = bytearray(raw)
        bad[at] ^= 0x80
        line = prefix + b" " + base64.b64encode(bytes(bad)) + b"\n"
        with pytest.raises(DecodeError):
            verify_checkpoint(text + b"".join([*lines[:i], line, *lines[i + 1 :]]), origin, key)


@pytest.mark.parametrize(("body", "origin", "key", "size"), REAL, ids=IDS)
def test_other_lines_are_ignored(body: bytes, origin: str, key: bytes, size: int) -> None:
    text, lines = _split(body)
    i = _log_line_index(body, origin, key)
    others = [line for j, line in enumerate(lines) if j != i]
    # Damage every other line's signature, reorder, add a line: still the log's signature.
    damaged = []
    for line in others:
        prefix, b64 = line.rstrip(b"\n").rsplit(b" ", 1)
        raw = bytearray(base64.b64decode(b64))
        raw[-1] ^= 0xFF
        damaged.append(prefix + b" " + base64.b64encode(bytes(raw)) + b"\n")
    extra = f"{EM} witness.example AAAAAAAAAA==\n".encode()
    reordered = text + b"".join([extra, *reversed(damaged), lines[i]])
    assert verify_checkpoint(reordered, origin, key).size == size
    # Without the log's own line, nothing verifies.
    with pytest.raises(SignatureError):
        verify_checkpoint(text + b"".join(others), origin, key)


@pytest.mark.parametrize(("body", "origin", "key", "size"), REAL, ids=IDS)
def test_wrong_origin_or_key_fails(body: bytes, origin: str, key: bytes, size: int) -> None:
    with pytest.raises(DecodeError):
        verify_checkpoint(body, origin + "x", key)
    other_key = SYCAMORE_KEY if key == PARCELYARD_KEY else PARCELYARD_KEY
    with pytest.raises(SignatureError):
        verify_checkpoint(body, origin, other_key)


def test_signature_line_limit() -> None:
    grease = f"{EM} grease.invalid bTsOrAGZsPeHCnmbQhJkkcs=\n".encode()
    sixteen = SYCAMORE + grease * 12
    assert len(parse_checkpoint(sixteen).signatures) == 16
    verify_checkpoint(sixteen, SYCAMORE_ORIGIN, SYCAMORE_KEY)
    with pytest.raises(DecodeError, match="signature lines"):
        parse_checkpoint(sixteen + grease)
    assert len(parse_checkpoint(sixteen + grease, max_signatures=17).signatures) == 17


def test_size_limit() -> None:
    with pytest.raises(DecodeError, match="limit"):
        parse_checkpoint(SYCAMORE, max_bytes=len(SYCAMORE) - 1)
    assert parse_checkpoint(SYCAMORE, max_bytes=len(SYCAMORE)).size == 993762193
    huge = SYCAMORE + f"{EM} x {'A' * (1 << 20)}\n".encode()
    with pytest.raises(DecodeError, match="limit"):
        verify_checkpoint(huge, SYCAMORE_ORIGIN, SYCAMORE_KEY)


ROOT = base64.b64encode(bytes(32)).decode()
SIG = f"{EM} o AAAAAAAA\n"


@pytest.mark.parametrize(
    "note",
    [
        f"o\n1\n{ROOT}\n{SIG}",  # no blank line
        f"o\n1\n{ROOT}\n\n",  # no signature line
        f"o\n1\n{ROOT}\n\n{SIG}".rstrip("\n"),  # no final newline
        f"o\n01\n{ROOT}\n\n{SIG}",  # leading zero
        f"o\n-1\n{ROOT}\n\n{SIG}",
        f"o\n1x\n{ROOT}\n\n{SIG}",
        f"o\n{1 << 64}\n{ROOT}\n\n{SIG}",
        f"o\n1\nAAAA\n\n{SIG}",  # root too short
        f"o\n1\n{ROOT}!\n\n{SIG}",
        f"o\n1\n\n{SIG}",  # only two text lines
        f" o\n1\n{ROOT}\n\n{SIG}",  # padded origin
        f"\n1\n{ROOT}\n\n{SIG}",
        f"o\n1\n{ROOT}\n\n- o AAAAAAAA\n",  # hyphen, not em dash
        f"o\n1\n{ROOT}\n\n{EM} o\n",
        f"o\n1\n{ROOT}\n\n{EM} o AAAA\n",  # shorter than a key ID plus one byte
        f"o\n1\n{ROOT}\n\n{EM} o A*AAAAAA\n",
        f"o\n1\n{ROOT}\n\n{EM}  o AAAAAAAA\n",
    ],
)
def test_malformed_notes(note: str) -> None:
    with pytest.raises(DecodeError):
        parse_checkpoint(note.encode())


def test_not_utf8() -> None:
    with pytest.raises(DecodeError):
        parse_checkpoint(b"\xff\n1\n" + ROOT.encode() + b"\n\n" + SIG.encode())


def test_extension_lines_are_kept() -> None:
    cp = parse_checkpoint(f"o\n1\n{ROOT}\next one\n\n{SIG}".encode())
    assert cp.extensions == ("ext one",)


@pytest.mark.parametrize("kind", ["ecdsa", "rsa"])
def test_sign_checkpoint_roundtrip(kind: str) -> None:
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = (
        ec.generate_private_key(ec.SECP256R1())
        if kind == "ecdsa"
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    root = bytes(range(32))
    body = sign_checkpoint("example.test/log", 1024, root, key, 1700000000123)
    assert body.startswith(
        f"example.test/log\n1024\n{base64.b64encode(root).decode()}\n\n".encode()
    )
    cp = verify_checkpoint(body, "example.test/log", spki_der(key))
    assert (cp.size, cp.root_hash, cp.timestamp) == (1024, root, 1700000000123)
    with pytest.raises(DecodeError):
        verify_checkpoint(body.replace(b"\n1024\n", b"\n1025\n"), "example.test/log", spki_der(key))


def test_unverifiable_old_checkpoint_still_parses() -> None:
    cp = parse_checkpoint((CHECKPOINTS / "sycamore2024h2.checkpoint").read_bytes())
    assert cp.size == 820495916 and len(cp.signatures) == 1


@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_decode_errors(blob: bytes) -> None:
    with contextlib.suppress(DecodeError):
        verify_checkpoint(blob, "o", SYCAMORE_KEY)


@given(st.text(max_size=200))
def test_arbitrary_text_after_a_valid_head(tail: str) -> None:
    with contextlib.suppress(DecodeError):
        parse_checkpoint(f"o\n1\n{ROOT}\n\n{tail}".encode())
