"""permessage-deflate: negotiation (RFC 7692), frames compressed once that each inflate on
their own, and a wsproto client that accepts our handshake and reads our frames."""

from __future__ import annotations

import os
import zlib

import pytest
from tests.support import golden_payloads
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage
from wsproto.extensions import PerMessageDeflate

from certstream.core.deflate import (
    DeflateParams,
    compressed_frame,
    deflate_key,
    deflate_message,
    negotiate_deflate,
    parse_extensions,
)
from certstream.core.routes import RouteTable
from certstream.core.session import NEED_DATA, ProtocolViolation, RequestReceived, Session

BASE = b"permessage-deflate; server_no_context_takeover; client_no_context_takeover"


def offer(*values: str) -> DeflateParams | None:
    return negotiate_deflate(v.encode() for v in values)


# -- negotiation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "bits", "header"),
    [
        # RFC 7692 §7.1.1 / §5.2 examples and the parameters one by one
        (["permessage-deflate"], 15, BASE),
        (["permessage-deflate; client_max_window_bits"], 15, BASE),
        (["permessage-deflate; client_max_window_bits=10"], 15, BASE),
        (["permessage-deflate; server_no_context_takeover"], 15, BASE),
        (["permessage-deflate; client_no_context_takeover"], 15, BASE),
        (["permessage-deflate; server_max_window_bits=10"], 10,
         BASE + b"; server_max_window_bits=10"),
        (["permessage-deflate; server_max_window_bits=\"12\""], 12,
         BASE + b"; server_max_window_bits=12"),
        # §5.2: two offers, the first preferred
        (["permessage-deflate; client_max_window_bits; server_max_window_bits=10, "
          "permessage-deflate; client_max_window_bits"], 10,
         BASE + b"; server_max_window_bits=10"),
        # the first offer cannot be honoured (a 256-byte window): fall back to the second
        (["permessage-deflate; server_max_window_bits=8, permessage-deflate"], 15, BASE),
        # other extensions and header lines around it, any case
        (["x-webkit-deflate-frame", "Permessage-Deflate ; Client_Max_Window_Bits"], 15, BASE),
        ([", ,permessage-deflate;server_max_window_bits=15"], 15,
         BASE + b"; server_max_window_bits=15"),
    ],
)
def test_offers_we_accept(values: list[str], bits: int, header: bytes) -> None:
    assert offer(*values) == DeflateParams(bits, header)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "x-webkit-deflate-frame",
        "permessage-deflate; server_max_window_bits=8",  # zlib cannot compress with 2^8
        "permessage-deflate; server_max_window_bits",  # a value is required
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; server_max_window_bits=+9",
        "permessage-deflate; client_max_window_bits=20",
        "permessage-deflate; client_max_window_bits=abc",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=11",
        "permessage-deflate; mystery_param",
        "permessage-deflate; server_max_window_bits=\"10",  # unterminated quote
        "@@@, permessage-deflate",  # garbage first: nothing after it is trusted
    ],
)
def test_offers_we_decline(value: str) -> None:
    assert offer(value) is None


def test_parse_extensions() -> None:
    got = parse_extensions([b'foo; a=1; B="x;y, z", permessage-deflate', b"bar"])
    assert got == [
        ("foo", [("a", "1"), ("b", "x;y, z")]),
        ("permessage-deflate", []),
        ("bar", []),
    ]


# -- compressing once ----------------------------------------------------------------------


def _inflate(frame: bytes) -> bytes:
    """Read one server frame as a client without context would: header, then raw inflate."""
    assert frame[0] == 0xC1  # FIN, RSV1, text
    n = frame[1] & 0x7F
    off = 2
    if n == 126:
        n, off = int.from_bytes(frame[2:4], "big"), 4
    elif n == 127:
        n, off = int.from_bytes(frame[2:10], "big"), 10
    body = frame[off:]
    assert len(body) == n
    return zlib.decompressobj(-15).decompress(body + b"\x00\x00\xff\xff")


