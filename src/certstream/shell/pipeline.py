"""What all log followers share: the pipeline from decoded entries to the feed, the
operators' politeness budgets and the static-ct issuer cache.

``Pipeline.deliver`` is the one place where entries become published payloads: dedup (by
SHA-256 of the certificate as emitted, so a precert and its final certificate are two
entries), build only the streams some worker wants, publish, and only then advance the
log's resume position.  The last entry is kept (a reference, nothing built) so that a lite
sample for /example.json can be built when a worker asks for one (``publish_example``).
Nothing is published while no worker is connected, because publishing to nobody would move
the resume position past entries no worker received.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import gevent
import gevent.event

from certstream.core.backoff import TokenBucket
from certstream.core.model import LogEntry, LogSource
from certstream.core.tiles import issuer_path
from certstream.errors import DecodeError
from certstream.shell.httpclient import HTTPClient
from certstream.shell.logformat import ct_context

if TYPE_CHECKING:
    from certstream.shell.followers import LogFollower

__all__ = [
    "FollowerSettings",
    "IssuerCache",
    "LogSpec",
    "Pipeline",
    "Politeness",
    "log_key",
]

log = logging.getLogger("certstream.ingest")


@dataclass(frozen=True, slots=True)
class LogSpec:
    """What to follow.  ``key`` names the log on the feed and in the state file."""

    key: str
    name: str
    url: str  # RFC 6962: log URL; static: monitoring prefix; ends with "/"
    kind: str = "rfc6962"  # "rfc6962" | "static"
    operator: str = ""
    start_index: int | None = None
    stop_at: int | None = None  # readonly logs: the final tree size
    spki: bytes | None = None  # the log key: checks the checkpoint or the STH signature
    origin: str | None = None  # static: checkpoint origin

    @property
    def source(self) -> LogSource:
        return LogSource(self.name, self.url, self.kind, self.operator)


@dataclass(frozen=True, slots=True)
class FollowerSettings:
    """The ``ct_log`` settings a follower uses, in seconds where the config has ms."""

    batch_size: int = 1024
    fetch_concurrency: int = 4
    poll_interval: float = 1.0
    retry_initial: float = 1.0
    retry_max: float = 30.0
    healthy_threshold: int = 2
    unhealthy_threshold: int = 5
    start_overlap: int = 256
    checkpoint_signature: str = "warn"  # off | warn | enforce
    sth_signature: str = "warn"  # off | warn | enforce (RFC 6962 get-sth)
    max_body_bytes: int = 16 * 1024 * 1024


def log_key(url: str) -> str:
    """The feed/state key of a log: its URL with exactly one trailing slash."""
    return url.rstrip("/") + "/"


# -- shared services -----------------------------------------------------------------------


class Politeness:
    """Per-operator token buckets shared by all logs of an operator."""

    def __init__(self, default_interval: float, per_operator: Mapping[str, float]) -> None:
        self.default_interval = default_interval
        self.per_operator = dict(per_operator)
        self._buckets: dict[str, TokenBucket] = {}

    def bucket_name(self, spec: LogSpec) -> str:
        # Logs without an operator are grouped by host: the host is who we would overload.
        return spec.operator or (urlsplit(spec.url).hostname or spec.url)

    def wait(self, spec: LogSpec) -> None:
        name = self.bucket_name(spec)
        bucket = self._buckets.get(name)
        if bucket is None:
            interval = self.per_operator.get(name, self.default_interval)
            bucket = self._buckets[name] = TokenBucket(interval, burst=4)
        delay = bucket.reserve(time.monotonic())
        if delay > 0:
            gevent.sleep(delay)


class IssuerCache:
    """Issuer certificates of static-ct logs by SHA-256, fetched once for all logs.

    Concurrent requests for the same fingerprint share one fetch.  Bodies are checked
    against their fingerprint before they are cached, so a bad response is never kept.
    """

    def __init__(self, http: HTTPClient, capacity: int = 100_000) -> None:
        self.http = http
        self.capacity = capacity
        self._certs: dict[bytes, bytes] = {}
        self._pending: dict[bytes, gevent.event.AsyncResult] = {}

    def __len__(self) -> int:
        return len(self._certs)

    def get_many(self, prefix: str, fingerprints: Iterable[bytes]) -> dict[bytes, bytes]:
        """DER of every fingerprint; raises HTTPError or DecodeError if one is unavailable."""
        out: dict[bytes, bytes] = {}
        for fp in set(fingerprints):
            der = self._certs.get(fp)
            out[fp] = der if der is not None else self._fetch(prefix, fp)
        return out

    def _fetch(self, prefix: str, fp: bytes) -> bytes:
        waiter = self._pending.get(fp)
        if waiter is not None:
            result: bytes = waiter.get()
            return result
        waiter = self._pending[fp] = gevent.event.AsyncResult()
        try:
            body = self.http.get(prefix + issuer_path(fp)).body
            if hashlib.sha256(body).digest() != fp:
                raise DecodeError(f"issuer {fp.hex()}: body does not hash to its name")
            if len(self._certs) >= self.capacity:
                self._certs.pop(next(iter(self._certs)))
            self._certs[fp] = body
            waiter.set(body)
            return body
        except BaseException as exc:
            waiter.set_exception(exc)
            raise
        finally:
            del self._pending[fp]


class Publisher(Protocol):
    """What the pipeline needs of ``certstream.shell.feed.FeedPublisher``."""

    def wanted(self) -> int: ...
    def publish(self, items: Any) -> None: ...
    def publish_example(self, lite: bytes) -> None: ...


class Builder(Protocol):
    def build(self, entry: LogEntry, source: LogSource, seen: float, streams: int) -> Any: ...


class Positions(Protocol):
    def advance(self, key: str, next_index: int, tree_size: int, now: float) -> None: ...


class Dedup(Protocol):
    def add(self, key: bytes, now: float) -> bool: ...


STREAM_LITE = 1  # = certstream.core.messages.STREAM_LITE
_STREAM_NAMES = ((1, "lite"), (2, "full"), (4, "domains"))


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
        metrics: Any = None,
    ) -> None:
        self.publisher = publisher
        self.builder = builder
        self.dedup = dedup
        self.positions = positions
        self.workers_connected = workers_connected
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

    def wait_for_workers(self) -> None:
        """Publishing to nobody would advance the resume position past entries no worker
        received; wait until one is connected (then give it a moment to send its WANT)."""
        if self.workers_connected is None or self.workers_connected() > 0:
            return
        log.info("no worker connected to the feed; waiting before publishing")
        while self.workers_connected() == 0:
            gevent.sleep(0.1)
        gevent.sleep(0.5)

    def deliver(
        self, follower: LogFollower, entries: list[LogEntry], next_index: int, tree_size: int
    ) -> None:
        """Publish ``entries`` (in index order) and mark every index < next_index done."""
        spec = follower.spec
        self.wait_for_workers()
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
        if items:
            self.publisher.publish(items)
            self.counters["published"] += len(items)
        follower.next_index = next_index
        self.positions.advance(spec.key, next_index, tree_size, time.time())
        if last is not None:
            self._last = (last, source)
            if self._example_pending:
                self.publish_example()

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
