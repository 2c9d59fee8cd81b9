"""The feed's acknowledgements: a batch counts as delivered only once every worker it went
to has written it (or has gone while another one wrote it); a batch every worker lost is
published again when a worker is back; a worker that never answers holds nothing back for
long.  Real Unix sockets, the real publisher and subscribers, the real pipeline and state
store."""

from __future__ import annotations

import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
import pytest
from tests.support.pipeline import IndexBuilder
from tests.support.wait import wait_until

from certstream.core.dedup import DedupRing
from certstream.core.feedcodec import encode_want
from certstream.core.logspec import LogSpec
from certstream.core.messages import Payloads
from certstream.core.model import LogEntry
from certstream.core.streams import STREAM_LITE
from certstream.shell import feed as feed_module
from certstream.shell.feed import FeedPublisher
from certstream.shell.feedsub import FeedSubscriber
from certstream.shell.pipeline import Pipeline
from certstream.shell.state import StateStore


@pytest.fixture
def tmp_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="cs-ack-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def publisher(tmp_dir: Path) -> Iterator[FeedPublisher]:
    pub = FeedPublisher(str(tmp_dir / "feed.sock"))
    pub.start()
    yield pub
    pub.close()


class Worker:
    """A subscriber whose hub flush the test performs (``flush``)."""

    def __init__(self, path: str, *, manual: bool = True) -> None:
        self.got: list[bytes] = []
        self.pending: list[Callable[[], None]] = []
        self.sub = FeedSubscriber(
            path, lambda _m, lite, _f, _d, _x: self.got.append(lite or b""), lambda _s: None,
            lambda _e: None, after_flush=self.pending.append if manual else None)
        self.sub.set_wanted(STREAM_LITE)
        self.greenlet = gevent.spawn(self.sub.run)

    def flush(self) -> None:
        pending, self.pending[:] = list(self.pending), []
        for done in pending:
            done()

    def close(self) -> None:
        self.sub.close()
        self.greenlet.kill()


def items(*indices: int) -> list[tuple[str, int, Any]]:
    return [("k", i, Payloads(b"%d" % i, None, None)) for i in indices]


@pytest.mark.timeout(30)
def test_delivered_once_every_worker_has_written_it(publisher: FeedPublisher) -> None:
    a, b = Worker(publisher.path), Worker(publisher.path)
    try:
        wait_until(lambda: publisher.connected() == 2 and publisher.wanted() == STREAM_LITE,
                   10, "two workers")
        done: list[str] = []
        publisher.publish(items(1, 2), lambda: done.append("delivered"))
        wait_until(lambda: len(a.got) == len(b.got) == 2, 10, "both workers to get them")
        gevent.sleep(0.2)
        assert done == []  # received, not yet written to their clients
        a.flush()
        gevent.sleep(0.2)
        assert done == []  # one of two
        b.flush()
        wait_until(lambda: done == ["delivered"], 10, "the delivery")
    finally:
        a.close()
        b.close()


@pytest.mark.timeout(30)
def test_an_acknowledgement_covers_only_what_came_before_the_flush_it_waited_for(
    publisher: FeedPublisher,
) -> None:
    # The hub may run an acknowledgement late (it waits for clients whose write was half
    # done); entries received meanwhile are in its ring, not yet in any socket.
    a = Worker(publisher.path)
    try:
        wait_until(lambda: publisher.wanted() == STREAM_LITE, 10, "a worker")
        done: list[str] = []
        publisher.publish(items(1), lambda: done.append("first"))
        wait_until(lambda: len(a.got) == 1 and len(a.pending) == 1, 10, "the first batch")
        publisher.publish(items(2), lambda: done.append("second"))
        wait_until(lambda: len(a.got) == 2, 10, "the second batch")
        first, a.pending[:] = a.pending[0], []
        first()  # the flush that wrote the first batch, reported after the second came
        wait_until(lambda: done == ["first"], 10, "the first delivery")
        gevent.sleep(0.2)
        assert done == ["first"] and len(a.pending) == 1  # the second waits for its flush
        a.flush()
        wait_until(lambda: done == ["first", "second"], 10, "the second delivery")
    finally:
        a.close()


@pytest.mark.timeout(30)
def test_the_recent_entries_a_joining_worker_is_sent_count_in_its_acknowledgements(
    tmp_dir: Path,
) -> None:
    publisher = FeedPublisher(str(tmp_dir / "replay.sock"), replay=10)
    publisher.start()
    a = Worker(publisher.path)
    b: Worker | None = None
    try:
        wait_until(lambda: publisher.wanted() == STREAM_LITE, 10, "a worker")
        done: list[str] = []
        publisher.publish(items(1), lambda: done.append("first"))
        wait_until(lambda: len(a.got) == 1, 10, "the first batch")
        a.flush()
        wait_until(lambda: done == ["first"], 10, "the first delivery")
        b = Worker(publisher.path)  # a worker that starts later: it is sent entry 1 again
        joined = b
        wait_until(lambda: joined.got == [b"1"] and len(joined.pending) == 1, 10, "the replay")
        publisher.publish(items(2), lambda: done.append("second"))
        wait_until(lambda: len(a.got) == len(joined.got) == 2, 10, "the second batch")
        a.flush()
        replayed, b.pending[:] = b.pending[0], []
        replayed()  # b has written the entry it was sent on joining, not the new one
        gevent.sleep(0.3)
        assert done == ["first"]
        b.flush()
        wait_until(lambda: done == ["first", "second"], 10, "the second delivery")
    finally:
        a.close()
        if b is not None:
            b.close()
        publisher.close()


