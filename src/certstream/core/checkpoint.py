"""static-ct-api checkpoints: C2SP signed notes carrying an RFC 6962 tree head signature.

A checkpoint body is a signed note::

    <origin>\\n<tree size>\\n<base64 root hash>\\n[extension lines]\\n
    \\n
    — <key name> <base64(key ID[4] ‖ signature)>\\n      (one or more)

The text and the signature block are split at the *last* blank line.  Real logs add lines we
cannot or need not verify: grease lines (``grease.invalid``, random bytes under the log's own
name), ML-DSA cosignatures, a second log key, witness cosignatures.  So verification picks the
one line whose name is the origin *and* whose key ID is the RFC 6962 note key ID of the log
key, SHA-256(origin ‖ "\\n" ‖ 0x05 ‖ SHA-256(SPKI))[:4], and ignores every other line.  That
line's body is ``uint64 timestamp ‖ DigitallySigned`` over the ordinary RFC 6962 tree head.

Parsing is bounded (body size, number of signature lines) because the body comes from the
network; every problem raises ``DecodeError`` (``SignatureError`` for signatures).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from certstream.core.sth import (
    SignatureError,
    sign_digitally_signed,
    tree_head_input,
    verify_digitally_signed,
)
from certstream.errors import DecodeError

if TYPE_CHECKING:  # cryptography is imported where a key is used (see ``core.sth``)
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

__all__ = [
    "Checkpoint",
    "NoteSig",
    "parse_checkpoint",
    "rfc6962_key_id",
    "sign_checkpoint",
    "verify_checkpoint",
]

MAX_BYTES = 1 << 20
MAX_SIGNATURES = 16
_EM_DASH = "\u2014"
_RFC6962_NOTE_TYPE = b"\x05"
_MAX_U64 = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class NoteSig:
    """One signature line: the key name, the 4-byte key ID and the signature bytes."""

    name: str
    key_id: bytes
    sig: bytes


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A parsed checkpoint.  ``timestamp`` (ms) is known only once the log's line verified."""

    origin: str
    size: int
    root_hash: bytes
    timestamp: int | None
    signatures: tuple[NoteSig, ...]
    extensions: tuple[str, ...] = ()


def rfc6962_key_id(origin: str, spki_der: bytes) -> bytes:
    """The note key ID of an RFC 6962 log key under ``origin`` (C2SP static-ct-api)."""
    log_id = hashlib.sha256(spki_der).digest()
    return hashlib.sha256(origin.encode() + b"\n" + _RFC6962_NOTE_TYPE + log_id).digest()[:4]


def _parse_size(line: str) -> int:
    # Decimal without sign or leading zeros: the note text is signed, but a lax parser would
    # let two spellings of one size through.
    if not line.isascii() or not line.isdigit() or (len(line) > 1 and line[0] == "0"):
        raise DecodeError(f"checkpoint: bad tree size line {line!r:.40}")
    size = int(line)
    if size > _MAX_U64:
        raise DecodeError("checkpoint: tree size exceeds uint64")
    return size


def _parse_sig_line(line: str) -> NoteSig:
    if not line.startswith(_EM_DASH + " "):
        raise DecodeError(f"checkpoint: signature line without em dash: {line!r:.40}")
    parts = line[2:].split(" ")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise DecodeError(f"checkpoint: malformed signature line {line!r:.60}")
    name, b64 = parts
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError(f"checkpoint: signature of {name!r:.40} is not base64") from None
    if len(raw) < 5:
        raise DecodeError(f"checkpoint: signature of {name!r:.40} is too short")
    return NoteSig(name, raw[:4], raw[4:])


def parse_checkpoint(
    body: bytes, max_signatures: int = MAX_SIGNATURES, max_bytes: int = MAX_BYTES
) -> Checkpoint:
    """Parse a checkpoint note without verifying anything (``timestamp`` is None)."""
    if len(body) > max_bytes:
        raise DecodeError(f"checkpoint: {len(body)} bytes exceeds the {max_bytes} byte limit")
    try:
        note = body.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError("checkpoint: not UTF-8") from None
    split = note.rfind("\n\n")
    if split < 0:
        raise DecodeError("checkpoint: no blank line before the signatures")
    text, sig_block = note[: split + 1], note[split + 2 :]
    if not sig_block.endswith("\n"):
        raise DecodeError("checkpoint: signature block does not end with a newline")
    sig_lines = sig_block[:-1].split("\n")
    if len(sig_lines) > max_signatures:
        raise DecodeError(f"checkpoint: more than {max_signatures} signature lines")
    signatures = tuple(_parse_sig_line(line) for line in sig_lines)
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise DecodeError("checkpoint: text has fewer than 3 lines")
    origin = lines[0]
    if not origin or origin != origin.strip():
        raise DecodeError("checkpoint: empty or padded origin line")
    size = _parse_size(lines[1])
    try:
        root = base64.b64decode(lines[2], validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError("checkpoint: root hash is not base64") from None
    if len(root) != 32:
        raise DecodeError(f"checkpoint: root hash is {len(root)} bytes, not 32")
    if any(not ext for ext in lines[3:]):
        raise DecodeError("checkpoint: empty extension line")
    return Checkpoint(origin, size, root, None, signatures, tuple(lines[3:]))


def verify_checkpoint(
    body: bytes,
    origin: str,
    spki_der: bytes,
    max_signatures: int = MAX_SIGNATURES,
    max_bytes: int = MAX_BYTES,
) -> Checkpoint:
    """Parse ``body`` and verify the log's RFC 6962 note signature; return it timestamped.

    Raises ``DecodeError`` when the note is malformed or for another origin, and
    ``SignatureError`` when no line is by the log key or that line does not verify.
    """
    cp = parse_checkpoint(body, max_signatures, max_bytes)
    if cp.origin != origin:
        raise DecodeError(f"checkpoint: origin {cp.origin!r:.80} is not {origin!r:.80}")
    key_id = rfc6962_key_id(origin, spki_der)
    candidates = [s for s in cp.signatures if s.name == origin and s.key_id == key_id]
    if not candidates:
        raise SignatureError("checkpoint: no signature line by the log key")
    last: SignatureError | None = None
    # More than one candidate is possible in principle (a grease line may collide with the
    # 4-byte key ID); any one that verifies is the log's.
    for cand in candidates:
        if len(cand.sig) < 8:
            last = SignatureError("checkpoint: RFC 6962 note signature too short")
            continue
        timestamp = int.from_bytes(cand.sig[:8], "big")
        try:
            verify_digitally_signed(
                tree_head_input(timestamp, cp.size, cp.root_hash), cand.sig[8:], spki_der
            )
        except SignatureError as exc:
            last = exc
            continue
        return replace(cp, timestamp=timestamp)
    assert last is not None
    raise last


def sign_checkpoint(
    origin: str,
    size: int,
    root_hash: bytes,
    private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    timestamp_ms: int,
) -> bytes:
    """Build a checkpoint signed as a static-ct-api log would (tests and the replay log)."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - see the imports

    spki = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ds = sign_digitally_signed(tree_head_input(timestamp_ms, size, root_hash), private_key)
    sig = rfc6962_key_id(origin, spki) + timestamp_ms.to_bytes(8, "big") + ds
    root_b64 = base64.b64encode(root_hash).decode("ascii")
    line = f"{_EM_DASH} {origin} {base64.b64encode(sig).decode('ascii')}\n"
    return f"{origin}\n{size}\n{root_b64}\n\n{line}".encode()
