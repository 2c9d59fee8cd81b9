"""Fanout.after_flush: a worker acknowledges the feed's entries only once they are written
(plain values; the written bytes go to a list)."""

from __future__ import annotations

from certstream.core.fanout import Cursor, Fanout
from certstream.core.streams import STREAM_FULL, STREAM_LITE


class Written(Fanout[Cursor]):
    def __init__(self) -> None:
        super().__init__(16)
        self.written: list[bytes] = []

    def _write_now(self, cursor: Cursor, data: bytes) -> None:
        self.written.append(data)

    def close_client(self, cursor: Cursor, code: int, reason: str) -> None:
        self._detach(cursor)


def test_called_at_once_when_nothing_is_pending() -> None:
    fan = Written()
    calls: list[str] = []
    fan.after_flush(lambda: calls.append("now"))
    assert calls == ["now"]
    # An entry for a stream nobody follows leaves nothing to write either.
    fan.subscribe(Cursor(fan.rings[STREAM_LITE], is_ws=True))
    fan.publish(STREAM_FULL, None, b"full", None)
    fan.after_flush(lambda: calls.append("again"))
    assert calls == ["now", "again"]


def test_called_after_the_flush_that_writes_what_was_published() -> None:
    fan = Written()
    fan.subscribe(Cursor(fan.rings[STREAM_LITE], is_ws=True))
    calls: list[int] = []
    fan.publish(STREAM_LITE, b"one", None, None)
    fan.after_flush(lambda: calls.append(len(fan.written)))
    fan.publish(STREAM_LITE, b"two", None, None)
    assert calls == []  # not written yet: not acknowledged
    fan.flush()
    assert calls == [1] and b"one" in fan.written[0] and b"two" in fan.written[0]
    fan.flush()
    assert calls == [1]  # once
