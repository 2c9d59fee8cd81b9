"""RFC 6962 structures written from the RFC's text, to check our code and the replay log
against the definition rather than against each other."""

from __future__ import annotations

import hashlib


def mth(hashes: list[bytes]) -> bytes:
    """RFC 6962 §2.1 MTH, written from the definition (split at the largest power of 2)."""
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return hashlib.sha256(b"\x01" + mth(hashes[:k]) + mth(hashes[k:])).digest()


def u24(buf: bytes, pos: int) -> tuple[bytes, int]:
    """The ``opaque <0..2^24-1>`` field at ``pos``: its bytes and the position after it."""
    n = int.from_bytes(buf[pos : pos + 3], "big")
    assert pos + 3 + n <= len(buf)
    return buf[pos + 3 : pos + 3 + n], pos + 3 + n
