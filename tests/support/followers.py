"""Helpers for tests that run real log followers in-process against the replay CT log.

The follower, its HTTP client, the pipeline, the dedup ring and the state store are the
real ones; only the feed publisher is a recorder (what reaches it is what the workers would
be sent), and the builder writes each entry's index as its payload, so a test reads
indices instead of parsing certificates.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
import pytest

from certstream.config import CtLogSettings
from certstream.core.dedup import DedupRing
from certstream.core.logspec import FollowerSettings, LogSpec
from certstream.core.messages import Payloads
from certstream.core.streams import STREAM_FULL, STREAM_LITE
from certstream.shell.followers import LogFollower, make_follower
from certstream.shell.httpclient import HTTPClient
from certstream.shell.issuers import IssuerCache
from certstream.shell.pipeline import Pipeline
from certstream.shell.politeness import Politeness
from certstream.shell.state import StateStore

__all__ = ["IndexBuilder", "Recorder", "green_wait", "log_follower", "recording_pipeline"]


class Recorder:
    """Stands where the feed publisher is: keeps (log key, index, payloads) in order."""

    def __init__(self, wanted: int = STREAM_FULL) -> None:
        self.mask = wanted
        self.items: list[tuple[str, int, Any]] = []

    def wanted(self) -> int:
        return self.mask

    def connected(self) -> int:
        return 1

    def publish(self, items: Any, on_delivered: Any = None, on_lost: Any = None) -> None:
        self.items.extend(items)
        if on_delivered is not None:
            on_delivered()

    def publish_example(self, lite: bytes) -> None:
        pass

    def indices(self, key_suffix: str = "") -> list[int]:
        return [i for k, i, _p in self.items if k.endswith(key_suffix)]


class IndexBuilder:
    """Payloads that are the entry's index, as text; keeps every entry it was given."""

    def __init__(self) -> None:
        self.entries: dict[int, Any] = {}

    def build(self, entry: Any, source: Any, seen: float, streams: int) -> Payloads:
        self.entries[entry.index] = entry
        text = str(entry.index).encode()
        return Payloads(
            text if streams & STREAM_LITE else None,
            text if streams & STREAM_FULL else None,
            None,
        )


def recording_pipeline(tmp: Path, feed: Recorder | None = None) -> tuple[Pipeline, Recorder]:
    feed = feed or Recorder()
    store = StateStore(str(tmp / "state.json"))
    pipeline = Pipeline(feed, IndexBuilder(), DedupRing(100_000, 900.0), store,
                        workers_connected=feed.connected)
    return pipeline, feed


def log_follower(
    url: str, kind: str, pipeline: Pipeline, *, settings: dict[str, Any] | None = None,
    issuers: IssuerCache | None = None, politeness: Politeness | None = None,
    **spec_kw: Any,
) -> LogFollower:
    """A follower of the log at ``url`` (``"rfc6962"`` or ``"static"``) with the default
    ``ct_log`` settings but for ``settings``, and no operator budget unless given."""
    if kind == "static" and "origin" not in spec_kw:
        spec_kw["origin"] = url.split("://", 1)[1].rstrip("/")
    spec = LogSpec(url, spec_kw.pop("name", url.rstrip("/").rsplit("/", 1)[-1].upper()),
                   url, kind, **spec_kw)
    cfg = FollowerSettings.from_ct_log(CtLogSettings(**(settings or {})))
    http = HTTPClient("certstream-test", 2.0)
    return make_follower(
        spec, cfg, http=http, pipeline=pipeline,
        politeness=politeness or Politeness(0.0, {}), issuers=issuers or IssuerCache(http),
    )


def green_wait(cond: Callable[[], bool], timeout: float, what: str) -> float:
    """Wait for ``cond`` while the followers' greenlets run; fail after ``timeout``.
    Returns the seconds it took."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        gevent.sleep(0.02)
    return time.monotonic() - start
