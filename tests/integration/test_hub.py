"""The hub's ring, cursors and slow-client handling, over in-process socket pairs."""

from __future__ import annotations

import json
import os
import socket as stdsocket
from collections.abc import Iterator

import gevent
import gevent.socket
import pytest
from tests.support.sessions import ws_session
from tests.support.wsframes import read_frames

from certstream.core import frames
from certstream.core.routes import STREAM_DOMAINS, STREAM_FULL, STREAM_LITE, RouteTable
from certstream.core.session import Session
from certstream.shell.hub import Client, Hub

PAYLOADS = [json.dumps({"message_type": "certificate_update", "n": i}).encode() + b"\n"
            for i in range(50)]


class Peer:
    """The client end of a socket pair: reads raw frames."""

    def __init__(self, sock: gevent.socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def read_available(self, wait: float = 0.2) -> bytes:
        with gevent.Timeout(wait, False):
            while True:
                chunk = self.sock.recv(1 << 20)
                if not chunk:
                    break
                self.buf += chunk
        out, self.buf = self.buf, b""
        return out


# The socket pairs a test made (the hub's end, the peer's end), closed after it.
Pairs = list[tuple[gevent.socket.socket, gevent.socket.socket]]


@pytest.fixture
def pairs() -> Iterator[Pairs]:
    made: Pairs = []
    yield made
    for a, b in made:
        a.close()
        b.close()


def _pair(made: Pairs, small: bool = False) -> tuple[gevent.socket.socket, Peer]:
    a, b = gevent.socket.socketpair(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
    if small:
        a.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_SNDBUF, 4096)
        b.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_RCVBUF, 4096)
    made.append((a, b))
    return a, Peer(b)


def _add(hub: Hub, sock: gevent.socket.socket, stream: int = STREAM_LITE,
         ws: bool = True) -> Client:
    return hub.add(sock, ws_session() if ws else Session(RouteTable()), stream, is_ws=ws)


def test_every_client_gets_every_frame_in_one_write(pairs: Pairs) -> None:
    hub = Hub(100)
    peers = []
    for _ in range(5):
        sock, peer = _pair(pairs)
        _add(hub, sock)
        peers.append(peer)
    for p in PAYLOADS[:10]:
        hub.publish(STREAM_LITE, p, None, None)
    hub.flush()
    for peer in peers:
        data = peer.read_available()
        assert data == b"".join(frames.ws_frame(p) for p in PAYLOADS[:10])
    assert hub.frames_sent == 50
    assert hub.bytes_sent == 5 * len(data)


def test_streams_are_routed_separately(pairs: Pairs) -> None:
    hub = Hub(100)
    got = {}
    for stream in (STREAM_LITE, STREAM_FULL, STREAM_DOMAINS):
        sock, peer = _pair(pairs)
        _add(hub, sock, stream)
        got[stream] = peer
    hub.publish(STREAM_LITE | STREAM_FULL | STREAM_DOMAINS, b"L", b"F", b"D")
    hub.publish(STREAM_FULL, None, b"F2", None)
    hub.flush()
    assert read_frames(got[STREAM_LITE].read_available()) == [(1, b"L")]
    assert read_frames(got[STREAM_FULL].read_available()) == [(1, b"F"), (1, b"F2")]
    assert read_frames(got[STREAM_DOMAINS].read_available()) == [(1, b"D")]


def test_new_client_starts_at_the_head(pairs: Pairs) -> None:
    hub = Hub(100)
    sock1, _peer1 = _pair(pairs)
    _add(hub, sock1)
    hub.publish(STREAM_LITE, b"old", None, None)
    hub.flush()
    sock2, peer2 = _pair(pairs)
    _add(hub, sock2)
    hub.publish(STREAM_LITE, b"new", None, None)
    hub.flush()
    assert read_frames(peer2.read_available()) == [(1, b"new")]


def test_wanted_mask_follows_subscribers(pairs: Pairs) -> None:
    seen: list[int] = []
    hub = Hub(10, on_wanted=seen.append)
    a, _ = _pair(pairs)
    b, _ = _pair(pairs)
    c1 = _add(hub, a, STREAM_FULL)
    c2 = _add(hub, b, STREAM_FULL, ws=False)
    c3 = _add(hub, a, STREAM_DOMAINS)
    hub.remove(c1)
    hub.remove(c2)
    hub.remove(c3)
    # Only 0 <-> 1 transitions of a stream change the mask.
    assert seen == [STREAM_FULL, STREAM_FULL | STREAM_DOMAINS, STREAM_DOMAINS, 0]


