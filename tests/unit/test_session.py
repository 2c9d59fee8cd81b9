"""The sans-IO session and routes, driven with byte strings and a wsproto client."""

from __future__ import annotations

import json

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.support.sessions import open_ws as _open_ws
from tests.support.sessions import session_events as _events
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.extensions import PerMessageDeflate

from certstream.core.routes import (
    STREAM_DOMAINS,
    STREAM_FULL,
    STREAM_LITE,
    Route,
    RouteTable,
    split_target,
)
from certstream.core.session import (
    NEED_DATA,
    ClientClosed,
    ConnectionLost,
    PingReceived,
    ProtocolViolation,
    Rejected,
    RequestReceived,
    Session,
)
from certstream.errors import LocalProtocolError

ALL = RouteTable(api=True)


def _get(target: str, extra: str = "") -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode()


def _response(data: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    client.send(h11.EndOfMessage())
    client.receive_data(data)
    client.receive_data(b"")
    head = client.next_event()
    assert isinstance(head, h11.Response | h11.InformationalResponse)
    body = b""
    while True:
        event = client.next_event()
        if isinstance(event, h11.Data):
            body += event.data
        else:
            break
    return head.status_code, {k.lower(): v for k, v in head.headers}, body


def _ws_client_handshake(target: str = "/") -> tuple[WSConnection, bytes]:
    client = WSConnection(ConnectionType.CLIENT)
    return client, client.send(Request(host="x", target=target))


# -- routes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "upgrade", "route"),
    [
        ("/", True, Route("ws", STREAM_LITE)),
        ("/?x=1", True, Route("ws", STREAM_LITE)),
        ("/full-stream", True, Route("ws", STREAM_FULL)),
        ("/full-stream/", True, Route("ws", STREAM_FULL)),
        ("/domains-only/?a=b", True, Route("ws", STREAM_DOMAINS)),
        ("/domains-only", False, Route("http", STREAM_DOMAINS, "ws_page")),
        ("/sse", False, Route("sse", STREAM_LITE)),
        ("/sse/?stream=full", False, Route("sse", STREAM_FULL)),
        ("/sse?stream=domains", False, Route("sse", STREAM_DOMAINS)),
        ("/sse?stream=domains-only", False, Route("sse", STREAM_DOMAINS)),
        ("/sse?stream=bogus", False, Route("http", 0, "sse_bad_stream")),
        ("/sse?stream=", False, Route("http", 0, "sse_bad_stream")),
        ("/sse?stream=FULL", False, Route("sse", STREAM_FULL)),
        ("/sse?stream=lite", False, Route("sse", STREAM_LITE)),
        ("/health", False, Route("http", 0, "health")),
        ("/health/deep/", False, Route("http", 0, "health_deep")),
        ("/metrics", False, Route("http", 0, "metrics")),
        ("/example.json", False, Route("http", STREAM_LITE, "example")),
        ("/full-stream/example.json", False, Route("http", STREAM_FULL, "example")),
        ("/api/stats", False, Route("http", 0, "api_stats")),
        ("/api/logs", False, Route("http", 0, "api_logs")),
        ("/api/cert/AB:CD", False, Route("http", 0, "api_cert")),
        ("/api/cert/", False, None),
        ("/favicon.svg", False, Route("http", 0, "favicon")),
        ("/favicon.ico", False, Route("http", 0, "favicon")),
        ("/?domain=*.example.com&domain_re=%5Eapi", True, Route("ws", STREAM_LITE)),
        ("/nope", False, None),
        ("/full-streamx", True, None),
        ("//", True, Route("ws", STREAM_LITE)),  # one trailing slash is dropped
    ],
)
def test_resolve(target: str, upgrade: bool, route: Route | None) -> None:
    assert ALL.resolve(target.encode(), upgrade=upgrade) == route


def test_disabled_endpoints_are_not_routed() -> None:
    table = RouteTable(sse=False, metrics=False, full=False, api=False, example_json=False)
    assert table.resolve(b"/full-stream", upgrade=True) is None
    assert table.resolve(b"/full-stream", upgrade=False) is None
    assert table.resolve(b"/sse", upgrade=False) is None
    assert table.resolve(b"/metrics", upgrade=False) is None
    assert table.resolve(b"/api/stats", upgrade=False) is None
    assert table.resolve(b"/example.json", upgrade=False) is None
    assert table.resolve(b"/", upgrade=True) == Route("ws", STREAM_LITE)
    assert RouteTable(websocket=False).resolve(b"/", upgrade=True) is None
    # SSE asking for a disabled stream type is a 404, not a silent downgrade.
    assert RouteTable(domains=False).resolve(b"/sse?stream=domains", upgrade=False) is None


