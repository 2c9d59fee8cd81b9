"""A small real HTTP/SSE server for the live page that resumes a stream after
``Last-Event-ID``, which the worker does not do yet: the page's display of a resume is
tested against it (everything else about the page runs against the real server).

It serves ``certstream/data/live.html`` and replays the Go server's live40 lite payloads as
Server-Sent Events with the worker's framing (``core.frames.sse_event``: ``id: N`` then the
payload), filtered with the core filter (``certstream.core.filters``), a bad filter answered
with 400 and the JSON reason.  ``drop_after`` closes the first connection after that many
events, so that a test sees the browser reconnect and resume.  Drop it once the worker
resumes streams.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

from tests.support import golden_payloads

from certstream.core.filters import FilterIndex, match_fields_of_message, parse_filters
from certstream.core.frames import sse_comment, sse_event
from certstream.errors import FilterError
from certstream.shell.livepage import package_data

__all__ = ["LivePageServer"]


class LivePageServer:
    """``with LivePageServer() as server:`` then open ``server.url``."""

    def __init__(self, *, interval: float = 0.1, drop_after: int | None = None) -> None:
        self.payloads = golden_payloads("lite")
        self.messages = [json.loads(p) for p in self.payloads]
        self.interval = interval
        self.drop_after = drop_after
        self.requests: list[tuple[str, str | None]] = []  # (path?query, Last-Event-ID)
        self._stop = threading.Event()
        self._dropped = False
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/"

    def __enter__(self) -> LivePageServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _health_body(self) -> bytes:
        seen: dict[str, str] = {}
        for msg in self.messages:
            source = msg["data"]["source"]
            seen[source["name"]] = source["url"]
        logs = [{"name": name, "url": url, "status": "healthy", "lag": 0}
                for name, url in seen.items()]
        return json.dumps({"status": "healthy", "logs_healthy": len(logs), "logs_degraded": 0,
                           "logs_unhealthy": 0, "logs_total": len(logs), "logs": logs}).encode()

    def _take_drop(self) -> bool:
        with self._lock:
            if self.drop_after is None or self._dropped:
                return False
            self._dropped = True
            return True

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output quiet

            def _send(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                path = parts.path.rstrip("/") or "/"
                if path in ("/", "/full-stream", "/domains-only"):
                    self._send(200, package_data("live.html"), "text/html; charset=utf-8")
                elif path in ("/favicon.svg", "/favicon.ico"):
                    self._send(200, package_data("favicon.svg"), "image/svg+xml")
                elif path == "/health/deep":
                    self._send(200, server._health_body(), "application/json")
                elif path == "/sse":
                    self._sse(parts.query)
                else:
                    self._send(404, b'{"error":"Not Found"}', "application/json")

            def _sse(self, query: str) -> None:
                last = self.headers.get("Last-Event-ID")
                server.requests.append((self.path, last))
                try:
                    spec = parse_filters(query)
                except FilterError as exc:
                    self._send(400, exc.json_body(), "application/json")
                    return
                index = FilterIndex()
                slot = index.add(spec) if spec is not None else None
                start = int(last) + 1 if last and last.isdigit() else 0
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                drop = server._take_drop()
                sent = 0
                try:
                    self.wfile.write(b"retry: 300\n\n")
                    for seq in range(start, len(server.payloads)):
                        if server._stop.wait(server.interval):
                            return
                        if slot is not None:
                            fields = match_fields_of_message(server.messages[seq])
                            if not index.match(fields) >> slot & 1:
                                continue
                        self.wfile.write(sse_event(server.payloads[seq], seq))
                        self.wfile.flush()
                        sent += 1
                        if drop and sent == server.drop_after:
                            return  # the browser reconnects with Last-Event-ID
                    while not server._stop.wait(0.5):
                        self.wfile.write(sse_comment(b"keep-alive"))
                        self.wfile.flush()
                except OSError:
                    return  # the page went away or changed its filter

        return Handler
