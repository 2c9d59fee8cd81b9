"""Malformed requests and frames against the real server: each gets its own error answer
(HTTP status or WebSocket close code) and ends only its own connection."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from functools import partial

import pytest
from tests.support import (
    DOMAINS,
    RawWS,
    Server,
    close_info,
    golden_payloads,
    http_get,
    run_server,
)
from tests.support.wsframes import encode_frame

pytestmark = pytest.mark.slow

DOMAINS_P = golden_payloads("domains")
MAX_MESSAGE = 1024


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with run_server({"websocket": {"max_message_bytes": MAX_MESSAGE}}) as srv:
        yield srv


@pytest.fixture(scope="module")
def watcher(server: Server) -> Iterator[RawWS]:
    """A well-behaved client that must keep receiving through every bad one."""
    ws = RawWS(server.port, "/domains-only")
    server.feed.wait_wanted(DOMAINS)
    yield ws
    ws.close()


_counter = iter(range(10**6))


def _still_streaming(server: Server, watcher: RawWS) -> None:
    payload = DOMAINS_P[next(_counter) % len(DOMAINS_P)]
    server.feed.publish_one(None, None, payload)
    assert watcher.recv_data() == payload


def _raw_http(server: Server, data: bytes) -> tuple[int, dict[str, str], bytes]:
    return http_get(server.port, "", raw=data)


KEY = "dGhlIHNhbXBsZSBub25jZQ=="

HTTP_CASES: dict[str, tuple[bytes, int]] = {
    "garbage request line": (b"HELLO THERE\r\n\r\n", 400),
    "header without colon": (b"GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", 400),
    "missing host": (b"GET /health HTTP/1.1\r\n\r\n", 400),
    "bad content-length": (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n", 400),
    "oversized headers": (
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n", 431),
    "tls client hello": (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 32
                         + b"\r\n\r\n", 400),
    "post": (b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", 405),
    "upgrade without key": (
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n", 400),
    "upgrade with wrong version": (
        b"GET /full-stream HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + KEY.encode() + b"\r\nSec-WebSocket-Version: 8\r\n\r\n", 426),
    "upgrade without connection header": (
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: " + KEY.encode() + b"\r\nSec-WebSocket-Version: 13\r\n\r\n", 400),
    "http/1.0 upgrade without host": (
        b"GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + KEY.encode() + b"\r\nSec-WebSocket-Version: 13\r\n\r\n", 400),
    "upgrade on unknown path": (
        b"GET /nope HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + KEY.encode() + b"\r\nSec-WebSocket-Version: 13\r\n\r\n", 404),
}


@pytest.mark.parametrize("case", list(HTTP_CASES))
def test_bad_http(server: Server, watcher: RawWS, case: str) -> None:
    data, status = HTTP_CASES[case]
    got, headers, _body = _raw_http(server, data)
    assert got == status
    assert "connection handler failed" not in server.log()  # answered, not crashed
    if status == 426:
        assert headers["sec-websocket-version"] == "13"
    _still_streaming(server, watcher)


def test_errors_are_counted_by_status(server: Server) -> None:
    for case in ("oversized headers", "upgrade on unknown path", "upgrade with wrong version"):
        _raw_http(server, HTTP_CASES[case][0])
    text = http_get(server.port, "/metrics")[2].decode()
    assert 'certstream_server_responses_total{code="431",endpoint="invalid"}' in text
    assert 'certstream_server_responses_total{code="404",endpoint="not_found"}' in text
    assert 'certstream_server_responses_total{code="426",endpoint="websocket"}' in text


# A zero masking key: the payload goes as it is written here.
_frame = partial(encode_frame, mask=bytes(4))


FRAME_CASES: dict[str, tuple[bytes, int]] = {
    "unmasked text": (encode_frame(0x81, b"hello"), 1002),
    "invalid utf-8 text": (_frame(0x81, b"\xc3\x28\xff"), 1007),
    "reserved opcode": (_frame(0x83, b""), 1002),
    "rsv bits without extension": (_frame(0xC1, b"x"), 1002),
    "fragmented ping": (_frame(0x09, b""), 1002),
    "continuation without start": (_frame(0x80, b"x"), 1002),
    "control frame too long": (_frame(0x89, b"p" * 126), 1002),
    "message too big": (_frame(0x82, b"b" * (MAX_MESSAGE + 1)), 1009),
    "huge declared length": (_frame(0x82, b"b" * 2000, length=1 << 40), 1009),
    "fragments adding up too big": (
        _frame(0x01, b"a" * 600) + _frame(0x80, b"a" * 600), 1009),
}


@pytest.mark.parametrize("case", list(FRAME_CASES))
def test_bad_frames_close_with_the_right_code(server: Server, watcher: RawWS, case: str) -> None:
    data, code = FRAME_CASES[case]
    ws = RawWS(server.port, "/")
    try:
        ws.sock.sendall(data)
        while True:
            op, payload = ws.recv_frame()
            if op == 8:
                break
        assert close_info(payload)[0] == code
    finally:
        ws.close()
    _still_streaming(server, watcher)


ABRUPT: dict[str, Callable[[socket.socket], None]] = {
    "half a request": lambda s: s.sendall(b"GET / HTTP/1.1\r\nHo"),
    "nothing": lambda s: None,
    "half a frame": lambda s: s.sendall(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + KEY.encode() + b"\r\nSec-WebSocket-Version: 13\r\n\r\n\x81\x85"),
}


@pytest.mark.parametrize("case", list(ABRUPT))
def test_abrupt_disconnects(server: Server, watcher: RawWS, case: str) -> None:
    sock = socket.create_connection(("127.0.0.1", server.port))
    ABRUPT[case](sock)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()  # with linger 0: a reset, the rudest way to leave
    _still_streaming(server, watcher)
    assert http_get(server.port, "/health")[0] == 200
