"""Server→client WebSocket frames and SSE events as bytes: the pure-Python twin.

Server frames are never masked (RFC 6455 §5.1), and the only extension we negotiate is
permessage-deflate without context takeover, so a frame's bytes depend only on the payload
(and, compressed, on the window: see ``core.deflate``): each message is framed once and the
same bytes are written to every client.  ``join_ws_frames`` frames a client's whole backlog into one
buffer, so that it costs one ``sendall``.
"""

from __future__ import annotations

from certstream.errors import LocalProtocolError

__all__ = [
    "join_ws_frames",
    "sse_comment",
    "sse_event",
    "ws_close_frame",
    "ws_compressed_frame",
    "ws_frame",
    "ws_ping_frame",
    "ws_pong_frame",
]

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
_OPCODES = frozenset((OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG))
_MAX_CONTROL = 125


def _header(n: int, opcode: int) -> bytes:
    if opcode not in _OPCODES:
        raise LocalProtocolError(f"unknown WebSocket opcode {opcode}")
    if opcode >= OP_CLOSE and n > _MAX_CONTROL:
        raise LocalProtocolError(f"control frame payload of {n} bytes is over 125")
    b0 = 0x80 | opcode  # FIN, no RSV bits
    if n < 126:
        return bytes((b0, n))
    if n < 0x10000:
        return bytes((b0, 126)) + n.to_bytes(2, "big")
    return bytes((b0, 127)) + n.to_bytes(8, "big")


def ws_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """One unmasked, final frame (text by default) carrying ``payload``."""
    return _header(len(payload), opcode) + payload


def ws_compressed_frame(data: bytes) -> bytes:
    """One unmasked, final text frame with RSV1 set (RFC 7692): ``data`` is the message
    already compressed by ``core.deflate``."""
    n = len(data)
    if n < 126:
        head = bytes((0xC1, n))
    elif n < 0x10000:
        head = bytes((0xC1, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0xC1, 127)) + n.to_bytes(8, "big")
    return head + data


def join_ws_frames(payloads: list[bytes]) -> bytes:
    """Text frames for every payload, concatenated into one buffer."""
    return b"".join([_header(len(p), OP_TEXT) + p for p in payloads])


def _valid_close_code(code: int) -> bool:
    # 1004-1006 and 1015 must never be sent; 1016-2999 are reserved for future RFCs.
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def ws_close_frame(code: int | None = 1000, reason: str = "") -> bytes:
    """A Close frame; ``reason`` is cut to fit in 125 bytes at a character boundary."""
    if code is None:
        if reason:
            raise LocalProtocolError("a close reason needs a close code")
        return ws_frame(b"", OP_CLOSE)
    if not _valid_close_code(code):
        raise LocalProtocolError(f"close code {code} may not be sent")
    raw = reason.encode("utf-8")
    if len(raw) > _MAX_CONTROL - 2:
        raw = raw[: _MAX_CONTROL - 2].decode("utf-8", "ignore").encode("utf-8")
    return ws_frame(code.to_bytes(2, "big") + raw, OP_CLOSE)


def ws_ping_frame(payload: bytes = b"") -> bytes:
    return ws_frame(payload, OP_PING)


def ws_pong_frame(payload: bytes = b"") -> bytes:
    return ws_frame(payload, OP_PONG)


def sse_event(payload: bytes, event_id: bytes | int | None = None) -> bytes:
    """``id: N\\ndata: <payload>\\n\\n``; a newline inside the payload starts a new data line.
    ``event_id`` is the id's text (``b"1700000000000-3"``) or a number.

    One trailing newline is dropped (the peers' frames end in one, and SSE's own blank line
    ends the event).  CR and CRLF are line ends in SSE too, so they are turned into LF
    rather than left to corrupt the stream.
    """
    if b"\r" in payload:
        payload = payload.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if payload.endswith(b"\n"):
        payload = payload[:-1]
    if b"\n" in payload:
        payload = payload.replace(b"\n", b"\ndata: ")
    if event_id is None:
        return b"data: " + payload + b"\n\n"
    if isinstance(event_id, bytes):
        return b"id: %b\ndata: %b\n\n" % (event_id, payload)
    return b"id: %d\ndata: %b\n\n" % (event_id, payload)


def sse_comment(text: bytes = b"") -> bytes:
    """A comment line (``: text``), used as a keep-alive; clients ignore it."""
    if b"\n" in text or b"\r" in text:
        raise LocalProtocolError("an SSE comment cannot contain a line break")
    return b": " + text + b"\n\n"