def test_split_target() -> None:
    assert split_target(b"/a/?q=1") == ("/a", "q=1")
    assert split_target(b"/") == ("/", "")
    assert split_target(b"") == ("/", "")


# -- HTTP ------------------------------------------------------------------------------------


def test_plain_get_is_routed_and_answered() -> None:
    session = Session(ALL)
    session.receive_data(_get("/health"))
    (event,) = _events(session)
    assert isinstance(event, RequestReceived)
    assert event.route == Route("http", 0, "health") and event.method == "GET"
    session.respond(200, b"OK", b"text/plain")
    assert session.should_close
    status, headers, body = _response(session.data_to_send())
    assert (status, body, headers[b"content-length"]) == (200, b"OK", b"2")
    with pytest.raises(LocalProtocolError):
        session.respond(200, b"again")


def test_request_split_across_reads() -> None:
    session = Session(ALL)
    data = _get("/metrics")
    for i in range(len(data) - 1):
        session.receive_data(data[i : i + 1])
        assert session.next_event() is NEED_DATA
    session.receive_data(data[-1:])
    assert isinstance(session.next_event(), RequestReceived)


def test_unknown_path_is_404_json() -> None:
    session = Session(ALL)
    session.receive_data(_get("/nothing/here"))
    (event,) = _events(session)
    assert event == Rejected(404, "not found")
    status, headers, body = _response(session.data_to_send())
    assert status == 404 and json.loads(body) == {"error": "Not Found"}
    assert headers[b"content-type"] == b"application/json"


def test_post_is_405() -> None:
    session = Session(ALL)
    session.receive_data(b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    (event,) = _events(session)
    assert isinstance(event, Rejected) and event.status == 405


@pytest.mark.parametrize(
    "data",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",  # no Host
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\r\n\r\n",  # TLS
    ],
)
def test_bad_http_is_400(data: bytes) -> None:
    session = Session(ALL)
    session.receive_data(data)
    (event,) = _events(session)
    assert isinstance(event, Rejected) and event.status == 400
    assert session.should_close
    assert session.data_to_send().startswith(b"HTTP/1.1 400 ")


def test_oversized_headers_are_431() -> None:
    session = Session(ALL, max_header_bytes=1024)
    session.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 4096)
    (event,) = _events(session)
    assert isinstance(event, Rejected) and event.status == 431


def test_eof_before_request() -> None:
    session = Session(ALL)
    session.receive_data(b"")
    assert _events(session) == [ConnectionLost()]
    half = Session(ALL)
    half.receive_data(b"GET / HT")
    half.receive_data(b"")
    (event,) = _events(half)
    assert isinstance(event, Rejected) and event.status == 400


def test_plain_get_on_stream_path_is_html_route() -> None:
    session = Session(ALL)
    session.receive_data(_get("/full-stream/"))
    (event,) = _events(session)
    assert isinstance(event, RequestReceived)
    assert event.route == Route("http", STREAM_FULL, "ws_page")


# -- SSE -------------------------------------------------------------------------------------


def test_sse_head_is_close_delimited_event_stream() -> None:
    session = Session(ALL)
    session.receive_data(_get("/sse?stream=full"))
    (event,) = _events(session)
    assert isinstance(event, RequestReceived) and event.route == Route("sse", STREAM_FULL)
    session.start_sse()
    head = session.data_to_send()
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n")
    assert b"Content-Type: text/event-stream\r\n" in head
    assert b"Transfer-Encoding" not in head and b"Content-Length" not in head
    session.receive_data(b"whatever the client sends is ignored")
    assert _events(session) == []
    session.receive_data(b"")
    assert _events(session) == [ConnectionLost()]


# -- WebSocket ---------------------------------------------------------------------------------


def test_handshake_offers_no_extensions() -> None:
    session = Session(ALL)
    client = WSConnection(ConnectionType.CLIENT)
    offer = Request(host="x", target="/", extensions=[PerMessageDeflate()])
    session.receive_data(client.send(offer))
    _events(session)
    session.accept_websocket()
    data = session.data_to_send()
    assert data.startswith(b"HTTP/1.1 101 ")
    assert b"sec-websocket-extensions" not in data.lower()
    client.receive_data(data)
    assert isinstance(next(client.events()), AcceptConnection)


def test_ping_gets_pong_and_text_is_ignored() -> None:
    session, client = _open_ws()
    session.receive_data(client.send(TextMessage("ping")) + client.send(Ping(b"abc")))
    assert _events(session) == [PingReceived(b"abc")]
    client.receive_data(session.data_to_send())
    assert list(client.events()) == [Pong(b"abc")]


