"""A small HTTP/1.1 GET client for CT logs: h11 over gevent sockets, keep-alive, gzip.

Why not urllib or requests: we want one pooled keep-alive connection per log host that
gevent can multiplex, hard caps on body size and time, gzip even when the server sends it
unasked (static-ct logs may), and errors typed by what the follower should do about them.

Strategy:
* Connections are pooled per (scheme, host, port).  A connection goes back to the pool only
  when both h11 sides reached DONE; anything that errors or times out is closed, never
  reused.
* A request on a reused connection that dies before any response byte arrives (the server
  closed an idle keep-alive connection) is retried once on a fresh connection; GETs are
  idempotent.
* The whole request (connect, send, read) runs under one deadline of ``timeout`` seconds.
"""

from __future__ import annotations

import builtins
import contextlib
import email.utils
import socket as _stdsocket
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import gevent
import gevent.socket
import gevent.ssl
import h11

from certstream.errors import CertstreamError

__all__ = [
    "BodyTooLargeError",
    "HTTPClient",
    "HTTPConnectionError",
    "HTTPError",
    "HTTPProtocolError",
    "HTTPStatusError",
    "HTTPTimeoutError",
    "Response",
    "gunzip",
    "parse_retry_after",
]

_READ_CHUNK = 65536
# Many logs share a host (ct.googleapis.com serves a dozen), each with several requests
# in flight: keep enough idle connections that they are reused, not reopened.
_MAX_IDLE_PER_HOST = 32
_GZIP_MAGIC = b"\x1f\x8b"


class HTTPError(CertstreamError):
    """A request could not produce a usable response.  ``kind`` names it for metrics."""

    kind = "http"


class HTTPStatusError(HTTPError):
    """The server answered with a non-2xx status."""

    def __init__(self, status: int, url: str, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status} for {url}")
        self.status = status
        self.url = url
        self.retry_after = retry_after
        self.kind = f"http_{status}"


class HTTPTimeoutError(HTTPError, builtins.TimeoutError):
    """Connecting or reading took longer than the request timeout."""

    kind = "timeout"


class HTTPConnectionError(HTTPError):
    """Could not connect, or the connection broke (reset, EOF mid-response, TLS failure)."""

    kind = "connection"


class HTTPProtocolError(HTTPError):
    """The server's bytes were not valid HTTP/1.1, or a gzip body was corrupt."""

    kind = "protocol"


class BodyTooLargeError(HTTPError):
    """The (decoded) body exceeds the size cap."""

    kind = "too_large"


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-cased names
    body: bytes = b""


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now)


def gunzip(data: bytes, limit: int) -> bytes:
    """Decompress gzip ``data`` (concatenated members allowed), refusing output over limit."""
    out = bytearray()
    while data:
        d = zlib.decompressobj(wbits=31)
        try:
            chunk = d.decompress(data, limit + 1 - len(out))
        except zlib.error as exc:
            raise HTTPProtocolError(f"bad gzip body: {exc}") from None
        out += chunk
        if len(out) > limit:
            raise BodyTooLargeError(f"decoded body over {limit} bytes")
        if not d.eof:
            if d.unconsumed_tail:
                raise BodyTooLargeError(f"decoded body over {limit} bytes")
            raise HTTPProtocolError("truncated gzip body")
        data = d.unused_data
    return bytes(out)


class _Conn:
    __slots__ = ("h11", "reused", "sock")

    def __init__(self, sock: _stdsocket.socket) -> None:
        self.sock = sock
        self.h11 = h11.Connection(h11.CLIENT)
        self.reused = False

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class _RetryError(Exception):
    """Internal: a reused connection died before answering; try a fresh one."""


