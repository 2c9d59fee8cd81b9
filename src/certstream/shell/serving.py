"""What a worker serves its clients with, made from the settings: the connection context
(routes, access rules, metrics, the live page) and the timers every client gets (server pings
in slices, SSE keep-alives, the optional JSON heartbeat).

``certstream.shell.worker.CertstreamWorker`` builds the context when it loads and runs the
timers while it is alive.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import gevent

from certstream.config import Settings, metrics_listener
from certstream.core import frames
from certstream.core.routes import RouteTable
from certstream.shell import metrics, sharedmem
from certstream.shell.access import access_for
from certstream.shell.endpoints import ServerContext
from certstream.shell.hub import Hub
from certstream.shell.livepage import favicon, live_page
from certstream.shell.metricsview import MetricsView
from certstream.shell.sharedlimits import SharedConnections, SharedRates
from certstream.shell.sharedstats import SharedStats

__all__ = [
    "build_context",
    "count_response",
    "heartbeat_frame",
    "ping_in_slices",
    "route_table",
    "run_every",
]

# The worker's logger, as before these had a module of their own: their lines keep its name.
log = logging.getLogger("certstream.shell.worker")

#: Server pings go out in slices this far apart (``ping_in_slices``).
PING_STEP_SECS = 1.0


def route_table(settings: Settings) -> RouteTable:
    p, s, paths = settings.protocols, settings.streams, settings.paths
    return RouteTable(
        websocket=p.websocket, sse=p.sse, health=p.health,
        # On a listener of their own, the metrics are not served here (shell.metricsview).
        metrics=p.metrics and metrics_listener(settings) is None,
        example_json=p.example_json, api=p.api,
        lite=s.lite, full=s.full, domains=s.domains_only,
        lite_path=paths.lite, full_path=paths.full, domains_path=paths.domains_only,
        metrics_path=paths.metrics,
    )


def count_response(endpoint: str, code: int) -> None:
    metrics.SERVER_RESPONSES.labels(endpoint, str(code)).inc()


def build_context(settings: Settings, hub: Hub,
                  before_metrics: Callable[[], None] | None = None,
                  mem: sharedmem.SharedMemory | None = None, row: int = -1, *,
                  view: MetricsView | None = None) -> ServerContext:
    """The connection context of a worker.  With ``mem`` and this worker's ``row`` in it,
    limits and status count every worker; else this process alone (and ``max_connections``
    is split between the workers, the best it can do without counting together)."""
    def render() -> tuple[bytes, str]:
        if view is not None:
            return view.render()
        if before_metrics is not None:
            before_metrics()  # this worker's values are current in the scrape
        return metrics.render_metrics()

    routes = route_table(settings)
    shared = mem if row >= 0 else None
    ctx = ServerContext(
        hub=hub,
        routes=routes,
        access=access_for(
            settings,
            connections=SharedConnections(shared, row) if shared is not None else None,
            rates=SharedRates(shared) if shared is not None else None,
            split=1 if shared is not None else settings.workers,
        ),
        max_message_bytes=settings.websocket.max_message_bytes,
        api_cache_capacity=settings.api.cache_capacity,
        render_metrics=render,
        on_response=count_response,
        real_ip=settings.real_ip,
        compression=settings.websocket.compression,
        peers=view.peers if view is not None else None,
        max_filter_patterns=settings.filters.max_patterns,
        page=live_page(routes),
        favicon=favicon(),
    )
    if shared is not None:
        ctx.stats = SharedStats(shared, row, hub)
        hub.on_change = ctx.stats.publish
    return ctx


def heartbeat_frame(now: float) -> bytes:
    """The optional JSON heartbeat: ``{"message_type":"heartbeat","timestamp":<float>}``."""
    return frames.ws_frame(b'{"message_type":"heartbeat","timestamp":%r}' % now)


def run_every(interval: float, action: Callable[[], None]) -> None:
    while True:
        gevent.sleep(interval)
        try:
            action()
        except Exception:  # a bug in one tick must not stop the pings for good
            log.exception("periodic task %r failed", action)


def ping_in_slices(hub: Hub, interval: float) -> None:
    """Every WebSocket client gets a ping every ``interval``: a slice of them each second
    (``Hub.ping_part``), not all at once."""
    parts = max(1, round(interval / PING_STEP_SECS))
    part = 0
    while True:
        gevent.sleep(interval / parts)
        try:
            hub.ping_part(part, parts)
        except Exception:  # as in run_every: one bad tick must not stop the pings for good
            log.exception("pinging the clients failed")
        part = (part + 1) % parts
