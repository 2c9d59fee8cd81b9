"""Log followers: one greenlet per CT log, driving the sans-IO planners with real HTTP.

Data flows one way: a follower fetches and decodes, then hands entries in index order to
the ``Pipeline``, which dedups, builds payloads for the streams some worker wants,
publishes them on the feed and only then advances the log's resume position.

Failure policy (the peers lose entries here; we must not):
* A whole-response failure (timeout, reset, truncated body, 5xx, 429, 400, bad JSON, an
  empty batch) re-queues the same window after a jittered exponential backoff; a 429's
  Retry-After wins when longer.  Nothing is ever skipped because of it.
* An entry that fails to decode is skipped alone, and only once a second fetch of it failed
  the same way: one corrupt response (a bit flip, a proxy) must not cost an entry, while a
  log that really serves garbage at an index must not stall.  Every skip is logged with the
  log and index, and counted.
* Each log has its own greenlet, backoff and health, so one failing log never stalls
  another; the only thing shared is each operator's politeness budget.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import gevent
import gevent.event
import gevent.pool
import gevent.queue

from certstream.core.backoff import Backoff, TokenBucket
from certstream.core.checkpoint import Checkpoint, parse_checkpoint, verify_checkpoint
from certstream.core.follow import TileRequest, Window, WindowPlanner, plan_tiles
from certstream.core.health import HealthTracker
from certstream.core.leaves import decode_get_entries
from certstream.core.model import LogEntry, LogSource
from certstream.core.tiles import TileLeaf, data_tile_path, issuer_path, parse_data_tile
from certstream.errors import DecodeError
from certstream.shell.httpclient import HTTPClient, HTTPError, HTTPStatusError

__all__ = [
    "FollowerSettings",
    "IssuerCache",
    "LogFollower",
    "LogSpec",
    "Pipeline",
    "Politeness",
    "Rfc6962Follower",
    "StaticFollower",
    "make_follower",
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
    spki: bytes | None = None  # the log key (static: checks the checkpoint)
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
EXAMPLE_INTERVAL = 10.0
#: Failed fetches of a partial tile before the follower re-reads the checkpoint instead.
PARTIAL_ATTEMPTS = 3


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
        self._last_example = -EXAMPLE_INTERVAL
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
        for entry in entries:
            if not self.dedup.add(hashlib.sha256(entry.cert_der).digest(), mono):
                self.counters["duplicates"] += 1
                follower.duplicates += 1
                self.inc("DUPLICATES")
                continue
            streams = wanted
            sample = mono - self._last_example >= EXAMPLE_INTERVAL
            if sample:
                streams |= STREAM_LITE
            if not streams:
                continue
            try:
                payloads = self.builder.build(entry, source, time.time(), streams)
            except DecodeError as exc:
                follower.report_skip(entry.index, f"certificate: {exc}", "certificate")
                self.counters["build_errors"] += 1
                continue
            except Exception as exc:
                # A builder bug on one odd certificate must cost that entry, not stall the
                # log in a crash loop; the traceback goes to the log for a fix.
                log.exception("builder failed on log %s index %d", spec.name, entry.index)
                follower.report_skip(entry.index, f"builder error: {exc!r}", "internal")
                self.counters["build_errors"] += 1
                continue
            for bit, stream in _STREAM_NAMES:
                if streams & bit:
                    self.inc("PAYLOADS_BUILT", stream)
            if sample and payloads.lite is not None:
                self._last_example = mono
                self.publisher.publish_example(payloads.lite)
                self.counters["examples"] += 1
                if not wanted & STREAM_LITE:
                    # Built for the sample only: no worker asked for lite on the feed.
                    payloads = dataclasses.replace(payloads, lite=None)
            if wanted:
                items.append((spec.key, entry.index, payloads))
                self.inc("ENTRIES", spec.name, "precert" if entry.is_precert else "x509")
        if items:
            self.publisher.publish(items)
            self.counters["published"] += len(items)
        follower.next_index = next_index
        self.positions.advance(spec.key, next_index, tree_size, time.time())

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


# -- followers -----------------------------------------------------------------------------


class _RoundAbortedError(Exception):
    """Static logs: the tiles of this checkpoint are not all there; refetch the checkpoint."""


class LogFollower:
    """The parts common to both kinds: backoff, health, request pacing, status."""

    def __init__(
        self,
        spec: LogSpec,
        cfg: FollowerSettings,
        *,
        http: HTTPClient,
        pipeline: Pipeline,
        politeness: Politeness,
        saved_next: int | None = None,
    ) -> None:
        self.spec = spec
        self.source = spec.source
        self.cfg = cfg
        self.http = http
        self.pipeline = pipeline
        self.politeness = politeness
        self.saved_next = saved_next
        self.backoff = Backoff(cfg.retry_initial, cfg.retry_max)
        self.health = HealthTracker(cfg.healthy_threshold, cfg.unhealthy_threshold)
        self.next_index: int | None = saved_next
        self.tree_size = 0
        self.skipped = 0
        self.duplicates = 0
        self.finished = False
        self._pause_until = 0.0
        self._greenlet: gevent.Greenlet | None = None
        self._group = gevent.pool.Group()

    # -- lifecycle

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._run_forever)

    def stop(self) -> None:
        self._group.kill(block=False)
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=5)

    def _run_forever(self) -> None:
        while not self.finished:
            try:
                self.run()
            except gevent.GreenletExit:
                raise
            except Exception as exc:  # a bug must not kill the log for good
                log.exception("follower %s crashed; restarting", self.spec.name)
                self._group.kill(block=False)
                self.reset()
                self.failed("internal", repr(exc))

    def reset(self) -> None:
        """Forget in-flight work after a crash; resume from ``next_index``."""
        self.saved_next = self.next_index

    def run(self) -> None:
        raise NotImplementedError

    # -- requests

    def fetch(self, url: str) -> bytes:
        """One polite GET: waits out the log's backoff pause and the operator's budget."""
        delay = self._pause_until - time.monotonic()
        if delay > 0:
            gevent.sleep(delay)
        self.politeness.wait(self.spec)
        try:
            body = self.http.get(url).body
        except HTTPStatusError as exc:
            self._metric("HTTP_REQUESTS", self.spec.name, str(exc.status))
            raise
        except HTTPError:
            self._metric("HTTP_REQUESTS", self.spec.name, "0")
            raise
        self._metric("HTTP_REQUESTS", self.spec.name, "200")
        return body

    def succeeded(self) -> None:
        self.backoff.success()
        before = self.health.status
        if self.health.success(time.time()) != before:
            self._status_changed()

    def _status_changed(self) -> None:
        cb = self.pipeline.on_status_change
        if cb is not None:
            cb()

    def failed(self, kind: str, detail: str, retry_after: float | None = None) -> float:
        """Record a failure; every request of this log pauses for the returned delay."""
        before = self.health.status
        if self.health.failure(kind, detail) != before:
            self._status_changed()
        now = time.monotonic()
        if now < self._pause_until and retry_after is None:
            # Requests that were in flight together fail together: one backoff step for
            # the lot, not one per window (4 windows would multiply the delay by 16).
            delay = self._pause_until - now
        else:
            delay = self.backoff.failure(retry_after)
            self._pause_until = max(self._pause_until, now + delay)
        log.warning(
            "log %s: %s (%s); retrying in %.2fs [%s]",
            self.spec.name, kind, detail, delay, self.health.status,
        )
        self._metric("LOG_ERRORS", self.spec.name, kind)
        return delay

    def failed_exc(self, exc: Exception) -> float:
        if isinstance(exc, HTTPStatusError):
            if exc.status == 429:
                self._metric("RATE_LIMITED", self.spec.name)
            return self.failed(exc.kind, str(exc), exc.retry_after)
        if isinstance(exc, HTTPError):
            return self.failed(exc.kind, str(exc))
        if isinstance(exc, DecodeError):
            return self.failed("bad_response", str(exc))
        return self.failed("error", f"{type(exc).__name__}: {exc}")

    def report_skip(self, index: int, reason: str, kind: str = "decode") -> None:
        self.skipped += 1
        self.pipeline.counters["skipped"] += 1
        log.warning("SKIP log=%s index=%d reason=%s", self.spec.name, index, reason)
        self._metric("ENTRIES_SKIPPED", self.spec.name, kind)

    def _metric(self, name: str, *labels: str) -> None:
        self.pipeline.inc(name, *labels)

    def start_position(self, head: int) -> int:
        """State file, else the configured start index, else a little before the head."""
        if self.saved_next is not None:
            return self.saved_next
        if self.spec.start_index is not None:
            return self.spec.start_index
        return max(0, head - self.cfg.start_overlap)

    # -- status

    def status(self) -> dict[str, object]:
        nxt = self.next_index if self.next_index is not None else 0
        return {
            "name": self.spec.name,
            "url": self.spec.url,
            "operator": self.spec.operator,
            "kind": self.spec.kind,
            "status": self.health.status,
            "next_index": self.next_index,
            "tree_size": self.tree_size,
            "lag": max(0, self.tree_size - nxt) if self.next_index is not None else None,
            "last_success": self.health.last_success,
            "errors": self.health.errors,
            "skipped": self.skipped,
        }


class Rfc6962Follower(LogFollower):
    """get-sth, then get-entries windows, ``fetch_concurrency`` in flight, in order."""

    _planner: WindowPlanner[tuple[list[LogEntry], int]] | None = None

    def reset(self) -> None:
        super().reset()
        self._planner = None  # its in-flight windows died with the crashed run

    def run(self) -> None:
        while not self.finished:
            size = self._get_sth()
            if size is None:
                continue
            planner = self._planner
            if planner is None:
                start = self.start_position(size)
                planner = self._planner = WindowPlanner(
                    start, self.cfg.batch_size, self.cfg.fetch_concurrency,
                    stop_at=self.spec.stop_at,
                )
                self.next_index = start
                log.info("log %s: starting at index %d (tree size %d)",
                         self.spec.name, start, size)
            if not planner.set_tree_size(size):
                self.failed("sth_shrank", f"tree size {size} < {planner.tree_size}")
                continue
            self.tree_size = planner.tree_size
            self._drain(planner)
            if planner.finished:
                log.info("log %s: readonly log read to its final size %d",
                         self.spec.name, planner.next_index)
                self.finished = True
                return
            gevent.sleep(self.cfg.poll_interval)

    def _get_sth(self) -> int | None:
        try:
            body = self.fetch(self.spec.url + "ct/v1/get-sth")
            doc = json.loads(body)
            size = doc["tree_size"]
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise DecodeError(f"get-sth: bad tree_size {size!r:.40}")
        except (HTTPError, DecodeError) as exc:
            self.failed_exc(exc)
            return None
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            self.failed("bad_json", f"get-sth: {exc}")
            return None
        self.succeeded()
        return size

    def _drain(self, planner: WindowPlanner[tuple[list[LogEntry], int]]) -> None:
        results: gevent.queue.Queue[tuple[Window, object]] = gevent.queue.Queue()
        inflight = 0
        # Indices that failed to decode once: skipped only if they fail again.
        suspects: set[int] = set()
        while True:
            while (w := planner.next_window()) is not None:
                self._group.spawn(self._fetch_window, w, results)
                inflight += 1
            if inflight == 0:
                return
            w, outcome = results.get()
            inflight -= 1
            if isinstance(outcome, Exception):
                planner.fail(w)
                self.failed_exc(outcome)
                continue
            assert isinstance(outcome, tuple)
            entries, errors = outcome
            count = len(entries) + len(errors)
            if count == 0:
                planner.complete(w, 0, ([], w.start))
                self.failed("empty", f"get-entries {w.start}-{w.end} returned no entries")
                continue
            if count > w.size:
                planner.fail(w)
                self.failed("too_many", f"{count} entries for {w.start}-{w.end}")
                continue
            new_suspects = {e.index for e in errors if e.index is not None} - suspects
            if new_suspects:
                suspects |= new_suspects
                planner.fail(w)
                self.failed("bad_entry", f"entries {sorted(new_suspects)} did not decode")
                continue
            for err in errors:
                if err.index is not None:
                    suspects.discard(err.index)
                    self.report_skip(err.index, str(err))
            self.succeeded()
            planner.complete(w, count, (entries, w.start + count))
            for _start, (batch, end) in planner.ready():
                self.pipeline.deliver(self, batch, end, planner.tree_size)

    def _fetch_window(self, w: Window, results: gevent.queue.Queue[tuple[Window, object]]) -> None:
        url = f"{self.spec.url}ct/v1/get-entries?start={w.start}&end={w.end}"
        try:
            body = self.fetch(url)
            outcome: object = decode_get_entries(body, w.start)
        except (HTTPError, DecodeError) as exc:
            outcome = exc
        except Exception as exc:  # a bug: still answer, or _drain would wait forever
            log.exception("log %s: fetching %s failed", self.spec.name, url)
            outcome = exc
        results.put((w, outcome))


class StaticFollower(LogFollower):
    """checkpoint, then data tiles (full, and the partial one of the checkpoint's size)."""

    def __init__(self, *args: Any, issuers: IssuerCache, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.issuers = issuers
        self._started = False
        self._root: bytes | None = None

    def run(self) -> None:
        while not self.finished:
            size = self._get_checkpoint()
            if size is None:
                continue
            if not self._started:
                self._started = True
                self.next_index = self.start_position(size)
                log.info("log %s: starting at index %d (tree size %d)",
                         self.spec.name, self.next_index, size)
            assert self.next_index is not None
            self.tree_size = size
            try:
                self._read_tiles(self.next_index, size)
            except _RoundAbortedError as exc:
                self.failed("tile_missing", str(exc))
                continue
            if self.spec.stop_at is not None and self.next_index >= self.spec.stop_at:
                self.finished = True
                return
            gevent.sleep(self.cfg.poll_interval)

    def _get_checkpoint(self) -> int | None:
        try:
            body = self.fetch(self.spec.url + "checkpoint")
            cp = self._check(body)
        except (HTTPError, DecodeError) as exc:
            self.failed_exc(exc)
            return None
        if cp.size < self.tree_size:
            self.failed("checkpoint_shrank", f"size {cp.size} < {self.tree_size}")
            return None
        if cp.size == self.tree_size and self._root is not None and cp.root_hash != self._root:
            # Two different trees of one size: the log forked or lies.  Do not read on.
            self.failed("checkpoint_fork", f"size {cp.size} with a different root hash")
            return None
        self._root = cp.root_hash
        self.succeeded()
        return cp.size

    def _check(self, body: bytes) -> Checkpoint:
        mode = self.cfg.checkpoint_signature
        origin = self.spec.origin or self.spec.url.split("://", 1)[-1].rstrip("/")
        if mode == "off" or self.spec.spki is None:
            if mode == "enforce":
                raise DecodeError(f"checkpoint: no key configured for {self.spec.name}")
            return parse_checkpoint(body)
        try:
            return verify_checkpoint(body, origin, self.spec.spki)
        except DecodeError as exc:
            if mode == "enforce":
                raise
            log.warning("log %s: checkpoint not verified (%s); using it anyway",
                        self.spec.name, exc)
            return parse_checkpoint(body)

    def _read_tiles(self, start: int, size: int) -> None:
        tiles = plan_tiles(start, size, self.spec.stop_at)
        if not tiles:
            return
        width = max(1, self.cfg.fetch_concurrency)
        pending: list[gevent.Greenlet] = []
        it = iter(tiles)
        for tile in it:
            pending.append(self._group.spawn(self._tile_entries, tile))
            if len(pending) >= width:
                break
        try:
            while pending:
                g = pending.pop(0)
                entries, tile, why = g.get()
                if entries is None:
                    raise _RoundAbortedError(why)
                nxt = next(it, None)
                if nxt is not None:
                    pending.append(self._group.spawn(self._tile_entries, nxt))
                self.pipeline.deliver(self, entries, tile.first_index + tile.width, size)
        finally:
            for g in pending:
                g.kill(block=False)

    def _tile_entries(
        self, tile: TileRequest
    ) -> tuple[list[LogEntry] | None, TileRequest, str]:
        """Fetch, decode and resolve one tile, retrying until it works.

        Returns ``(None, tile, reason)`` when this round should end (re-read the
        checkpoint) rather than raising: an exception ending a greenlet is printed by
        gevent's hub even when the caller handles it.
        """
        attempts = 0
        while True:
            try:
                leaves = self._fetch_tile(tile)
                chain_fps = [fp for leaf in leaves for fp in leaf.fingerprints]
                issuers = self.issuers.get_many(self.spec.url, chain_fps)
            except _RoundAbortedError as exc:
                return None, tile, str(exc)
            except (HTTPError, DecodeError) as exc:
                self.failed_exc(exc)
                attempts += 1
                if tile.partial and attempts >= PARTIAL_ATTEMPTS:
                    # A partial tile is a moving target: a newer checkpoint may make it a
                    # full (or wider) tile that the log serves properly.
                    return None, tile, f"partial tile {tile.n}: {exc}"
                continue
            except Exception as exc:  # a bug: end the round instead of the greenlet
                log.exception("log %s: tile %d failed", self.spec.name, tile.n)
                return None, tile, repr(exc)
            self.succeeded()
            entries = []
            for leaf in leaves[tile.skip:]:
                try:
                    entries.append(leaf.to_entry(issuers))
                except DecodeError as exc:  # cannot happen after get_many; kept for safety
                    self.report_skip(leaf.index, str(exc))
            return entries, tile, ""

    def _fetch_tile(self, tile: TileRequest) -> list[TileLeaf]:
        try:
            body = self.fetch(self.spec.url + data_tile_path(tile.n, tile.width))
        except HTTPStatusError as exc:
            if exc.status != 404 or not tile.partial:
                raise
            # Partial tiles vanish once the tile fills: the full tile's first W entries are
            # the same entries.  If the full one is not there yet either, re-read the
            # checkpoint and try again.
            log.info("log %s: partial tile %s is gone; trying the full tile",
                     self.spec.name, data_tile_path(tile.n, tile.width))
            try:
                body = self.fetch(self.spec.url + data_tile_path(tile.n))
            except HTTPStatusError as exc2:
                if exc2.status == 404:
                    raise _RoundAbortedError(f"tile {tile.n}: partial and full both 404") from None
                raise
            leaves = parse_data_tile(body, tile.first_index, 256)
            return leaves[: tile.width]
        return parse_data_tile(body, tile.first_index, tile.width)


def make_follower(
    spec: LogSpec,
    cfg: FollowerSettings,
    *,
    http: HTTPClient,
    pipeline: Pipeline,
    politeness: Politeness,
    issuers: IssuerCache,
    saved_next: int | None = None,
) -> LogFollower:
    if spec.kind == "static":
        return StaticFollower(
            spec, cfg, http=http, pipeline=pipeline, politeness=politeness,
            saved_next=saved_next, issuers=issuers,
        )
    return Rfc6962Follower(
        spec, cfg, http=http, pipeline=pipeline, politeness=politeness, saved_next=saved_next
    )
