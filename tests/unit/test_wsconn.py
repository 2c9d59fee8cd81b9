"""wsproto's frame parser, held by a session only while a client's frame or message is
unfinished: ``core.wsconn.FrameBounds`` (where frames and messages end, in any chunks) and
the session around it, which must answer exactly as one that never drops its parser."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.support.sessions import open_ws, session_events
from tests.support.wsframes import BINARY, CLOSE, PING, PONG, TEXT, close_info, encode_frame
from tests.support.wsframes import next_frame as server_frame
from wsproto import ConnectionType
from wsproto.connection import Connection, ConnectionState
from wsproto.events import CloseConnection, Ping, TextMessage
from wsproto.extensions import Extension

from certstream.core.deflate import deflate_message
from certstream.core.routes import RouteTable
from certstream.core.session import ClientClosed, PingReceived, ProtocolViolation, Session
from certstream.core.wsconn import BoundedInflate, FrameBounds, frame_connection

FIN, RSV1, CONTINUATION = 0x80, 0x40, 0
MASK = b"\x37\xfa\x21\x3d"


def _frame(first: int, payload: bytes = b"", mask: bytes = MASK) -> bytes:
    return encode_frame(first, payload, mask=mask)


def _stream(*frames: tuple[bytes, bool]) -> tuple[bytes, frozenset[int]]:
    """The frames' bytes, and the lengths of the prefixes after which nothing is unfinished:
    each frame comes with whether every message it belongs to has ended after it."""
    data, rest = b"", {0}
    for frame, ended in frames:
        data += frame
        if ended:
            rest.add(len(data))
    return data, frozenset(rest)


_WORDS = "héllo wörld ✓ ".encode()  # multi-byte characters: fragments cut them

#: Client streams, each with its ends (as ``_stream``) and the events a session reports.
CASES = {
    "ping": (
        _stream((_frame(FIN | PING, b"abc"), True)),
        [PingReceived(b"abc")],
    ),
    "fragmented text, a ping between": (
        _stream(
            (_frame(TEXT, _WORDS[:2]), False),
            (_frame(FIN | PING, b"mid"), False),
            (_frame(CONTINUATION, _WORDS[2:9]), False),
            (_frame(FIN | CONTINUATION, _WORDS[9:]), True),
        ),
        [PingReceived(b"mid")],
    ),
    "many frames, 16-bit lengths": (
        _stream(
            (_frame(FIN | PONG, b""), True),
            (_frame(FIN | BINARY, bytes(range(200))), True),
            (_frame(FIN | TEXT, _WORDS * 20), True),
            (_frame(BINARY, b"x" * 130), False),
            (_frame(FIN | CONTINUATION, b""), True),
            (_frame(FIN | PING, b"end"), True),
        ),
        [PingReceived(b"end")],
    ),
    "masked close": (
        # The connection is over once the Close arrived: no prefix but the empty one is at
        # rest, as the session keeps its parser to the end.
        (_frame(FIN | CLOSE, (1000).to_bytes(2, "big") + b"bye"), frozenset({0})),
        [ClientClosed(1000, "bye")],
    ),
}

#: A frame with a 64-bit length (its payload is 65,536 bytes or more).
BIG = _frame(FIN | BINARY, bytes(range(256)) * 257)
BIG_LIMIT = 1 << 17


# -- FrameBounds --------------------------------------------------------------------------------


def _at_rest_after(data: bytes, cuts: list[int]) -> list[bool]:
    bounds, at = FrameBounds(), 0
    out = []
    for cut in [*cuts, len(data)]:
        bounds.feed(data[at:cut])
        at = cut
        out.append(bounds.at_rest)
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_bounds_at_every_split_and_byte_by_byte(name: str) -> None:
    (data, rest), _events = CASES[name]
    rest = rest | {len(data)}  # FrameBounds knows nothing of Close: it ended a frame
    for k in range(len(data) + 1):
        assert _at_rest_after(data, [k]) == [k in rest, True], k
    assert _at_rest_after(data, list(range(len(data)))) == [
        k in rest for k in range(len(data) + 1)
    ]


def test_bounds_of_a_64_bit_length_frame_byte_by_byte() -> None:
    data = BIG + _frame(FIN | PING)
    bounds = FrameBounds()
    for i in range(len(data)):
        bounds.feed(data[i : i + 1])
        assert bounds.at_rest == (i + 1 in (len(BIG), len(data))), i


def test_bounds_of_headers_of_every_size() -> None:
    # 2 to 14 header bytes: 7-, 16- and 64-bit lengths, with and without a mask key (a
    # server must refuse an unmasked frame, but that is wsproto's to say).
    for n in (0, 1, 125, 126, 65535, 65536):
        for mask in (MASK, None):
            frame = encode_frame(FIN | BINARY, b"z" * n, mask=mask)
            cuts = list(range(len(frame) - n + 1))  # through the header, a byte at a time
            assert _at_rest_after(frame, cuts) == [
                *(k in (0, len(frame)) for k in cuts), True
            ], (n, mask)


def test_bounds_of_a_declared_length_alone() -> None:
    bounds = FrameBounds()
    bounds.feed(b"\x82\xff" + (1 << 40).to_bytes(8, "big") + MASK + b"x" * 100)
    assert not bounds.at_rest  # 2**40 - 100 payload bytes still to come


@st.composite
def client_streams(draw: st.DrawFn, compressed: bool = False) -> tuple[bytes, frozenset[int]]:
    """Valid client frames: whole and fragmented text and binary messages (compressed ones
    with RSV1 on their first fragment), pings and pongs between messages and between
    fragments (compressed messages too: ``BoundedInflate`` keeps a control frame out of the
    message it interrupts), random masks and lengths on both sides of 125; with their ends
    (``_stream``).
    """
    frames: list[tuple[bytes, bool]] = []
    for _ in range(draw(st.integers(0, 5))):
        mask = draw(st.binary(min_size=4, max_size=4))
        control = st.tuples(st.sampled_from([PING, PONG]), st.binary(max_size=125))
        if draw(st.booleans()):
            opcode, payload = draw(control)
            frames.append((_frame(FIN | opcode, payload, mask), True))
            continue
        opcode = draw(st.sampled_from([TEXT, BINARY]))
        if opcode == TEXT:
            body = draw(st.text(max_size=150)).encode()
        else:
            body = draw(st.binary(max_size=300))
        first = opcode
        if compressed:
            body = deflate_message(body)
            first |= RSV1
        cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=3)))
        parts = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            frames.append((_frame((FIN if last else 0) | (first if i == 0 else 0), part, mask),
                           last))
            if not last and draw(st.integers(0, 3)) == 0:
                opcode, payload = draw(control)
                frames.append((_frame(FIN | opcode, payload, mask), False))
    return _stream(*frames)


def _cuts(data: st.DataObject, length: int) -> list[int]:
    """Where to cut ``length`` bytes in chunks: anywhere, a byte apart or hundreds."""
    if length < 2:
        return []
    return sorted(set(data.draw(st.lists(st.integers(1, length - 1), max_size=16))))


@settings(max_examples=300, deadline=None)
@given(st.data(), st.booleans())
def test_bounds_of_any_valid_stream_in_any_chunks(data: st.DataObject, compressed: bool) -> None:
    stream, rest = data.draw(client_streams(compressed))
    cuts = _cuts(data, len(stream))
    assert _at_rest_after(stream, cuts) == [c in rest for c in [*cuts, len(stream)]]


def test_frame_connection_is_the_upgrade_s() -> None:
    plain = frame_connection(None)
    assert plain.state is ConnectionState.OPEN and not plain.client
    assert not plain._proto.extensions  # which extension it runs
    deflate = frame_connection(1000)
    (extension,) = deflate._proto.extensions
    assert isinstance(extension, BoundedInflate) and extension.enabled()
    assert extension.client_no_context_takeover and extension.server_no_context_takeover


# -- the session ----------------------------------------------------------------------------


def _feed(chunks: list[bytes],
          max_message_bytes: int = 65536) -> tuple[list[object], bytes, list[bool]]:
    """A fresh session fed ``chunks``: its events, its output, and after each chunk whether
    it held a frame parser."""
    session, _client = open_ws(max_message_bytes=max_message_bytes)
    assert not session.holds_frame_parser  # nothing sent yet
    events: list[object] = []
    out = b""
    held: list[bool] = []
    for chunk in chunks:
        session.receive_data(chunk)
        events += session_events(session)
        out += session.data_to_send()
        held.append(session.holds_frame_parser)
    return events, out, held


def test_an_idle_session_holds_no_parser() -> None:
    session, client = open_ws()
    assert session.is_websocket and not session.holds_frame_parser  # right after the 101
    session.receive_data(client.send(Ping(b"are you there")))
    assert session_events(session) == [PingReceived(b"are you there")]
    assert session.data_to_send() == b"\x8a\x0dare you there"  # the Pong
    assert not session.holds_frame_parser
    session.receive_data(_frame(FIN | PING)[:3])
    assert session.holds_frame_parser and session_events(session) == []
    session.receive_data(_frame(FIN | PING)[3:])
    assert session_events(session) == [PingReceived(b"")]
    assert not session.holds_frame_parser


@pytest.mark.parametrize("name", list(CASES))
def test_any_split_gives_the_same_events_and_bytes(name: str) -> None:
    (data, rest), expected = CASES[name]
    events, out, held = _feed([data])
    assert events == expected
    assert held == [len(data) not in rest]
    for k in range(1, len(data)):
        assert _feed([data[:k], data[k:]]) == (events, out, [k not in rest, held[0]]), k
    assert _feed([data[i : i + 1] for i in range(len(data))]) == (
        events, out, [k not in rest for k in range(1, len(data) + 1)]
    )


def test_a_masked_close_is_answered() -> None:
    (data, _rest), _events = CASES["masked close"]
    _events2, out, _held = _feed([data[:5], data[5:]])  # every split gives these bytes
    frame = server_frame(out)
    assert frame is not None and frame[0] == CLOSE and close_info(frame[1]) == (1000, "bye")
    assert frame[2] == len(out)


def test_a_64_bit_length_frame_in_any_split() -> None:
    data = BIG + _frame(FIN | PING, b"after")
    whole = _feed([data], max_message_bytes=BIG_LIMIT)
    assert whole == ([PingReceived(b"after")], b"\x8a\x05after", [False])
    # Every cut in the header, mask key and first payload bytes, around the end of the
    # frame, and every 509th byte between (every one would take a minute).
    cuts = [*range(1, 40), *range(40, len(BIG) - 40, 509), *range(len(BIG) - 40, len(data))]
    for k in cuts:
        split = _feed([data[:k], data[k:]], max_message_bytes=BIG_LIMIT)
        assert split == (whole[0], whole[1], [k != len(BIG), False]), k
    events, out, held = _feed([data[i : i + 1] for i in range(len(data))],
                              max_message_bytes=BIG_LIMIT)
    assert (events, out) == whole[:2]
    assert held == [k not in (len(BIG), len(data)) for k in range(1, len(data) + 1)]


def test_compressed_messages_inflate_after_the_parser_was_dropped() -> None:
    # Text whose compressed bytes are not UTF-8: a message not inflated would be a 1007.
    text = ("señal ✓ " * 125).encode()[:1000]
    body = deflate_message(text)
    with pytest.raises(UnicodeDecodeError):
        body.decode()
    session, client = open_ws(compression=True, max_message_bytes=len(text))
    assert session.deflate is not None
    for _ in range(2):
        session.receive_data(_frame(FIN | RSV1 | TEXT, body))
        assert session_events(session) == [] and not session.should_close
        assert not session.holds_frame_parser
    # The same message in two fragments, a ping between them, held while unfinished.
    session.receive_data(_frame(RSV1 | TEXT, body[:7]))
    assert session.holds_frame_parser
    session.receive_data(_frame(FIN | CONTINUATION, body[7:]))
    assert session_events(session) == [] and not session.holds_frame_parser
    # And as a wsproto client compresses it (no context kept between messages).
    for _ in range(2):
        session.receive_data(client.send(TextMessage(text.decode())))
        assert session_events(session) == [] and not session.holds_frame_parser
    # One byte more is counted as inflated: exactly the message the limit allows, no more.
    session.receive_data(_frame(FIN | RSV1 | BINARY, deflate_message(text + b"!")))
    (event,) = session_events(session)
    assert isinstance(event, ProtocolViolation) and event.code == 1009


def test_a_ping_between_compressed_fragments_leaves_the_message_alone() -> None:
    # RFC 6455 5.4: control frames may come between a message's fragments.  The message is
    # still inflated whole (not a 1007), the ping answered, and the next message inflates
    # with a clean decompressor, whether the parser was dropped in between or not.
    text = ("señal ✓ " * 125).encode()[:1000]
    body = deflate_message(text)
    session, _client = open_ws(compression=True, max_message_bytes=len(text))
    for _ in range(2):
        session.receive_data(_frame(RSV1 | TEXT, body[:9]) + _frame(FIN | PING, b"hi"))
        assert session_events(session) == [PingReceived(b"hi")]
        assert session.holds_frame_parser  # the message is still open
        session.receive_data(_frame(FIN | CONTINUATION, body[9:]))
        assert session_events(session) == [] and not session.should_close
    # And with the parser kept between messages (a connection never dropped).
    conn = frame_connection(len(text))
    for _ in range(2):
        conn.receive_data(_frame(RSV1 | TEXT, body[:9]) + _frame(FIN | PING, b"hi")
                          + _frame(FIN | CONTINUATION, body[9:]))
        got = list(conn.events())
        assert sum(isinstance(e, Ping) for e in got) == 1
        assert "".join(e.data for e in got if isinstance(e, TextMessage)).encode() == text


@pytest.mark.parametrize("inside", [False, True], ids=["after-a-ping", "inside-a-message"])
@pytest.mark.parametrize("code", [1002, 1007, 1009])
def test_violations_keep_their_codes(inside: bool, code: int) -> None:
    # Before the bad frame: a whole ping (no parser held), or a message begun with 2 bytes
    # (held, 2 bytes counted); the bad frame ends that message or is a new one.
    before = _frame(TEXT, b"ab") if inside else _frame(FIN | PING)
    first = FIN | (CONTINUATION if inside else TEXT)
    if code == 1002:
        bad = encode_frame(first, b"hi", mask=None)  # unmasked
    elif code == 1007:
        bad = encode_frame(first, b"ok \xff\xfe", mask=MASK)  # not UTF-8
    else:  # 1,001 bytes in the message, counted across its fragments
        bad = encode_frame(first, b"a" * (1001 - 2 * inside), mask=MASK)
    for k in range(1, len(bad) + 1):
        session, _client = open_ws(max_message_bytes=1000)
        session.receive_data(before)
        assert session.holds_frame_parser == inside
        session_events(session)
        session.data_to_send()
        session.receive_data(bad[:k])
        if k < len(bad):
            session.receive_data(bad[k:])
        (event,) = session_events(session)
        assert isinstance(event, ProtocolViolation) and event.code == code, (k, event)
        assert session.should_close and session.holds_frame_parser
        frame = server_frame(session.data_to_send())
        assert frame is not None and frame[0] == CLOSE and close_info(frame[1])[0] == code


def test_server_close_between_frames_reads_the_client_s_answer() -> None:
    session, _client = open_ws()
    session.receive_data(_frame(FIN | PONG))
    assert not session.holds_frame_parser
    session.close_websocket(1001, "bye")
    assert session.holds_frame_parser  # made for our Close, kept while closing
    frame = server_frame(session.data_to_send())
    assert frame is not None and frame[0] == CLOSE and close_info(frame[1]) == (1001, "bye")
    answer = _frame(FIN | CLOSE, (1001).to_bytes(2, "big"))
    session.receive_data(_frame(FIN | PING) + answer[:3])  # a ping crossing our Close
    assert session_events(session) == [] and session.holds_frame_parser
    session.receive_data(answer[3:])
    assert session_events(session) == [ClientClosed(1001, "")]
    assert session.data_to_send() == b""


def test_frames_after_the_upgrade_request_and_a_partial_one() -> None:
    session = Session(RouteTable())
    hello = (
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    ping = _frame(FIN | PING, b"early")
    session.receive_data(hello + ping + ping[:4])
    session_events(session)
    session.accept_websocket()
    assert session_events(session) == [PingReceived(b"early")]
    assert session.holds_frame_parser  # the second ping is not whole yet
    session.receive_data(ping[4:])
    assert session_events(session) == [PingReceived(b"early")]
    assert not session.holds_frame_parser
    assert session.data_to_send().endswith(b"\x8a\x05early" * 2)


# -- the same as a parser never dropped ---------------------------------------------------


def _reference(chunks: list[bytes], inflate_limit: int | None) -> tuple[list[object], bytes]:
    """What a session answers, computed with one raw wsproto connection that lives as long as
    the client (as sessions held it before they dropped it between frames)."""
    extensions: list[Extension] = []
    if inflate_limit is not None:
        extensions.append(BoundedInflate(inflate_limit))
    conn = Connection(ConnectionType.SERVER, extensions=extensions)
    events: list[object] = []
    out = b""
    for chunk in chunks:
        conn.receive_data(chunk)
        for event in conn.events():
            if isinstance(event, Ping):
                out += conn.send(event.response())
                events.append(PingReceived(bytes(event.payload)))
            elif isinstance(event, CloseConnection):
                if conn.state is ConnectionState.OPEN:  # a parse failure
                    reason = event.reason or "protocol error"
                    out += conn.send(CloseConnection(event.code, reason))
                    events.append(ProtocolViolation(event.code, reason))
                else:
                    out += conn.send(event.response())
                    events.append(ClientClosed(event.code, event.reason or ""))
                return events, out
    return events, out


@settings(max_examples=300, deadline=None)
@given(st.data(), st.booleans(), st.booleans())
def test_any_valid_frames_in_any_chunks_as_a_parser_never_dropped(
    data: st.DataObject, compressed: bool, closing: bool
) -> None:
    stream, rest = data.draw(client_streams(compressed))
    if closing:  # a Close at the end: from its first byte on the parser is kept
        stream += _frame(FIN | CLOSE, (1000).to_bytes(2, "big") + b"done")
    cuts = _cuts(data, len(stream))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    chunks = [c for c in chunks if c]  # b"" would be the end of the connection
    limit = 1 << 20
    session, _client = open_ws(compression=compressed, max_message_bytes=limit)
    assert (session.deflate is not None) == compressed
    events: list[object] = []
    out = b""
    at = 0
    for chunk in chunks:
        session.receive_data(chunk)
        at += len(chunk)
        events += session_events(session)
        out += session.data_to_send()
        assert session.holds_frame_parser == (at not in rest), at
    assert (events, out) == _reference(chunks, limit if compressed else None)
    assert not any(isinstance(e, ProtocolViolation) for e in events)
