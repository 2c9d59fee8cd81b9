"""The hub with filtered and compressed clients over in-process socket pairs: the session's
negotiated window reaches the hub, control frames reach every kind of client, and a slow
compressed client drains through its writer greenlet."""

from __future__ import annotations

import socket as stdsocket
import zlib
from collections.abc import Iterator

import gevent
import gevent.socket
import pytest
from tests.support import golden_payloads
from wsproto import ConnectionType, WSConnection
from wsproto.events import Request

from certstream.core import frames
from certstream.core.filterfields import FilterSpec, encode_match_fields
from certstream.core.routes import STREAM_LITE, RouteTable
from certstream.core.session import NEED_DATA, Session
from certstream.shell.hub import Client, Hub

LITE = golden_payloads("lite")
OFFER = [(b"Sec-WebSocket-Extensions", b"permessage-deflate; client_max_window_bits")]


def _session(*, offer: bool) -> Session:
    session = Session(RouteTable())
    client = WSConnection(ConnectionType.CLIENT)
    request = Request(host="x", target="/", extra_headers=OFFER if offer else [])
    session.receive_data(client.send(request))
    while session.next_event() is not NEED_DATA:
        pass
    session.accept_websocket(compression=True)
    session.data_to_send()
    return session


@pytest.fixture
def socks() -> Iterator[list[gevent.socket.socket]]:
    made: list[gevent.socket.socket] = []
    yield made
    for s in made:
        s.close()


def _pair(made: list[gevent.socket.socket], *, small: bool = False,
          ) -> tuple[gevent.socket.socket, gevent.socket.socket]:
    a, b = gevent.socket.socketpair(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
    if small:
        a.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_SNDBUF, 4096)
        b.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_RCVBUF, 4096)
    made += (a, b)
    return a, b


def _frames(data: bytes) -> list[tuple[int, bool, bytes]]:
    """``(opcode, RSV1, payload)`` of every frame."""
    out = []
    while data:
        n, start = data[1] & 0x7F, 2
        if n == 126:
            n, start = int.from_bytes(data[2:4], "big"), 4
        elif n == 127:
            n, start = int.from_bytes(data[2:10], "big"), 10
        out.append((data[0] & 0x0F, bool(data[0] & 0x40), data[start : start + n]))
        data = data[start + n :]
    return out


def _read_all(sock: gevent.socket.socket, wait: float = 0.3) -> bytes:
    buf = b""
    with gevent.Timeout(wait, False):
        while chunk := sock.recv(1 << 20):
            buf += chunk
    return buf


def _inflate(payload: bytes) -> bytes:
    return zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")


def _add(hub: Hub, sock: gevent.socket.socket, *, offer: bool,
         spec: FilterSpec | None = None) -> Client:
    return hub.add(sock, _session(offer=offer), STREAM_LITE, is_ws=True, spec=spec)


def test_the_negotiated_window_reaches_the_hub_and_pings_reach_everyone(
    socks: list[gevent.socket.socket],
) -> None:
    hub = Hub(100)
    (a, peer_a), (b, peer_b), (c, peer_c) = (_pair(socks) for _ in range(3))
    plain = _add(hub, a, offer=False)
    packed = _add(hub, b, offer=True)
    filtered = _add(hub, c, offer=True, spec=FilterSpec(domains=("*",)))
    assert (plain.wbits, packed.wbits, filtered.wbits) == (0, 15, 15)
    every = encode_match_fields(["x"], "", "", "")
    for p in LITE[:5]:
        hub.publish(STREAM_LITE, p, None, None, every)
    hub.flush()
    hub.ping_all()
    got_plain = _frames(_read_all(peer_a))
    assert got_plain == [*((1, False, p) for p in LITE[:5]), (9, False, b"")]
    for peer in (peer_b, peer_c):
        got = _frames(_read_all(peer))
        assert [(op, rsv1) for op, rsv1, _ in got] == [(1, True)] * 5 + [(9, False)]
        assert [_inflate(p) for _, _, p in got[:5]] == LITE[:5]


def test_a_slow_compressed_client_drains_through_its_writer(
    socks: list[gevent.socket.socket],
) -> None:
    hub = Hub(1000, send_timeout=5.0)
    hub.start()
    try:
        sock, peer = _pair(socks, small=True)
        client = _add(hub, sock, offer=True)
        payloads = [p + b" " * i for i, p in enumerate(LITE * 5)]
        for p in payloads:
            hub.publish(STREAM_LITE, p, None, None)
        gevent.sleep(0.05)
        assert client.busy  # far more than the small socket buffer takes
        data = _read_all(peer, wait=1.0)
        got = _frames(data)
        assert all(op == 1 and rsv1 for op, rsv1, _ in got)
        assert [_inflate(p) for _, _, p in got] == payloads
        assert not client.busy and client.seq == len(payloads)
        assert hub.frames_sent == len(payloads)
    finally:
        hub.stop()


def test_broadcast_skips_nobody_and_close_all_closes_every_kind(
    socks: list[gevent.socket.socket],
) -> None:
    hub = Hub(10)
    pairs = [_pair(socks) for _ in range(3)]
    _add(hub, pairs[0][0], offer=False)
    _add(hub, pairs[1][0], offer=True)
    _add(hub, pairs[2][0], offer=False, spec=FilterSpec(logs=("argon",)))
    hub.broadcast(frames.ws_frame(b'{"message_type":"heartbeat"}'), ws=True)
    hub.close_all()
    for _, peer in pairs:
        got = _frames(_read_all(peer))
        assert got[0] == (1, False, b'{"message_type":"heartbeat"}')
        assert got[1][0] == 8 and got[1][2][:2] == (1001).to_bytes(2, "big")
    assert hub.total() == 0 and not hub.rings[STREAM_LITE].views
