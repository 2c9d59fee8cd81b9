"""Payloads one after another, each a big-endian u32 length and its bytes, present where its
bit of a mask is set: the layout that feed ENTRY messages (``core.feedcodec``) and broker
records (``core.brokerrecord``) share after their own heads."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

from certstream.errors import RemoteProtocolError

__all__ = ["append_payloads", "read_payloads"]

_U32 = struct.Struct(">I")


def append_payloads(parts: list[bytes], payloads: Iterable[bytes | None]) -> None:
    """Add each payload that is not ``None`` to ``parts``, after its length."""
    for payload in payloads:
        if payload is not None:
            parts += (_U32.pack(len(payload)), payload)


def read_payloads(
    data: bytes, off: int, mask: int, bits: Sequence[int], what: str
) -> tuple[list[bytes | None], int]:
    """The payloads of ``bits`` (in that order) from ``off``: ``None`` where ``mask`` lacks
    the bit; and the offset after the last one.  A length that runs past ``data`` raises
    ``RemoteProtocolError`` naming ``what``; a truncated length raises ``struct.error``,
    which the caller reports with the rest of its head."""
    payloads: list[bytes | None] = []
    for bit in bits:
        if not mask & bit:
            payloads.append(None)
            continue
        (plen,) = _U32.unpack_from(data, off)
        off += 4
        if off + plen > len(data):
            raise RemoteProtocolError(f"{what} payload runs past its end")
        payloads.append(data[off:off + plen])
        off += plen
    return payloads, off
