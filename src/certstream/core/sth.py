"""RFC 6962 signed tree heads: the DigitallySigned struct, and get-sth verification.

A log signs ``00 (v1) ‖ 01 (tree_hash) ‖ uint64 timestamp ‖ uint64 tree_size ‖ root[32]``
(RFC 6962 §3.5) and wraps the signature as a TLS ``DigitallySigned``: hash algorithm (4 =
SHA-256), signature algorithm (3 = ECDSA, 1 = RSA), uint16 length, signature (ECDSA: DER).
Static-ct-api checkpoints carry the very same signature (see ``checkpoint``), so both use
``verify_digitally_signed``.

Verification failures raise ``SignatureError``, a ``DecodeError``: the caller treats a head it
cannot trust like any other undecodable response (count it, retry later).
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from certstream.errors import DecodeError

# cryptography is imported where a key is used, not here: it costs a process ~9 MiB, and a
# server whose logs have no known key (custom logs without ``key``, checks off) never needs it.
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

__all__ = [
    "HASH_SHA256",
    "SIG_ECDSA",
    "SIG_RSA",
    "SignatureError",
    "SignedTreeHead",
    "parse_sth",
    "sign_digitally_signed",
    "sign_sth",
    "tree_head_input",
    "verify_digitally_signed",
    "verify_sth",
]

HASH_SHA256 = 4
SIG_RSA = 1
SIG_ECDSA = 3

_MAX_U64 = (1 << 64) - 1


class SignatureError(DecodeError):
    """A signature is malformed, uses an unsupported algorithm, or does not verify."""


def tree_head_input(timestamp: int, tree_size: int, root_hash: bytes) -> bytes:
    """The bytes a log signs for a tree head (RFC 6962 §3.5 TreeHeadSignature)."""
    if not (0 <= timestamp <= _MAX_U64 and 0 <= tree_size <= _MAX_U64):
        raise SignatureError("timestamp or tree_size out of uint64 range")
    if len(root_hash) != 32:
        raise SignatureError(f"root hash must be 32 bytes, got {len(root_hash)}")
    return b"\x00\x01" + struct.pack(">QQ", timestamp, tree_size) + root_hash


def _load_key(spki_der: bytes) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    from cryptography.exceptions import UnsupportedAlgorithm  # noqa: PLC0415 - see the imports
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: PLC0415

    try:
        key = serialization.load_der_public_key(spki_der)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SignatureError(f"unusable log public key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise SignatureError(f"unsupported log key type {type(key).__name__}")
    return key


def verify_digitally_signed(signed: bytes, digitally_signed: bytes, spki_der: bytes) -> None:
    """Check a TLS DigitallySigned over ``signed`` with the key in ``spki_der``.

    The struct must be consumed exactly: trailing bytes are an error, as is an algorithm
    pair that does not match the key.
    """
    if len(digitally_signed) < 4:
        raise SignatureError("DigitallySigned shorter than its header")
    hash_alg, sig_alg, length = struct.unpack(">BBH", digitally_signed[:4])
    sig = digitally_signed[4:]
    if len(sig) != length:
        raise SignatureError(f"DigitallySigned length {length} but {len(sig)} bytes follow")
    if hash_alg != HASH_SHA256:
        raise SignatureError(f"unsupported hash algorithm {hash_alg}")
    key = _load_key(spki_der)
    from cryptography.exceptions import InvalidSignature  # noqa: PLC0415 - see the imports
    from cryptography.hazmat.primitives import hashes  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa  # noqa: PLC0415

    try:
        if sig_alg == SIG_ECDSA and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sig, signed, ec.ECDSA(hashes.SHA256()))
        elif sig_alg == SIG_RSA and isinstance(key, rsa.RSAPublicKey):
            key.verify(sig, signed, padding.PKCS1v15(), hashes.SHA256())
        else:
            raise SignatureError(
                f"signature algorithm {sig_alg} does not match the {type(key).__name__}"
            )
    except InvalidSignature:
        raise SignatureError("signature does not verify") from None


def sign_digitally_signed(
    signed: bytes, private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
) -> bytes:
    """Sign ``signed`` and wrap it as a DigitallySigned (for tests and the replay log)."""
    from cryptography.hazmat.primitives import hashes  # noqa: PLC0415 - see the imports
    from cryptography.hazmat.primitives.asymmetric import ec, padding  # noqa: PLC0415

    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        sig = private_key.sign(signed, ec.ECDSA(hashes.SHA256()))
        sig_alg = SIG_ECDSA
    else:
        sig = private_key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
        sig_alg = SIG_RSA
    return struct.pack(">BBH", HASH_SHA256, sig_alg, len(sig)) + sig


@dataclass(frozen=True, slots=True)
class SignedTreeHead:
    """A get-sth response's fields, decoded."""

    tree_size: int
    timestamp: int
    root_hash: bytes
    signature: bytes


def _uint_field(sth: Mapping[str, object], name: str) -> int:
    value = sth.get(name)
    # bool is an int subclass; a JSON true is not a size.
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_U64:
        raise DecodeError(f"get-sth: {name} is not a uint64: {value!r:.40}")
    return value


def _b64_field(sth: Mapping[str, object], name: str) -> bytes:
    value = sth.get(name)
    if not isinstance(value, str):
        raise DecodeError(f"get-sth: {name} is missing or not a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError(f"get-sth: {name} is not base64") from None


def parse_sth(sth: Mapping[str, object]) -> SignedTreeHead:
    """Decode a get-sth JSON object (already parsed) without checking its signature."""
    tree_size = _uint_field(sth, "tree_size")
    timestamp = _uint_field(sth, "timestamp")
    root = _b64_field(sth, "sha256_root_hash")
    if len(root) != 32:
        raise DecodeError(f"get-sth: sha256_root_hash is {len(root)} bytes, not 32")
    return SignedTreeHead(tree_size, timestamp, root, _b64_field(sth, "tree_head_signature"))


def verify_sth(sth: Mapping[str, object], spki_der: bytes) -> SignedTreeHead:
    """Decode a get-sth object and check its tree_head_signature against the log key.

    Raises ``DecodeError`` for a malformed object and ``SignatureError`` (a DecodeError)
    when the signature is malformed or does not verify.
    """
    head = parse_sth(sth)
    signed = tree_head_input(head.timestamp, head.tree_size, head.root_hash)
    verify_digitally_signed(signed, head.signature, spki_der)
    return head


def sign_sth(
    tree_size: int,
    timestamp: int,
    root_hash: bytes,
    private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
) -> dict[str, object]:
    """Build a get-sth JSON object signed by ``private_key`` (tests and the replay log)."""
    ds = sign_digitally_signed(tree_head_input(timestamp, tree_size, root_hash), private_key)
    return {
        "tree_size": tree_size,
        "timestamp": timestamp,
        "sha256_root_hash": base64.b64encode(root_hash).decode("ascii"),
        "tree_head_signature": base64.b64encode(ds).decode("ascii"),
    }
