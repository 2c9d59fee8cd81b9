"""The feed between the ingest and the workers over real Unix sockets (the codec over plain
bytes is tests/unit/test_feed_codec.py).

The socket tests run publisher and subscribers as greenlets in this one process; gevent's
own socket module is used by the feed, so no monkey-patching is needed.
"""

from __future__ import annotations

import os
import socket as stdsocket
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
import gevent.socket
import pytest
from tests.support.net import short_tmpdir
from tests.support.wait import wait_until

from certstream.core.feedcodec import (
    EXAMPLE,
    FIELDS,
    KIND_ENTRY,
    STAMP,
    Entry,
    FeedDecoder,
    encode_want,
)
from certstream.core.resume import Stamp
from certstream.core.streams import STREAM_DOMAINS as DOMAINS
from certstream.core.streams import STREAM_FULL as FULL
from certstream.core.streams import STREAM_LITE as LITE
from certstream.shell.feed import (
    WRITE_CHUNK,
    FeedPublisher,
)
from certstream.shell.feedsub import FeedSubscriber


@dataclass(frozen=True)
class P:
    """Stands in for core.messages.Payloads: the feed only reads these attributes."""

    lite: bytes | None
    full: bytes | None
    domains: bytes | None
    fields: bytes | None = None
    seen: int = 0


@dataclass
class Sink:
    entries: list[tuple[int, bytes | None, bytes | None, bytes | None, bytes | None]] = field(
        default_factory=list)
    states: list[dict[str, Any]] = field(default_factory=list)
    examples: list[bytes] = field(default_factory=list)
    stamps: list[Stamp] = field(default_factory=list)
    gaps: list[int] = field(default_factory=list)
    sub: FeedSubscriber | None = None

    def start(self, path: str) -> FeedSubscriber:
        self.sub = FeedSubscriber(path, self._entry, self.states.append, self.examples.append,
                                  self.gaps.append)
        gevent.spawn(self.sub.run)
        return self.sub

    def _entry(self, mask: int, lite: bytes | None, full: bytes | None,
               domains: bytes | None, stamp: Stamp) -> None:
        assert mask & STAMP  # the ingest's id and seen came along
        self.entries.append((mask & ~STAMP, lite, full, domains, stamp.fields))
        self.stamps.append(stamp)


@pytest.fixture
def sock_path() -> Iterator[str]:
    with short_tmpdir("csfeed") as d:
        yield str(d / "feed.sock")


def test_two_workers_round_trip_want_state_example(sock_path: str) -> None:
    pub = FeedPublisher(sock_path)
    a, b = Sink(), Sink()
    sa, sb = a.start(sock_path), b.start(sock_path)  # before the publisher: they must retry
    gevent.sleep(0.1)
    pub.start()
    try:
        assert wait_until(lambda: sa.connected.is_set() and sb.connected.is_set())
        sa.set_wanted(LITE)
        sb.set_wanted(DOMAINS | FIELDS)  # a worker with filtered clients asks for the field
        assert wait_until(lambda: pub.wanted() == LITE | DOMAINS | FIELDS)
        sb.set_wanted(0)
        assert wait_until(lambda: pub.wanted() == LITE)

        items = [("log-a", 10, P(b'{"l":1}\n', None, b'{"d":1}')),
                 ("log-b", 3, P(None, b"", None)),
                 ("log-a", 11, P(b"\x00\xff", b"full", b"dom", b"issuer\0log\0name"))]
        pub.publish(items)
        pub.publish_state({"logs": [{"name": "x", "status": "healthy"}], "started": 1.0})
        pub.publish_example(b'{"sample":true}\n')
        expected = [(LITE | DOMAINS, b'{"l":1}\n', None, b'{"d":1}', None),
                    (FULL, None, b"", None, None),
                    (LITE | FULL | DOMAINS | FIELDS, b"\x00\xff", b"full", b"dom",
                     b"issuer\0log\0name")]
        assert wait_until(lambda: all(len(s.entries) == 3 and s.examples for s in (a, b)))
        for sink in (a, b):
            assert sink.entries == expected
            # The same global ids on every worker: the publisher's epoch, then 1, 2, 3.
            assert [st.event_id() for st in sink.stamps] == [
                b"%d-%d" % (pub.epoch_ms, n) for n in (1, 2, 3)]
            assert sink.states == [{"logs": [{"name": "x", "status": "healthy"}], "started": 1.0}]
            assert sink.examples == [b'{"sample":true}\n']

        # Re-published entries (an ingest restart) are dropped, newer ones pass.
        pub.publish([("log-a", 11, P(b"again", None, None)), ("log-b", 2, P(b"old", None, None)),
                     ("log-b", 4, P(b"new", None, None))])
        assert wait_until(lambda: len(a.entries) == 4)
        gevent.sleep(0.05)
        assert a.entries[3] == (LITE, b"new", None, None, None)
        assert sa.replayed == 2
    finally:
        pub.close()
        sa.close()
        sb.close()


