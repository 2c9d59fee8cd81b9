"""WebSocket and SSE framing, from ``certstream._fast._frames`` (compiled) or its twin.

See ``certstream._fast._frames_py`` for what each function builds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from certstream._fast import COMPILED, NO_EXTENSIONS

if TYPE_CHECKING or NO_EXTENSIONS:
    from certstream._fast._frames_py import (
        join_ws_frames,
        sse_comment,
        sse_event,
        ws_close_frame,
        ws_compressed_frame,
        ws_frame,
        ws_ping_frame,
        ws_pong_frame,
    )

    COMPILED["_frames"] = False
else:
    try:
        from certstream._fast._frames import (
            join_ws_frames,
            sse_comment,
            sse_event,
            ws_close_frame,
            ws_compressed_frame,
            ws_frame,
            ws_ping_frame,
            ws_pong_frame,
        )
    except ImportError:
        from certstream._fast._frames_py import (
            join_ws_frames,
            sse_comment,
            sse_event,
            ws_close_frame,
            ws_compressed_frame,
            ws_frame,
            ws_ping_frame,
            ws_pong_frame,
        )

        COMPILED["_frames"] = False
    else:
        COMPILED["_frames"] = True

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