@pytest.mark.parametrize("stream", ["lite", "full", "domains"])
def test_every_golden_frame_inflates_on_its_own(stream: str) -> None:
    payloads = golden_payloads(stream)
    assert len(payloads) == 40
    for bits in (15, 12, 9):
        frames = [compressed_frame(p, bits) for p in payloads]
        # Out of order, each with a fresh inflater: no frame depends on another.
        for payload, frame in reversed(list(zip(payloads, frames, strict=True))):
            assert _inflate(frame) == payload
            # The window used is at most the client's: inflating with it works too.
            body = deflate_message(payload, bits)
            assert zlib.decompressobj(-max(bits, 9)).decompress(body + b"\0\0\xff\xff") == payload


def test_equal_keys_mean_equal_bytes() -> None:
    payload = golden_payloads("full")[0]  # ~9 KB: needs a 2^14 window
    key = deflate_key(len(payload))
    assert key == 14
    assert deflate_message(payload, 15) == deflate_message(payload, 14)
    assert deflate_key(len(payload), 10) == 10
    assert deflate_message(payload, 10) != deflate_message(payload, 14)
    assert deflate_key(1, 15) == 9 and deflate_key(512, 15) == 9 and deflate_key(513, 15) == 10


def test_frame_lengths_and_odd_payloads() -> None:
    for payload in (b"", b"x", os.urandom(200), os.urandom(70_000), b"a" * 200_000):
        assert _inflate(compressed_frame(payload)) == payload


# -- through the session, with wsproto as the client -----------------------------------------


def _handshake(
    extensions: list[PerMessageDeflate] | None, *, compression: bool = True,
    max_message_bytes: int = 65536,
) -> tuple[Session, WSConnection, AcceptConnection]:
    session = Session(RouteTable(), max_message_bytes=max_message_bytes)
    client = WSConnection(ConnectionType.CLIENT)
    session.receive_data(client.send(Request(host="x", target="/", extensions=extensions or [])))
    event = session.next_event()
    assert isinstance(event, RequestReceived)
    session.accept_websocket(compression=compression)
    client.receive_data(session.data_to_send())
    accepted = next(client.events())
    assert isinstance(accepted, AcceptConnection)
    return session, client, accepted


@pytest.mark.parametrize("server_bits", [None, 10, 15])
def test_wsproto_accepts_our_handshake_and_reads_our_frames(server_bits: int | None) -> None:
    ext = PerMessageDeflate(server_max_window_bits=server_bits) if server_bits else (
        PerMessageDeflate())
    session, client, accepted = _handshake([ext])
    assert session.deflate is not None
    assert session.deflate.window_bits == (server_bits or 15)
    assert [e.name for e in accepted.extensions] == ["permessage-deflate"]
    payloads = golden_payloads("lite")[:5] + golden_payloads("full")[:5]
    # The same frame bytes any client with this window gets, fed to this client.
    client.receive_data(b"".join(compressed_frame(p, session.deflate.window_bits)
                                 for p in payloads))
    got = [e for e in client.events() if isinstance(e, TextMessage)]
    assert [e.data.encode() for e in got] == payloads


def test_no_offer_or_compression_off_means_plain_frames() -> None:
    session, _client, accepted = _handshake(None)
    assert session.deflate is None and not accepted.extensions
    session, _client, accepted = _handshake([PerMessageDeflate()], compression=False)
    assert session.deflate is None and not accepted.extensions


def test_a_compressed_message_from_the_client_is_read() -> None:
    session, client, _ = _handshake([PerMessageDeflate()])
    session.receive_data(client.send(TextMessage("ping")))
    assert session.next_event() is NEED_DATA
    assert not session.should_close


def test_a_small_frame_that_inflates_past_the_limit_is_refused() -> None:
    session, client, _ = _handshake([PerMessageDeflate()], max_message_bytes=4096)
    bomb = client.send(TextMessage("a" * 1_000_000))  # compresses to ~1 KB
    assert len(bomb) < 4096
    session.receive_data(bomb)
    event = session.next_event()
    assert isinstance(event, ProtocolViolation) and event.code == 1009
    assert session.should_close
