"""The fan-out bookkeeping (``core.fanout``) with plain values: :class:`Recorder`, a
``Fanout`` whose writes go to a list, and :func:`client`, a subscribed cursor."""

from __future__ import annotations

from collections.abc import Callable

from certstream.core.fanout import WRITE_CAP, Cursor, Fanout
from certstream.core.filterfields import FilterSpec
from certstream.core.resume import Resume
from certstream.core.rings import DEFAULT_MAX_BYTES
from certstream.core.streams import STREAM_LITE

__all__ = ["Recorder", "client"]


class Recorder(Fanout[Cursor]):
    """Writes go to a list; a cursor in ``stalled`` takes nothing (the kernel buffer is
    full), which makes it busy, as the shell's non-blocking write does."""

    def __init__(self, buffer_size: int, *, drop_budget: int = 1000, close_code: int = 1008,
                 on_wanted: Callable[[int], None] | None = None,
                 flush_interval: float = 0.0, epoch_ms: int = 0,
                 buffer_bytes: int = DEFAULT_MAX_BYTES, write_cap: int = WRITE_CAP) -> None:
        super().__init__(buffer_size, drop_budget=drop_budget, close_code=close_code,
                         on_wanted=on_wanted, flush_interval=flush_interval,
                         epoch_ms=epoch_ms, buffer_bytes=buffer_bytes, write_cap=write_cap)
        self.written: list[tuple[Cursor, bytes | memoryview]] = []
        self.closed: list[tuple[Cursor, int, str]] = []
        self.stalled: set[Cursor] = set()
        self.wakes = 0
        self._wake = self._count_wake

    def _count_wake(self) -> None:
        self.wakes += 1

    def _write_now(self, cursor: Cursor, data: bytes | memoryview) -> None:
        if cursor in self.stalled:
            cursor.busy = True
            return
        self.written.append((cursor, data))

    def close_client(self, cursor: Cursor, code: int, reason: str) -> None:
        self.closed.append((cursor, code, reason))
        self._detach(cursor)

    def got(self, cursor: Cursor) -> bytes:
        return b"".join(bytes(d) for c, d in self.written if c is cursor)


def client(fan: Fanout[Cursor], stream: int = STREAM_LITE, *, ws: bool = True,
           spec: FilterSpec | None = None, wbits: int = 0,
           resume: Resume | None = None) -> Cursor:
    """A cursor of ``stream`` subscribed to ``fan``: WebSocket or SSE, filtered by ``spec``,
    with compressed frames of window ``wbits`` (0: plain), resuming at ``resume``."""
    c = Cursor(fan.rings[stream], is_ws=ws, wbits=wbits)
    fan.subscribe(c, spec, resume)
    return c
