"""Log followers: one greenlet per CT log, driving the sans-IO planners with real HTTP.

Data flows one way: a follower fetches and decodes, then hands entries in index order to
the ``Pipeline`` (``certstream.shell.pipeline``), which dedups, builds payloads for the
streams some worker wants, publishes them on the feed and only then advances the log's
resume position.

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

import json
import logging
import time
from typing import Any

import gevent
import gevent.event
import gevent.pool
import gevent.queue

from certstream.core.backoff import Backoff
from certstream.core.checkpoint import Checkpoint, parse_checkpoint, verify_checkpoint
from certstream.core.follow import TileRequest, Window, WindowPlanner, plan_tiles
from certstream.core.health import HealthTracker
from certstream.core.leaves import decode_get_entries
from certstream.core.model import LogEntry
from certstream.core.sth import SignatureError, SignedTreeHead, parse_sth, verify_sth
from certstream.core.tiles import TileLeaf, data_tile_path, parse_data_tile
from certstream.errors import DecodeError
from certstream.shell.httpclient import HTTPClient, HTTPError, HTTPStatusError
from certstream.shell.pipeline import FollowerSettings, IssuerCache, LogSpec, Pipeline, Politeness

__all__ = [
    "LogFollower",
    "Rfc6962Follower",
    "StaticFollower",
    "make_follower",
]

log = logging.getLogger("certstream.ingest")


#: Failed fetches of a partial tile before the follower re-reads the checkpoint instead.
PARTIAL_ATTEMPTS = 3
#: While a log grows, its head is polled this many times per ``poll_interval`` (see
#: ``LogFollower.pause``).
GROWING_POLLS = 2


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
        self._grew = 0  # bit 0: the log grew in the last poll round, bit 1: the one before
        self._warned = ""
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

    def fetch(self, url: str, *, data: bool = True) -> bytes:
        """One polite GET: waits out the log's backoff pause and, for data requests
        (entries, tiles), the operator's budget.  Tree-head polls are small and do not
        count, as in the Rust peer: ten logs of one operator polled every second would
        otherwise eat into the budget meant for reading entries."""
        delay = self._pause_until - time.monotonic()
        if delay > 0:
            gevent.sleep(delay)
        if data:
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

    def pause(self, grew: bool) -> None:
        """Wait before the next head poll.

        A log that grew in one of its last two rounds is polled ``GROWING_POLLS`` times as
        often: its new entries then go out in smaller batches, and writing a batch to every
        client is what bounds their latency (100 entries to 1,000 clients is ~80 ms of
        socket writes, all of which the last client waits for).  A quiet log is polled at
        the configured interval; head polls are small and not counted against the
        operator's budget.
        """
        self._grew = ((self._grew << 1) | grew) & 3
        interval = self.cfg.poll_interval
        gevent.sleep(interval / GROWING_POLLS if self._grew else interval)

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

    def _warn_once(self, text: str) -> None:
        # Heads are polled every second: say it when it starts, not every time.
        if text != self._warned:
            self._warned = text
            log.warning("log %s: %s", self.spec.name, text)

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
    #: The newest accepted head's (tree_size, root hash): a head of that size with another
    #: root means the log shows two trees.
    _head: tuple[int, bytes] | None = None
    #: Heads whose signature did not verify but were used anyway (``sth_signature: warn``).
    bad_signatures = 0

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
            grew = planner.tree_size > self.tree_size
            self.tree_size = planner.tree_size
            self._drain(planner)
            if planner.finished:
                log.info("log %s: readonly log read to its final size %d",
                         self.spec.name, planner.next_index)
                self.finished = True
                return
            self.pause(grew)

    def _get_sth(self) -> int | None:
        try:
            body = self.fetch(self.spec.url + "ct/v1/get-sth", data=False)
            doc = json.loads(body)
            if not isinstance(doc, dict):
                raise DecodeError("get-sth: not a JSON object")
            size, root = self._check_sth(doc)
        except SignatureError as exc:  # only raised under "enforce"
            self.failed("sth_signature", f"get-sth: {exc}")
            return None
        except (HTTPError, DecodeError) as exc:
            self.failed_exc(exc)
            return None
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            self.failed("bad_json", f"get-sth: {exc}")
            return None
        if root is not None:
            head = self._head
            if head is not None and head[0] == size and head[1] != root:
                # Two different trees of one size: the log forked or lies.  Entries read
                # under one view may not be in the other; do not read on.
                log.error("log %s: tree size %d came with two different root hashes "
                          "(%s, then %s): not following this head",
                          self.spec.name, size, head[1].hex(), root.hex())
                self.failed("sth_fork", f"size {size} with a different root hash")
                return None
            if head is None or size >= head[0]:
                self._head = (size, root)
        self.succeeded()
        return size

    def _check_sth(self, doc: dict[str, Any]) -> tuple[int, bytes | None]:
        """Tree size and root hash of a get-sth object, its signature checked as configured.

        Raises DecodeError for a head that must not be used (malformed, or unverified under
        ``enforce``).  Without a key, or with ``off``, only tree_size must be sound, as
        before verification existed; the root is then compared only when it parses.
        """
        mode = self.cfg.sth_signature
        if mode == "off" or self.spec.spki is None:
            if mode != "off":
                self._warn_once("no log key configured: tree heads are not verified")
            size = doc["tree_size"]
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise DecodeError(f"get-sth: bad tree_size {size!r:.40}")
            try:
                return size, parse_sth(doc).root_hash
            except DecodeError:
                return size, None
        try:
            head: SignedTreeHead = verify_sth(doc, self.spec.spki)
        except DecodeError as exc:
            if mode == "enforce" or not isinstance(exc, SignatureError):
                raise
            head = parse_sth(doc)  # malformed heads are refused in every mode
            self.bad_signatures += 1
            self._metric("LOG_ERRORS", self.spec.name, "sth_signature")
            self._warn_once(f"tree head not verified ({exc}); using it anyway")
            return head.tree_size, head.root_hash
        self._warned = ""
        return head.tree_size, head.root_hash

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
            grew = size > self.tree_size
            self.tree_size = size
            try:
                self._read_tiles(self.next_index, size)
            except _RoundAbortedError as exc:
                self.failed("tile_missing", str(exc))
                continue
            if self.spec.stop_at is not None and self.next_index >= self.spec.stop_at:
                self.finished = True
                return
            self.pause(grew)

    def _get_checkpoint(self) -> int | None:
        try:
            body = self.fetch(self.spec.url + "checkpoint", data=False)
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
            if mode == "warn":
                self._warn_once("no log key configured: checkpoints are not verified")
            return parse_checkpoint(body)
        try:
            cp = verify_checkpoint(body, origin, self.spec.spki)
        except DecodeError as exc:
            if mode == "enforce":
                raise
            self._warn_once(f"checkpoint not verified ({exc}); using it anyway")
            return parse_checkpoint(body)
        self._warned = ""
        return cp

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