def test_late_worker_gets_latest_state_and_example(sock_path: str) -> None:
    pub = FeedPublisher(sock_path)
    pub.start()
    try:
        pub.publish_state({"n": 1})
        pub.publish_state({"n": 2})
        pub.publish_example(b"ex")
        late = Sink()
        sub = late.start(sock_path)
        assert wait_until(lambda: bool(late.states) and bool(late.examples))
        assert late.states == [{"n": 2}]
        assert late.examples == [b"ex"]
        sub.close()
    finally:
        pub.close()


def test_subscriber_reconnects_after_publisher_restart(sock_path: str) -> None:
    pub = FeedPublisher(sock_path)
    pub.start()
    sink = Sink()
    sub = sink.start(sock_path)
    try:
        sub.set_wanted(FULL)
        assert wait_until(lambda: pub.wanted() == FULL)
        pub.publish([("k", 1, P(None, b"one", None))])
        assert wait_until(lambda: len(sink.entries) == 1)
        pub.close()
        assert wait_until(lambda: not sub.connected.is_set())
        assert not os.path.exists(sock_path)

        pub = FeedPublisher(sock_path)
        pub.start()
        # The new ingest learns the worker's WANT again without the worker changing it.
        assert wait_until(lambda: pub.wanted() == FULL)
        pub.publish([("k", 1, P(None, b"one", None)), ("k", 2, P(None, b"two", None))])
        assert wait_until(lambda: len(sink.entries) == 2)
        assert [e[2] for e in sink.entries] == [b"one", b"two"]
        assert sub.replayed == 1
    finally:
        pub.close()
        sub.close()


def test_stale_socket_file_is_replaced(sock_path: str) -> None:
    s = stdsocket.socket(stdsocket.AF_UNIX)
    s.bind(sock_path)
    s.close()  # leaves the file behind, as a killed ingest would
    pub = FeedPublisher(sock_path)
    pub.start()
    sink = Sink()
    sub = sink.start(sock_path)
    try:
        assert wait_until(sub.connected.is_set)
    finally:
        pub.close()
        sub.close()


def test_worker_that_never_reads_does_not_block_the_others(sock_path: str) -> None:
    limit = 1024 * 1024
    pub = FeedPublisher(sock_path, max_pending_bytes=limit)
    pub.start()
    stuck = stdsocket.socket(stdsocket.AF_UNIX)
    stuck.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_RCVBUF, 4096)
    stuck.connect(sock_path)
    stuck.sendall(encode_want(FULL))  # and then never reads
    good = Sink()
    sub = good.start(sock_path)
    try:
        assert wait_until(lambda: sub.connected.is_set() and pub.wanted() == FULL)
        blob = os.urandom(8 * 1024)
        n = 600  # ~4.8 MB in all: far more than the stuck socket's buffers plus the bound
        for i in range(n):
            pub.publish([("k", i, P(None, blob, None))])
            gevent.sleep(0.001)  # the ingest yields between batches (and here: so workers read)
        assert wait_until(lambda: len(good.entries) == n)
        assert all(e[2] == blob for e in good.entries)
        assert pub.dropped > 0  # all of them for the stuck worker: the good one got every entry
        assert pub.connected() == 2
        peers = pub._peers
        assert all(p.pending_bytes <= limit for p in peers)
    finally:
        stuck.close()
        pub.close()
        sub.close()


