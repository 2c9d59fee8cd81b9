"""The one-shot HTTP endpoints: health, metrics, examples, the REST API, the HTML hint page.

Each handler takes the worker's ``ServerContext`` and the routed request and returns
``(status, body, content type)``.  Shapes follow certstream-server-rust where it defines
them (``/health/deep``, ``/api/stats``, ``/api/logs``), extended with what a deployment of
several workers needs (connections by stream and transport).  Numbers about connections
and traffic are this worker's; log health comes from the ingest's latest STATE on the feed,
the same for every worker.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from certstream.config import ApiSettings, Settings
from certstream.core.lru import ENTRY_OVERHEAD, BoundedLRU
from certstream.core.ratelimit import RateLimiter, retry_after_header
from certstream.core.routes import RouteTable, split_target
from certstream.core.session import RequestReceived, ws_page
from certstream.core.streams import STREAM_LITE
from certstream.shell.hub import Hub

__all__ = [
    "Access",
    "CertCache",
    "Refusal",
    "Response",
    "ServerContext",
    "access_for",
    "answer",
    "log_counts",
    "refuse",
]

Response = tuple[int, bytes, bytes]
#: An error answer with its extra headers (``Retry-After`` on a rate-limit 429).
Refusal = tuple[int, bytes, bytes, tuple[tuple[bytes, bytes], ...]]

_JSON = b"application/json"
_TEXT = b"text/plain; charset=utf-8"
_HTML = b"text/html; charset=utf-8"


class CertCache:
    """The last ``capacity`` lite messages by certificate hash, for ``/api/cert/{hash}``, and
    at most ``max_bytes`` of them (a payload's size varies with its certificate's names).

    The hashes are read from the payload bytes (the first ``"sha256"``, ``"sha1"`` and
    ``"fingerprint"`` values: the leaf's, as a lite message carries no chain) instead of
    parsing the JSON, so feeding the cache costs a few substring searches per entry.  Keys
    are upper-case hex without colons; lookups ignore case and colons the same way.  Each
    message is kept once, under its first hash; the others point to that one.
    """

    _KEYS = (b'"sha256":"', b'"sha1":"', b'"fingerprint":"')

    def __init__(self, capacity: int, max_bytes: int = ApiSettings().cache_max_bytes) -> None:
        self.capacity = capacity
        self._alias: dict[bytes, bytes] = {}  # every hash -> the first one
        self._certs: BoundedLRU[bytes, tuple[bytes, tuple[bytes, ...]]] = BoundedLRU(
            capacity, max_bytes, on_evict=self._forget)

    @staticmethod
    def normalize(text: bytes) -> bytes:
        return text.replace(b":", b"").strip().upper()

    def add(self, lite: bytes) -> None:
        digests: list[bytes] = []
        for key in self._KEYS:
            start = lite.find(key)
            if start < 0:
                continue
            start += len(key)
            end = lite.find(b'"', start)
            if end < 0:
                continue
            digest = self.normalize(lite[start:end])
            if digest and digest not in digests:
                digests.append(digest)
        if not digests:
            return
        first = digests[0]
        for digest in digests:
            self._alias[digest] = first
        size = len(lite) + sum(map(len, digests)) + ENTRY_OVERHEAD
        self._certs.put(first, (lite, tuple(digests)), size)

    def _forget(self, first: bytes, value: tuple[bytes, tuple[bytes, ...]]) -> None:
        for digest in value[1]:
            if self._alias.get(digest) == first:
                del self._alias[digest]

    def get(self, text: str) -> bytes | None:
        first = self._alias.get(self.normalize(text.encode("ascii", "replace")))
        cached = self._certs.get(first) if first is not None else None
        return cached[0] if cached is not None else None

    def __len__(self) -> int:
        """Hashes that find a message (two or three per certificate)."""
        return len(self._alias)


@dataclass(slots=True)
class Access:
    """Who may connect (``auth.*``, ``connection_limit.*`` and ``rate_limit.*`` settings).

    Like certstream-server-rust, a token is read from one header (``Bearer `` optional) and
    guards the streams and the REST API; health, metrics and the examples stay public.
    Connection limits count this worker's streaming clients: with N workers each admits
    ``max_connections / N`` (rounded up) and ``per_ip_limit`` per address, because workers
    share no state and an address's connections are spread across them.  The rate limiter is
    per worker too, so N workers admit up to N times the rate when an address's requests
    land on all of them.
    """

    tokens: tuple[bytes, ...] = ()
    header: bytes = b"authorization"
    max_connections: int | None = None
    per_ip_limit: int | None = None
    per_ip: dict[str, int] = field(default_factory=dict)
    limiter: RateLimiter | None = None
    #: Requests refused by the limiter; the worker copies it into the metrics.
    rate_limited: int = 0

    def token_ok(self, headers: tuple[tuple[bytes, bytes], ...]) -> bool:
        if not self.tokens:
            return True
        for name, value in headers:
            if name.lower() == self.header:
                given = value.strip()
                if given[:7].lower() == b"bearer ":
                    given = given[7:].strip()
                # Compare with every token in constant time: no early exit on a match.
                ok = False
                for token in self.tokens:
                    ok |= hmac.compare_digest(given, token)
                return ok
        return False


def access_for(settings: Settings, keep: Access | None = None) -> Access:
    """The access rules of ``settings``.  ``keep``: the rules they replace (a hot reload),
    whose live state carries over: connections per address, the rate limiter's buckets and
    its refusal count."""
    auth, limit, rate = settings.auth, settings.connection_limit, settings.rate_limit
    max_connections = per_ip = None
    if limit.enabled:
        max_connections = -(-limit.max_connections // max(1, settings.workers))
        per_ip = limit.per_ip_limit
    limiter = None
    if rate.enabled:
        limiter = keep.limiter if keep is not None else None
        if limiter is None:
            limiter = RateLimiter(rate.requests_per_sec, rate.burst)
        else:
            limiter.configure(rate.requests_per_sec, rate.burst)
    return Access(
        tokens=tuple(t.encode() for t in auth.tokens) if auth.enabled else (),
        header=auth.header_name.lower().encode("latin-1"),
        max_connections=max_connections,
        per_ip_limit=per_ip,
        per_ip=keep.per_ip if keep is not None else {},
        limiter=limiter,
        rate_limited=keep.rate_limited if keep is not None else 0,
    )


_PROTECTED = frozenset(("api_stats", "api_logs", "api_cert"))


def refuse(ctx: ServerContext, request: RequestReceived, ip: str,
           now: float | None = None) -> Refusal | None:
    """The error answer when ``request`` may not proceed (429, 401), else ``None``.

    ``now`` is a monotonic time for the rate limiter (read here when not given).  The rate
    limit comes first and counts every routed request, so that guessing tokens is as slow
    as anything else.
    """
    access = ctx.access
    limiter = access.limiter
    if limiter is not None:
        wait = limiter.check(ip, time.monotonic() if now is None else now)
        if wait > 0:
            access.rate_limited += 1
            return (429, b'{"error":"Too Many Requests"}', _JSON,
                    ((b"Retry-After", retry_after_header(wait)),))
    route = request.route
    streaming = route.kind in ("ws", "sse")
    if (streaming or route.name in _PROTECTED) and not access.token_ok(request.headers):
        return 401, b'{"error":"Unauthorized"}', _JSON, ()
    if streaming:
        if access.max_connections is not None and ctx.hub.total() >= access.max_connections:
            return 429, b'{"error":"Too Many Connections"}', _JSON, ()
        if access.per_ip_limit is not None and access.per_ip.get(ip, 0) >= access.per_ip_limit:
            return 429, b'{"error":"Too Many Connections"}', _JSON, ()
    return None


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


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def log_counts(state: dict[str, Any] | None) -> dict[str, int]:
    """Logs per health status in a feed STATE object."""
    counts = {"healthy": 0, "degraded": 0, "unhealthy": 0}
    for entry in (state or {}).get("logs", ()) or ():
        status = entry.get("status") if isinstance(entry, dict) else None
        if status in counts:
            counts[status] += 1
    return counts


def _health_deep(ctx: ServerContext) -> Response:
    counts = log_counts(ctx.hub.state)
    total = sum(counts.values())
    unhealthy = counts["unhealthy"] > total / 2
    if unhealthy:
        status = "unhealthy"
    elif counts["unhealthy"] or counts["degraded"]:
        status = "degraded"
    else:
        status = "healthy"
    by_transport = ctx.hub.counts()
    body = {
        "status": status,
        "logs_healthy": counts["healthy"],
        "logs_degraded": counts["degraded"],
        "logs_unhealthy": counts["unhealthy"],
        "logs_total": total,
        "active_connections": sum(sum(v.values()) for v in by_transport.values()),
        "connections": by_transport,
        "feed_state_received": ctx.hub.state is not None,
        "uptime_secs": int(time.time() - ctx.started),
    }
    return (503 if unhealthy else 200), _dumps(body), _JSON


def _api_stats(ctx: ServerContext) -> Response:
    hub = ctx.hub
    by_transport = hub.counts()
    ws = sum(by_transport["websocket"].values())
    sse = sum(by_transport["sse"].values())
    body = {
        "uptime_seconds": int(time.time() - ctx.started),
        "connections": {"total": ws + sse, "websocket": ws, "sse": sse},
        "throughput": {
            "messages_sent": hub.frames_sent,
            "certificates_processed": hub.entries,
            "bytes_sent": hub.bytes_sent,
        },
        "slow_clients": {"messages_dropped": hub.drops, "closed": hub.slow_closed},
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
        return 200, (payload if payload is not None else b"null"), _JSON
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
    if name == "ws_page":
        path, _query = split_target(request.target.encode("ascii", "replace"))
        return 200, ws_page(path), _HTML
    return 404, b'{"error":"Not Found"}', _JSON
