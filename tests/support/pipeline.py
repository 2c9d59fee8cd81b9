"""The ingest's pipeline in one process, for follower tests: a builder whose payloads name
the entry's index, a ``Pipeline`` that publishes into a :class:`FakeFeed`, and a real
follower of a replay log (:func:`log_follower`).

The follower, its HTTP client, the pipeline, the dedup ring and the state store are the
real ones; only the feed publisher is a recorder (what reaches it is what the workers would
be sent), and the builder writes each entry's index as its payload, so a test reads indices
instead of parsing certificates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.feed import FULL, FakeFeed

from certstream.config import CtLogSettings
from certstream.core.dedup import DedupRing
from certstream.core.logspec import FollowerSettings, LogSpec
from certstream.core.messages import STREAM_LITE, Payloads
from certstream.errors import DecodeError
from certstream.shell.followers import LogFollower, make_follower
from certstream.shell.httpclient import HTTPClient
from certstream.shell.issuers import IssuerCache
from certstream.shell.pipeline import Pipeline
from certstream.shell.politeness import Politeness
from certstream.shell.state import StateStore

__all__ = ["IndexBuilder", "log_follower", "make_pipeline"]


class IndexBuilder:
    """Payloads naming the index; keeps every entry it was given (``entries``).  With
    ``bug_at`` a bug (RuntimeError) at that index, with ``bad_at`` a DecodeError."""

    def __init__(self, bug_at: int | None = None, bad_at: int | None = None) -> None:
        self.bug_at, self.bad_at = bug_at, bad_at
        self.entries: dict[int, Any] = {}

    def build(self, entry: Any, source: Any, seen: float, streams: int) -> Payloads:
        if entry.index == self.bug_at:
            raise RuntimeError("builder bug")
        if entry.index == self.bad_at:
            raise DecodeError("unparseable certificate", index=entry.index)
        self.entries[entry.index] = entry
        text = str(entry.index).encode()
        return Payloads(
            text if streams & STREAM_LITE else None, text if streams & FULL else None, None
        )

    def seen_micros(self, seen: float) -> int:
        return int(seen * 1000) * 1000


def make_pipeline(feed: FakeFeed, builder: Any, tmp: Path) -> tuple[Pipeline, StateStore]:
    store = StateStore(str(tmp / "state.json"))
    return Pipeline(feed, builder, DedupRing(100_000, 900.0), store,
                    workers_connected=feed.connected), store


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