def test_a_burst_is_sent_without_a_second_copy_and_freed_once_taken(sock_path: str) -> None:
    pub = FeedPublisher(sock_path)
    pub.start()
    got = [0]
    sub = FeedSubscriber(sock_path, lambda *a: got.__setitem__(0, got[0] + 1),
                         lambda _s: None, lambda _e: None)  # keeps nothing it receives
    gevent.spawn(sub.run)
    blob = os.urandom(16 * 1024)
    n = 256  # 4 MiB in 256 messages, all queued before the worker reads any
    try:
        assert wait_until(lambda: sub.connected.is_set() and pub.connected() == 1)
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            for i in range(n):
                pub.publish([("k", i, P(None, blob, None))])
            queued = pub.pending_bytes()
            assert queued > n * len(blob)
            assert wait_until(lambda: got[0] == n)
            gevent.sleep(0.05)  # the writer is back waiting
            current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert pub.pending_bytes() == 0
        # Written in chunks: the queue is never joined into one copy of itself.
        assert peak - base < queued + 4 * WRITE_CHUNK
        # Nothing of the burst stays referenced once the worker has taken it.
        assert current - base < WRITE_CHUNK
    finally:
        pub.close()
        sub.close()


def _drain_raw(sock: gevent.socket.socket, decoder: FeedDecoder, out: list[Entry]) -> None:
    """Read what the publisher sent until nothing more comes for a while."""
    sock.settimeout(0.3)
    while True:
        try:
            data = sock.recv(1 << 20)
        except TimeoutError:
            return
        if not data:
            return
        decoder.receive_data(data)
        while (msg := decoder.next_message()) is not None:
            if msg[0] == KIND_ENTRY:
                out.append(msg[1])


def test_a_worker_too_far_behind_is_told_exactly_what_the_feed_dropped_for_it(
        sock_path: str) -> None:
    pub = FeedPublisher(sock_path, max_pending_bytes=64 * 1024)
    pub.start()
    slow = gevent.socket.socket(stdsocket.AF_UNIX)
    slow.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_RCVBUF, 4096)
    slow.connect(sock_path)
    slow.sendall(encode_want(FULL))  # and reads nothing for a while
    try:
        assert wait_until(lambda: pub.wanted() == FULL)
        blob = os.urandom(8 * 1024)
        for i in range(100):
            pub.publish([("k", i, P(None, blob, None))])
            gevent.sleep(0.001)
        assert pub.dropped > 0
        got: list[Entry] = []
        decoder = FeedDecoder()
        _drain_raw(slow, decoder, got)
        pub.publish([("k", 100, P(None, b"last", None))])  # after a hole at the very end
        _drain_raw(slow, decoder, got)
        delivered: list[Stamp] = []
        gaps: list[int] = []
        sub = FeedSubscriber(sock_path, lambda *a: delivered.append(a[-1]), lambda _s: None,
                             lambda _e: None, gaps.append)
        for entry in got:
            sub._deliver(KIND_ENTRY, entry)
        # What it got and what it was told it lost add up to everything published.
        assert sum(gaps) == pub.dropped and len(delivered) + sum(gaps) == 101
        assert (sub.gaps, sub.lost) == (len(gaps), pub.dropped)
    finally:
        slow.close()
        pub.close()


