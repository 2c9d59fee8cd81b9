"""The feed's record codec over plain bytes: the wire layout of the contract, any split of the
stream, malformed input (the socket half is tests/integration/test_feed.py)."""

from __future__ import annotations

import contextlib
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from certstream.core.feedcodec import (
    FIELDS,
    KIND_ENTRY,
    KIND_EXAMPLE,
    KIND_STATE,
    KIND_WANT,
    FeedDecoder,
    encode_entry,
    encode_example,
    encode_state,
    encode_want,
)
from certstream.core.streams import STREAM_DOMAINS as DOMAINS
from certstream.core.streams import STREAM_FULL as FULL
from certstream.core.streams import STREAM_LITE as LITE
from certstream.errors import RemoteProtocolError

payload = st.one_of(st.none(), st.binary(max_size=300))


def decode_all(data: bytes, chunk: int) -> list[tuple[int, Any]]:
    dec = FeedDecoder()
    out = []
    for i in range(0, len(data), chunk):
        dec.receive_data(data[i : i + chunk])
        while (msg := dec.next_message()) is not None:
            out.append(msg)
    return out


entries = st.tuples(st.text(max_size=40), st.integers(0, 2**64 - 1), payload, payload, payload,
                    payload)


@given(entry=entries, chunk=st.integers(1, 64))
def test_entry_round_trip_any_split(
    entry: tuple[str, int, bytes | None, bytes | None, bytes | None, bytes | None], chunk: int
) -> None:
    key, index, lite, full, domains, fields = entry
    data = encode_entry(key, index, lite, full, domains, fields=fields)
    ((kind, got),) = decode_all(data, chunk)
    assert kind == KIND_ENTRY
    assert (got.key, got.index) == (key, index)
    assert (got.lite, got.full, got.domains, got.fields) == (lite, full, domains, fields)
    expected_mask = sum(bit for bit, p in ((LITE, lite), (FULL, full), (DOMAINS, domains),
                                           (FIELDS, fields))
                        if p is not None)
    assert got.mask == expected_mask


def test_wire_layout_matches_the_contract() -> None:
    # Built by hand from the contract text, not from the encoder.
    body = b"\x00\x02ab" + (7).to_bytes(8, "big") + bytes([LITE | DOMAINS])
    body += b"\x00\x00\x00\x01L" + b"\x00\x00\x00\x00"
    assert encode_entry("ab", 7, b"L", None, b"") == struct.pack(">IB", len(body) + 1, 1) + body
    # The filter field: mask bit 16, after the payloads.
    body = b"\x00\x02ab" + (7).to_bytes(8, "big") + bytes([DOMAINS | 16])
    body += b"\x00\x00\x00\x01D" + b"\x00\x00\x00\x03i\x00l"
    assert encode_entry("ab", 7, None, None, b"D", fields=b"i\x00l") == (
        struct.pack(">IB", len(body) + 1, 1) + body)
    # The record's id and seen: mask bit 32, three uint64 right after the mask.
    body = b"\x00\x02ab" + (7).to_bytes(8, "big") + bytes([LITE | 32])
    body += (1700000000000).to_bytes(8, "big") + (9).to_bytes(8, "big")
    body += (1795613141536000).to_bytes(8, "big") + b"\x00\x00\x00\x01L"
    data = encode_entry("ab", 7, b"L", None, None, stamp=(1700000000000, 9, 1795613141536000))
    assert data == struct.pack(">IB", len(body) + 1, 1) + body
    ((_kind, got),) = decode_all(data, 5)
    assert (got.epoch, got.n, got.seen, got.mask) == (1700000000000, 9, 1795613141536000,
                                                      LITE | 32)
    assert encode_want(5) == b"\x00\x00\x00\x02\x03\x05"
    assert encode_example(b"x") == b"\x00\x00\x00\x02\x04x"


def test_mixed_messages_decode_in_order() -> None:
    data = (encode_state({"logs": [], "started": 1.5}) + encode_want(7) + encode_example(b"{}")
            + encode_entry("k", 1, None, b"F", None))
    kinds = decode_all(data, 3)
    assert [k for k, _ in kinds] == [KIND_STATE, KIND_WANT, KIND_EXAMPLE, KIND_ENTRY]
    assert kinds[0][1] == {"logs": [], "started": 1.5}
    assert kinds[1][1] == 7
    assert kinds[2][1] == b"{}"


@pytest.mark.parametrize("data", [
    b"\x00\x00\x00\x00\x01",           # zero length
    b"\xff\xff\xff\xff\x01",           # absurd length
    b"\x00\x00\x00\x01\x09",           # unknown kind
    b"\x00\x00\x00\x03\x02[]",         # STATE not an object
    b"\x00\x00\x00\x03\x02{x",         # STATE not JSON
    b"\x00\x00\x00\x01\x03",           # WANT without its byte
    b"\x00\x00\x00\x04\x01\x00\x05a",  # ENTRY key runs past the end
    b"\x00\x00\x00\x10\x01\x00\x01k" + bytes(8) + b"\x02\x00\x00\x00\x09x",  # payload too long
])
def test_malformed_input_raises_our_error(data: bytes) -> None:
    dec = FeedDecoder()
    dec.receive_data(data)
    with pytest.raises(RemoteProtocolError):
        dec.next_message()


def test_incomplete_message_waits_for_more() -> None:
    data = encode_entry("k", 1, b"abc", None, None)
    dec = FeedDecoder()
    dec.receive_data(data[:-1])
    assert dec.next_message() is None
    dec.receive_data(data[-1:])
    msg = dec.next_message()
    assert msg is not None
    assert msg[1].lite == b"abc"


def test_entry_with_trailing_bytes_or_unknown_bits_is_rejected() -> None:
    good = encode_entry("k", 1, b"a", None, None)
    for bad in (good[:4] + good[4:] + b"x", good):
        body = bad[4:]
        if bad is good:  # set an undefined stream bit (8: EXAMPLE is a WANT bit only)
            body = body[:-6] + bytes([body[-6] | 8]) + body[-5:]
        dec = FeedDecoder()
        dec.receive_data(struct.pack(">I", len(body)) + body)
        with pytest.raises(RemoteProtocolError):
            dec.next_message()


@given(st.binary(max_size=200))
def test_garbage_never_crashes(data: bytes) -> None:
    dec = FeedDecoder()
    dec.receive_data(data)
    with contextlib.suppress(RemoteProtocolError):
        while dec.next_message() is not None:
            pass
