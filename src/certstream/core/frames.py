"""WebSocket and SSE framing, from ``certstream._fast`` (compiled ``_frames`` or its twin).

See ``certstream._fast._frames_py`` for what each function builds.
"""

from __future__ import annotations

from certstream._fast import (
    join_ws_frames,
    sse_comment,
    sse_event,
    ws_close_frame,
    ws_frame,
    ws_ping_frame,
    ws_pong_frame,
)

__all__ = [
    "join_ws_frames",
    "sse_comment",
    "sse_event",
    "ws_close_frame",
    "ws_frame",
    "ws_ping_frame",
    "ws_pong_frame",
]
