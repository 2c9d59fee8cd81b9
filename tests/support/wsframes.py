"""WebSocket frames as a client sees them: the one frame reader (server frames, checked to be
whole and unmasked) and the frame writer (client frames, well-formed or deliberately not)."""

from __future__ import annotations

TEXT, BINARY, CLOSE, PING, PONG = 1, 2, 8, 9, 10


def next_frame(data: bytes) -> tuple[int, bytes, int] | None:
    """The server frame at the start of ``data``: ``(opcode, payload, bytes used)``, or None
    while it is incomplete. A server frame is never fragmented and never masked."""
    frame = next_raw_frame(data)
    if frame is None:
        return None
    first, payload, used = frame
    return first & 0x0F, payload, used


def next_raw_frame(data: bytes) -> tuple[int, bytes, int] | None:
    """As :func:`next_frame`, with the frame's whole first byte (FIN, RSV bits, opcode)
    instead of the opcode: RSV1 (0x40) marks a compressed message."""
    if len(data) < 2:
        return None
    b0, b1 = data[0], data[1]
    assert b0 & 0x80, "server frames are never fragmented"
    assert not b1 & 0x80, "server frames are never masked"
    n, start = b1 & 0x7F, 2
    if n == 126:
        n, start = int.from_bytes(data[2:4], "big"), 4
    elif n == 127:
        n, start = int.from_bytes(data[2:10], "big"), 10
    if len(data) < start + n:
        return None
    return b0, data[start : start + n], start + n


def read_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Every frame of ``data`` as ``(opcode, payload)``; ``data`` must end with a whole one."""
    out = []
    while data:
        frame = next_frame(data)
        assert frame is not None, f"a partial frame at the end: {data[:20]!r}"
        opcode, payload, used = frame
        out.append((opcode, payload))
        data = data[used:]
    return out


def encode_frame(first: int, payload: bytes = b"", *, mask: bytes | None = None,
                 length: int | None = None) -> bytes:
    """A client frame: ``first`` is its whole first byte (FIN, RSV bits and opcode), ``mask``
    the 4-byte masking key (None: unmasked, which a client must not send), ``length`` the
    length to declare when it should not be the payload's."""
    n = len(payload) if length is None else length
    mbit = 0x80 if mask is not None else 0
    if n < 126:
        head = bytes((first, mbit | n))
    elif n < 65536:
        head = bytes((first, mbit | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((first, mbit | 127)) + n.to_bytes(8, "big")
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def close_info(payload: bytes) -> tuple[int, str]:
    """A close frame's code and reason (1005: no code given)."""
    if len(payload) < 2:
        return 1005, ""
    return int.from_bytes(payload[:2], "big"), payload[2:].decode("utf-8", "replace")