class HTTPClient:
    def __init__(
        self,
        user_agent: str,
        timeout: float = 30.0,
        max_body_bytes: int = 16 * 1024 * 1024,
        ssl_context: gevent.ssl.SSLContext | None = None,
    ) -> None:
        self.user_agent = user_agent
        self.timeout = timeout
        self.max_body_bytes = max_body_bytes
        self._ssl = ssl_context
        self._idle: dict[tuple[str, str, int], list[_Conn]] = {}
        #: Connections opened, for tests and metrics (reuse shows as requests > opened).
        self.connections_opened = 0

    def get(self, url: str, headers: Mapping[str, str] | None = None) -> Response:
        """GET ``url``; return a 2xx response with its decoded body, or raise an HTTPError."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise HTTPConnectionError(f"unsupported URL {url!r}")
        host = parts.hostname
        port = parts.port or (443 if scheme == "https" else 80)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        host_header = host if parts.port is None else f"{host}:{port}"
        if ":" in host and not host.startswith("["):
            host_header = f"[{host}]" if parts.port is None else f"[{host}]:{port}"
        req_headers = [
            ("Host", host_header),
            ("User-Agent", self.user_agent),
            ("Accept-Encoding", "gzip, identity"),
            ("Accept", "*/*"),
        ]
        for k, v in (headers or {}).items():
            req_headers.append((k, v))
        key = (scheme, host, port)
        try:
            deadline = HTTPTimeoutError(f"timeout after {self.timeout}s: {url}")
            with gevent.Timeout(self.timeout, deadline):
                for _attempt in range(2):
                    conn = self._checkout(key)
                    try:
                        return self._exchange(conn, key, target, req_headers, url)
                    except _RetryError:
                        # The server dropped an idle connection; the others idle as long
                        # are likely gone too, so retry on a fresh one.
                        for stale in self._idle.pop(key, []):
                            stale.close()
                        continue
                # Two dead connections in a row: report the second as a connection error.
                raise HTTPConnectionError(f"connection closed before response: {url}")
        except HTTPError:
            raise
        except OSError as exc:  # connect failures outside _exchange
            raise HTTPConnectionError(f"{type(exc).__name__}: {exc}: {url}") from None

    def close(self) -> None:
        for conns in self._idle.values():
            for c in conns:
                c.close()
        self._idle.clear()

    # -- internals ---------------------------------------------------------------------

    def _checkout(self, key: tuple[str, str, int]) -> _Conn:
        idle = self._idle.get(key)
        if idle:
            conn = idle.pop()
            conn.reused = True
            return conn
        scheme, host, port = key
        try:
            sock = gevent.socket.create_connection((host, port), timeout=self.timeout)
            sock.setsockopt(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_NODELAY, 1)
            if scheme == "https":
                ctx = self._ssl or gevent.ssl.create_default_context()
                sock = ctx.wrap_socket(sock, server_hostname=host)
        except builtins.TimeoutError:
            raise HTTPTimeoutError(f"connect timeout: {host}:{port}") from None
        except (OSError, ValueError) as exc:  # ValueError: a host name IDNA cannot encode
            raise HTTPConnectionError(f"connect {host}:{port}: {exc}") from None
        self.connections_opened += 1
        return _Conn(sock)

    def _exchange(
        self,
        conn: _Conn,
        key: tuple[str, str, int],
        target: str,
        headers: list[tuple[str, str]],
        url: str,
    ) -> Response:
        got_bytes = False
        eof = False
        ok = False
        try:
            data = conn.h11.send(h11.Request(method="GET", target=target, headers=headers))
            data += conn.h11.send(h11.EndOfMessage())
            try:
                conn.sock.sendall(data)
            except OSError:
                if conn.reused:
                    raise _RetryError from None
                raise
            status = 0
            resp_headers: dict[str, str] = {}
            body = bytearray()
            while True:
                event = conn.h11.next_event()
                if event is h11.NEED_DATA:
                    try:
                        chunk = conn.sock.recv(_READ_CHUNK)
                    except builtins.TimeoutError:
                        raise HTTPTimeoutError(f"read timeout: {url}") from None
                    except OSError:
                        if conn.reused and not got_bytes:
                            raise _RetryError from None
                        raise
                    if not chunk:
                        if conn.reused and not got_bytes:
                            raise _RetryError
                        eof = True
                    got_bytes = True
                    conn.h11.receive_data(chunk)
                elif isinstance(event, h11.Response):
                    status = event.status_code
                    resp_headers = {
                        k.decode("latin-1").lower(): v.decode("latin-1")
                        for k, v in event.headers
                    }
                    length = resp_headers.get("content-length", "")
                    if length.isdigit() and int(length) > self.max_body_bytes:
                        raise BodyTooLargeError(f"Content-Length {length} over cap: {url}")
                elif isinstance(event, h11.InformationalResponse):
                    continue
                elif isinstance(event, h11.Data):
                    body += event.data
                    if len(body) > self.max_body_bytes:
                        raise BodyTooLargeError(f"body over {self.max_body_bytes} bytes: {url}")
                elif isinstance(event, h11.EndOfMessage):
                    break
                else:  # ConnectionClosed before the end: a truncated response
                    raise HTTPConnectionError(f"connection closed mid-response: {url}")
            ok = True
        except h11.RemoteProtocolError as exc:
            if eof:  # closed before Content-Length bytes arrived: truncated, not garbage
                raise HTTPConnectionError(f"truncated response: {exc}: {url}") from None
            raise HTTPProtocolError(f"bad HTTP from server: {exc}: {url}") from None
        except h11.LocalProtocolError as exc:
            raise HTTPProtocolError(f"HTTP state error: {exc}: {url}") from None
        except (HTTPError, _RetryError):
            raise
        except OSError as exc:
            raise HTTPConnectionError(f"{type(exc).__name__}: {exc}: {url}") from None
        finally:
            if ok:
                self._checkin(key, conn)
            else:
                conn.close()
        return self._finish(status, resp_headers, bytes(body), url)

    def _checkin(self, key: tuple[str, str, int], conn: _Conn) -> None:
        c = conn.h11
        if c.our_state is h11.DONE and c.their_state is h11.DONE:
            try:
                c.start_next_cycle()
            except h11.LocalProtocolError:
                conn.close()
                return
            idle = self._idle.setdefault(key, [])
            if len(idle) < _MAX_IDLE_PER_HOST:
                idle.append(conn)
                return
        conn.close()

    def _finish(self, status: int, headers: dict[str, str], body: bytes, url: str) -> Response:
        if not 200 <= status < 300:
            # The body of an error is not needed; do not let a bad one hide the status.
            raise HTTPStatusError(
                status, url, parse_retry_after(headers.get("retry-after"), time.time())
            )
        if headers.get("content-encoding", "").strip().lower() in ("gzip", "x-gzip"):
            body = gunzip(body, self.max_body_bytes)
        if body.startswith(_GZIP_MAGIC):
            # Served gzip without saying so (seen on static-ct logs); no CT body starts so.
            body = gunzip(body, self.max_body_bytes)
        return Response(status, headers, body)