def test_sse_events_carry_ids(pairs: Pairs) -> None:
    hub = Hub(10, epoch_ms=1700000000000)
    sock, peer = _pair(pairs)
    _add(hub, sock, STREAM_LITE, ws=False)
    hub.publish(STREAM_LITE, b'{"a":1}\n', None, None)  # no stamp: the hub's own ids
    hub.publish(STREAM_LITE, b'{"a":2}\n', None, None)
    hub.flush()
    assert peer.read_available() == (b'id: 1700000000000-1\ndata: {"a":1}\n\n'
                                     b'id: 1700000000000-2\ndata: {"a":2}\n\n')


def test_a_round_of_pings_goes_out_in_slices_each_client_once(pairs: Pairs) -> None:
    hub = Hub(10)
    peers = []
    for _ in range(12):
        sock, peer = _pair(pairs)
        _add(hub, sock)
        peers.append(peer)
    sse_sock, sse_peer = _pair(pairs)
    _add(hub, sse_sock, ws=False)
    got = []
    for part in range(3):
        hub.ping_part(part, 3)
        got.append([read_frames(p.read_available(0.05)) for p in peers])
    # Over the round every WebSocket client got one ping; no slice pinged everyone.
    assert all(sum(len(rnd[i]) for rnd in got) == 1 for i in range(len(peers)))
    assert all(frame == (9, b"") for rnd in got for frames_ in rnd for frame in frames_)
    assert all(sum(map(len, rnd)) < len(peers) for rnd in got)
    assert sse_peer.read_available(0.05) == b""  # SSE has no pings


def test_control_frames_and_close(pairs: Pairs) -> None:
    hub = Hub(10)
    sock, peer = _pair(pairs)
    client = _add(hub, sock)
    hub.ping_all()
    hub.send(client, frames.ws_pong_frame(b"x"))
    hub.close_all()
    got = read_frames(peer.read_available())
    assert got[:2] == [(9, b""), (10, b"x")]
    assert got[2][0] == 8 and got[2][1] == (1001).to_bytes(2, "big") + b"server shutting down"
    assert list(hub.clients()) == []
    # The server half-closed: the peer sees EOF after the close frame.
    assert peer.sock.recv(10) == b""


def test_slow_client_does_not_delay_others_and_is_closed_after_budget(pairs: Pairs) -> None:
    hub = Hub(8, drop_budget=20, close_code=1008, send_timeout=5.0)
    hub.start()
    slow_sock, slow = _pair(pairs, small=True)
    fast_sock, fast = _pair(pairs)
    slow_client = _add(hub, slow_sock)
    _add(hub, fast_sock)
    big = [b"x" * 3000 + b"%d" % i for i in range(60)]
    received = b""
    for p in big:
        hub.publish(STREAM_LITE, p, None, None)
        gevent.sleep(0)  # the flusher runs between entries
        received += fast.read_available(0.01)
    received += fast.read_available(0.2)
    assert [p for _op, p in read_frames(received)] == big  # the fast one got everything, in order
    assert slow_client.busy or slow_client.closing
    # The slow client lost far more than 20 frames: it is closed with 1008 once it reads.
    data = slow.read_available(1.0)
    got = read_frames(data)
    assert got[-1][0] == 8
    code = int.from_bytes(got[-1][1][:2], "big")
    assert code == 1008 and b"dropped" in got[-1][1]
    assert hub.slow_closed == 1
    hub.stop()


