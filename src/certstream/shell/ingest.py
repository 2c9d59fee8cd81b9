"""The ingest process: follows every configured and listed CT log and feeds the workers.

Run as ``python -m certstream.shell.ingest`` (the gunicorn master starts it from
``when_ready``).  One greenlet per log (see ``certstream.shell.followers``), plus a few
housekeeping greenlets: the log-list refresher, the state writer (``shell.state``), the
STATE publisher and the parent watchdog.

gevent's monkey-patching happens here, at the top of the process entry, and nowhere else:
the sans-IO core stays importable without it.

Exit paths: SIGTERM/SIGINT (stop followers, let the feed drain and the workers acknowledge,
write the delivered positions, close the feed, exit 0), and the death of the parent
(``os.getppid()`` no longer equals ``CERTSTREAM_MASTER_PID``), so an ingest never outlives
its server: then the state is frozen first (see ``Ingest._master_gone``).
"""

from __future__ import annotations

if __name__ == "__main__":  # pragma: no cover - only when run as the process entry
    from gevent import monkey

    monkey.patch_all()

import gc
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import gevent
import gevent.event

from certstream.buildinfo import extensions_line
from certstream.config import Settings, load_settings
from certstream.core import loglist
from certstream.core.dedup import DedupRing
from certstream.core.logspec import FollowerSettings, LogSpec
from certstream.core.messages import MessageBuilder
from certstream.core.reminder import Reminder
from certstream.errors import CertstreamError, ConfigError
from certstream.shell import logformat, metrics, specmetrics
from certstream.shell.children import unblock_sigint
from certstream.shell.ctindex import CtIndexFile
from certstream.shell.feed import FeedPublisher
from certstream.shell.followers import LogFollower, make_follower
from certstream.shell.gometrics import IngestCounts
from certstream.shell.heaptrim import HeapTrimmer
from certstream.shell.httpclient import HTTPClient, HTTPError
from certstream.shell.issuers import IssuerCache
from certstream.shell.logformat import ct_context
from certstream.shell.logselect import (
    fetch_log_list,
    packaged_log_list,
    select_specs,
    specs_from_settings,
)
from certstream.shell.pipeline import Pipeline, Publisher
from certstream.shell.politeness import Politeness
from certstream.shell.state import StateStore

__all__ = ["Ingest", "IngestFeed", "main"]

log = logging.getLogger("certstream.ingest")

MASTER_PID_ENV = "CERTSTREAM_MASTER_PID"
STATE_INTERVAL = 2.0
#: How often the ingest looks whether a burst of entries has ended (and trims the heap).
TRIM_INTERVAL = 1.0
#: Bytes queued for the workers that mean a burst is still being taken.
FEED_BUSY_BYTES = 256 * 1024
WATCHDOG_INTERVAL = 1.0
#: How long the feed's writer greenlets get to drain at shutdown before the final flush.
DRAIN_SECS = 1.0
#: How often certstream-server-go's ct_index.json is brought up to the saved positions.
CT_INDEX_INTERVAL = 5.0
#: A log list that cannot be fetched is reported once, then at most this often.
LIST_REMIND_SECS = 600.0


class IngestFeed(Publisher, Protocol):
    """Where the ingest publishes: ``shell.feed.FeedPublisher`` (the socket the workers
    subscribe to) or, embedded in the one worker, ``shell.localfeed.LocalFeed`` (its hub)."""

    #: Called when a worker asks for an ``/example.json`` sample.
    on_example_wanted: Callable[[], None] | None
    dropped: int

    def start(self) -> None: ...
    def close(self) -> None: ...
    def connected(self) -> int: ...
    def publish_state(self, state: Mapping[str, object]) -> None: ...

    def pending_bytes(self) -> int:
        """Published bytes not yet handed to the workers (the heap trimmer waits for a
        burst to be taken)."""
        ...


