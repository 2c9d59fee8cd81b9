"""Delivery: the one place where decoded entries become published payloads.

``Pipeline.deliver`` is shared by all log followers: dedup (by SHA-256 of the certificate as
emitted, so a precert and its final certificate are two entries), build only the streams
some worker wants (and the filter field while some worker has filtered clients), publish,
and save the log's resume position once the batch is delivered (in every keeping-up client's
socket on this machine; in Redis with its records on several).  A log's next batch waits
until its previous one is saved, so a crash repeats at most one batch per log (see
``certstream.shell.state``).  An entry nobody wants is published without payloads, so that
it is numbered (a client resuming later is told it missed it).  The last entry is kept (a
reference, nothing built) so that a lite sample for /example.json can be built when a worker
asks for one (``publish_example``).  Nothing is published while no worker is connected,
because publishing to nobody would move the resume position past entries no worker
received.

The followers (``certstream.shell.follow_*``) call in; this module knows them only as the
``Delivering`` protocol, so that it imports none of them.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

import gevent

from certstream.core.logspec import LogSpec
from certstream.core.messages import Payloads
from certstream.core.model import LogEntry, LogSource
from certstream.core.streams import STREAM_LITE, STREAM_NAMES
from certstream.errors import DecodeError
from certstream.shell.logformat import ct_context

__all__ = ["Delivering", "Pipeline"]

log = logging.getLogger("certstream.ingest")

#: At a start, how long the first batch waits for the other workers once one is connected.
WORKERS_WAIT = 5.0

# (bit, name) pairs, iterated once per published entry.
_STREAM_NAMES = tuple(STREAM_NAMES.items())


class Delivering(Protocol):
    """What ``Pipeline.deliver`` reads and writes of the follower it delivers for
    (``certstream.shell.follow_base.LogFollower``)."""

    spec: LogSpec
    source: LogSource
    next_index: int | None
    duplicates: int

    def report_skip(self, index: int, reason: str, kind: str = "decode") -> None: ...


class Publisher(Protocol):
    """What the pipeline needs of ``certstream.shell.feed.FeedPublisher``."""

    def wanted(self) -> int: ...
    def publish(self, items: Any, on_delivered: Callable[[], None] | None = None,
                on_lost: Callable[[], None] | None = None) -> None: ...
    def publish_example(self, lite: bytes) -> None: ...


class Builder(Protocol):
    def build(self, entry: LogEntry, source: LogSource, seen: float, streams: int) -> Any: ...
    def seen_micros(self, seen: float) -> int: ...


class Positions(Protocol):
    """What the pipeline needs of ``certstream.shell.state.StateStore``."""

    def sent(self, key: str) -> None: ...
    def delivered(self, key: str, next_index: int, tree_size: int,
                  now: float | None = None) -> None: ...
    def settle(self, key: str) -> bool: ...


class Dedup(Protocol):
    def add(self, key: bytes, now: float) -> bool: ...


class Pipeline:
    """Shared by all followers: dedup → build → publish → advance the resume position."""

    def __init__(
        self,
        publisher: Publisher,
        builder: Builder,
        dedup: Dedup,
        positions: Positions,
        *,
        workers_connected: Callable[[], int] | None = None,
        expected_workers: int = 1,
        metrics: Any = None,
    ) -> None:
        self.publisher = publisher
        self.builder = builder
        self.dedup = dedup
        self.positions = positions
        self.workers_connected = workers_connected
        self.expected_workers = expected_workers
        self.metrics = metrics
        self.counters: dict[str, int] = {
            "published": 0, "duplicates": 0, "skipped": 0, "build_errors": 0,
            "examples": 0,
        }
        # The newest entry that passed dedup, for a sample on demand.
        self._last: tuple[LogEntry, LogSource] | None = None
        self._example_pending = False  # asked for before any entry arrived
        self._children: dict[tuple[str, tuple[str, ...]], Any] = {}
        #: Called when a log's health status changes (the ingest publishes STATE at once).
        self.on_status_change: Callable[[], None] | None = None
        #: Called with every batch a log delivers, before dedup (certstream-server-go's
        #: series count every entry read: ``shell.gometrics.IngestCounts``).
        self.on_entries: Callable[[LogSpec, list[LogEntry]], None] | None = None

    def wait_for_workers(self) -> None:
        """Publishing to nobody would advance the resume position past entries no worker
        received; wait until one is connected, then (at most ``WORKERS_WAIT`` more) until
        all ``expected_workers`` are: a worker that subscribes a moment after the first
        would miss the first batches, and its clients with it.  Then give them a moment to
        send their WANT."""
        if self.workers_connected is None or self.workers_connected() > 0:
            return
        log.info("no worker connected to the feed; waiting before publishing")
        while self.workers_connected() == 0:
            gevent.sleep(0.1)
        deadline = time.monotonic() + WORKERS_WAIT
        while self.workers_connected() < self.expected_workers and time.monotonic() < deadline:
            gevent.sleep(0.05)
        gevent.sleep(0.5)

    def deliver(
        self, follower: Delivering, entries: list[LogEntry], next_index: int, tree_size: int
    ) -> None:
        """Publish ``entries`` (in index order) and mark every index < next_index done."""
        spec = follower.spec
        # The log's previous batch is delivered and on disk: from here on a crash repeats
        # at most this batch.
        self.positions.settle(spec.key)
        self.wait_for_workers()
        if self.on_entries is not None:
            self.on_entries(spec, entries)
        wanted = self.publisher.wanted()
        items: list[tuple[str, int, Any]] = []
        source = follower.source
        mono = time.monotonic()
        last: LogEntry | None = None
        for entry in entries:
            if not self.dedup.add(hashlib.sha256(entry.cert_der).digest(), mono):
                self.counters["duplicates"] += 1
                follower.duplicates += 1
                self.inc("DUPLICATES")
                continue
            last = entry
            if not wanted:
                # Nothing built, but the entry is numbered all the same: a client that
                # resumes later is told it happened (core.resume).
                items.append((spec.key, entry.index,
                              Payloads(None, None, None, None,
                                       self.builder.seen_micros(time.time()))))
                continue
            try:
                payloads = self.builder.build(entry, source, time.time(), wanted)
            except DecodeError as exc:
                follower.report_skip(entry.index, f"certificate: {exc}", "certificate")
                self.counters["build_errors"] += 1
                continue
            except Exception as exc:
                # A builder bug on one odd certificate must cost that entry, not stall the
                # log in a crash loop; the traceback goes to the log for a fix.
                log.exception("builder failed on log %s index %d", spec.name, entry.index,
                              extra=ct_context(spec.name, entry.index))
                follower.report_skip(entry.index, f"builder error: {exc!r}", "internal")
                self.counters["build_errors"] += 1
                continue
            for bit, stream in _STREAM_NAMES:
                if wanted & bit:
                    self.inc("PAYLOADS_BUILT", stream)
            items.append((spec.key, entry.index, payloads))
            self.inc("ENTRIES", spec.name, "precert" if entry.is_precert else "x509")
        follower.next_index = next_index
        self.positions.sent(spec.key)
        done = partial(self.positions.delivered, spec.key, next_index, tree_size)
        if items:
            self._publish(spec.name, items, done)
            if wanted:
                self.counters["published"] += len(items)
        else:
            done()
        if last is not None:
            self._last = (last, source)
            if self._example_pending:
                self.publish_example()

    def _publish(self, name: str, items: list[Any], done: Callable[[], None]) -> None:
        self.publisher.publish(items, done, partial(self._lost, name, items, done))

    def _lost(self, name: str, items: list[Any], done: Callable[[], None]) -> None:
        """Every worker a batch went to is gone before one wrote it: publish it again once a
        worker is back (the log's next batch waits for this one, see ``deliver``)."""
        log.warning("log %s: the workers that were sent %d entries are gone; sending them "
                    "again when a worker is back", name, len(items), extra=ct_context(name))
        self.counters["republished"] = self.counters.get("republished", 0) + len(items)

        def again() -> None:
            self.wait_for_workers()
            self._publish(name, items, done)

        gevent.spawn(again)

    def publish_example(self) -> None:
        """A worker asked for a lite sample: build it from the newest entry and publish it
        (the feed calls this when a WANT gains the EXAMPLE bit).  With no entry yet, the
        sample goes out after the next delivered entry."""
        if self._last is None:
            self._example_pending = True
            return
        self._example_pending = False
        entry, source = self._last
        try:
            payloads = self.builder.build(entry, source, time.time(), STREAM_LITE)
        except Exception:  # the entry was published (or skipped) already; only the sample fails
            log.debug("example: building a sample of %s index %d failed",
                      source.name, entry.index, exc_info=True)
            return
        self.inc("PAYLOADS_BUILT", "lite")
        if payloads.lite is not None:
            self.publisher.publish_example(payloads.lite)
            self.counters["examples"] += 1

    def inc(self, name: str, *labels: str, amount: float = 1) -> None:
        """Increment metric ``name`` of ``self.metrics``; label children are cached."""
        child = self._children.get((name, labels))
        if child is None:
            metric = getattr(self.metrics, name, None) if self.metrics is not None else None
            if metric is None:
                return
            try:
                child = metric.labels(*labels) if labels else metric
            except Exception:  # metrics must never break ingestion
                log.debug("metric %s%s unavailable", name, labels, exc_info=True)
                return
            self._children[(name, labels)] = child
        child.inc(amount)