def test_drop_notice_under_budget(pairs: Pairs) -> None:
    hub = Hub(4, drop_budget=1000, send_timeout=5.0)
    hub.start()
    sock, peer = _pair(pairs, small=True)
    client = _add(hub, sock)
    big = [b"y" * 20000 + b"%d" % i for i in range(12)]
    for p in big:
        hub.publish(STREAM_LITE, p, None, None)
        gevent.sleep(0)
    assert client.busy
    got = read_frames(peer.read_available(1.0))
    texts = [p for op, p in got if op == 1]
    notices = [json.loads(t) for t in texts if t.startswith(b'{"message_type":"notice"')]
    assert notices and all(n["dropped"] > 0 for n in notices)
    data = [t for t in texts if not t.startswith(b'{"message_type":"notice"')]
    # What arrived is in order, ends with the newest, and what is missing is what was reported.
    indexes = [big.index(t) for t in data]
    assert indexes == sorted(indexes) and indexes[-1] == len(big) - 1
    assert len(big) - len(data) == sum(n["dropped"] for n in notices) == client.dropped
    assert not client.closing
    hub.stop()


def test_stuck_client_is_cut_off_after_send_timeout(pairs: Pairs) -> None:
    hub = Hub(1000, drop_budget=10**6, send_timeout=0.3)
    hub.start()
    sock, peer = _pair(pairs, small=True)
    client = _add(hub, sock)
    for i in range(20):
        hub.publish(STREAM_LITE, b"z" * 20000 + b"%d" % i, None, None)
    gevent.sleep(0)
    assert client.busy
    gevent.sleep(0.8)  # the peer never reads
    assert client.closing and not client.busy
    assert client not in set(hub.clients())
    hub.stop()
    peer.sock.close()


def test_remove_while_busy_stops_the_writer(pairs: Pairs) -> None:
    hub = Hub(100, send_timeout=5.0)
    hub.start()
    sock, _peer = _pair(pairs, small=True)
    client = _add(hub, sock)
    for i in range(10):
        hub.publish(STREAM_LITE, b"w" * 20000 + b"%d" % i, None, None)
    gevent.sleep(0)
    writer = client.writer
    assert writer is not None
    hub.remove(client)
    gevent.sleep(0.05)
    assert writer.dead
    # Nothing is written to a removed client's descriptor any more.
    hub.send(client, b"late")
    hub.stop()


def test_a_burst_longer_than_the_ring_reaches_clients_that_keep_up(pairs: Pairs) -> None:
    hub = Hub(8)
    sock, peer = _pair(pairs)
    sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_SNDBUF, 1 << 20)
    client = _add(hub, sock)
    # No greenlet switch in between: the flusher greenlet never gets to run.
    for p in PAYLOADS:
        hub.publish(STREAM_LITE, p, None, None)
    hub.flush()
    assert [p for _op, p in read_frames(peer.read_available())] == PAYLOADS
    assert client.dropped == 0


def test_a_cursor_behind_the_ring_gets_a_notice_not_a_stall(pairs: Pairs) -> None:
    hub = Hub(4, drop_budget=100)
    sock, peer = _pair(pairs)
    client = _add(hub, sock)
    ring = hub.rings[STREAM_LITE]
    for p in PAYLOADS[:10]:
        ring.append(p)  # behind the hub's back, as if no flush had run
    hub._dirty.add(ring)
    hub.flush()
    got = read_frames(peer.read_available())
    assert json.loads(got[0][1]) == {"message_type": "notice", "dropped": 6}
    assert [p for _op, p in got[1:]] == PAYLOADS[6:10]
    assert client.dropped == 6


def test_entries_within_the_flush_interval_go_out_in_one_write(
    pairs: Pairs, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[int] = []
    real_write = os.write  # what the hub writes with

    def counting_write(fd: int, data: bytes | memoryview) -> int:
        writes.append(fd)
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", counting_write)
    hub = Hub(100, flush_interval=0.5)
    hub.start()
    try:
        sock, peer = _pair(pairs)
        _add(hub, sock)
        hub.publish(STREAM_LITE, PAYLOADS[0], None, None)
        gevent.sleep(0.05)  # the first entry finds the flusher idle and goes out at once
        assert peer.read_available() == frames.ws_frame(PAYLOADS[0])
        assert len(writes) == 1
        for p in PAYLOADS[1:4]:
            hub.publish(STREAM_LITE, p, None, None)
            gevent.sleep(0)  # the flusher runs between publishes, as with real feed reads
        received = b""
        expected = b"".join(frames.ws_frame(p) for p in PAYLOADS[1:4])
        for _ in range(200):
            received += peer.read_available()
            if len(received) >= len(expected):
                break
            gevent.sleep(0.01)
        assert received == expected
        assert len(writes) == 2  # three entries, one write
    finally:
        hub.stop()
