"""The feed's record codec: ingest -> worker records as bytes, and bytes back to records.

Wire format, one message at a time over a stream socket::

    uint32 big-endian length of (kind + body) | uint8 kind | body

``ENTRY`` (1, ingest -> worker)
    ``uint16 len | log key (UTF-8) | uint64 index | uint8 mask`` then, for each stream bit
    set, in the order of ``certstream.core.streams.STREAMS`` (lite, full, domains),
    ``uint32 len | payload``: the exact WebSocket text-frame payloads, built once in the
    ingest.  Every worker gets the same bytes (build once, send many).  Mask bit ``STAMP``
    (32) puts, right after the mask, ``uint64 epoch | uint64 n | uint64 seen``: the record's
    global id ``<epoch>-<n>`` (the ingest's start time in milliseconds, and its records
    numbered 1, 2, 3, ... without holes, so a worker that finds a hole knows how many it was
    not sent) and its ``seen`` in microseconds (``core.resume``).  Mask bit ``FIELDS`` (16)
    adds, after the payloads,
    ``uint32 len | filter field``: what server-side filters match
    (``core.filterfields.encode_match_fields``: names, issuer, log), built once per entry
    and only while some worker asks for it.
``STATE`` (2, ingest -> worker)
    A JSON object describing the logs, for ``/health/deep`` and ``/api/logs``.
``WANT`` (3, worker -> ingest)
    ``uint8 mask`` of the streams the worker has subscribers for; the ingest builds a stream's
    payload only when some worker wants it.  Bit ``EXAMPLE`` (8) asks for one lite sample;
    bit ``FIELDS`` (16) for the filter field of every entry (the worker has filtered
    clients).
``EXAMPLE`` (4, ingest -> worker)
    A lite payload of the newest entry, so ``/example.json`` has a sample even when nobody
    follows lite (see ``certstream.shell.feed`` for when it is built and sent).
``ACK`` (5, worker -> ingest)
    ``uint64`` count of the ENTRY messages received on this connection that the worker has
    written to every client that keeps up: the ingest saves a log's position only once
    every worker has acknowledged its batch (see ``certstream.shell.state``).

Plain code over bytes, as h11 is: ``encode_*`` make messages, :class:`FeedDecoder` splits a
byte stream back into them.  The sockets are ``certstream.shell.feed``'s (the ingest's end)
and ``certstream.shell.feedsub``'s (a worker's).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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
    "EXAMPLE",
    "FIELDS",
    "KIND_ACK",
    "KIND_ENTRY",
    "KIND_EXAMPLE",
    "KIND_STATE",
    "KIND_WANT",
    "MAX_MESSAGE_BYTES",
    "STAMP",
    "Entry",
    "FeedDecoder",
    "Message",
    "encode_ack",
    "encode_entry",
    "encode_example",
    "encode_state",
    "encode_want",
]

KIND_ENTRY, KIND_STATE, KIND_WANT, KIND_EXAMPLE, KIND_ACK = 1, 2, 3, 4, 5
#: WANT bit: "send me a lite sample" (not a stream: nothing is built for it per entry).
EXAMPLE = 8
#: ENTRY and WANT bit: the entry's filter field (see the module docstring).
FIELDS = FILTER_FIELDS
#: ENTRY bit: the record's id and seen follow the mask (see the module docstring).
STAMP = 32
#: A message longer than this is garbage (a real full payload is a few hundred KiB at most).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

_HEAD = struct.Struct(">IB")
_U16 = struct.Struct(">H")
_ENTRY_TAIL = struct.Struct(">QB")
_U64 = struct.Struct(">Q")
_STAMP = struct.Struct(">QQQ")
# The optional parts of an ENTRY, in wire order: the payloads, then the filter field.
_ENTRY_PARTS = (*STREAMS, FIELDS)


def _frame(kind: int, body: bytes) -> bytes:
    return _HEAD.pack(len(body) + 1, kind) + body


def encode_entry(
    key: str,
    index: int,
    lite: bytes | None,
    full: bytes | None,
    domains: bytes | None,
    *,
    fields: bytes | None = None,
    stamp: tuple[int, int, int] | None = None,
) -> bytes:
    """One ENTRY message; ``None`` payloads (and ``fields``) are left out (their mask bit is
    clear).  ``stamp`` is ``(epoch, n, seen)`` (see the module docstring)."""
    key_b = key.encode("utf-8")
    mask = (
        (STREAM_LITE if lite is not None else 0)
        | (STREAM_FULL if full is not None else 0)
        | (STREAM_DOMAINS if domains is not None else 0)
        | (FIELDS if fields is not None else 0)
        | (STAMP if stamp is not None else 0)
    )
    parts = [_U16.pack(len(key_b)), key_b, _ENTRY_TAIL.pack(index, mask)]
    if stamp is not None:
        parts.append(_STAMP.pack(*stamp))
    append_payloads(parts, (lite, full, domains, fields))
    body = b"".join(parts)
    return _HEAD.pack(len(body) + 1, KIND_ENTRY) + body


def encode_state(state: Mapping[str, object]) -> bytes:
    return _frame(KIND_STATE, json.dumps(state, separators=(",", ":")).encode())


def encode_want(mask: int) -> bytes:
    return _frame(KIND_WANT, bytes((mask & 0xFF,)))


def encode_example(lite: bytes) -> bytes:
    return _frame(KIND_EXAMPLE, lite)


def encode_ack(count: int) -> bytes:
    return _frame(KIND_ACK, _U64.pack(count))


@dataclass(frozen=True, slots=True)
class Entry:
    """A decoded ENTRY message."""

    key: str
    index: int
    mask: int
    lite: bytes | None
    full: bytes | None
    domains: bytes | None
    #: The filter field (``encode_match_fields``), when the ingest built it.
    fields: bytes | None = None
    #: The record's id ``<epoch>-<n>`` and seen (microseconds), when ``mask & STAMP``.
    epoch: int = 0
    n: int = 0
    seen: int = 0


Message = tuple[int, Any]  # (KIND_*, Entry | dict | int | bytes); ACK and WANT are ints


class FeedDecoder:
    """Splits a byte stream into feed messages: ``receive_data`` then ``next_message``
    until it returns ``None``.  Malformed input raises :class:`RemoteProtocolError`."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0

    def receive_data(self, data: bytes) -> None:
        if self._pos:  # compact once per read, not per message
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def next_message(self) -> Message | None:
        buf, pos = self._buf, self._pos
        if len(buf) - pos < _HEAD.size:
            return None
        length, kind = _HEAD.unpack_from(buf, pos)
        if length < 1 or length > MAX_MESSAGE_BYTES:
            raise RemoteProtocolError(f"feed message length {length} out of range")
        end = pos + 4 + length
        if len(buf) < end:
            return None
        body = bytes(buf[pos + _HEAD.size : end])
        self._pos = end
        return kind, _decode_body(kind, body)


