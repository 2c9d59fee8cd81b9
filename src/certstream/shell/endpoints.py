"""The one-shot HTTP endpoints: health, metrics, examples, the REST API, the live page; and
what a streaming request must pass first (the access rules of ``shell.access``, its filter).

Each handler takes the worker's ``ServerContext`` and the routed request and returns
``(status, body, content type)``.  Shapes follow certstream-server-rust where it defines
them (``/health/deep``, ``/api/stats``, ``/api/logs``), extended with what a deployment of
several workers needs (connections by stream and transport).  Numbers about connections
and traffic are the whole server's, whichever worker answers (``ServerContext.stats``: the
workers' shared rows, see ``shell.sharedstats``); log health comes from the ingest's latest
STATE on the feed, the same for every worker.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from certstream.core.filterfields import FilterSpec
from certstream.core.ratelimit import retry_after_header
from certstream.core.resume import Resume, ResumeError, parse_resume
from certstream.core.routes import SSE_STREAM_VALUES, RouteTable, split_target
from certstream.core.session import RequestReceived
from certstream.core.streams import STREAM_LITE
from certstream.errors import FilterError
from certstream.shell.access import Access
from certstream.shell.certcache import CertCache
from certstream.shell.hub import Hub
from certstream.shell.sharedlimits import Place
from certstream.shell.sharedstats import LocalStats, Totals

__all__ = [
    "Refusal",
    "Response",
    "ServerContext",
    "admit_resume",
    "admit_stream",
    "answer",
    "log_counts",
    "rate_refusal",
    "refuse",
    "reserve_place",
]

Response = tuple[int, bytes, bytes]
#: An error answer with its extra headers (``Retry-After`` on a rate-limit 429).
Refusal = tuple[int, bytes, bytes, tuple[tuple[bytes, bytes], ...]]

_JSON = b"application/json"
_TEXT = b"text/plain; charset=utf-8"
_HTML = b"text/html; charset=utf-8"
_SVG = b"image/svg+xml"


class Stats(Protocol):
    """The clients and traffic of the server (``shell.sharedstats``)."""

    def publish(self) -> None: ...
    def totals(self) -> Totals: ...


_TOO_MANY_REQUESTS = b'{"error":"Too Many Requests"}'


def rate_refusal(ctx: ServerContext, ip: str, now: float | None = None) -> Refusal | None:
    """Count one request from ``ip`` against the rate limit: the 429 answer when it is over
    it, else ``None``.  Every request counts, unknown paths and bad requests too."""
    access = ctx.access
    rule = access.rate_rule
    if rule is None:
        return None
    wait = access.rates.check(ip, rule, time.monotonic() if now is None else now)
    if wait <= 0:
        return None
    access.rate_limited += 1
    return 429, _TOO_MANY_REQUESTS, _JSON, ((b"Retry-After", retry_after_header(wait)),)


_PROTECTED = frozenset(("api_stats", "api_logs", "api_cert"))
#: ``/sse?stream=`` with a value that names no stream.
_BAD_SSE_STREAM = json.dumps(
    {"error": "Bad Request",
     "reason": "stream must be one of: " + ", ".join(SSE_STREAM_VALUES)
               + " (or absent, for lite)"},
    separators=(",", ":")).encode()
#: ``/example.json`` before the first certificate: nothing to show yet, try again later.
_NO_EXAMPLE = (b'{"error":"Service Unavailable","reason":"no certificate has been received '
               b'yet; try again once the logs have sent one"}')


def refuse(ctx: ServerContext, request: RequestReceived, ip: str,
           now: float | None = None) -> Refusal | None:
    """The error answer when ``request`` may not proceed (403, 429, 401), else ``None``.

    ``now`` is a monotonic time for the rate limiter (read here when not given).  An address
    off the whitelist is refused first, before it costs a rate-limiter bucket.  The rate
    limit comes next and counts every routed request, so that guessing tokens is as slow
    as anything else.  Connection limits are :func:`reserve_place`'s.
    """
    if not ctx.access.allow.allows(ip):
        return 403, b'{"error":"Forbidden"}', _JSON, ()
    refused = rate_refusal(ctx, ip, now)
    if refused is not None:
        return refused
    route = request.route
    streaming = route.kind in ("ws", "sse")
    if (streaming or route.name in _PROTECTED) and not ctx.access.token_ok(request.headers):
        return 401, b'{"error":"Unauthorized"}', _JSON, ()
    return None


def reserve_place(ctx: ServerContext, ip: str) -> Place | Refusal:
    """Reserve a place for a streaming connection from ``ip``: the place (give it back with
    ``ctx.access.connections.release`` when the connection ends, however it ends), or the
    429 answer when ``connection_limit`` is reached."""
    access = ctx.access
    place = access.connections.admit(ip, access.max_connections, access.per_ip_limit)
    if isinstance(place, str):
        return 429, b'{"error":"Too Many Connections"}', _JSON, ()
    return place


@dataclass(slots=True)
class ServerContext:
    """What a connection handler needs from its worker."""

    hub: Hub
    routes: RouteTable = field(default_factory=RouteTable)
    access: Access = field(default_factory=Access)
    started: float = field(default_factory=time.time)
    max_header_bytes: int = 16384
    max_message_bytes: int = 65536
    request_timeout: float = 10.0
    api_cache_capacity: int = 1000
    certs: CertCache | None = None
    render_metrics: Callable[[], tuple[bytes, str]] | None = None
    #: Called with (endpoint, status) after each answered request, for the metrics.
    on_response: Callable[[str, int], None] | None = None
    #: The lite sample for ``/example.json``; the worker's may wait (up to ~1 s) for the
    #: ingest to build one.  Unset: the hub's latest lite payload, as is.
    lite_example: Callable[[], bytes | None] | None = None
    #: ``websocket.compression``: negotiate permessage-deflate with clients that offer it.
    compression: bool = True
    #: ``filters.max_patterns``: the most filter values one client may send.
    max_filter_patterns: int = 100
    #: The live page (``shell.livepage``) and its favicon, read once at start.
    page: bytes = b""
    favicon: bytes = b""
    #: ``real_ip``: the client address is the one X-Forwarded-For / X-Real-IP name.
    real_ip: bool = False
    #: Streaming clients and their addresses, kept when certstream-server-go's per-client
    #: series are on (``shell.gometrics``).
    peers: dict[Any, str] | None = None
    #: This worker's view of the broker (``role: edge`` and ``ingest``), for ``/health/deep``.
    broker_status: Callable[[], dict[str, Any]] | None = None
    #: The clients and traffic of all workers (unset: this hub's alone).
    stats: Stats | None = None
    #: Called when a connection ``shell.conn.serve`` handed to a reader (``shell.reader``)
    #: ends, for the worker's count of open connections.
    on_end: Callable[[], None] | None = None
    #: The number of the record with a given id, from the worker's record source (the
    #: broker looks it up): for a client resuming from before everything the hub holds.
    locate: Callable[[int], int | None] | None = None

    def totals(self) -> Totals:
        return (self.stats or LocalStats(self.hub)).totals()


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


#: Log states in a feed STATE, in the order ``/health/deep`` reports them.  ``starting``:
#: no request to the log has completed yet (neither healthy nor failing so far).
LOG_STATES = ("healthy", "degraded", "unhealthy", "starting")


def log_counts(state: dict[str, Any] | None) -> dict[str, int]:
    """Logs per health status in a feed STATE object."""
    counts = dict.fromkeys(LOG_STATES, 0)
    for entry in (state or {}).get("logs", ()) or ():
        status = entry.get("status") if isinstance(entry, dict) else None
        if status in counts:
            counts[status] += 1
    return counts


def _log_health(state: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Each followed log's name, URL, health and lag (the live page lists them)."""
    return [
        {"name": entry.get("name"), "url": entry.get("url"), "status": entry.get("status"),
         "lag": entry.get("lag")}
        for entry in (state or {}).get("logs", ()) or ()
        if isinstance(entry, dict)
    ]


