"""A client closed for being slow gets its Close frame at once, not after its backlog.

Real loopback TCP connections with small kernel buffers on both ends (so what the kernel
already holds is small and known) and the real hub.  Before the fix the 1008 Close was
queued behind everything pending for the client (2.8 MB in the probe that found it) and
the socket lingered until that was read or ``send_timeout`` passed without progress.
"""

from __future__ import annotations

import socket as stdsocket
import time
from collections.abc import Iterator

import gevent
import gevent.socket
import pytest
from tests.support.sessions import ws_session

from certstream.core.routes import STREAM_LITE, RouteTable
from certstream.core.session import Session
from certstream.shell import hub as hub_module
from certstream.shell.hub import Client, Hub

BUF = 16 * 1024  # SO_SNDBUF of the server end, SO_RCVBUF of the client end
FRAME = 20_000
Pair = tuple[gevent.socket.socket, gevent.socket.socket]  # (server end, client end)


@pytest.fixture
def tcp_pair() -> Iterator[Pair]:
    listener = gevent.socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = gevent.socket.socket()
    client.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_RCVBUF, BUF)
    client.connect(listener.getsockname())
    server, _ = listener.accept()
    server.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_SNDBUF, BUF)
    server.setblocking(False)
    listener.close()
    yield server, client
    server.close()
    client.close()


def frames_of(data: bytes) -> list[tuple[int, int]]:
    """(opcode, offset of the frame's end) of each whole frame in ``data``."""
    out, i = [], 0
    while i + 2 <= len(data):
        n, head = data[i + 1] & 0x7F, 2
        if n == 126:
            n, head = int.from_bytes(data[i + 2 : i + 4], "big"), 4
        elif n == 127:
            n, head = int.from_bytes(data[i + 2 : i + 10], "big"), 10
        if i + head + n > len(data):
            break
        out.append((data[i] & 0x0F, i + head + n))
        i += head + n
    return out


def fall_behind(hub: Hub, client: Client, count: int) -> None:
    """Publish ``count`` big frames while the client reads nothing, until it is closed."""
    for i in range(count):
        hub.publish(STREAM_LITE, b"x" * FRAME + b"%06d" % i, None, None)
        gevent.sleep(0)
        if client.closing:
            return


def read_until_close(sock: gevent.socket.socket, limit: float,
                     first: bytes = b"") -> tuple[bytes, int | None]:
    """Read as fast as possible until a Close frame; (bytes read, counting ``first``, which
    was read before, and the offset past the Close)."""
    got = bytearray(first)
    parsed = 0
    with gevent.Timeout(limit, False):
        while True:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            got += chunk
            whole = frames_of(bytes(got[parsed:]))
            for op, end in whole:
                if op == 8:
                    return bytes(got), parsed + end
            if whole:
                parsed += whole[-1][1]
    return bytes(got), None


@pytest.mark.timeout(60)
def test_the_close_frame_overtakes_the_backlog(tcp_pair: Pair) -> None:
    server, peer = tcp_pair
    hub = Hub(256, drop_budget=300, close_code=1008, send_timeout=30.0)
    hub.start()
    try:
        client = hub.add(server, ws_session(), STREAM_LITE, is_ws=True)
        payload = b"x" * FRAME
        for _ in range(200):  # the client reads nothing: it falls behind (no loss yet)
            hub.publish(STREAM_LITE, payload, None, None)
            gevent.sleep(0)
        assert client.busy
        # It reads a little: its writer finishes what it had and takes everything pending
        # in one piece (~4 MB), of which the kernels take a few kilobytes.
        taken = b""
        with gevent.Timeout(5):
            while len(taken) < 4 * FRAME:
                taken += peer.recv(1 << 16)
        gevent.sleep(0.3)
        # More than the ring while it stalls: past its budget, it is closed as slow.
        for _ in range(600):
            hub.publish(STREAM_LITE, payload, None, None)
            gevent.sleep(0)
        assert client.closing and hub.slow_closed == 1
        got, close_end = read_until_close(peer, 20, taken)
        assert close_end is not None, f"no Close frame in {len(got):,} bytes"
        assert b"too slow" in got[close_end - 60 : close_end]
        # What the two kernels held and the rest of the frame on the wire: not the
        # megabytes that were pending in the server for this client.
        after = close_end - len(taken)
        assert after <= 8 * BUF + 2 * FRAME, f"{after:,} bytes came before the Close"
    finally:
        hub.stop()


@pytest.mark.timeout(60)
def test_a_slow_client_that_never_reads_again_is_cut_off_within_the_linger(
    tcp_pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_module, "_CLOSE_LINGER_SECS", 1.0)
    server, _peer = tcp_pair
    hub = Hub(256, drop_budget=300, close_code=1008, send_timeout=30.0)
    hub.start()
    try:
        client = hub.add(server, ws_session(), STREAM_LITE, is_ws=True)
        fall_behind(hub, client, 2000)
        assert client.closing
        started = time.monotonic()
        # The server end is shut down once the linger is over, not after send_timeout.
        with gevent.Timeout(10, False):
            while client.busy or client.writer is not None:
                gevent.sleep(0.05)
        took = time.monotonic() - started
        assert not client.busy and took < 5, f"still writing after {took:.1f}s"
        with pytest.raises(OSError):
            for _ in range(100):
                server.send(b"x" * BUF)  # shut down: the send fails (it would block, else)
    finally:
        hub.stop()


@pytest.mark.timeout(60)
def test_a_slow_sse_client_is_cut_off_at_once(tcp_pair: Pair) -> None:
    server, _peer = tcp_pair
    hub = Hub(256, drop_budget=300, close_code=1008, send_timeout=30.0)
    hub.start()
    try:
        client = hub.add(server, Session(RouteTable()), STREAM_LITE, is_ws=False)
        fall_behind(hub, client, 2000)
        assert client.closing and hub.slow_closed == 1
        with gevent.Timeout(2, False):
            while client.busy:
                gevent.sleep(0.02)
        assert not client.busy  # nothing pending is sent: an SSE stream just ends
        with pytest.raises(OSError):
            for _ in range(100):
                server.send(b"x" * BUF)
    finally:
        hub.stop()
