"""Which request goes where: paths, stream types and the switches that turn them off.

Routing is a pure function of the request line, whether the client asked for a WebSocket
upgrade, and a ``RouteTable`` built once from the settings.  A disabled endpoint or stream
type is simply absent from the table, so it answers 404 like any unknown path and costs
nothing else (no subscriber can ever ask the ingest to serialize it).

Paths follow certstream-server-go and certstream-server-rust (one port for everything); the
three stream paths and the metrics path are the table's (``paths.*`` settings, Go's
``full_url``, ``lite_url``, ``domains_only_url`` and ``metrics_url``), these are the defaults:

====================================  ============================================
``/`` ``/full-stream`` ``/domains-only``  WebSocket lite / full / domains; a plain GET
                                      (no ``Upgrade``) gets the live page
``/sse[?stream=full|domains]``        Server-Sent Events (lite unless asked; another
                                      ``stream`` value is a 400 naming the allowed ones)
``/favicon.svg`` ``/favicon.ico``     the live page's icon
``/health`` ``/health/deep``          liveness, and log health from the feed
``/metrics``                          Prometheus text
``/example.json`` (``<stream path>/    the latest message of that stream
example.json`` for each stream)
``/api/stats`` ``/api/logs``          REST, only when ``protocols.api`` is on
``/api/cert/{sha256|sha1}``           a recent certificate by hash (same switch)
====================================  ============================================

A trailing slash and any query string are tolerated on every path.  On a stream path the
query may carry a filter (``core.filters``); that is the shell's to read, not routing's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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


def _route_path(path: str) -> str:
    # A configured path routes as a request for it does (see split_target).
    return path.rstrip("/") or "/"


@dataclass(frozen=True, slots=True)
class Route:
    """Where a request goes.

    ``kind`` is ``"ws"`` (upgrade to a WebSocket stream), ``"sse"`` (event stream) or
    ``"http"`` (a one-shot response named by ``name``: ``ws_page`` (the live page),
    ``favicon``, ``health``, ``health_deep``, ``metrics``, ``example``, ``api_stats``,
    ``api_logs``, ``api_cert``, or ``sse_bad_stream``: a 400 for an unknown
    ``/sse?stream=`` value).
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
    """The endpoints that are switched on (``protocols.*`` and ``streams.*`` settings) and
    where the streams and the metrics are (``paths.*``)."""

    websocket: bool = True
    sse: bool = True
    metrics: bool = True
    health: bool = True
    example_json: bool = True
    api: bool = False
    lite: bool = True
    full: bool = True
    domains: bool = True
    lite_path: str = "/"
    full_path: str = "/full-stream"
    domains_path: str = "/domains-only"
    metrics_path: str = "/metrics"
    _ws: dict[str, int] = field(init=False, repr=False, compare=False)
    _examples: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ws = {
            _route_path(self.lite_path): STREAM_LITE,
            _route_path(self.full_path): STREAM_FULL,
            _route_path(self.domains_path): STREAM_DOMAINS,
        }
        object.__setattr__(self, "_ws", ws)
        object.__setattr__(self, "_examples", {
            path.rstrip("/") + "/example.json": stream for path, stream in ws.items()})

    @classmethod
    def metrics_only(cls, path: str = "/metrics") -> RouteTable:
        """The table of a listener that serves the metrics at ``path`` and nothing else."""
        return cls(websocket=False, sse=False, health=False, example_json=False, api=False,
                   metrics=True, metrics_path=path)

    def stream_enabled(self, stream: int) -> bool:
        if stream == STREAM_LITE:
            return self.lite
        if stream == STREAM_FULL:
            return self.full
        return stream == STREAM_DOMAINS and self.domains

    def resolve(self, target: bytes, *, upgrade: bool) -> Route | None:
        """The route for a GET of ``target``, or ``None`` for 404."""
        path, query = split_target(target)
        # Switched-off endpoints fall through: on a metrics-only listener even "/" may be
        # the metrics path.
        stream = self._ws.get(path) if self.websocket else None
        if stream is not None:
            if not self.stream_enabled(stream):
                return None
            return Route("ws", stream) if upgrade else Route("http", stream, "ws_page")
        if self.sse and path == "/sse":
            wanted: int | None = STREAM_LITE
            for key, value in parse_qsl(query, keep_blank_values=True):
                if key == "stream":
                    wanted = _SSE_STREAMS.get(value.lower())
            if wanted is None:
                return Route("http", 0, "sse_bad_stream")
            return Route("sse", wanted) if self.stream_enabled(wanted) else None
        return self._resolve_http(path)

    def _resolve_http(self, path: str) -> Route | None:
        if (self.websocket or self.sse) and path in ("/favicon.svg", "/favicon.ico"):
            return Route("http", 0, "favicon")  # the live page's
        if self.health and path == "/health":
            return Route("http", 0, "health")
        if self.health and path == "/health/deep":
            return Route("http", 0, "health_deep")
        if self.metrics and path == _route_path(self.metrics_path):
            return Route("http", 0, "metrics")
        stream = self._examples.get(path)
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
