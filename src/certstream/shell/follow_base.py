"""The part every log follower shares: backoff, health, request pacing and status.

The protocol-specific loops live in ``follow_rfc6962`` and ``follow_static``;
``certstream.shell.followers`` picks one per log.

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

import logging
import time

import gevent
import gevent.pool

from certstream.core.backoff import Backoff
from certstream.core.health import HealthTracker
from certstream.core.logspec import FollowerSettings, LogSpec, start_position
from certstream.core.reminder import Reminder
from certstream.errors import DecodeError
from certstream.shell.httpclient import HTTPClient, HTTPError, HTTPStatusError
from certstream.shell.logformat import ct_context
from certstream.shell.pipeline import Pipeline
from certstream.shell.politeness import Politeness

__all__ = ["GROWING_POLLS", "REMIND_SECS", "LogFollower"]

log = logging.getLogger("certstream.ingest")

#: While a log grows, its head is polled this many times per ``poll_interval`` (see
#: ``LogFollower.pause``).
GROWING_POLLS = 2
#: A log that keeps failing is reported when it starts, then at most this often (the
#: failures in between go to the debug log), and once when it answers again.
REMIND_SECS = 600.0


class LogFollower:
    """The parts common to both kinds: backoff, health, request pacing, status."""

    #: The metric (``shell.specmetrics``) that counts this kind's skipped entries.
    parse_failures_metric = "PARSE_FAILURES"
    #: Per-log metrics that exist from the start, at zero, as the spec's server has them.
    zero_metrics: tuple[str, ...] = ("PARSE_FAILURES",)

    def __init__(
        self,
        spec: LogSpec,
        cfg: FollowerSettings,
        *,
        http: HTTPClient,
        pipeline: Pipeline,
        politeness: Politeness,
        saved_next: int | None = None,
        resume_index: int | None = None,
    ) -> None:
        self.spec = spec
        self.source = spec.source
        self.cfg = cfg
        self.http = http
        self.pipeline = pipeline
        self.politeness = politeness
        self.saved_next = saved_next
        self.resume_index = resume_index  # from certstream-server-go's ct_index.json
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
        self._failing = Reminder(REMIND_SECS)
        # Kinds of failure reported while the log has been failing: a new kind is news
        # (a timeout turning into 429s, a 5xx into bad bodies) and is said at once; the
        # kinds are a short fixed list, so this stays bounded too.
        self._kinds_said: set[str] = set()
        self._greenlet: gevent.Greenlet | None = None
        self._group = gevent.pool.Group()

    # -- lifecycle

    def start(self) -> None:
        for name in self.zero_metrics:
            self.pipeline.inc(name, self.spec.name, amount=0)
        # certstream_messages_sent{log} is made from these: there from the start too.
        self.pipeline.inc("ENTRIES", self.spec.name, "x509", amount=0)
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
                log.exception("follower %s crashed; restarting", self.spec.name,
                              extra=ct_context(self.spec.name))
                self.pipeline.inc("RESTARTS", "follower")
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
        failures = self._failing.ended()
        self._kinds_said.clear()
        if failures:
            log.info("log %s: answering again after %d failed requests", self.spec.name,
                     failures)
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
        quiet = self._failing.occurred(now)
        if quiet is None and kind not in self._kinds_said:
            quiet = 0  # a new kind of failure of a log that keeps failing
        self._kinds_said.add(kind)
        if quiet is None:
            log.debug("log %s: %s (%s); retrying in %.2fs [%s]",
                      self.spec.name, kind, detail, delay, self.health.status,
                      extra=ct_context(self.spec.name))
        else:
            log.warning(
                "log %s: %s (%s); retrying in %.2fs [%s]%s",
                self.spec.name, kind, detail, delay, self.health.status,
                f"; {quiet} more failures since the last report" if quiet else
                "; retried with backoff, reported again every "
                f"{REMIND_SECS / 60:.0f} min while it fails",
                extra=ct_context(self.spec.name),
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
        log.warning("SKIP log=%s index=%d reason=%s", self.spec.name, index, reason,
                    extra=ct_context(self.spec.name, index))
        self._metric("ENTRIES_SKIPPED", self.spec.name, kind)
        self._metric(self.parse_failures_metric, self.spec.name)

    def _metric(self, name: str, *labels: str) -> None:
        self.pipeline.inc(name, *labels)

    def _warn_once(self, text: str) -> None:
        # Heads are polled every second: say it when it starts, not every time.
        if text != self._warned:
            self._warned = text
            log.warning("log %s: %s", self.spec.name, text, extra=ct_context(self.spec.name))

    def start_position(self, head: int) -> int:
        """Where this log starts, given its current tree size (see ``core.logspec``)."""
        return start_position(
            head, saved_next=self.saved_next, start_index=self.spec.start_index,
            overlap=self.cfg.start_overlap, resume_index=self.resume_index,
            recovery=self.cfg.recovery,
        )

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
