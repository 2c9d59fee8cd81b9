"""Fanout.after_flush: a worker acknowledges the feed's entries only once they are written
(plain values; the written bytes go to a list)."""

from __future__ import annotations

from tests.support.fanout import Recorder, client

from certstream.core.streams import STREAM_FULL, STREAM_LITE


def test_called_at_once_when_nothing_is_pending() -> None:
    fan = Recorder(16)
    calls: list[str] = []
    fan.after_flush(lambda: calls.append("now"))
    assert calls == ["now"]
    # An entry for a stream nobody follows leaves nothing to write either.
    client(fan)
    fan.publish(STREAM_FULL, None, b"full", None)
    fan.after_flush(lambda: calls.append("again"))
    assert calls == ["now", "again"]


def test_called_after_the_flush_that_writes_what_was_published() -> None:
    fan = Recorder(16)
    reader = client(fan)
    calls: list[int] = []
    fan.publish(STREAM_LITE, b"one", None, None)
    fan.after_flush(lambda: calls.append(len(fan.written)))
    fan.publish(STREAM_LITE, b"two", None, None)
    assert calls == []  # not written yet: not acknowledged
    fan.flush()
    assert calls == [1] and b"one" in fan.got(reader) and b"two" in fan.got(reader)
    fan.flush()
    assert calls == [1]  # once