@pytest.mark.timeout(30)
def test_a_worker_that_goes_does_not_hold_back_what_another_wrote(
    publisher: FeedPublisher,
) -> None:
    a, b = Worker(publisher.path), Worker(publisher.path)
    try:
        wait_until(lambda: publisher.connected() == 2, 10, "two workers")
        done: list[str] = []
        publisher.publish(items(1), lambda: done.append("delivered"),
                          lambda: done.append("lost"))
        wait_until(lambda: len(a.got) == len(b.got) == 1, 10, "both workers to get it")
        a.flush()
        b.close()
        wait_until(lambda: done == ["delivered"], 10, "the delivery")
    finally:
        a.close()


@pytest.mark.timeout(30)
def test_a_batch_every_worker_lost_is_lost(publisher: FeedPublisher) -> None:
    a = Worker(publisher.path)
    wait_until(lambda: publisher.connected() == 1, 10, "a worker")
    done: list[str] = []
    publisher.publish(items(1), lambda: done.append("delivered"), lambda: done.append("lost"))
    wait_until(lambda: len(a.got) == 1, 10, "the worker to get it")
    a.close()  # gone before it wrote it to anyone
    wait_until(lambda: done == ["lost"], 10, "the loss")


@pytest.mark.timeout(30)
def test_a_worker_that_never_answers_holds_nothing_back_for_long(
    publisher: FeedPublisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feed_module, "ACK_TIMEOUT", 0.5)
    mute = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    mute.connect(publisher.path)  # an old worker: takes entries, never acknowledges
    mute.sendall(encode_want(STREAM_LITE))
    try:
        wait_until(lambda: publisher.wanted() == STREAM_LITE, 10, "the mute worker")
        done: list[str] = []
        publisher.publish(items(1), lambda: done.append("delivered"))
        start = time.monotonic()
        wait_until(lambda: done == ["delivered"], 10, "the timeout")
        assert time.monotonic() - start >= 0.4 and publisher.ack_timeouts == 1
    finally:
        mute.close()


class _Follower:
    def __init__(self) -> None:
        self.spec = LogSpec("k", "K", "https://k.example/")
        self.source = self.spec.source
        self.next_index: int | None = 0
        self.duplicates = 0

    def report_skip(self, index: int, reason: str, kind: str = "decode") -> None:
        raise AssertionError(reason)


def entry(i: int) -> LogEntry:
    return LogEntry(i, 0, 0, b"cert-%d" % i, None, None, (), b"")


@pytest.mark.timeout(60)
def test_the_pipeline_saves_a_position_only_once_delivered_and_sends_a_lost_batch_again(
    publisher: FeedPublisher, tmp_dir: Path
) -> None:
    state = StateStore(str(tmp_dir / "state.json"))
    pipeline = Pipeline(publisher, IndexBuilder(), DedupRing(1000, 900.0), state,
                        workers_connected=publisher.connected)
    follower: Any = _Follower()
    a = Worker(publisher.path)
    try:
        wait_until(lambda: publisher.wanted() == STREAM_LITE, 10, "a worker")
        pipeline.deliver(follower, [entry(0), entry(1)], 2, 2)
        wait_until(lambda: len(a.got) == 2, 10, "the first batch")
        gevent.sleep(0.3)
        assert state.get("k") is None  # not written to any client yet: not saved
        a.flush()
        wait_until(lambda: StateStore(state.path).load().get("k") is not None, 10, "a save")
        assert StateStore(state.path).load()["k"].next_index == 2
        # The next batch reaches the worker, which dies before writing it to anyone.
        second = gevent.spawn(pipeline.deliver, follower, [entry(2), entry(3)], 4, 4)
        wait_until(lambda: len(a.got) == 4, 10, "the second batch")
        a.close()
        # A third batch waits for the second; the second goes out again to the next worker.
        third = gevent.spawn(pipeline.deliver, follower, [entry(4)], 5, 5)
        gevent.sleep(0.5)
        assert StateStore(state.path).load()["k"].next_index == 2
        b = Worker(publisher.path, manual=False)
        try:
            wait_until(lambda: b.got == [b"2", b"3", b"4"], 20, "the lost batch, then the next")
            wait_until(lambda: StateStore(state.path).load()["k"].next_index == 5, 10,
                       "the last position saved")
        finally:
            b.close()
        second.join(1)
        third.join(1)
    finally:
        a.close()
        state.stop()


@pytest.mark.timeout(30)
def test_the_first_batch_waits_for_every_expected_worker(
    publisher: FeedPublisher, tmp_dir: Path
) -> None:
    state = StateStore(str(tmp_dir / "state.json"))
    pipeline = Pipeline(publisher, IndexBuilder(), DedupRing(1000, 900.0), state,
                        workers_connected=publisher.connected, expected_workers=2)
    follower: Any = _Follower()
    a = Worker(publisher.path, manual=False)
    b: Worker | None = None
    try:
        first = gevent.spawn(pipeline.deliver, follower, [entry(0)], 1, 1)
        wait_until(lambda: publisher.connected() == 1, 10, "the first worker")
        gevent.sleep(1.0)
        assert a.got == []  # a second worker is expected: the batch waits for it
        b = Worker(publisher.path, manual=False)
        wait_until(lambda: a.got == [b"0"] and b is not None and b.got == [b"0"], 10,
                   "the batch, to both")
        first.join(5)
    finally:
        a.close()
        if b is not None:
            b.close()
        state.stop()
