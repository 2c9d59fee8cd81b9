"""Hostile clients against the real server: each ends only its own connection.

* slowloris: connections that trickle their request one byte a second are closed once the
  request timeout (10 s) is over, and meanwhile the server accepts and streams to others;
* 5,000 connections opened at once (beyond the listen backlog of 2,048) all get their
  WebSocket upgrade, and a client already streaming keeps receiving through the storm.

Oversized and malformed requests and frames are ``tests/test_malformed.py``'s; a slow
reader is ``tests/integration/test_slow_close.py``'s and ``tests/test_server.py``'s.
"""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Iterator

import pytest
from tests.support import DOMAINS, RawWS, Server, golden_payloads, run_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

PAYLOADS = golden_payloads("domains")
REQUEST_TIMEOUT = 10.0  # shell.endpoints.ServerContext.request_timeout


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with run_server() as srv:
        yield srv


def streaming(server: Server, watcher: RawWS, n: int) -> None:
    payload = PAYLOADS[n % len(PAYLOADS)]
    server.feed.publish_one(domains=payload)
    assert watcher.recv_data() == payload


def test_slowloris_connections_are_cut_off_and_cost_nobody_else(server: Server) -> None:
    watcher = RawWS(server.port, "/domains-only")
    server.feed.wait_wanted(DOMAINS)
    request = b"GET /domains-only HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
    slow = []
    for _ in range(200):
        s = socket.create_connection(("127.0.0.1", server.port))
        s.setblocking(False)
        slow.append(s)
    try:
        start = time.monotonic()
        closed: set[int] = set()
        sent = 0
        while time.monotonic() - start < REQUEST_TIMEOUT + 8 and len(closed) < len(slow):
            for i, s in enumerate(slow):  # one more byte each, about every second
                if i in closed:
                    continue
                try:
                    if sent < len(request):
                        s.send(request[sent : sent + 1])
                    if s.recv(1024) == b"":
                        closed.add(i)
                except BlockingIOError:
                    pass
                except OSError:
                    closed.add(i)
            sent += 1
            streaming(server, watcher, sent)  # the others are served meanwhile
            late = RawWS(server.port, "/domains-only")  # and new clients get in (101)
            late.close()
            time.sleep(1.0)
        took = time.monotonic() - start
        assert len(closed) == len(slow), f"{len(slow) - len(closed)} still open after {took:.0f}s"
        assert took >= REQUEST_TIMEOUT - 1
    finally:
        for s in slow:
            s.close()
        watcher.close()


def test_five_thousand_connects_at_once(server: Server) -> None:
    watcher = RawWS(server.port, "/domains-only")
    server.feed.wait_wanted(DOMAINS)
    count = 5000
    request = (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    sel = selectors.DefaultSelector()
    socks: list[socket.socket] = []
    answers: dict[int, bytes] = {}
    try:
        for i in range(count):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", server.port))
            sel.register(s, selectors.EVENT_WRITE, i)
            socks.append(s)
        deadline = time.monotonic() + 90
        n = 0
        while len(answers) < count and time.monotonic() < deadline:
            for key, events in sel.select(timeout=0.5):
                fileobj, i = key.fileobj, key.data
                assert isinstance(fileobj, socket.socket)
                s = fileobj
                if events & selectors.EVENT_WRITE:
                    s.send(request)
                    sel.modify(s, selectors.EVENT_READ, i)
                    continue
                try:
                    data = s.recv(4096)
                except OSError as exc:
                    data = f"error {exc}".encode()
                answers[i] = answers.get(i, b"") + data
                if b"\r\n\r\n" in answers[i] or not data:
                    sel.unregister(s)
            n += 1
            if n % 20 == 0:
                streaming(server, watcher, n)  # the client already there keeps receiving
        upgraded = sum(a.startswith(b"HTTP/1.1 101 ") for a in answers.values())
        assert upgraded == count, (
            f"{upgraded} of {count} upgraded; others: "
            f"{sorted({a[:40] for a in answers.values() if not a.startswith(b'HTTP/1.1 101')})}")
        streaming(server, watcher, 0)
    finally:
        sel.close()
        for s in socks:
            s.close()
        watcher.close()
    # All gone again: the server still serves.
    after = RawWS(server.port, "/domains-only")
    try:
        server.feed.wait_wanted(DOMAINS)
        streaming(server, after, 1)
    finally:
        after.close()
