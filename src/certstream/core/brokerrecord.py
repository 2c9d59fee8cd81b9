"""The broker's records: one Redis stream entry per published log entry, as bytes.

Across machines (``role: ingest`` / ``role: edge``) the ingest appends each published entry
to one Redis stream (``<prefix>:records``) as a stream entry with a single field ``r``
holding the bytes this module builds; an edge's workers read them back.  One stream
carries all three payloads of an entry (lite, full, domains, each only if some edge wants
it): one ``XADD`` per entry and one id per record, measured cheaper to publish and to read
than a stream per type (``bench/broker.py``; README "Running on several machines").

Layout, version 2, big-endian::

    uint8 version (2) | uint32 epoch | uint64 seq | uint64 log index | uint8 mask
    | uint64 seen (microseconds, as the payloads show it: ``core.resume``)
    | uint16 len | log key (UTF-8)
    | for each stream bit of mask, in the order of ``certstream.core.streams.STREAMS``:
      uint32 len | payload (the exact WebSocket text-frame payload, built once)
    | with mask bit ``FILTER_FIELDS`` (16): uint32 len | the filter field
      (``core.filterfields``; built only while some edge has a filtered client)

Version 1 (no ``seen``, no filter field) is still read, so that during a rolling upgrade
edges can be upgraded first, then the ingest nodes (an older edge refuses version 2).

``seq`` numbers the records of one ``epoch`` 1, 2, 3, ... without holes: the ingest that
holds the lease assigns them (see ``certstream.shell.brokerpub``), so an edge that sees a
hole knows exactly how many records it lost (trimmed by ``MAXLEN`` before it read them, or
gone with a Redis that restarted without persistence).  The epoch changes only when the
numbering had to start again because Redis lost the counter and no ingest remembered it:
then the count lost is unknown (``certstream.core.brokergap``).  The Redis stream id of the
entry is the record's global id (it is not inside the bytes: the edge reads it beside them).

Plain code over bytes: no Redis here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from certstream.core.payloadparts import append_payloads, read_payloads
from certstream.core.streams import (
    FILTER_FIELDS,
    STREAM_ALL,
    STREAM_DOMAINS,
    STREAM_FULL,
    STREAM_LITE,
    STREAMS,
)
from certstream.errors import RemoteProtocolError

__all__ = [
    "RECORD_FIELD",
    "RECORD_VERSION",
    "Record",
    "StreamId",
    "decode_record",
    "encode_record",
    "parse_stream_id",
]

RECORD_VERSION = 2
#: The one field of each stream entry.
RECORD_FIELD = b"r"

_HEAD_V1 = struct.Struct(">BIQQBH")
_HEAD = struct.Struct(">BIQQBQH")
_PARTS = (*STREAMS, FILTER_FIELDS)


def encode_record(  # noqa: PLR0917 - the order of the record's own fields
    epoch: int, seq: int, key: str, index: int,
    lite: bytes | None, full: bytes | None, domains: bytes | None,
    *, seen: int = 0, fields: bytes | None = None, version: int = RECORD_VERSION,
) -> bytes:
    """One record; ``None`` payloads (and ``fields``) are left out (their mask bit is
    clear).  ``version=1`` writes the older layout (without ``seen`` and ``fields``)."""
    key_b = key.encode("utf-8")
    mask = (
        (STREAM_LITE if lite is not None else 0)
        | (STREAM_FULL if full is not None else 0)
        | (STREAM_DOMAINS if domains is not None else 0)
    )
    if version == 1:
        parts = [_HEAD_V1.pack(1, epoch, seq, index, mask, len(key_b)), key_b]
    else:
        if fields is not None:
            mask |= FILTER_FIELDS
        parts = [_HEAD.pack(RECORD_VERSION, epoch, seq, index, mask, seen, len(key_b)), key_b]
    append_payloads(parts, (lite, full, domains, fields if version != 1 else None))
    return b"".join(parts)


@dataclass(frozen=True, slots=True)
class Record:
    """A decoded record."""

    epoch: int
    seq: int
    key: str
    index: int
    mask: int
    lite: bytes | None
    full: bytes | None
    domains: bytes | None
    fields: bytes | None = None
    seen: int = 0


def decode_record(data: bytes) -> Record:
    """The record in ``data``; malformed bytes raise :class:`RemoteProtocolError`."""
    try:
        version = data[0] if data else 0
        if version == RECORD_VERSION:
            _v, epoch, seq, index, mask, seen, klen = _HEAD.unpack_from(data, 0)
            head = _HEAD.size
        elif version == 1:
            _v, epoch, seq, index, mask, klen = _HEAD_V1.unpack_from(data, 0)
            seen, head = 0, _HEAD_V1.size
            if mask & FILTER_FIELDS:
                raise RemoteProtocolError("malformed broker record: unknown stream bits")
        else:
            raise RemoteProtocolError(f"broker record version {version} (this reads 1 and 2)")
        off = head + klen
        key = data[head:off].decode("utf-8")
        payloads, off = read_payloads(data, off, mask, _PARTS, "broker record")
    except (struct.error, UnicodeDecodeError) as exc:
        raise RemoteProtocolError(f"malformed broker record: {exc}") from None
    if off != len(data) or mask & ~(STREAM_ALL | FILTER_FIELDS):
        raise RemoteProtocolError("malformed broker record: trailing bytes or unknown stream bits")
    lite, full, domains, fields = payloads
    return Record(epoch, seq, key, index, mask, lite, full, domains, fields, seen)


@dataclass(frozen=True, slots=True, order=True)
class StreamId:
    """A Redis stream id ``<ms>-<n>``, ordered as Redis orders them."""

    ms: int
    n: int

    def __str__(self) -> str:
        return f"{self.ms}-{self.n}"


def parse_stream_id(text: str | bytes) -> StreamId:
    """``b"1700000000000-3"`` -> ``StreamId(1700000000000, 3)``; raises ValueError."""
    if isinstance(text, bytes):
        text = text.decode("ascii")
    ms, sep, n = text.partition("-")
    if not sep:
        raise ValueError(f"not a stream id: {text!r}")
    return StreamId(int(ms), int(n))
