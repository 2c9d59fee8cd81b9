"""wsproto's frame-level connection as a session keeps one per WebSocket client: what the
client compressed is inflated with a bound, and no connection has an event queue of its own.

``certstream.core.session`` negotiates permessage-deflate itself (``core.deflate``) and hands
the inbound half to wsproto as :class:`BoundedInflate`; :func:`lean_connection` makes an idle
client cheaper.
"""

from __future__ import annotations

import zlib
from collections import deque
from typing import Any

from wsproto.connection import Connection
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason

__all__ = ["BoundedInflate", "lean_connection"]


class BoundedInflate(PerMessageDeflate):
    """The inbound half of our permessage-deflate: what the client compressed, inflated at
    most ``limit`` bytes per frame chunk (a deflate stream can expand ~1000 times)."""

    def __init__(self, limit: int) -> None:
        super().__init__(client_no_context_takeover=True, server_no_context_takeover=True)
        self._limit = limit
        self._enabled = True

    def frame_inbound_payload_data(self, proto: object, data: bytes) -> bytes | CloseReason:
        # Mirrors PerMessageDeflate.frame_inbound_payload_data, with max_length.
        if not self._inbound_compressed or not self._inbound_is_compressible:
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