def _health_deep(ctx: ServerContext) -> Response:
    counts = log_counts(ctx.hub.state)
    total = sum(counts.values())
    unhealthy = counts["unhealthy"] > total / 2
    if unhealthy:
        status = "unhealthy"
    elif counts["unhealthy"] or counts["degraded"]:
        status = "degraded"
    elif ctx.hub.state is None or counts["starting"]:
        status = "starting"  # not every log has answered yet: not known to be healthy
    else:
        status = "healthy"
    totals = ctx.totals()
    body = {
        "status": status,
        "logs_healthy": counts["healthy"],
        "logs_degraded": counts["degraded"],
        "logs_unhealthy": counts["unhealthy"],
        "logs_starting": counts["starting"],
        "logs_total": total,
        "active_connections": totals.connections,
        "connections": totals.clients,
        "feed_state_received": ctx.hub.state is not None,
        "uptime_secs": int(time.time() - ctx.started),
        "logs": _log_health(ctx.hub.state),
    }
    if ctx.broker_status is not None:
        body["broker"] = ctx.broker_status()
    return (503 if unhealthy else 200), _dumps(body), _JSON


def _certificates_processed(ctx: ServerContext) -> int:
    """Certificates the ingest published (its STATE counters), else what this worker got."""
    counters = (ctx.hub.state or {}).get("counters")
    published = counters.get("published") if isinstance(counters, dict) else None
    return published if isinstance(published, int) else ctx.hub.entries