def _decode_body(kind: int, body: bytes) -> Any:
    if kind == KIND_ENTRY:
        return _decode_entry(body)
    if kind == KIND_STATE:
        try:
            state = json.loads(body)
        except ValueError:
            raise RemoteProtocolError("feed STATE is not JSON") from None
        if not isinstance(state, dict):
            raise RemoteProtocolError("feed STATE is not a JSON object")
        return state
    if kind == KIND_WANT:
        if len(body) != 1:
            raise RemoteProtocolError("feed WANT body must be one byte")
        return body[0]
    if kind == KIND_EXAMPLE:
        return body
    if kind == KIND_ACK:
        if len(body) != _U64.size:
            raise RemoteProtocolError("feed ACK body must be 8 bytes")
        return _U64.unpack(body)[0]
    raise RemoteProtocolError(f"unknown feed message kind {kind}")


def _decode_entry(body: bytes) -> Entry:
    try:
        (klen,) = _U16.unpack_from(body, 0)
        off = 2 + klen
        key = body[2:off].decode("utf-8")
        index, mask = _ENTRY_TAIL.unpack_from(body, off)
        off += _ENTRY_TAIL.size
        stamp = (0, 0, 0)
        if mask & STAMP:
            stamp = _STAMP.unpack_from(body, off)
            off += _STAMP.size
        payloads, off = read_payloads(body, off, mask, _ENTRY_PARTS, "feed ENTRY")
    except (struct.error, UnicodeDecodeError) as exc:
        raise RemoteProtocolError(f"malformed feed ENTRY: {exc}") from None
    if off != len(body) or mask & ~(STREAM_ALL | FIELDS | STAMP):
        raise RemoteProtocolError("malformed feed ENTRY: trailing bytes or unknown stream bits")
    lite, full, domains, fields = payloads
    return Entry(key, index, mask, lite, full, domains, fields, *stamp)
