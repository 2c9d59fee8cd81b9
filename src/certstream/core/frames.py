"""WebSocket and SSE framing: the functions of the ``_frames`` twin, loaded on first use.

See ``certstream._fast._frames_py`` for what each function builds; ``certstream._fast``
chooses the compiled twin or the pure one.  This module hands the names out lazily (PEP 562)
because the gunicorn master imports it, through the worker class, and never builds a frame:
the twin is loaded by a worker's first frame, so the master loads no twin at all.  Call the
functions as ``frames.ws_frame(...)`` in modules the master imports; a ``from
certstream.core.frames import ws_frame`` loads the twin at once (fine anywhere else).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from certstream import _fast

if TYPE_CHECKING:
    from certstream._fast import (
        join_ws_frames,
        sse_comment,
        sse_event,
        ws_close_frame,
        ws_compressed_frame,
        ws_frame,
        ws_ping_frame,
        ws_pong_frame,
    )

__all__ = [
    "join_ws_frames",
    "sse_comment",
    "sse_event",
    "ws_close_frame",
    "ws_compressed_frame",
    "ws_frame",
    "ws_frame_end",
    "ws_ping_frame",
    "ws_pong_frame",
]


def ws_frame_end(buf: bytes, pos: int) -> int:
    """The first frame boundary at or after ``pos`` in ``buf``, which holds whole unmasked
    frames from its start (what the hub writes).  Used when a slow client is closed in the
    middle of a write: the frame on the wire is finished, everything after it dropped.
    Plain Python: it walks headers only, and only on that rare path."""
    i, n = 0, len(buf)
    while i < pos and i < n:
        size = buf[i + 1] & 0x7F
        if size == 126:
            size, head = int.from_bytes(buf[i + 2 : i + 4], "big"), 4
        elif size == 127:
            size, head = int.from_bytes(buf[i + 2 : i + 10], "big"), 10
        else:
            head = 2
        i += head + size
    return min(i, n)

if not TYPE_CHECKING:  # mypy reads the imports above; a module __getattr__ would hide typos

    def __getattr__(name: str) -> Any:
        if name not in __all__:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(_fast, name)
        globals()[name] = value  # later lookups are plain module attributes
        return value