def test_frames_sent_with_the_handshake_are_processed() -> None:
    _client, hello = _ws_client_handshake("/domains-only")
    # A client should wait for the 101 before sending frames; tolerate it when it does not.
    session2 = Session(ALL)
    session2.receive_data(hello + b"\x89\x80\x00\x00\x00\x00")  # masked empty ping
    (event,) = _events(session2)
    assert isinstance(event, RequestReceived)
    session2.accept_websocket()
    assert _events(session2) == [PingReceived(b"")]
    assert session2.data_to_send().endswith(b"\x8a\x00")


def test_client_close_is_answered() -> None:
    session, client = _open_ws()
    session.receive_data(client.send(CloseConnection(1000, "bye")))
    assert _events(session) == [ClientClosed(1000, "bye")]
    assert session.should_close
    client.receive_data(session.data_to_send())
    (event,) = client.events()
    assert isinstance(event, CloseConnection) and event.code == 1000


def test_unmasked_frame_is_1002() -> None:
    session, client = _open_ws()
    session.receive_data(b"\x81\x02hi")  # text frame without a mask
    (event,) = _events(session)
    assert isinstance(event, ProtocolViolation) and event.code == 1002
    client.receive_data(session.data_to_send())
    (close,) = client.events()
    assert isinstance(close, CloseConnection) and close.code == 1002


def test_invalid_utf8_is_1007() -> None:
    session, _client = _open_ws()
    session.receive_data(b"\x81\x82\x00\x00\x00\x00\xff\xfe")  # zero mask: payload as is
    (event,) = _events(session)
    assert isinstance(event, ProtocolViolation) and event.code == 1007


def test_bad_opcode_is_1002() -> None:
    session, _client = _open_ws()
    session.receive_data(b"\x83\x80\x00\x00\x00\x00")
    (event,) = _events(session)
    assert isinstance(event, ProtocolViolation) and event.code == 1002


def test_big_message_is_1009_even_when_fragmented() -> None:
    session, client = _open_ws(max_message_bytes=1000)
    session.receive_data(client.send(TextMessage("a" * 600, message_finished=False)))
    assert _events(session) == []
    session.receive_data(client.send(TextMessage("a" * 600, message_finished=True)))
    (event,) = _events(session)
    assert isinstance(event, ProtocolViolation) and event.code == 1009
    # A declared length far above the limit closes before the payload arrives in full.
    session2, _ = _open_ws(max_message_bytes=1000)
    session2.receive_data(b"\x82\xff" + (1 << 40).to_bytes(8, "big") + b"\0\0\0\0" + b"x" * 2000)
    (event2,) = _events(session2)
    assert isinstance(event2, ProtocolViolation) and event2.code == 1009


def test_messages_under_the_limit_reset_the_count() -> None:
    session, client = _open_ws(max_message_bytes=1000)
    for _ in range(5):
        session.receive_data(client.send(TextMessage("a" * 900)))
    assert _events(session) == []


def test_server_close() -> None:
    session, client = _open_ws()
    session.close_websocket(1001, "server shutting down")
    assert session.should_close
    client.receive_data(session.data_to_send())
    (event,) = client.events()
    assert isinstance(event, CloseConnection)
    assert (event.code, event.reason) == (1001, "server shutting down")


@pytest.mark.parametrize(
    ("extra", "status"),
    [
        ("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n", 400),
        (
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
            "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n",
            426,
        ),
        ("Upgrade: websocket\r\nSec-WebSocket-Key: a\r\nSec-WebSocket-Version: 13\r\n", 400),
    ],
)
def test_bad_upgrade(extra: str, status: int) -> None:
    session = Session(ALL)
    session.receive_data(_get("/", extra))
    (event,) = _events(session)
    assert isinstance(event, RequestReceived) and event.route.kind == "ws"
    session.accept_websocket()
    (rejected,) = _events(session)
    assert isinstance(rejected, Rejected) and rejected.status == status
    data = session.data_to_send()
    assert data.startswith(b"HTTP/1.1 %d " % status)
    if status == 426:
        assert b"Sec-WebSocket-Version: 13\r\n" in data
    client = WSConnection(ConnectionType.CLIENT)
    client.send(Request(host="x", target="/"))
    client.receive_data(data)
    assert isinstance(next(client.events()), RejectConnection | RejectData)


def test_eof_on_websocket() -> None:
    session, _client = _open_ws()
    session.receive_data(b"")
    session.receive_data(b"")
    assert _events(session) == [ConnectionLost()]


