"""The hub acknowledges the feed's entries only once they are in every client's socket: a
client whose write was left half done is waited for, unless it has been busy so long that
it is a slow client (``SLOW_GRACE``).  Real socket pairs with small buffers, the real hub."""

from __future__ import annotations

import socket as stdsocket
import time

import gevent
import gevent.socket
import pytest
from tests.support.sessions import ws_session

from certstream.core.routes import STREAM_LITE
from certstream.shell import hub as hub_module
from certstream.shell.hub import Hub


def small_pair() -> tuple[gevent.socket.socket, gevent.socket.socket]:
    a, b = gevent.socket.socketpair(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
    a.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_SNDBUF, 4096)
    b.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_RCVBUF, 4096)
    return a, b


@pytest.mark.timeout(30)
def test_the_ack_waits_for_a_client_whose_write_was_half_done() -> None:
    hub = Hub(64, send_timeout=10.0)
    hub.start()
    server, peer = small_pair()
    try:
        client = hub.add(server, ws_session(), STREAM_LITE, is_ws=True)
        hub.publish(STREAM_LITE, b"x" * 200_000, None, None)
        acked: list[float] = []
        hub.after_flush(lambda: acked.append(time.monotonic()))
        gevent.sleep(0.3)
        assert client.busy and acked == []  # most of the entry is still in the worker
        got = 0
        started = time.monotonic()
        with gevent.Timeout(10):
            while got < 200_000:
                got += len(peer.recv(65536))
                gevent.sleep(0)
        gevent.sleep(0.1)
        assert acked and acked[0] >= started  # only once the client had it all
    finally:
        hub.stop()
        server.close()
        peer.close()


@pytest.mark.timeout(30)
def test_a_slow_client_does_not_hold_the_ack_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_module, "SLOW_GRACE", 0.5)
    hub = Hub(64, send_timeout=10.0)
    hub.start()
    server, peer = small_pair()
    fast_server, fast_peer = gevent.socket.socketpair(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
    try:
        slow = hub.add(server, ws_session(), STREAM_LITE, is_ws=True)
        hub.add(fast_server, ws_session(), STREAM_LITE, is_ws=True)
        hub.publish(STREAM_LITE, b"y" * 200_000, None, None)
        acked: list[float] = []
        start = time.monotonic()
        hub.after_flush(lambda: acked.append(time.monotonic()))
        with gevent.Timeout(5):
            while not acked:
                gevent.sleep(0.05)
        assert slow.busy  # it never read: the ack went once it counted as slow
        assert acked[0] - start >= 0.4
    finally:
        hub.stop()
        for s in (server, peer, fast_server, fast_peer):
            s.close()
