"""Streaming connections held by read watchers (``shell.reader``), not greenlets: the real
connection handler (``shell.conn.serve``) behind a ``FairStreamServer`` in this process, and
real client sockets.  (The same through gunicorn workers: tests/e2e/test_server.py and the
other e2e tests of pings, closes and slow clients.)"""

from __future__ import annotations

import gc
import logging
import socket as stdsocket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.socket
import pytest
from gevent.pool import Pool
from tests.support.wait import wait_until
from tests.support.wsframes import CLOSE, PING, PONG, TEXT, close_info, encode_frame, next_frame

from certstream.core.routes import STREAM_LITE, RouteTable
from certstream.shell import reader
from certstream.shell.conn import serve
from certstream.shell.endpoints import ServerContext
from certstream.shell.fairserver import AcceptShares, FairStreamServer
from certstream.shell.hub import Hub
from certstream.shell.sharedlimits import LocalConnections

MASK = b"\x01\x02\x03\x04"
UPGRADE = (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
SSE = b"GET /sse HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@dataclass
class Served:
    """A server of ``serve`` wired as a worker wires it (``shell.worker``)."""

    hub: Hub
    ctx: ServerContext
    shares: AcceptShares
    server: FairStreamServer
    peers: dict[Any, str] = field(default_factory=dict)

    @property
    def port(self) -> int:
        port: int = self.server.server_port
        return port

    @property
    def connections(self) -> LocalConnections:
        counts = self.ctx.access.connections
        assert isinstance(counts, LocalConnections)
        return counts

    def handle(self, sock: Any, addr: Any) -> None:
        kept = False
        try:
            kept = serve(sock, self.ctx, addr[0], addr[1])
        finally:
            if not kept:
                self.shares.closed()


def _served(limit: int = 1000, pool: int = 100) -> Served:
    hub = Hub(1000)
    hub.start()
    ctx = ServerContext(hub=hub, routes=RouteTable(), peers={})
    shares = AcceptShares(limit)
    ctx.on_end = shares.closed
    served = Served(hub, ctx, shares, None)  # type: ignore[arg-type]  # set just below
    assert ctx.peers is not None
    served.peers = ctx.peers
    served.server = FairStreamServer(("127.0.0.1", 0), handle=served.handle, spawn=Pool(pool))
    served.server.shares = shares
    served.server.start()
    return served


@pytest.fixture
def served() -> Iterator[Served]:
    s = _served()
    yield s
    s.server.stop(timeout=1)
    s.hub.stop()


class Peer:
    """A client: its socket and what it has read."""

    def __init__(self, port: int, request: bytes, rcvbuf: int = 0) -> None:
        self.sock = gevent.socket.socket(stdsocket.AF_INET, stdsocket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_RCVBUF, rcvbuf)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(request)
        self.buf = b""

    def head(self, wait: float = 5.0) -> bytes | None:
        """The response head, or None when it did not come within ``wait``."""
        with gevent.Timeout(wait, False):
            while b"\r\n\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.buf += chunk
        if b"\r\n\r\n" not in self.buf:
            return None
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        return head

    def frame(self, wait: float = 5.0) -> tuple[int, bytes] | None:
        """The next frame; None at EOF or after ``wait``."""
        with gevent.Timeout(wait, False):
            while True:
                got = next_frame(self.buf)
                if got is not None:
                    opcode, payload, used = got
                    self.buf = self.buf[used:]
                    return opcode, payload
                chunk = self.sock.recv(65536)
                if not chunk:
                    return None
                self.buf += chunk
        return None

    def until(self, text: bytes, wait: float = 5.0) -> bool:
        """Whether ``text`` arrived within ``wait``."""
        with gevent.Timeout(wait, False):
            while text not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.buf += chunk
        return text in self.buf

    def eof(self, wait: float = 5.0) -> bool:
        """Whether the server closed the connection (what is left unread is dropped)."""
        with gevent.Timeout(wait, False):
            while self.sock.recv(65536):
                pass
            return True
        return False

    def close(self) -> None:
        self.sock.close()


def _greenlets() -> int:
    """gevent greenlets alive in this process (the pool spawns a handler as one)."""
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, gevent.Greenlet) and not o.dead)