class Ingest:
    """``feed`` and ``state``: where records and log positions go: the Unix feed to this
    machine's workers (or, embedded, the one worker's hub) and the state file by default;
    ``role: ingest`` hands in the broker's (see ``certstream.shell.ingestnode``)."""

    def __init__(self, settings: Settings, feed: IngestFeed, *, state: Any = None) -> None:
        self.settings = settings
        ct = settings.ct_log
        self.started = time.time()
        self.stopping = gevent.event.Event()
        self.feed = feed
        self.state = state if state is not None else StateStore(ct.state_file)
        self.state.load()
        # certstream-server-go's resume file: read once, then kept current from the state.
        self.ct_index = CtIndexFile(ct.ct_index_file) if ct.ct_index_file else None
        if self.ct_index is not None:
            self.ct_index.load()
        self.http = HTTPClient(ct.user_agent, float(ct.request_timeout_secs), ct.max_body_bytes)
        self.dedup = DedupRing(settings.dedup.capacity, float(settings.dedup.ttl_secs))
        # Ours and the spec's (shell.specmetrics), by attribute name.
        self.metrics: Any = specmetrics.IngestMetrics(metrics, specmetrics)
        self.builder = MessageBuilder(settings.output.profile)
        self.pipeline = Pipeline(
            self.feed,
            self.builder,
            self.dedup,
            self.state,
            workers_connected=self.feed.connected,
            # The first batch waits for every worker of this machine to subscribe; a
            # broker's edges come and go on their own (one is enough, as ever).
            expected_workers=settings.workers if isinstance(feed, FeedPublisher) else 1,
            metrics=self.metrics,
        )
        self.politeness = Politeness(
            ct.default_operator_rate_limit_ms / 1000.0,
            {k: v / 1000.0 for k, v in ct.operator_rate_limits.items()},
        )
        self.issuers = IssuerCache(self.http)
        self._state_soon: gevent.Greenlet | None = None
        self._feed_dropped = 0
        self._parse_problems = 0
        self.pipeline.on_status_change = self._publish_state_soon
        if settings.metrics.go_series:
            self.pipeline.on_entries = IngestCounts()
        # /example.json samples are built only when a worker asks (nothing while idle).
        self.feed.on_example_wanted = self.pipeline.publish_example
        if isinstance(feed, FeedPublisher):
            feed.on_peer_gone = self._peer_gone
        self.fcfg = FollowerSettings.from_ct_log(ct)
        self.config_specs = specs_from_settings(settings)
        self.discovered: list[LogSpec] = []
        self._lists: dict[str, tuple[str, list[loglist.LogInfo]]] = {}
        # Lists followed from the packaged snapshot because the live one was unreachable.
        self._packaged: set[str] = set()
        # Per list URL: its failures are reported once, then every 10 minutes.
        self._list_failing: dict[str, Reminder] = {}
        self.followers: dict[str, LogFollower] = {}
        self._housekeeping: list[gevent.Greenlet] = []
        # The followers' positions move with every batch handled; a burst is over when they
        # stand still and the workers have taken what was queued for them.  Then glibc can
        # have back the memory the burst's transient objects took.
        self.trimmer = HeapTrimmer(self._work_done, self._feed_busy)

    # -- followers ---------------------------------------------------------------------

    def reconcile(self) -> None:
        """Start followers for new logs and retire those no longer wanted."""
        desired: dict[str, LogSpec] = {s.key: s for s in self.discovered}
        desired.update({s.key: s for s in self.config_specs})  # config wins
        for key in list(self.followers):
            if key not in desired:
                if not self.settings.ct_log.drop_unlisted_logs:
                    desired[key] = self.followers[key].spec  # kept (Go's drop_old_logs: false)
                    continue
                name = self.followers[key].spec.name
                log.info("log %s: no longer listed; retiring it", name, extra=ct_context(name))
                self.followers.pop(key).stop()
            elif desired[key] != self.followers[key].spec:
                # Its listing changed (e.g. it turned readonly): restart it with the new
                # spec, from where it got to.
                log.info("log %s: listing changed; restarting it", desired[key].name,
                         extra=ct_context(desired[key].name))
                self.followers.pop(key).stop()
        for key, spec in desired.items():
            if key in self.followers:
                continue
            # The store knows the newest position (a log seen before in this process too).
            saved = self.state.get(key)
            f = make_follower(
                spec, self.fcfg, http=self.http, pipeline=self.pipeline,
                politeness=self.politeness, issuers=self.issuers,
                saved_next=saved.next_index if saved is not None else None,
                resume_index=(self.ct_index.resume_index(spec.url)
                              if self.ct_index is not None else None),
            )
            self.followers[key] = f
            f.start()
            log.info("log %s (%s, %s): following", spec.name, spec.kind, spec.url,
                     extra=ct_context(spec.name))

    # -- housekeeping ------------------------------------------------------------------

    def _work_done(self) -> int:
        return sum(f.next_index or 0 for f in self.followers.values())

    def _feed_busy(self) -> bool:
        # A STATE or two may be queued at any moment: only a burst's worth counts.
        return self.feed.pending_bytes() >= FEED_BUSY_BYTES

    def _every(self, interval: float, fn: Any) -> gevent.Greenlet:
        def loop() -> None:
            while True:
                gevent.sleep(interval)
                try:
                    fn()
                except Exception:
                    log.exception("housekeeping task %s failed", getattr(fn, "__name__", fn))

        g = gevent.spawn(loop)
        self._housekeeping.append(g)
        return g

    def update_ct_index(self) -> None:
        """Bring certstream-server-go's ct_index.json up to the saved positions."""
        if self.ct_index is not None:
            self.ct_index.update(self.state.saved())

    def snapshot(self) -> dict[str, object]:
        logs = [f.status() for f in self.followers.values()]
        counters: dict[str, object] = dict(self.pipeline.counters)
        counters["logs"] = len(logs)
        counters["dedup_size"] = len(self.dedup)
        counters["feed_dropped"] = getattr(self.feed, "dropped", 0)
        return {"logs": logs, "counters": counters, "started": self.started}

    def _publish_state_soon(self) -> None:
        """STATE also goes out when a log's health changes (coalesced over 50 ms)."""
        if self._state_soon is None or self._state_soon.dead:
            self._state_soon = gevent.spawn_later(0.05, self.publish_state)

    def publish_state(self) -> None:
        snap = self.snapshot()
        self.feed.publish_state(snap)
        m = self.metrics
        try:
            for st in snap["logs"]:  # type: ignore[attr-defined]
                name = st["name"]
                m.LOG_STATUS.labels(name).set(m.LOG_STATUS_CODES.get(st["status"], 2))
                m.LOG_TREE_SIZE.labels(name).set(st["tree_size"] or 0)
                if st["lag"] is not None:
                    m.LOG_LAG.labels(name).set(st["lag"])
            m.DEDUP_SIZE.set(len(self.dedup))
            kinds = [f.spec.kind for f in self.followers.values()]
            m.CT_LOGS.set(kinds.count("rfc6962"))
            m.STATIC_CT_LOGS.set(kinds.count("static"))
            m.ISSUER_CACHE.set(len(self.issuers))
            dropped = int(getattr(self.feed, "dropped", 0))
            if dropped > self._feed_dropped:
                m.FEED_DROPPED.inc(dropped - self._feed_dropped)
                self._feed_dropped = dropped
            # The builder counts; the metric follows with the STATE, off the per-entry path.
            problems = self.builder.problem_count
            if problems > self._parse_problems:
                m.PARSE_PROBLEMS.inc(problems - self._parse_problems)
                self._parse_problems = problems
        except Exception:
            log.debug("metrics update failed", exc_info=True)

    def refresh_log_lists(self) -> None:
        """Fetch the configured log lists and follow what they select.

        Each list is fetched on its own and its last good copy kept: one list that is
        unreachable or does not verify neither hides the others nor retires the logs it
        listed before.
        """
        for url in self.settings.ct_log.log_list_urls:
            failing = self._list_failing.setdefault(url, Reminder(LIST_REMIND_SECS))
            try:
                self._lists[url] = fetch_log_list(self.http, url)
                self._packaged.discard(url)
            except (HTTPError, CertstreamError, ValueError) as exc:
                quiet = failing.occurred(time.monotonic())
                say = log.warning if quiet is not None else log.debug
                more = f" ({quiet} more failures since the last report)" if quiet else ""
                if url in self._lists and url not in self._packaged:
                    say("log list %s: refresh failed (%s); keeping its last copy%s",
                        url, exc, more)
                elif url == loglist.GOOGLE_LOG_LIST_URL:
                    if url not in self._lists:
                        self._lists[url] = packaged_log_list()
                        self._packaged.add(url)
                    say("log list %s: fetch failed (%s); following the snapshot packaged "
                        "with certstream until it can be fetched%s", url, exc, more)
                else:
                    say("log list %s: fetch failed (%s); will retry%s", url, exc, more)
            else:
                if failing.ended():
                    log.info("log list %s: fetched again", url)
        if not self._lists:
            return
        self.discovered = select_specs(self._lists, self.settings)
        self.reconcile()

    def _discovery_loop(self) -> None:
        ct = self.settings.ct_log
        while True:
            self.refresh_log_lists()
            # Until every list has arrived once (no network yet), try again soon.
            ok = len(self._lists) == len(ct.log_list_urls) and not self._packaged
            gevent.sleep(ct.log_list_refresh_secs if ok else min(60, ct.log_list_refresh_secs))

    def _watchdog(self, master_pid: int) -> None:
        while not self._master_gone(master_pid):
            gevent.sleep(WATCHDOG_INTERVAL)

    def _peer_gone(self) -> None:
        """A worker left the feed: if the master died, so are all the workers, now or in a
        moment (see ``_master_gone``)."""
        master = os.environ.get(MASTER_PID_ENV, "")
        if master.isdigit():
            self._master_gone(int(master))

    def _master_gone(self, master_pid: int) -> bool:
        """When the master is gone, its workers exit one by one and their clients with
        them: an acknowledgement from the last workers no longer means the others' clients
        got a batch.  So positions are frozen at what every client had (nothing more is
        published or saved; a restart sends the rest again) and the ingest stops."""
        if os.getppid() == master_pid:
            return False
        if not self.stopping.is_set():
            log.warning("parent process %d is gone; saving no more positions and stopping",
                        master_pid)
        self.state.freeze()
        self.stopping.set()
        return True

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, *, watch_parent: bool = True) -> None:
        """Start the feed, the followers and the housekeeping.  ``watch_parent``: stop when
        the master is gone (a process of its own; embedded, the worker itself does that)."""
        self.feed.start()
        self.reconcile()
        if self.settings.ct_log.log_list_urls:
            self._housekeeping.append(gevent.spawn(self._discovery_loop))
        self.state.start()
        if self.ct_index is not None:
            self._every(CT_INDEX_INTERVAL, self.update_ct_index)
        self._every(STATE_INTERVAL, self.publish_state)
        self._every(TRIM_INTERVAL, self.trimmer.tick)
        gevent.spawn_later(0.2, self.publish_state)
        master = os.environ.get(MASTER_PID_ENV, "")
        if watch_parent and master.isdigit():
            self._housekeeping.append(gevent.spawn(self._watchdog, int(master)))

    def stop(self) -> None:
        for f in list(self.followers.values()):
            f.stop()
        gevent.killall(self._housekeeping, block=False)
        # The feed writes from its own greenlets: give the last published entries a moment
        # to reach the workers and be acknowledged; then write what was delivered (never
        # more: a worker that is gone may not have got the rest).
        gevent.sleep(DRAIN_SECS)
        self.state.stop()
        self.state.flush()
        self.update_ct_index()
        self.feed.close()
        self.http.close()

    def run(self) -> None:
        self.start()
        # What exists now (modules, settings, the log list, the followers) lives as long as
        # the process: out of the collector's way, so full collections walk only the
        # objects that come and go with the entries.
        gc.collect()
        gc.freeze()
        self.stopping.wait()
        log.info("stopping")
        self.stop()


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    del argv  # no options: everything comes from the settings
    try:
        settings = load_settings(env)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    logformat.configure(settings.log_level, settings.log_format)
    if settings.role == "ingest":
        return _ingest_node(settings)
    path = settings.feed_socket or os.path.join(
        tempfile.gettempdir(), f"certstream-feed-{os.getpid()}.sock"
    )
    # The workers' rings hold buffer_size records: a worker that starts later gets as many
    # recent ones, so that clients resume on it as on the others.
    ingest = Ingest(settings, FeedPublisher(path, replay=settings.buffer_size))
    gevent.signal_handler(signal.SIGTERM, ingest.stopping.set)
    gevent.signal_handler(signal.SIGINT, ingest.stopping.set)
    unblock_sigint()  # the master started us with it blocked (see shell.children)
    log.info("ingest starting: feed %s, %d configured logs, state %s",
             path, len(ingest.config_specs), settings.ct_log.state_file)
    # Said here, where the twins are loaded anyway: the master loads none (memory), and a
    # worker only the frame builder.
    log.info("certstream: %s", extensions_line())
    ingest.run()
    log.info("ingest stopped")
    return 0


def _ingest_node(settings: Settings) -> int:
    """``role: ingest``: lead or stand by (see ``certstream.shell.ingestnode``)."""
    # Only here: one machine's ingest never loads the Redis client.
    from certstream.shell.ingestnode import IngestNode  # noqa: PLC0415

    node = IngestNode(settings, lambda feed, state: Ingest(settings, feed, state=state))
    gevent.signal_handler(signal.SIGTERM, node.stopping.set)
    gevent.signal_handler(signal.SIGINT, node.stopping.set)
    unblock_sigint()
    node.run()
    log.info("ingest stopped")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