def test_a_worker_that_connects_later_gets_the_recent_entries_first(sock_path: str) -> None:
    pub = FeedPublisher(sock_path, replay=3)
    pub.start()
    first, late = Sink(), Sink()
    sub = first.start(sock_path)
    try:
        assert wait_until(sub.connected.is_set)
        sub.set_wanted(LITE)
        assert wait_until(lambda: pub.wanted() == LITE)
        for i in range(5):
            pub.publish([("k", i, P(b"%d" % i, None, None))])
        assert wait_until(lambda: len(first.entries) == 5)
        late_sub = late.start(sock_path)
        assert wait_until(lambda: len(late.entries) == 3)
        # The last 3, with the same ids the first worker has for them.
        assert [e[1] for e in late.entries] == [b"2", b"3", b"4"]
        assert late.stamps == first.stamps[2:]
        late_sub.close()
    finally:
        sub.close()
        pub.close()


def test_publisher_state_survives_unreadable_bytes_from_a_worker(sock_path: str) -> None:
    pub = FeedPublisher(sock_path)
    pub.start()
    rogue = stdsocket.socket(stdsocket.AF_UNIX)
    rogue.connect(sock_path)
    good = Sink()
    sub = good.start(sock_path)
    try:
        assert wait_until(sub.connected.is_set)
        rogue.sendall(b"\xff\xff\xff\xff\xff garbage")
        sub.set_wanted(LITE)
        assert wait_until(lambda: pub.wanted() == LITE)
        assert wait_until(lambda: len(pub._peers) == 1)  # the rogue connection was dropped alone
        pub.publish([("k", 5, P(b"x", None, None))])
        assert wait_until(lambda: len(good.entries) == 1)
    finally:
        rogue.close()
        pub.close()
        sub.close()


def test_socket_file_is_private(sock_path: str) -> None:
    pub = FeedPublisher(sock_path)
    pub.start()
    try:
        assert Path(sock_path).stat().st_mode & 0o077 == 0
    finally:
        pub.close()


def test_example_bit_asks_once_and_is_no_stream(sock_path: str) -> None:
    pub = FeedPublisher(sock_path)
    asked: list[int] = []
    def answer() -> None:
        # The ingest answers a request with a sample, as Pipeline.publish_example does.
        asked.append(1)
        pub.publish_example(b"sample")

    pub.on_example_wanted = answer
    pub.start()
    a, b = Sink(), Sink()
    sa, sb = a.start(sock_path), b.start(sock_path)
    try:
        assert wait_until(lambda: pub.connected() == 2)
        sa.set_wanted(FULL)
        assert wait_until(lambda: pub.wanted() == FULL)
        assert not asked and not pub.example_wanted()
        sa.want_example(True)
        assert wait_until(lambda: bool(a.examples) and bool(b.examples))
        assert asked == [1] and a.examples == [b"sample"] == b.examples
        # The bit is not a stream: nothing is built per entry for it.
        assert pub.wanted() == FULL and pub.example_wanted()
        # A stream change keeps the bit (no second request); clearing it ends the request.
        sa.set_wanted(LITE)
        assert wait_until(lambda: pub.wanted() == LITE)
        assert pub.example_wanted() and asked == [1]
        sa.want_example(False)
        assert wait_until(lambda: not pub.example_wanted())
        assert pub.wanted() == LITE
        # Asking again is a new request.
        sa.want_example(True)
        assert wait_until(lambda: len(asked) == 2)
    finally:
        pub.close()
        sa.close()
        sb.close()


def test_example_bit_is_resent_on_reconnect(sock_path: str) -> None:
    sink = Sink()
    sub = sink.start(sock_path)
    sub.want_example(True)  # before there is a feed: sent once connected
    pub = FeedPublisher(sock_path)
    asked: list[int] = []
    pub.on_example_wanted = lambda: asked.append(1)
    pub.start()
    try:
        assert wait_until(lambda: asked == [1])
        assert pub.example_wanted() and pub.wanted() == 0
        assert encode_want(LITE | EXAMPLE) == b"\x00\x00\x00\x02\x03\x09"
    finally:
        pub.close()
        sub.close()