def test_streaming_clients_hold_no_greenlet_and_end_cleanly(served: Served) -> None:
    before = _greenlets()
    ws = [Peer(served.port, UPGRADE) for _ in range(30)]
    sse = [Peer(served.port, SSE) for _ in range(10)]
    for peer in ws:
        assert (peer.head() or b"").startswith(b"HTTP/1.1 101")
    for peer in sse:
        assert (peer.head() or b"").startswith(b"HTTP/1.1 200")
    pool = served.server.pool
    wait_until(lambda: pool.free_count() == pool.size, 30, "the handlers to return")
    assert served.hub.total() == 40 and served.shares.count == 40
    assert served.connections.total == 40 and len(served.peers) == 40
    # The handlers returned: 40 streaming clients cost no greenlet each (the hub's flusher
    # and gevent's own are all there are).
    assert _greenlets() - before < 10

    # The stream still flows to every client.
    served.hub.publish(STREAM_LITE, b'{"n":1}', None, None)
    assert all(p.frame() == (TEXT, b'{"n":1}') for p in ws)
    assert sse[0].until(b'data: {"n":1}\n')  # the same entry as an SSE event

    # A ping is answered with its payload, from the hub's loop.
    ws[0].sock.sendall(encode_frame(0x80 | PING, b"hi", mask=MASK))
    assert ws[0].frame() == (PONG, b"hi")

    # The client's close handshake: our Close reply, then the server closes TCP first.
    ws[1].sock.sendall(encode_frame(0x80 | CLOSE, (1000).to_bytes(2, "big"), mask=MASK))
    got = ws[1].frame()
    assert got is not None and got[0] == CLOSE and close_info(got[1])[0] == 1000
    assert ws[1].eof()
    wait_until(lambda: served.shares.count == 39, 30, "the closed client's end")
    assert served.hub.total() == 39 and served.connections.total == 39
    assert len(served.peers) == 39

    # A protocol violation (an unmasked frame): Close 1002, and the connection ends.
    ws[2].sock.sendall(encode_frame(0x80 | TEXT, b"x"))
    got = ws[2].frame()
    assert got is not None and got[0] == CLOSE and close_info(got[1])[0] == 1002
    ws[2].close()  # the client goes once it has the Close
    # An SSE client that leaves.
    sse[1].close()
    wait_until(lambda: served.shares.count == 37, 30, "two more ends")

    # The server closes the rest (as on shutdown): the WebSocket clients get 1001 and
    # answer, the SSE responses end.
    served.hub.close_all()
    for peer in ws[3:]:
        got = peer.frame()
        assert got is not None and got[0] == CLOSE and close_info(got[1])[0] == 1001
        peer.sock.sendall(encode_frame(0x80 | CLOSE, got[1][:2], mask=MASK))
    for peer in sse[2:]:
        assert peer.eof()
    wait_until(lambda: served.shares.count == 0, 30, "every connection's end")
    assert served.hub.total() == 0 and served.connections.total == 0 and not served.peers
    for peer in ws + sse:
        peer.close()


def test_a_slow_client_that_leaves_while_its_writer_waits(served: Served) -> None:
    slow = Peer(served.port, UPGRADE, rcvbuf=4096)
    assert (slow.head() or b"").startswith(b"HTTP/1.1 101")
    wait_until(lambda: served.hub.total() == 1, 30, "the client")
    client = next(iter(served.hub.clients()))
    client.sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_SNDBUF, 4096)
    for i in range(200):  # far more than the socket buffers take: a writer waits
        served.hub.publish(STREAM_LITE, b'{"n":%d,"pad":"%s"}' % (i, b"x" * 4000), None, None)
    served.hub.flush()
    assert wait_until(lambda: client.writer is not None, 30), "no writer greenlet"
    slow.sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    slow.close()  # a reset: the reader sees it, ends, and the writer goes with it
    wait_until(lambda: served.shares.count == 0, 30, "the slow client's end")
    wait_until(lambda: client.writer is None, 30, "the writer to go")
    assert client.sock.fileno() == -1  # closed, once the writer had let go of the fd
    assert served.hub.total() == 0 and served.connections.total == 0


def test_a_bug_in_the_input_ends_that_connection_only(
        served: Served, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    good, bad = Peer(served.port, UPGRADE), Peer(served.port, UPGRADE)
    assert (good.head() or b"").startswith(b"HTTP/1.1 101")
    assert (bad.head() or b"").startswith(b"HTTP/1.1 101")
    wait_until(lambda: served.shares.count == 2, 30, "both clients")
    real = reader.take_input

    def broken(hub: Hub, client: Any, data: bytes) -> bool:
        if data == encode_frame(0x80 | TEXT, b"boom", mask=MASK):
            raise RuntimeError("a bug")
        return real(hub, client, data)

    monkeypatch.setattr(reader, "take_input", broken)
    with caplog.at_level(logging.ERROR, logger="certstream.shell.reader"):
        bad.sock.sendall(encode_frame(0x80 | TEXT, b"boom", mask=MASK))
        assert bad.eof()
        wait_until(lambda: served.shares.count == 1, 30, "the broken connection's end")
    assert "stream reader failed" in caplog.text
    good.sock.sendall(encode_frame(0x80 | PING, b"ok", mask=MASK))
    assert good.frame() == (PONG, b"ok")
    good.close()
    bad.close()


def test_a_worker_at_its_limit_leaves_connections_in_the_backlog() -> None:
    s = _served(limit=3)
    try:
        peers = [Peer(s.port, UPGRADE) for _ in range(5)]
        heads = [p.head(wait=1.0) for p in peers[:3]]
        assert all((h or b"").startswith(b"HTTP/1.1 101") for h in heads)
        assert s.shares.count == 3
        # Connected (the kernel's backlog) but not accepted: no answer.
        assert peers[3].head(wait=0.5) is None
        assert s.shares.count == 3
        peers[0].close()  # one ends: the next is accepted
        assert (peers[3].head() or b"").startswith(b"HTTP/1.1 101")
        assert peers[4].head(wait=0.3) is None
        for p in peers:
            p.close()
        wait_until(lambda: s.shares.count == 0, 30, "every end")
    finally:
        s.server.stop(timeout=1)
        s.hub.stop()
