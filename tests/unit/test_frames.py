"""WebSocket frames against wsproto's own serializer and parser; SSE event framing."""

from __future__ import annotations

import contextlib
import importlib
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.frame_protocol import FrameProtocol, Opcode

from certstream._fast import NO_EXTENSIONS
from certstream.core import frames
from certstream.errors import LocalProtocolError

SIZES = [0, 1, 125, 126, 127, 1000, 65535, 65536, 70000]


def _server() -> FrameProtocol:
    return FrameProtocol(client=False, extensions=[])


def _parse(data: bytes) -> list[tuple[Opcode, bytes, bool]]:
    """Parse server frames as a client does (wsproto rejects masked frames from a server)."""
    client = FrameProtocol(client=True, extensions=[])
    client.receive_bytes(data)
    out = []
    for f in client.received_frames():
        raw: Any = f.payload  # str for text, bytes for binary, (code, reason) for close
        payload = raw.encode() if isinstance(raw, str) else bytes(raw)
        out.append((f.opcode, payload, f.frame_finished))
    return out


@pytest.mark.parametrize("size", SIZES)
def test_text_frame_equals_wsproto(frames_mod: ModuleType, size: int) -> None:
    payload = (b"{\"a\":\"\xc3\xa9\"}" * (size // 10 + 1))[:size]
    payload = payload.decode("utf-8", "ignore").encode()
    want = bytes(_server().send_data(payload.decode(), fin=True))
    assert frames_mod.ws_frame(payload) == want
    assert _parse(want) == [(Opcode.TEXT, payload, True)]


@pytest.mark.parametrize("size", SIZES)
def test_binary_frame_equals_wsproto(frames_mod: ModuleType, size: int) -> None:
    payload = bytes(i % 251 for i in range(size))
    assert frames_mod.ws_frame(payload, 2) == bytes(_server().send_data(payload, fin=True))


def test_header_lengths(frames_mod: ModuleType) -> None:
    assert frames_mod.ws_frame(b"x" * 125)[:2] == b"\x81\x7d"
    assert frames_mod.ws_frame(b"x" * 126)[:4] == b"\x81\x7e\x00\x7e"
    assert frames_mod.ws_frame(b"x" * 65536)[:10] == b"\x81\x7f" + (65536).to_bytes(8, "big")


@pytest.mark.parametrize("payload", [b"", b"ping", b"p" * 125])
def test_ping_and_pong_equal_wsproto(frames_mod: ModuleType, payload: bytes) -> None:
    assert frames_mod.ws_ping_frame(payload) == bytes(_server().ping(payload))
    assert frames_mod.ws_pong_frame(payload) == bytes(_server().pong(payload))
    assert frames_mod.ws_ping_frame() == b"\x89\x00"


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (1000, ""),
        (1001, "going away"),
        (1008, "No ping received!"),
        (1013, "too slow: " + "é" * 100),  # cut at a character boundary to fit 125 bytes
        (4000, "x" * 200),
    ],
)
def test_close_equals_wsproto(frames_mod: ModuleType, code: int, reason: str) -> None:
    got = frames_mod.ws_close_frame(code, reason)
    assert got == bytes(_server().close(code, reason))
    assert len(got) <= 127
    got[4:].decode("utf-8")  # still valid UTF-8 after the cut


def test_close_without_code(frames_mod: ModuleType) -> None:
    assert frames_mod.ws_close_frame(None) == b"\x88\x00"
    with pytest.raises(LocalProtocolError):
        frames_mod.ws_close_frame(None, "why")


@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 2000, 5000])
def test_close_codes_that_must_not_be_sent(frames_mod: ModuleType, code: int) -> None:
    with pytest.raises(LocalProtocolError):
        frames_mod.ws_close_frame(code, "")


def test_bad_opcode_and_long_control_frames(frames_mod: ModuleType) -> None:
    for opcode in (3, 7, 11, 15, -1, 256):
        with pytest.raises(LocalProtocolError):
            frames_mod.ws_frame(b"", opcode)
    with pytest.raises(LocalProtocolError):
        frames_mod.ws_ping_frame(b"p" * 126)
    with pytest.raises(LocalProtocolError):
        frames_mod.ws_frame(b"p" * 126, 8)


