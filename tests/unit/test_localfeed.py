"""shell.localfeed.LocalFeed: the embedded ingest's publisher is its worker's subscriber,
with nothing encoded or queued in between (the real server: tests/e2e/test_embedded_ingest.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from certstream.core.resume import Stamp
from certstream.core.streams import STREAM_DOMAINS as DOMAINS
from certstream.core.streams import STREAM_FULL as FULL
from certstream.core.streams import STREAM_LITE as LITE
from certstream.shell.localfeed import LocalFeed


@dataclass(frozen=True)
class P:
    lite: bytes | None
    full: bytes | None
    domains: bytes | None
    fields: bytes | None = None
    seen: int = 0


class Worker:
    def __init__(self) -> None:
        self.entries: list[tuple[int, bytes | None, bytes | None, bytes | None, Stamp]] = []
        self.states: list[dict[str, Any]] = []
        self.examples: list[bytes] = []
        self.feed = LocalFeed(lambda *a: self.entries.append(a), self.states.append,
                              self.on_example, epoch_ms=1700000000000)

    def on_example(self, lite: bytes) -> None:
        self.examples.append(lite)
        self.feed.want_example(False)  # as CertstreamWorker._on_example


def test_entries_reach_the_worker_with_the_mask_of_their_payloads() -> None:
    w = Worker()
    w.feed.set_wanted(LITE | DOMAINS)
    assert w.feed.wanted() == LITE | DOMAINS and w.feed.connected() == 1
    w.feed.publish([("k", 1, P(b"l1", None, b"d1", seen=5)),
                    ("k", 2, P(None, b"f2", None, fields=b"f", seen=6))])
    assert [e[:4] for e in w.entries] == [(LITE | DOMAINS, b"l1", None, b"d1"),
                                         (FULL, None, b"f2", None)]
    # Numbered as the feed socket numbers them: the ids the clients resume from.
    stamps = [e[4] for e in w.entries]
    assert [s.event_id() for s in stamps] == [b"1700000000000-1", b"1700000000000-2"]
    assert [(s.seen, s.fields) for s in stamps] == [(5, None), (6, b"f")]
    assert [w.feed.locate(s.key) for s in stamps] == [s.number for s in stamps]
    assert w.feed.pending_bytes() == 0 and w.feed.dropped == 0


def test_state_has_the_shapes_of_a_state_from_the_socket() -> None:
    w = Worker()
    w.feed.publish_state({"logs": ({"name": "a", "lag": None},), "counters": {1: 2}})
    assert w.states == [{"logs": [{"name": "a", "lag": None}], "counters": {"1": 2}}]


def test_asking_for_an_example_asks_the_ingest_once() -> None:
    w = Worker()
    asked: list[int] = []

    def build() -> None:  # the pipeline answers at once, as with an entry at hand
        asked.append(1)
        w.feed.publish_example(b"sample")

    w.feed.on_example_wanted = build
    w.feed.want_example(True)
    assert asked == [1] and w.examples == [b"sample"]
    w.feed.want_example(True)  # the sample came and cleared the wish: a new request asks again
    assert asked == [1, 1]


def test_a_failing_consumer_does_not_stop_the_ingest() -> None:
    def boom(*_a: Any) -> None:
        raise RuntimeError("worker bug")

    feed = LocalFeed(boom, lambda _s: None, lambda _e: None)
    feed.on_example_wanted = boom
    feed.publish([("k", 1, P(b"l", None, None))])  # logged, not raised
    feed.want_example(True)
