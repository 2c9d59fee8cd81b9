"""A client catching up through the real hub, over a socket pair: its writer sends what it
is owed in pieces of at most the write cap, every frame once, in order."""

from __future__ import annotations

import socket as stdsocket

import gevent
import gevent.socket
from tests.support.sessions import ws_session
from tests.support.wsframes import read_frames

from certstream.core.routes import STREAM_LITE
from certstream.shell.hub import Client, Hub

CAP = 8192


class MeasuredHub(Hub):
    """The real hub, noting the size of every write it hands a client's socket: the
    flusher's (``_write_now``) and its writer's (``owed``)."""

    def __init__(self) -> None:
        super().__init__(1000, send_timeout=5.0, write_cap=CAP)
        self.sizes: list[int] = []

    def _write_now(self, client: Client, data: bytes) -> None:
        self.sizes.append(len(data))
        super()._write_now(client, data)

    def owed(self, cursor: Client) -> bytes:
        data = super().owed(cursor)
        self.sizes.append(len(data))
        return data


def test_a_client_behind_gets_every_frame_in_pieces_under_the_cap() -> None:
    hub = MeasuredHub()
    hub.start()
    a, b = gevent.socket.socketpair(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
    try:
        a.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_SNDBUF, 4096)
        b.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_RCVBUF, 4096)
        client = hub.add(a, ws_session(), STREAM_LITE, is_ws=True)
        payloads = [b'{"n":%d,"p":"%s"}' % (i, b"x" * 1000) for i in range(300)]
        for p in payloads:  # ~300 KB while the peer reads nothing
            hub.publish(STREAM_LITE, p, None, None)
        gevent.sleep(0.05)
        assert client.busy  # its writer waits for the socket
        received = b""
        with gevent.Timeout(10):
            while len(received) < sum(len(p) + 4 for p in payloads):
                received += b.recv(1 << 16)
        assert [p for _op, p in read_frames(received)] == payloads
        assert client.dropped == 0 and not client.closing
        assert max(hub.sizes) <= CAP and len(hub.sizes) >= 300 * 1004 // CAP
    finally:
        hub.stop()
        a.close()
        b.close()