def test_server_close_then_client_reply_is_reported() -> None:
    session, client = _open_ws()
    session.close_websocket(1001, "server shutting down")
    client.receive_data(session.data_to_send())
    (close,) = client.events()
    assert isinstance(close, CloseConnection)
    # A ping that crossed our Close is not answered; the client's Close reply ends it.
    session.receive_data(b"\x89\x80\x00\x00\x00\x00" + client.send(close.response()))
    assert _events(session) == [ClientClosed(1001, "server shutting down")]
    assert session.data_to_send() == b""


def test_http10_upgrade_without_host_is_400() -> None:
    session = Session(ALL)
    session.receive_data(
        b"GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    (event,) = _events(session)
    assert isinstance(event, RequestReceived)
    session.accept_websocket()
    (rejected,) = _events(session)
    assert isinstance(rejected, Rejected) and rejected.status == 400


_KNOWN = (RequestReceived, Rejected, ConnectionLost, PingReceived, ClientClosed,
          ProtocolViolation)


def _drive(session: Session) -> None:
    """Answer whatever arrives as the shell would; only session events may come out."""
    while (event := session.next_event()) is not NEED_DATA:
        assert isinstance(event, _KNOWN)
        if isinstance(event, RequestReceived):
            if event.route.kind == "ws":
                session.accept_websocket()
            elif event.route.kind == "sse":
                session.start_sse()
            else:
                session.respond(200, b"x")
    session.data_to_send()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=4))
def test_any_bytes_before_the_request_end_in_session_events(chunks: list[bytes]) -> None:
    session = Session(ALL, max_header_bytes=512)
    for chunk in [*chunks, b""]:
        session.receive_data(chunk)
        _drive(session)


_UPGRADE = (
    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.lists(st.binary(max_size=300), max_size=4))
def test_any_headers_or_frames_end_in_session_events(extra: bytes,
                                                     chunks: list[bytes]) -> None:
    session = Session(ALL, max_message_bytes=256)
    session.receive_data(_UPGRADE + extra + b"\r\n\r\n")
    _drive(session)
    for chunk in [*chunks, b""]:
        session.receive_data(chunk)
        _drive(session)


@st.composite
def _client_frames(draw: st.DrawFn) -> bytes:
    """Mostly well-formed masked frames with random opcodes, flags and payloads."""
    first = draw(st.integers(0, 255))
    payload = draw(st.binary(max_size=300))
    masked = draw(st.booleans()) or draw(st.booleans())
    n = len(payload)
    head = bytes((first,)) + (
        bytes(((0x80 if masked else 0) | n,)) if n < 126
        else bytes(((0x80 if masked else 0) | 126,)) + n.to_bytes(2, "big")
    )
    return head + (b"\0\0\0\0" if masked else b"") + payload


@settings(max_examples=500, deadline=None)
@given(st.lists(_client_frames(), max_size=6), st.integers(1, 64))
def test_any_frames_on_an_open_websocket_end_in_session_events(
    frames_in: list[bytes], cut: int
) -> None:
    session, _client = _open_ws(max_message_bytes=256)
    assert session.is_websocket
    data = b"".join(frames_in)
    for i in range(0, len(data), cut):  # and split anywhere
        session.receive_data(data[i : i + cut])
        _drive(session)
    session.receive_data(b"")
    _drive(session)


def test_an_idle_websocket_session_is_small() -> None:
    # Tens of thousands of these stay open: after the upgrade and a pong (what an idle
    # client sends), a session holds its own slots and little else (~145 bytes traced).
    # Was ~1.95 KB: an event deque of its own in each wsproto connection (760 bytes) and
    # two empty lists; then ~1,075 with wsproto's frame parser held between frames (~930).
    import gc  # noqa: PLC0415
    import tracemalloc  # noqa: PLC0415

    def idle() -> Session:
        session, client = _open_ws()
        session.receive_data(client.send(Pong(b"")))
        assert _events(session) == [] and session.data_to_send() == b""
        assert not session.holds_frame_parser
        return session

    idle()  # first-use allocations (caches, interned strings) out of the count
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [idle() for _ in range(300)]
        gc.collect()
        per_session = (tracemalloc.get_traced_memory()[0] - before) / len(kept)
    finally:
        tracemalloc.stop()
    assert per_session < 400, per_session
    # Sessions that share the parser's empty queue still each get their own events.
    kept[0].receive_data(b"\x89\x80\x00\x00\x00\x00")  # a masked, empty ping
    assert _events(kept[0]) == [PingReceived(b"")] and _events(kept[1]) == []
