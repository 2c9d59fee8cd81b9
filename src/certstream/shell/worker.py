"""``CertstreamWorker``: a gunicorn gevent worker that serves raw sockets, not WSGI.

gunicorn owns the processes, the listening sockets, signals and reloads; this class keeps
``GeventWorker``'s post-fork patching and parent-death check and replaces the rest:

``load_wsgi``
    builds this worker's hub and connection context from the settings (there is no WSGI app).
``handle``
    runs ``shell.conn.serve`` for each accepted socket: h11, then WebSocket / SSE / one-shot.
``run``
    starts the servers, the feed subscriber, the hub's flusher and the timers (server pings,
    optional JSON heartbeats, SSE keep-alives, metrics); heartbeats the arbiter while alive.
    On SIGTERM or SIGINT (graceful stop) it stops accepting, closes every WebSocket with 1001
    "server shutting down", ends every SSE response, and waits for every connection to end
    until ``graceful_timeout`` (SIGQUIT: half a second).  The stock ``GeventWorker.run`` would
    wait for the handlers to finish, which streams never do.

``max_requests`` counts connections; leave it 0 for a streaming server (a worker restart
drops every client of that worker).

Connections: the handler greenlet of a streaming connection returns once the response head is
out, and a read watcher (``shell.reader``) holds the connection from then on, so the pool of
``worker_connections`` greenlets bounds only the connections being answered (and TLS streams);
``worker_connections`` is also the most connections of every kind one worker holds (counted
from accept to end, ``shell.fairserver.AcceptShares``), beyond which it leaves new ones in the
listen backlog.

Balance: all workers accept from the one listening socket, and whichever wakes first wins, so
a crowd connecting at once used to land 2:1 or worse on one worker.  With several workers each
publishes that count of open connections in its row of the memory the master shared with them
(``shell.sharedmem``) and defers accepting while it holds more than the least loaded peer, as
long as that peer is making progress (``shell.fairserver``; a stuck peer must not stop the
server accepting).  The metrics are synced by ``shell.metricsync``.

Whole-server figures: each worker claims a row of the memory the master shared
(``shell.sharedmem``) when it loads, counts its streaming connections and the rate limits
there (``shell.sharedlimits``) and publishes its clients and traffic into it
(``shell.sharedstats``), so that limits and status are the server's, not one worker's.  On a
clean stop it marks its row stopped, which tells the master it did not die.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import ssl
import time
from functools import partial
from typing import TYPE_CHECKING, Any

import gevent
import gevent.event
from gevent.pool import Pool
from gunicorn.sock import ssl_context
from gunicorn.workers.ggevent import GeventWorker

from certstream.config import Settings, load_settings
from certstream.core import frames
from certstream.core.resume import Stamp
from certstream.core.streams import STREAM_LITE
from certstream.shell import sharedmem
from certstream.shell.access import access_for
from certstream.shell.certcache import CertCache
from certstream.shell.conn import serve
from certstream.shell.endpoints import ServerContext
from certstream.shell.fairserver import AcceptShares, FairStreamServer
from certstream.shell.feedsub import FeedSubscriber
from certstream.shell.hub import Hub
from certstream.shell.metricsview import MetricsView, bound_to, metrics_context, metrics_tls
from certstream.shell.metricsync import MetricsSync
from certstream.shell.reload import ConfigWatcher, ReloadPlan
from certstream.shell.serving import (
    build_context,
    count_response,
    heartbeat_frame,
    ping_in_slices,
    run_every,
)
from certstream.shell.source import RecordSource, open_source

if TYPE_CHECKING:
    from certstream.shell.ingest import Ingest

__all__ = ["CertstreamWorker", "settings_for"]

log = logging.getLogger(__name__)

SHUTDOWN_CODE = 1001
SHUTDOWN_REASON = "server shutting down"
#: A lite sample this recent is served as is; an older one is refreshed from the ingest.
EXAMPLE_FRESH_SECS = 10.0
#: How long a starting worker waits for the others before it accepts connections anyway.
PEERS_WAIT_SECS = 3.0
#: At start, how long a worker waits for the ingest's feed before it accepts clients.
FEED_WAIT_SECS = 10.0
#: How long ``/example.json`` waits for the ingest's sample before answering with what it has.
EXAMPLE_WAIT_SECS = 1.0
#: A quick stop (SIGQUIT) gives the close frames this long to leave.
QUICK_STOP_SECS = 0.5


def settings_for(app: object) -> Settings:
    """The settings of this deployment: those the gunicorn application carries, if any,
    else loaded from the environment and config file as the master did."""
    settings = getattr(app, "settings", None)
    if isinstance(settings, Settings):
        return settings
    return load_settings()


def _drain(pending: Any) -> list[int]:
    """Empty the master's signal queue as a worker inherited it: a ``queue.SimpleQueue``
    (gunicorn >= 25) or a list (before)."""
    if pending is None:
        return []
    if isinstance(pending, list):
        sigs = list(pending)
        pending.clear()
        return sigs
    sigs = []
    while True:
        try:
            sigs.append(pending.get_nowait())
        except queue.Empty:
            return sigs


class CertstreamWorker(GeventWorker):  # type: ignore[misc]  # gunicorn is untyped
    """See the module docstring."""

    alive: bool
    nr: int
    max_requests: int
    hub: Hub
    ctx: ServerContext
    settings: Settings
    feed: RecordSource | None
    #: ``ingest.mode: embedded``: the ingest running in this worker.
    ingest: Ingest | None = None
    metrics_sync: MetricsSync
    tls: ssl.SSLContext | None = None
    #: The metrics' own listener (``metrics.port``), its context and TLS, if it has one.
    metrics_ctx: ServerContext
    metrics_tls: ssl.SSLContext | None = None
    metrics_view: MetricsView
    _metrics_sock: Any = None
    #: This worker's open connections (every kind), balanced with its peers' when it has any.
    shares: AcceptShares
    #: The memory all workers share, and this worker's row in it (-1: none).
    mem: sharedmem.SharedMemory | None = None
    row = -1
    _example_at = float("-inf")  # monotonic time the last EXAMPLE arrived
    _quick = False  # SIGQUIT: close the clients but do not wait for them
    inherited_signals: Any = None  # the master's signal queue, as forked (set by post_fork)
    _example_ready: gevent.event.Event

    def init_signals(self) -> None:
        super().init_signals()
        # Ctrl-C reaches every process of the group at once, this worker before the master's
        # SIGTERM: stop gracefully (1001 to each WebSocket, each SSE stream ended), as on
        # SIGTERM, not gunicorn's quick exit that drops every client.
        signal.signal(signal.SIGINT, self.handle_exit)
        # Signals that came while this worker booted (see shell.app.post_fork).
        for sig in _drain(self.inherited_signals):
            if sig in (signal.SIGTERM, signal.SIGINT):
                self.alive = False
            elif sig == signal.SIGQUIT:
                self.handle_quit(sig, None)

    def handle_quit(self, sig: int, frame: Any) -> None:
        """SIGQUIT (and a second Ctrl-C): the quick stop.  Clients still get their close
        frames, but nobody waits for them to go; and no ``sys.exit`` from a greenlet, which
        gevent reports as a SystemExit traceback."""
        self._quick = True
        self.alive = False
        gevent.spawn(self.cfg.worker_int, self)  # gunicorn's hook, off the signal handler

    def load_wsgi(self) -> None:
        self.wsgi = None
        self.settings = settings_for(self.app)
        ws = self.settings.websocket
        self.feed = None
        self.hub = Hub(
            self.settings.buffer_size,
            buffer_bytes=self.settings.buffer_bytes,
            drop_budget=ws.slow_client_drop_budget,
            close_code=ws.slow_client_close_code,
            on_wanted=self._on_wanted,
            flush_interval=self.settings.flush_interval_ms / 1000.0,
            epoch_ms=int(time.time() * 1000),
        )
        self.metrics_sync = MetricsSync(self.hub, None)
        self.mem = sharedmem.shared()
        if self.mem is not None:
            self.row = self.mem.claim(os.getpid())
            if self.row < 0:
                self.log.warning("no free row in the shared memory: this worker's limits "
                                 "and status count its own connections only")
        else:
            self.log.warning("no shared memory from the master (its on_starting hook did "
                             "not run): limits and status count this worker alone")
        self.metrics_view = MetricsView(self.settings, self.hub, self.metrics_sync)
        self.ctx = build_context(self.settings, self.hub, None, self.mem, self.row,
                                 view=self.metrics_view)
        self.metrics_ctx = metrics_context(self.settings, self.hub, self.metrics_view.render,
                                           count_response)
        self.metrics_sync.access = lambda: self.ctx.access
        if self.settings.protocols.api:
            api = self.settings.api
            self.ctx.certs = CertCache(api.cache_capacity, api.cache_max_bytes)
        self._example_ready = gevent.event.Event()
        self.ctx.lite_example = self._lite_example

    def _wanted(self, mask: int) -> int:
        # /api/cert is fed from lite messages, so the REST API keeps lite wanted.
        return mask | STREAM_LITE if self.ctx.certs is not None else mask

    def _on_wanted(self, mask: int) -> None:
        if self.feed is not None:
            self.feed.set_wanted(self._wanted(mask))

    def _on_record(self, mask: int, lite: bytes | None, full: bytes | None,
                   domains: bytes | None, stamp: Stamp) -> None:
        # stamp: the record's global id (the SSE id:), seen and number, for client resume.
        self.hub.publish(mask, lite, full, domains, stamp=stamp)
        certs = self.ctx.certs
        if certs is not None and lite is not None:
            certs.add(lite)

    def _on_gap(self, lost: int) -> None:
        """Records this worker's clients will never get: a notice in every ring, after
        what came before, so that every client is told in order, and so is a client that
        resumes from before it (``core.fanout.Fanout.gap``)."""
        self.hub.gap(lost)

    def _on_example(self, lite: bytes) -> None:
        self.hub.set_example(lite)
        self._example_at = time.monotonic()
        if self.feed is not None:
            self.feed.want_example(False)
        self._example_ready.set()

    def _lite_example(self) -> bytes | None:
        """``/example.json``: the ingest builds lite samples only on request (see the feed's
        EXAMPLE), so that nothing is built while nobody listens."""
        hub, feed = self.hub, self.feed
        ring = hub.rings[STREAM_LITE]
        if feed is None or self._wanted(hub.wanted) & STREAM_LITE:
            return ring.latest  # lite flows on the feed: its latest payload is current
        if ring.latest is not None and time.monotonic() - self._example_at < EXAMPLE_FRESH_SECS:
            return ring.latest
        self._example_ready.clear()
        feed.want_example(True)  # cleared by _on_example; stays set if none comes in time
        self._example_ready.wait(EXAMPLE_WAIT_SECS)
        return ring.latest

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        kept = False
        try:
            kept = self._handle(client, addr, metrics_only=listener is self._metrics_sock)
        finally:
            if not kept:  # else its reader ends it, and calls ctx.on_end then
                self.shares.closed()

    def _handle(self, client: Any, addr: Any, *, metrics_only: bool = False) -> bool:
        self.nr += 1
        if self.nr >= self.max_requests:
            if self.alive:
                self.log.info("Autorestarting worker after current request.")
            self.alive = False
        ip = addr[0] if isinstance(addr, tuple) and addr else ""
        port = addr[1] if isinstance(addr, tuple) and len(addr) > 1 else 0
        ctx, tls = (self.metrics_ctx, self.metrics_tls) if metrics_only else (self.ctx, self.tls)
        if tls is not None:
            # The TLS handshake happens here rather than in gevent's server so that a
            # client that hangs up mid-handshake is a debug line, not a logged traceback.
            try:
                with gevent.Timeout(ctx.request_timeout):
                    client = tls.wrap_socket(client, server_side=True)
            except (OSError, gevent.Timeout) as exc:  # ssl.SSLError is an OSError
                log.debug("TLS handshake with %s failed: %s", ip, exc)
                client.close()
                return False
        return serve(client, ctx, ip, port)

    def _apply_settings(self, plan: ReloadPlan) -> None:
        """A hot reload's live keys (see ``shell.reload.LIVE_KEYS``)."""
        settings = self.settings = plan.settings
        together = self.mem is not None and self.row >= 0
        self.ctx.access = access_for(settings, keep=self.ctx.access,
                                     split=1 if together else settings.workers)
        self.hub.drop_budget = settings.websocket.slow_client_drop_budget
        # websocket.heartbeat_secs: _heartbeats reads self.settings on every tick.

    def _heartbeats(self) -> None:
        """The optional JSON heartbeat, at the interval the settings say now (0 = none)."""
        while True:
            secs = self.settings.websocket.heartbeat_secs
            # Off: look again now and then, in case a reload turns it on.
            gevent.sleep(secs if secs > 0 else 1.0)
            if self.settings.websocket.heartbeat_secs > 0:
                try:
                    self.hub.broadcast(heartbeat_frame(time.time()), ws=True)
                except Exception:  # as in run_every: one bad tick must not end the heartbeats
                    log.exception("heartbeat failed")

    def _watcher(self) -> ConfigWatcher | None:
        hot = self.settings.hot_reload
        if not hot.enabled:
            return None
        if not hot.watch_path:
            self.log.warning("hot_reload is enabled but there is no config file to watch")
            return None
        return ConfigWatcher(hot.watch_path, self.settings, self._apply_settings)

    def _feed_path(self) -> str:
        return self.settings.feed_socket or os.environ.get("CERTSTREAM_FEED_SOCKET", "")

    def run(self) -> None:
        hub, settings = self.hub, self.settings
        # The watcher takes the file as it is now for what runs: made first, so that an edit
        # made while this worker subscribes and opens (a peer may already be serving) is
        # seen as a change, not taken for the start.
        watcher = self._watcher()
        hub.start()
        feed_task = None
        if settings.ingest.mode == "embedded":
            self._start_ingest()
        else:
            self.feed = open_source(settings, self._feed_path(), self._on_record,
                                    on_state=hub.set_state, on_example=self._on_example,
                                    on_gap=self._on_gap, after_flush=hub.after_flush)
        if self.feed is not None:
            self.feed.set_wanted(self._wanted(hub.wanted))
            self.metrics_sync.feed = self.feed
            self.ctx.broker_status = getattr(self.feed, "status", None)
            self.ctx.locate = self.feed.locate
            feed_task = gevent.spawn(self.feed.run)
            if isinstance(self.feed, FeedSubscriber):
                self._await_feed(self.feed)
        else:
            self.log.warning("no feed socket configured: serving without an ingest")
        servers = self._start_servers()
        tasks = [
            gevent.spawn(ping_in_slices, hub, settings.websocket.ping_interval_secs),
            gevent.spawn(
                run_every, settings.sse.keepalive_secs,
                lambda: hub.broadcast(frames.sse_comment(b"keep-alive"), ws=False),
            ),
            gevent.spawn(run_every, 1.0, self.metrics_view.tick),
        ]
        if watcher is not None:
            tasks.append(gevent.spawn(watcher.run))
        if settings.websocket.heartbeat_secs > 0 or watcher is not None:
            tasks.append(gevent.spawn(self._heartbeats))
        if feed_task is not None:
            tasks.append(feed_task)

        try:
            while self.alive:
                self.notify()
                gevent.sleep(0.5)
            self._shutdown(servers, tasks)
        finally:
            if self.ingest is not None:
                # Also on a quick exit (SIGQUIT, SIGINT), which skips _shutdown: the next
                # start resumes after what this one delivered (never more: see shell.state).
                self.ingest.state.flush()

    def _start_ingest(self) -> None:
        """``ingest.mode: embedded``: follow the logs in this worker, publishing straight
        into its hub (``shell.localfeed``)."""
        # Imported here: only an embedded worker follows logs.
        from certstream.shell.ingest import Ingest  # noqa: PLC0415
        from certstream.shell.localfeed import LocalFeed  # noqa: PLC0415

        # A batch is delivered once the hub has it in every keeping-up client's socket (the
        # same rule as the feed's ACK), and only then is its position saved.
        feed = self.feed = LocalFeed(self._on_record, self.hub.set_state, self._on_example,
                                     after_flush=self.hub.after_flush)
        feed.set_wanted(self._wanted(self.hub.wanted))
        self.ingest = Ingest(self.settings, feed)
        self.ingest.start(watch_parent=False)  # gunicorn's notify() watches the master
        self.log.info("certstream: ingest embedded in this worker (%d configured logs)",
                      len(self.ingest.config_specs))

    def _start_servers(self) -> list[FairStreamServer]:
        self.tls = ssl_context(self.cfg) if self.cfg.is_ssl else None
        self.metrics_tls = metrics_tls(self.settings)
        self._metrics_sock = next(
            (sock for sock in self.sockets if bound_to(sock, self.settings)), None)
        servers = []
        balance = self.cfg.workers > 1 and self.row >= 0
        shares = self.shares = AcceptShares(self.worker_connections,
                                            self.mem if balance else None, self.row)
        # A streaming connection a reader holds ends there, not in its handler.
        self.ctx.on_end = shares.closed
        if self.mem is not None and self.row >= 0:
            self.mem.mark_running(self.row)  # subscribed to the feed: its peers may count it
        if balance:
            self._await_peers(shares)
        elif self.cfg.workers > 1:
            self.log.warning("no shared memory row (see above): workers accept without "
                             "balancing")
        for sock in self.sockets:
            sock.setblocking(1)
            server = FairStreamServer(sock, handle=partial(self.handle, sock),
                                      spawn=Pool(self.worker_connections))
            if balance:
                server.max_accept = 1  # one accept per wake-up, then the peers' turn
            server.shares = shares
            server.capped = sock is not self._metrics_sock
            server.start()
            servers.append(server)
        return servers

    def _await_feed(self, feed: FeedSubscriber) -> None:
        """Accept no client before the feed is there (at most ``FEED_WAIT_SECS``): a client
        let in before would miss what the ingest sends meanwhile, which the workers already
        subscribed pass on (a restart, or an ingest that starts publishing as soon as its
        first worker is there)."""
        deadline = time.monotonic() + FEED_WAIT_SECS
        while not feed.connected.is_set() and time.monotonic() < deadline:
            self.notify()
            feed.connected.wait(0.1)
        if not feed.connected.is_set():
            self.log.warning("the feed is not there after %.0f s: accepting clients anyway",
                             FEED_WAIT_SECS)

    def _await_peers(self, shares: AcceptShares) -> None:
        """At start, let the other workers come up (at most ``PEERS_WAIT_SECS``) before
        accepting: clients reconnect in a crowd when a server restarts, and the first worker
        up would otherwise take all of them while the others are still booting or waiting
        for their feed (a peer counts once it is ready to accept, ``mark_running``).  A
        worker restarted alone finds its peers there and does not wait."""
        deadline = time.monotonic() + PEERS_WAIT_SECS
        while shares.live() < self.cfg.workers and time.monotonic() < deadline:
            self.notify()
            gevent.sleep(0.02)

    def _shutdown(self, servers: list[FairStreamServer], tasks: list[gevent.Greenlet]) -> None:
        if self.ingest is not None:
            self.ingest.stop()  # no more entries; the final positions are written
        if self.mem is not None and self.row >= 0:
            # A stop asked for (SIGTERM, a reload, max_requests), not a death: said first,
            # so that a worker the arbiter kills at the end of its graceful time still counts
            # as stopped.
            self.mem.mark_stopped(self.row)
        for server in servers:
            server.close()  # stop accepting; the connections stay
        self.hub.close_all(SHUTDOWN_CODE, SHUTDOWN_REASON)
        grace = QUICK_STOP_SECS if self._quick else self.cfg.graceful_timeout
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            # Every connection, in a handler greenlet or a reader, has ended (the clients
            # answered their Close, or were cut off after the linger).
            if self.shares.count <= 0:
                break
            self.notify()
            gevent.sleep(0.1)
        else:
            self.log.warning("Worker graceful timeout (pid:%s)", self.pid)
        if self.feed is not None:
            self.feed.close()
        gevent.killall(tasks, block=False)
        self.hub.stop()
        for server in servers:
            server.stop(timeout=1)
