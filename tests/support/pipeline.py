"""The ingest's pipeline in one process, for follower tests: a builder whose payloads name
the entry's index, and a ``Pipeline`` that publishes into a :class:`FakeFeed`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.feed import FULL, FakeFeed

from certstream.core.dedup import DedupRing
from certstream.core.messages import STREAM_LITE, Payloads
from certstream.errors import DecodeError
from certstream.shell.pipeline import Pipeline
from certstream.shell.state import StateStore


class PickyBuilder:
    """Payloads naming the index; a bug (RuntimeError) at one index, a DecodeError at another."""

    def __init__(self, bug_at: int, bad_at: int) -> None:
        self.bug_at, self.bad_at = bug_at, bad_at

    def build(self, entry: Any, source: Any, seen: float, streams: int) -> Payloads:
        if entry.index == self.bug_at:
            raise RuntimeError("builder bug")
        if entry.index == self.bad_at:
            raise DecodeError("unparseable certificate", index=entry.index)
        text = str(entry.index).encode()
        return Payloads(
            text if streams & STREAM_LITE else None, text if streams & FULL else None, None
        )

    def seen_micros(self, seen: float) -> int:
        return int(seen * 1000) * 1000


def make_pipeline(feed: FakeFeed, builder: Any, tmp: Path) -> tuple[Pipeline, StateStore]:
    store = StateStore(str(tmp / "state.json"), grace=0.0)
    return Pipeline(feed, builder, DedupRing(1000, 900.0), store,
                    workers_connected=feed.connected), store
