"""``MetricsSync``: copies a worker's plain counters into its Prometheus metrics once a
second, so that the hot path never touches a metric."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from certstream.core.streams import STREAM_NAMES
from certstream.shell import metrics

if TYPE_CHECKING:
    from certstream.shell.access import Access
    from certstream.shell.hub import Hub
    from certstream.shell.source import RecordSource

__all__ = ["MetricsSync"]


class MetricsSync:
    """Call it once a second (and before rendering ``/metrics``): each counter's growth
    since the last call goes into its metric."""

    def __init__(self, hub: Hub, feed: RecordSource | None) -> None:
        self.hub = hub
        self.feed = feed
        self.access: Callable[[], Access] | None = None  # the current rules (reloads swap them)
        self.last: dict[str, int] = {}

    def _delta(self, key: str, value: int) -> int:
        delta = value - self.last.get(key, 0)
        self.last[key] = value
        return delta

    def __call__(self) -> None:
        hub = self.hub
        for transport, by_stream in hub.counts().items():
            for stream_name, n in by_stream.items():
                metrics.CLIENTS.labels(stream_name, transport).set(n)
        for stream, ring in hub.rings.items():
            name = STREAM_NAMES[stream]
            if d := self._delta("frames_" + name, ring.sent):
                metrics.FRAMES_SENT.labels(name).inc(d)
        filters = hub.filters
        metrics.FILTERED_CLIENTS.set(filters.subscribers if filters is not None else 0)
        metrics.FILTERS.set(len(filters) if filters is not None else 0)
        if filters is not None and (d := self._delta("matched", filters.records_matched)):
            metrics.FILTER_RECORDS_MATCHED.inc(d)
        if d := self._delta("bytes", hub.bytes_sent):
            metrics.BYTES_SENT.inc(d)
        if d := self._delta("drops", hub.drops):
            metrics.SLOW_CLIENT_DROPS.inc(d)
        if d := self._delta("slow_closed", hub.slow_closed):
            metrics.SLOW_CLIENT_CLOSED.inc(d)
        if self.feed is not None and (d := self._delta("replayed", self.feed.replayed)):
            metrics.FEED_REPLAYED.inc(d)
        if self.access is not None and (d := self._delta("rate_limited",
                                                         self.access().rate_limited)):
            metrics.CLIENTS_RATE_LIMITED.inc(d)
