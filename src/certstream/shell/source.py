"""Where a worker's records come from: the ingest's Unix feed on one machine
(``role: all``), or the broker on several (``role: edge`` and ``role: ingest``).

The worker does not care which: it gets a :class:`RecordSource` from :func:`open_source`,
runs it in a greenlet, tells it which streams its clients want, and receives

``on_record(mask, lite, full, domains, stamp)``
    each entry once, in order; ``stamp`` (``core.resume.Stamp``) is its global id (the
    broker's stream id, or the ingest's on one machine: the same on every worker and edge),
    its ``seen``, its number and what the server-side filters match (``stamp.fields``,
    ``core.filterfields``; ``None`` when the record carries none);
``on_state(state)``, ``on_example(lite)``
    the ingest's STATE object and lite samples, as ``shell.feed`` describes;
``on_gap(lost)``
    records its clients will never get (the broker lost or trimmed them before this worker
    read them, the feed dropped them while this worker was too far behind;
    ``core.resume.UNKNOWN`` when nobody knows how many): the worker tells every client.
``after_flush(done)``
    the hub's: ``done`` runs once what ``on_record`` was given is in every keeping-up
    client's socket.  The Unix feed acknowledges its entries to the ingest then, which
    saves the logs' positions only once acknowledged; the broker needs no acknowledgement
    (the ingest writes the positions into Redis with the records).

and answers ``locate(key)``: the number of the record with id ``key`` (``None`` if the
source no longer knows it), for a client resuming from before everything the hub holds.

The broker's modules are imported only by a worker that uses the broker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from certstream.config import Settings
from certstream.core.resume import Stamp
from certstream.shell.feedsub import FeedSubscriber

__all__ = ["OnRecord", "RecordSource", "open_source"]

OnRecord = Callable[[int, bytes | None, bytes | None, bytes | None, Stamp], None]


class RecordSource(Protocol):
    """What the worker needs of its record source: ``shell.feedsub.FeedSubscriber``,
    ``shell.brokersub.BrokerSubscriber``, or an embedded ingest's ``shell.localfeed.LocalFeed``."""

    @property
    def replayed(self) -> int:
        """Records dropped because they had been delivered already."""
        ...

    def set_wanted(self, mask: int) -> None: ...
    def want_example(self, on: bool) -> None: ...
    def locate(self, key: int) -> int | None: ...
    def run(self) -> None: ...
    def close(self) -> None: ...


def open_source(settings: Settings, feed_path: str, on_record: OnRecord, *,
                on_state: Callable[[dict[str, Any]], None], on_example: Callable[[bytes], None],
                on_gap: Callable[[int], None],
                after_flush: Callable[[Callable[[], None]], None] | None = None,
                ) -> RecordSource | None:
    """The source this worker's role reads, or None (one machine without a feed socket)."""
    if settings.role != "all":
        from certstream.shell.brokersub import BrokerSubscriber  # noqa: PLC0415 - see doc

        return BrokerSubscriber(settings.broker, on_record, on_state, on_example, on_gap,
                                read_interval=settings.flush_interval_ms / 1000.0,
                                preload=settings.buffer_size)
    if not feed_path:
        return None
    return FeedSubscriber(feed_path, on_record, on_state, on_example, on_gap,
                          after_flush=after_flush)
