"""Which request goes where: paths, stream types and the switches that turn them off.

Routing is a pure function of the request line, whether the client asked for a WebSocket
upgrade, and a ``RouteTable`` built once from the settings.  A disabled endpoint or stream
type is simply absent from the table, so it answers 404 like any unknown path and costs
nothing else (no subscriber can ever ask the ingest to serialize it).

Paths follow certstream-server-go and certstream-server-rust (one port for everything):

====================================  ============================================
``/`` ``/full-stream`` ``/domains-only``  WebSocket lite / full / domains; a plain GET
                                      (no ``Upgrade``) gets a short HTML page
``/sse[?stream=full|domains]``        Server-Sent Events (lite unless asked; another
                                      ``stream`` value is a 400 naming the allowed ones)
``/health`` ``/health/deep``          liveness, and log health from the feed
``/metrics``                          Prometheus text
``/example.json`` (also under the     the latest message of that stream
two other stream paths)
``/api/stats`` ``/api/logs``          REST, only when ``protocols.api`` is on
``/api/cert/{sha256|sha1}``           a recent certificate by hash (same switch)
====================================  ============================================

A trailing slash and any query string are tolerated on every path.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

from certstream.core.streams import STREAM_DOMAINS, STREAM_FULL, STREAM_LITE, STREAM_NAMES

__all__ = [
    "SSE_STREAM_VALUES",
    "STREAM_DOMAINS",
    "STREAM_FULL",
    "STREAM_LITE",
    "STREAM_NAMES",
    "Route",
    "RouteTable",
    "split_target",
]

_WS_PATHS = {"/": STREAM_LITE, "/full-stream": STREAM_FULL, "/domains-only": STREAM_DOMAINS}

# ``/sse?stream=...``: Rust accepts "full", "domains" and "domains-only" (and serves lite for
# anything else, silently); we accept those, "dns" and "lite", and answer 400 to the rest.
_SSE_STREAMS = {
    "full": STREAM_FULL,
    "domains": STREAM_DOMAINS,
    "domains-only": STREAM_DOMAINS,
    "dns": STREAM_DOMAINS,
    "lite": STREAM_LITE,
}

#: The values ``/sse?stream=`` accepts (case does not matter).
SSE_STREAM_VALUES = tuple(_SSE_STREAMS)

_EXAMPLE_PATHS = {
    "/example.json": STREAM_LITE,
    "/full-stream/example.json": STREAM_FULL,
    "/domains-only/example.json": STREAM_DOMAINS,
}


@dataclass(frozen=True, slots=True)
class Route:
    """Where a request goes.

    ``kind`` is ``"ws"`` (upgrade to a WebSocket stream), ``"sse"`` (event stream) or
    ``"http"`` (a one-shot response named by ``name``: ``ws_page``, ``health``,
    ``health_deep``, ``metrics``, ``example``, ``api_stats``, ``api_logs``, ``api_cert``,
    or ``sse_bad_stream``: a 400 for an unknown ``/sse?stream=`` value).
    ``stream`` is a ``STREAM_*`` bit for stream routes and the example endpoints, else 0.
    """

    kind: str
    stream: int = 0
    name: str = ""


def split_target(target: bytes) -> tuple[str, str]:
    """``b"/sse/?stream=full"`` -> ``("/sse", "stream=full")``; the path loses one trailing
    slash (except ``/`` itself) so that both spellings route alike."""
    raw = target.decode("ascii", "replace")
    path, _, query = raw.partition("?")
    path = path.partition("#")[0]
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    return path or "/", query


@dataclass(frozen=True, slots=True)
class RouteTable:
    """The endpoints that are switched on (``protocols.*`` and ``streams.*`` settings)."""

    websocket: bool = True
    sse: bool = True
    metrics: bool = True
    health: bool = True
    example_json: bool = True
    api: bool = False
    lite: bool = True
    full: bool = True
    domains: bool = True

    def stream_enabled(self, stream: int) -> bool:
        if stream == STREAM_LITE:
            return self.lite
        if stream == STREAM_FULL:
            return self.full
        return stream == STREAM_DOMAINS and self.domains

    def resolve(self, target: bytes, *, upgrade: bool) -> Route | None:
        """The route for a GET of ``target``, or ``None`` for 404."""
        path, query = split_target(target)
        stream = _WS_PATHS.get(path)
        if stream is not None:
            if not (self.websocket and self.stream_enabled(stream)):
                return None
            return Route("ws", stream) if upgrade else Route("http", stream, "ws_page")
        if path == "/sse":
            if not self.sse:
                return None
            wanted: int | None = STREAM_LITE
            for key, value in parse_qsl(query, keep_blank_values=True):
                if key == "stream":
                    wanted = _SSE_STREAMS.get(value.lower())
            if wanted is None:
                return Route("http", 0, "sse_bad_stream")
            return Route("sse", wanted) if self.stream_enabled(wanted) else None
        return self._resolve_http(path)

    def _resolve_http(self, path: str) -> Route | None:
        if path == "/health":
            return Route("http", 0, "health") if self.health else None
        if path == "/health/deep":
            return Route("http", 0, "health_deep") if self.health else None
        if path == "/metrics":
            return Route("http", 0, "metrics") if self.metrics else None
        stream = _EXAMPLE_PATHS.get(path)
        if stream is not None:
            if self.example_json and self.stream_enabled(stream):
                return Route("http", stream, "example")
            return None
        if self.api and path == "/api/stats":
            return Route("http", 0, "api_stats")
        if self.api and path == "/api/logs":
            return Route("http", 0, "api_logs")
        if self.api and path.startswith("/api/cert/") and len(path) > len("/api/cert/"):
            return Route("http", 0, "api_cert")
        return None
