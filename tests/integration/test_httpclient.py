"""The CT HTTP client against a real local HTTP/1.1 server."""

from __future__ import annotations

import email.utils
import gzip
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import gevent.ssl
import pytest
from tests.support.keys import self_signed
from tests.support.net import free_port

from certstream.shell.httpclient import (
    BodyTooLargeError,
    HTTPClient,
    HTTPConnectionError,
    HTTPProtocolError,
    HTTPStatusError,
    HTTPTimeoutError,
)

BIG = b"0123456789abcdef" * 4096  # 64 KiB


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    peers: list[tuple[str, int]] = []
    seen_headers: list[dict[str, str]] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:  # the client gave up (timeout test)
            self.close_connection = True

    def do_GET(self) -> None:
        Handler.peers.append(self.client_address)
        Handler.seen_headers.append({k.lower(): v for k, v in self.headers.items()})
        p = self.path
        if p == "/plain":
            self._send(200, b"hello")
        elif p == "/gzip":
            self._send(200, gzip.compress(BIG), {"Content-Encoding": "gzip"})
        elif p == "/gzip-unasked":
            self._send(200, gzip.compress(b"\x00tile"))
        elif p == "/bad-gzip":
            self._send(200, b"\x1f\x8b\x08\x00garbage", {"Content-Encoding": "gzip"})
        elif p == "/big":
            self._send(200, BIG)
        elif p == "/bomb":
            bomb = gzip.compress(b"\x00" * (4 * 1024 * 1024))
            self._send(200, bomb, {"Content-Encoding": "gzip"})
        elif p == "/429":
            self._send(429, b"slow down", {"Retry-After": "7"})
        elif p == "/503-date":
            when = email.utils.formatdate(time.time() + 120, usegmt=True)
            self._send(503, b"", {"Retry-After": when})
        elif p == "/404":
            self._send(404, b"nope")
        elif p == "/slow":
            time.sleep(1.5)
            self._send(200, b"late")
        elif p == "/truncate":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"short")
            self.wfile.flush()
            self.close_connection = True
        elif p == "/close":
            self._send(200, b"bye", {"Connection": "close"})
            self.close_connection = True
        else:
            self._send(500, b"?")


@pytest.fixture
def server() -> Iterator[str]:
    Handler.peers = []
    Handler.seen_headers = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_keep_alive_reuses_one_connection(server: str) -> None:
    c = HTTPClient("certstream-test/1", timeout=5)
    for _ in range(5):
        r = c.get(server + "/plain")
        assert r.status == 200 and r.body == b"hello"
    assert c.connections_opened == 1
    assert len({p for p in Handler.peers}) == 1
    assert Handler.seen_headers[0]["user-agent"] == "certstream-test/1"
    assert "gzip" in Handler.seen_headers[0]["accept-encoding"]
    c.close()


def test_connection_close_is_not_reused(server: str) -> None:
    c = HTTPClient("t", timeout=5)
    assert c.get(server + "/close").body == b"bye"
    assert c.get(server + "/plain").body == b"hello"
    assert c.connections_opened == 2


def test_gzip_declared_and_unasked(server: str) -> None:
    c = HTTPClient("t", timeout=5)
    assert c.get(server + "/gzip").body == BIG
    assert c.get(server + "/gzip-unasked").body == b"\x00tile"
    with pytest.raises(HTTPProtocolError):
        c.get(server + "/bad-gzip")
    # The failed connection was discarded; a new one serves the next request.
    assert c.get(server + "/plain").body == b"hello"


def test_size_cap_raw_and_decoded(server: str) -> None:
    c = HTTPClient("t", timeout=5, max_body_bytes=1024 * 1024)
    with pytest.raises(BodyTooLargeError):
        c.get(server + "/bomb")
    small = HTTPClient("t", timeout=5, max_body_bytes=1000)
    with pytest.raises(BodyTooLargeError):
        small.get(server + "/big")
    assert small.get(server + "/plain").body == b"hello"


def test_status_errors_and_retry_after(server: str) -> None:
    c = HTTPClient("t", timeout=5)
    with pytest.raises(HTTPStatusError) as ei:
        c.get(server + "/429")
    assert ei.value.status == 429 and ei.value.retry_after == 7.0
    assert ei.value.kind == "http_429"
    with pytest.raises(HTTPStatusError) as ei:
        c.get(server + "/503-date")
    assert ei.value.status == 503
    assert ei.value.retry_after is not None and 100 < ei.value.retry_after <= 121
    with pytest.raises(HTTPStatusError) as ei:
        c.get(server + "/404")
    assert ei.value.retry_after is None
    # Error responses with a body leave the connection reusable.
    assert c.get(server + "/plain").body == b"hello"
    assert c.connections_opened == 1


def test_timeout_then_recovers(server: str) -> None:
    c = HTTPClient("t", timeout=0.5)
    t0 = time.monotonic()
    with pytest.raises(HTTPTimeoutError):
        c.get(server + "/slow")
    assert time.monotonic() - t0 < 1.4
    assert isinstance(HTTPTimeoutError("x"), TimeoutError)
    assert c.get(server + "/plain").body == b"hello"


def test_truncated_body_is_connection_error(server: str) -> None:
    c = HTTPClient("t", timeout=5)
    with pytest.raises(HTTPConnectionError):
        c.get(server + "/truncate")


def test_connect_refused_and_bad_url() -> None:
    c = HTTPClient("t", timeout=2)
    with pytest.raises(HTTPConnectionError):
        c.get(f"http://127.0.0.1:{free_port()}/")  # nothing listens there
    with pytest.raises(HTTPConnectionError):
        c.get("ftp://example/")
    with pytest.raises(HTTPConnectionError):  # a label IDNA cannot encode
        c.get("http://" + "a" * 64 + ".example/")


def test_garbage_server_is_protocol_error() -> None:
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)

    def serve() -> None:
        conn, _ = lsock.accept()
        conn.recv(4096)
        conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    c = HTTPClient("t", timeout=2)
    with pytest.raises((HTTPProtocolError, HTTPConnectionError)):
        c.get(f"http://127.0.0.1:{lsock.getsockname()[1]}/")
    lsock.close()


def test_stale_keepalive_connection_is_retried_once() -> None:
    """A server that closes idle keep-alive connections: the next GET still succeeds."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(4)
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    def serve() -> None:
        for _ in range(2):
            conn, _ = lsock.accept()
            conn.recv(4096)
            conn.sendall(resp)
            conn.close()  # closes without "Connection: close"

    threading.Thread(target=serve, daemon=True).start()
    c = HTTPClient("t", timeout=2)
    url = f"http://127.0.0.1:{lsock.getsockname()[1]}/"
    assert c.get(url).body == b"ok"
    time.sleep(0.1)
    assert c.get(url).body == b"ok"
    assert c.connections_opened == 2
    lsock.close()


def test_tls_verifies_by_default(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    srv.socket = server_ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"https://127.0.0.1:{srv.server_address[1]}/plain"
    try:
        # Default verification: a certificate nobody vouches for is refused.
        with pytest.raises(HTTPConnectionError):
            HTTPClient("t", timeout=5).get(url)
        trusting = gevent.ssl.create_default_context(cafile=str(cert))
        c = HTTPClient("t", timeout=5, ssl_context=trusting)
        assert c.get(url).body == b"hello"
        assert c.get(url).body == b"hello"
        assert c.connections_opened == 1
    finally:
        srv.shutdown()
        srv.server_close()