def test_join_ws_frames(frames_mod: ModuleType) -> None:
    payloads = [b"", b"a", b"b" * 126, b"c" * 70000, b'{"x":1}\n']
    joined = frames_mod.join_ws_frames(payloads)
    assert joined == b"".join(frames_mod.ws_frame(p) for p in payloads)
    assert [p for _, p, _ in _parse(joined)] == payloads
    assert frames_mod.join_ws_frames([]) == b""


def test_join_accepts_any_sequence_of_bytes(frames_mod: ModuleType) -> None:
    assert frames_mod.join_ws_frames((b"a", b"b")) == b"\x81\x01a\x81\x01b"


@pytest.mark.parametrize(
    ("payload", "event_id", "want"),
    [
        (b'{"a":1}\n', 7, b'id: 7\ndata: {"a":1}\n\n'),
        (b'{"a":1}', None, b'data: {"a":1}\n\n'),
        (b"one\ntwo\n", 0, b"id: 0\ndata: one\ndata: two\n\n"),
        (b"one\r\ntwo\rthree", 3, b"id: 3\ndata: one\ndata: two\ndata: three\n\n"),
        (b"", None, b"data: \n\n"),
        (b"\n", 1, b"id: 1\ndata: \n\n"),
        (b"end\n\n", None, b"data: end\ndata: \n\n"),
    ],
)
def test_sse_event(
    frames_mod: ModuleType, payload: bytes, event_id: int | None, want: bytes
) -> None:
    assert frames_mod.sse_event(payload, event_id) == want


def test_sse_event_round_trips_through_an_sse_parser(frames_mod: ModuleType) -> None:
    # The EventSource algorithm: data lines joined with "\n".
    payload = b'{"k": "multi\\nline"}\nsecond line'
    event = frames_mod.sse_event(payload, 12).decode()
    assert event.endswith("\n\n")
    fields = [line.split(": ", 1) for line in event[:-2].split("\n")]
    assert fields[0] == ["id", "12"]
    assert "\n".join(v for k, v in fields if k == "data").encode() == payload


def test_sse_comment(frames_mod: ModuleType) -> None:
    assert frames_mod.sse_comment(b"heartbeat") == b": heartbeat\n\n"
    assert frames_mod.sse_comment() == b": \n\n"
    with pytest.raises(LocalProtocolError):
        frames_mod.sse_comment(b"a\nb")


def test_facade_exports_the_same_functions() -> None:
    assert frames.ws_frame(b"hi") == b"\x81\x02hi"
    assert frames.sse_event(b"x\n", 1) == b"id: 1\ndata: x\n\n"


def _frame_twins() -> list[ModuleType]:
    mods = [importlib.import_module("certstream._fast._frames_py")]
    if not NO_EXTENSIONS:
        with contextlib.suppress(ImportError):  # test_fast_loaded reports a missing build
            mods.append(importlib.import_module("certstream._fast._frames"))
    return mods


FRAME_TWINS = _frame_twins()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.text(max_size=300).map(str.encode), max_size=8),
    st.integers(0, 1 << 40) | st.none(),
)
def test_twins_agree_and_frames_parse_back(payloads: list[bytes], event_id: int | None) -> None:
    joined = {m.join_ws_frames(payloads) for m in FRAME_TWINS}
    assert len(joined) == 1
    assert [p for _, p, _ in _parse(joined.pop())] == payloads
    for p in payloads:
        assert len({m.ws_frame(p, 2) for m in FRAME_TWINS}) == 1
        assert len({m.sse_event(p, event_id) for m in FRAME_TWINS}) == 1


@pytest.mark.parametrize("size", SIZES)
def test_compressed_frame_is_a_text_frame_with_rsv1(frames_mod: ModuleType, size: int) -> None:
    data = bytes(range(256)) * (size // 256 + 1)
    data = data[:size]
    frame = frames_mod.ws_compressed_frame(data)
    plain = frames_mod.ws_frame(data)
    assert frame[0] == 0xC1  # FIN, RSV1, text
    assert frame[1:] == plain[1:]  # the same length encoding and body as a plain frame
    assert {m.ws_compressed_frame(data) for m in FRAME_TWINS} == {frame}