def _api_stats(ctx: ServerContext) -> Response:
    totals = ctx.totals()
    ws, sse = totals.transport("websocket"), totals.transport("sse")
    body = {
        "uptime_seconds": int(time.time() - ctx.started),
        "connections": {"total": ws + sse, "websocket": ws, "sse": sse},
        "throughput": {
            "messages_sent": totals.frames_sent,
            "certificates_processed": _certificates_processed(ctx),
            "bytes_sent": totals.bytes_sent,
        },
        "slow_clients": {"messages_dropped": totals.drops, "closed": totals.slow_closed},
        "memory": {
            "cache_entries": len(ctx.certs or ()) // 2,  # two hashes per certificate
            "cache_capacity": ctx.api_cache_capacity,
        },
    }
    return 200, _dumps(body), _JSON


def _api_logs(ctx: ServerContext) -> Response:
    state = ctx.hub.state or {}
    logs = []
    for entry in state.get("logs", ()) or ():
        if not isinstance(entry, dict):
            continue
        logs.append({
            "name": entry.get("name"),
            "url": entry.get("url"),
            "operator": entry.get("operator"),
            "kind": entry.get("kind"),
            "status": entry.get("status"),
            "current_index": entry.get("next_index"),
            "tree_size": entry.get("tree_size"),
            "lag": entry.get("lag"),
            "total_errors": entry.get("errors"),
            "skipped": entry.get("skipped"),
            "last_success": entry.get("last_success"),
        })
    counts = log_counts(state if isinstance(state, dict) else None)
    body = {"total_logs": len(logs), **counts, "logs": logs}
    return 200, _dumps(body), _JSON


def _metrics(ctx: ServerContext) -> Response:
    if ctx.render_metrics is None:
        return 404, b'{"error":"Not Found"}', _JSON
    text, content_type = ctx.render_metrics()
    return 200, text, content_type.encode("latin-1")


def answer(ctx: ServerContext, request: RequestReceived) -> Response:
    """The response to a routed ``http`` request."""
    route = request.route
    name = route.name
    if name == "health":
        return 200, b"OK", _TEXT
    if name == "health_deep":
        return _health_deep(ctx)
    if name == "metrics":
        return _metrics(ctx)
    if name == "example":
        stream = route.stream or STREAM_LITE
        if stream == STREAM_LITE and ctx.lite_example is not None:
            payload = ctx.lite_example()
        else:
            payload = ctx.hub.latest(stream)
        if payload is None:
            return 503, _NO_EXAMPLE, _JSON
        return 200, payload, _JSON
    if name == "api_stats":
        return _api_stats(ctx)
    if name == "api_logs":
        return _api_logs(ctx)
    if name == "api_cert":
        path, _query = split_target(request.target.encode("ascii", "replace"))
        found = ctx.certs.get(path.rpartition("/")[2]) if ctx.certs is not None else None
        if found is None:
            return 404, b'{"error":"Not Found"}', _JSON
        return 200, found, _JSON
    if name == "ws_page":  # a plain GET on a stream path: the live page
        return 200, ctx.page, _HTML
    if name == "favicon":
        return 200, ctx.favicon, _SVG
    if name == "sse_bad_stream":
        return 400, _BAD_SSE_STREAM, _JSON
    return 404, b'{"error":"Not Found"}', _JSON


def _wants_html(headers: tuple[tuple[bytes, bytes], ...]) -> bool:
    """A browser navigating here (``Accept: text/html``), not an ``EventSource`` or a
    streaming client (``text/event-stream``, ``*/*`` or no ``Accept`` at all)."""
    for name, value in headers:
        if name.lower() == b"accept":
            accept = value.lower()
            return b"text/html" in accept and b"text/event-stream" not in accept
    return False


def admit_stream(ctx: ServerContext,
                 request: RequestReceived) -> tuple[Refusal | None, FilterSpec | None]:
    """What a streaming request gets before it streams: ``(answer, None)`` when it gets a
    one-shot answer instead (the live page for a browser on an SSE path; 400 with the JSON
    reason for a bad filter), else ``(None, its filter or None)``."""
    if request.route.kind == "sse" and _wants_html(request.headers):
        return (200, ctx.page, _HTML, ()), None
    _path, query = split_target(request.target.encode("ascii", "replace"))
    if not query:
        return None, None
    # Loaded with the first query string: the gunicorn master imports this module and needs
    # no regular-expression engine.
    from certstream.core.filters import parse_filters  # noqa: PLC0415

    try:
        return None, parse_filters(query, max_patterns=ctx.max_filter_patterns)
    except FilterError as exc:
        return (400, exc.json_body(), _JSON, ()), None


def admit_resume(request: RequestReceived) -> tuple[Refusal | None, Resume | None]:
    """Where a streaming request resumes (``Last-Event-ID``, ``?last_event_id=``,
    ``?since=``: ``core.resume.parse_resume``): ``(None, resume or None)``, or the 400
    with the JSON reason for a value that is neither an event id nor a time."""
    _path, query = split_target(request.target.encode("ascii", "replace"))
    try:
        return None, parse_resume(query, request.headers)
    except ResumeError as exc:
        return (400, exc.json_body(), _JSON, ()), None
