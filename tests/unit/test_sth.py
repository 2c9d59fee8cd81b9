"""Signed tree heads: real STHs verify with the keys from the recorded lists; any change fails."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given
from hypothesis import strategies as st
from tests.support.data import CT_FIXTURES
from tests.support.keys import spki_der

from certstream.core.sth import (
    SignatureError,
    parse_sth,
    sign_sth,
    verify_digitally_signed,
    verify_sth,
)
from certstream.errors import DecodeError

ARGON = CT_FIXTURES / "rfc6962" / "argon2027h1"
PILOT_STH = CT_FIXTURES / "rfc6962" / "pilot" / "get-sth_3721782.json"


def _list_key(list_file: str, description: str) -> bytes:
    doc = json.loads((CT_FIXTURES / "loglists" / list_file).read_text())
    for op in doc["operators"]:
        for log in op.get("logs", []) + op.get("tiled_logs", []):
            if log["description"] == description:
                return base64.b64decode(log["key"])
    raise LookupError(description)


ARGON_KEY = _list_key("google_all_logs_list_v3_89.25.json", "Google 'Argon2027h1'")
PILOT_KEY = _list_key("apple_current_log_list_v511.json", "Google 'Pilot' log")
ARGON_STHS = sorted(ARGON.glob("get-sth_*.json"))


def _load(path: Path) -> dict[str, Any]:
    sth: dict[str, Any] = json.loads(path.read_text())
    return sth


@pytest.mark.parametrize("path", ARGON_STHS, ids=lambda p: p.stem)
def test_argon_sths_verify(path: Path) -> None:
    sth = _load(path)
    head = verify_sth(sth, ARGON_KEY)
    assert head.tree_size == sth["tree_size"] == int(path.stem.split("_")[1])
    assert head.timestamp == sth["timestamp"]


def test_pilot_sth_verifies_with_the_apple_list_key() -> None:
    assert verify_sth(_load(PILOT_STH), PILOT_KEY).tree_size == 3721782
    with pytest.raises(SignatureError):
        verify_sth(_load(PILOT_STH), ARGON_KEY)  # another log's key
    with pytest.raises(SignatureError):
        verify_sth(_load(ARGON_STHS[0]), PILOT_KEY)


def _flip_b64(value: str, at: int) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[at] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize(
    "change",
    [
        lambda s: {**s, "tree_size": s["tree_size"] + 1},
        lambda s: {**s, "timestamp": s["timestamp"] - 1},
        lambda s: {**s, "sha256_root_hash": _flip_b64(s["sha256_root_hash"], 0)},
        lambda s: {**s, "sha256_root_hash": _flip_b64(s["sha256_root_hash"], 31)},
        lambda s: {**s, "tree_head_signature": _flip_b64(s["tree_head_signature"], 20)},
        lambda s: {**s, "tree_head_signature": _flip_b64(s["tree_head_signature"], -1)},
    ],
    ids=["size", "timestamp", "root0", "root31", "sig-middle", "sig-last"],
)
def test_one_change_fails(change: Any) -> None:
    with pytest.raises(SignatureError):
        verify_sth(change(_load(ARGON_STHS[0])), ARGON_KEY)


def test_every_signature_byte_matters() -> None:
    sth = _load(ARGON_STHS[1])
    n = len(base64.b64decode(sth["tree_head_signature"]))
    for at in range(n):
        with pytest.raises(DecodeError):
            verify_sth({**sth, "tree_head_signature": _flip_b64(sth["tree_head_signature"], at)},
                       ARGON_KEY)  # fmt: skip


@pytest.mark.parametrize(
    "change",
    [
        {"tree_size": "384065451"},
        {"tree_size": True},
        {"tree_size": -1},
        {"tree_size": 1 << 64},
        {"timestamp": None},
        {"sha256_root_hash": "AAAA"},
        {"sha256_root_hash": "not base64!"},
        {"tree_head_signature": 5},
        {"tree_head_signature": "BAM="},  # header cut short
        {"tree_head_signature": "BAMAAQ=="},  # says 1 signature byte, has none
    ],
)
def test_malformed_sth_is_a_decode_error(change: dict[str, Any]) -> None:
    with pytest.raises(DecodeError):
        verify_sth({**_load(ARGON_STHS[0]), **change}, ARGON_KEY)


def test_missing_field() -> None:
    for name in ("tree_size", "timestamp", "sha256_root_hash", "tree_head_signature"):
        sth = _load(ARGON_STHS[0])
        del sth[name]
        with pytest.raises(DecodeError):
            parse_sth(sth)


@pytest.mark.parametrize("kind", ["ecdsa", "rsa"])
def test_sign_and_verify_roundtrip(kind: str) -> None:
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = (
        ec.generate_private_key(ec.SECP256R1())
        if kind == "ecdsa"
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    sth = sign_sth(1234, 1700000000000, bytes(range(32)), key)
    head = verify_sth(sth, spki_der(key))
    assert (head.tree_size, head.timestamp, head.root_hash) == (
        1234,
        1700000000000,
        bytes(range(32)),
    )
    with pytest.raises(SignatureError):
        verify_sth({**sth, "tree_size": 1235}, spki_der(key))


def test_algorithm_must_match_the_key() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sth = sign_sth(1, 2, bytes(32), rsa_key)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(SignatureError, match="does not match"):
        verify_sth(sth, spki_der(ec_key))
    ds = bytearray(base64.b64decode(sth["tree_head_signature"]))  # type: ignore[arg-type]
    ds[0] = 2  # SHA-1
    with pytest.raises(SignatureError, match="hash"):
        verify_sth({**sth, "tree_head_signature": base64.b64encode(bytes(ds)).decode()},
                   spki_der(rsa_key))  # fmt: skip


def test_unusable_key_is_a_signature_error() -> None:
    with pytest.raises(SignatureError):
        verify_sth(_load(ARGON_STHS[0]), b"\x30\x03\x02\x01\x00")


@given(st.binary(max_size=200))
def test_arbitrary_signature_bytes_raise_only_our_errors(blob: bytes) -> None:
    with pytest.raises(SignatureError):
        verify_digitally_signed(b"signed", blob, ARGON_KEY)
