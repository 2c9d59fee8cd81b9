"""wsproto's frame-level connection, as a session holds one while a WebSocket client's frame
or message is unfinished, and where those frames and messages end.

What the client compressed is inflated with a bound, and no connection has an event queue of
its own.

``certstream.core.session`` negotiates permessage-deflate itself (``core.deflate``) and hands
the inbound half to wsproto as :class:`BoundedInflate`; :func:`frame_connection` makes the
connection as the upgrade would, :func:`lean_connection` makes it cheaper, and
:class:`FrameBounds` tells where the client's frames and messages end, so that the session
drops the connection between them (an idle client, which only answers our pings, then holds
no parser at all).
"""

from __future__ import annotations

import zlib
from collections import deque
from typing import Any

from wsproto.connection import Connection, ConnectionType
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.frame_protocol import CloseReason, Opcode, RsvBits

__all__ = ["BoundedInflate", "FrameBounds", "frame_connection", "lean_connection"]


class BoundedInflate(PerMessageDeflate):
    """The inbound half of our permessage-deflate: what the client compressed, inflated at
    most ``limit`` bytes per frame chunk (a deflate stream can expand ~1000 times).

    Nothing of one message is needed to inflate the next: we always negotiate
    ``client_no_context_takeover`` (``core.deflate``), so wsproto's
    ``PerMessageDeflate.frame_inbound_complete`` drops the decompressor at the end of each
    compressed message and every message starts a fresh one.  Between messages, a new
    instance is therefore the same as the old one, which lets a session drop its connection
    there (:class:`FrameBounds`).

    A control frame (a Ping, a Pong) may come between the fragments of a compressed message
    (RFC 6455 5.4, RFC 7692 6.1).  wsproto 1.3.2's ``PerMessageDeflate`` lets it reset the
    message's state: the rest of the message was then taken as uncompressed (a text message
    failed with 1007) and a half-used decompressor was left for the next one.  Here a control
    frame passes through without touching the message it interrupts.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(client_no_context_takeover=True, server_no_context_takeover=True)
        self._limit = limit
        self._enabled = True
        self._in_control = False  # the frame being read is a control frame

    def frame_inbound_header(
        self, proto: Any, opcode: Opcode, rsv: RsvBits, payload_length: int
    ) -> CloseReason | RsvBits:
        self._in_control = opcode.iscontrol()
        if self._in_control:  # never compressed, and the message around it is left alone
            return CloseReason.PROTOCOL_ERROR if rsv.rsv1 else RsvBits(True, False, False)
        result: CloseReason | RsvBits = super().frame_inbound_header(
            proto, opcode, rsv, payload_length)
        return result

    def frame_inbound_complete(self, proto: Any, fin: bool) -> bytes | CloseReason | None:
        if self._in_control:
            self._in_control = False
            return None
        result: bytes | CloseReason | None = super().frame_inbound_complete(proto, fin)
        return result

    def frame_inbound_payload_data(self, proto: object, data: bytes) -> bytes | CloseReason:
        # Mirrors PerMessageDeflate.frame_inbound_payload_data, with max_length.
        if self._in_control or not self._inbound_compressed or not self._inbound_is_compressible:
            return data
        inflater = self._decompressor
        assert inflater is not None
        try:
            out: bytes = inflater.decompress(bytes(data), self._limit + 1)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        if len(out) > self._limit or inflater.unconsumed_tail:
            return CloseReason.MESSAGE_TOO_BIG
        return out


# wsproto's frame-level Connection keeps its own queue of events, a deque: 760 bytes per
# client (a deque allocates a block of 64 slots), a third of what an idle client costs.
# Only ``receive_data(None)`` ever puts anything there, and a session never calls it
# (EOF is ``b""`` there, handled before wsproto); every event it reads comes from the frame
# parser.  So every connection shares this one, which holds nothing.  (Were a wsproto to
# queue frames there, no Ping or Close would reach the shell, which the session tests see.)
_NO_EVENTS: deque[Any] = deque(maxlen=0)


def lean_connection(conn: Connection) -> Connection:
    """``conn`` without an event queue of its own (see ``_NO_EVENTS``)."""
    events = getattr(conn, "_events", None)
    if isinstance(events, deque) and not events:
        conn._events = _NO_EVENTS  # wsproto has no public way to share it
    return conn


def frame_connection(inflate_limit: int | None) -> Connection:
    """A fresh frame-level server connection, the one the upgrade makes: plain frames when
    ``inflate_limit`` is None, else permessage-deflate inflating at most that many bytes."""
    extensions: list[Extension] = [] if inflate_limit is None else [BoundedInflate(inflate_limit)]
    return lean_connection(Connection(ConnectionType.SERVER, extensions=extensions))


# RFC 6455 §5.2: 2 bytes, then a 16- or 64-bit extended length, then a 4-byte masking key.
_MAX_HEAD = 14


def _head_size(head: bytes) -> int:
    """The length of the header ``head`` begins, or 0 while its first 2 bytes are missing."""
    if len(head) < 2:
        return 0
    short = head[1] & 0x7F
    return 2 + (2 if short == 126 else 8 if short == 127 else 0) + (4 if head[1] & 0x80 else 0)


class FrameBounds:
    """Where the client's frames and data messages end, read from their headers alone.

    Fed the same bytes as wsproto's connection, in any chunks; :attr:`at_rest` is true when
    every byte fed so far belongs to a complete frame and no fragmented data message is
    open, i.e. when that connection holds nothing a later byte needs: its buffer is empty,
    no frame is half read, no message (nor its UTF-8 decoder or inflater) is half done.

    Only lengths are measured: masking, opcodes, reserved bits, UTF-8 and close codes are
    wsproto's to check, and once it reports a violation or a close the session keeps its
    connection and stops asking.  On every stream wsproto accepts, both read the same
    boundaries (it rejects a length written longer than needed, an unmasked frame, a
    continuation with no message open and a new message inside one).
    """

    __slots__ = ("_head", "_left", "_open")

    def __init__(self) -> None:
        self._head = b""  # the first bytes of a header, until it is complete
        self._left = 0  # payload bytes of the current frame still to come
        self._open = False  # a data message began with FIN=0 and has not ended

    @property
    def at_rest(self) -> bool:
        return not self._head and not self._left and not self._open

    def feed(self, data: bytes) -> None:
        """Account for ``data``, the client's next bytes."""
        pos, end = 0, len(data)
        while pos < end:
            if self._left:  # payload: skipped, never copied
                step = min(self._left, end - pos)
                self._left -= step
                pos += step
                continue
            had = len(self._head)
            head = self._head + data[pos : pos + _MAX_HEAD - had]
            size = _head_size(head)
            if not size or len(head) < size:
                self._head = head  # all of data is in it
                return
            pos += size - had
            self._head = b""
            self._frame(head)

    def _frame(self, head: bytes) -> None:
        short = head[1] & 0x7F
        if short == 126:
            self._left = int.from_bytes(head[2:4], "big")
        elif short == 127:
            self._left = int.from_bytes(head[2:10], "big")
        else:
            self._left = short
        if not head[0] & 0x08:
            # A data frame or a continuation: FIN=0 opens the message (or keeps it open),
            # FIN=1 ends it (or is a whole message).  A control frame (opcode 8..15) may come
            # between fragments and changes nothing.
            self._open = not (head[0] & 0x80)
