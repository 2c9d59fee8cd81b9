"""The broker's record codec, sequence tracking and gap notices (``core.brokerrecord``,
``core.brokergap``), over plain values."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from certstream.core.brokergap import UNKNOWN, SequenceTracker, gap_notice
from certstream.core.brokerrecord import (
    Record,
    StreamId,
    decode_record,
    encode_record,
    parse_stream_id,
)
from certstream.core.fanout import drop_notice
from certstream.core.streams import FILTER_FIELDS, STREAM_DOMAINS, STREAM_FULL, STREAM_LITE
from certstream.errors import RemoteProtocolError

payload = st.one_of(st.none(), st.binary(max_size=300))


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1), st.text(max_size=40),
       st.integers(0, 2**64 - 1), payload, payload, payload)
def test_a_record_round_trips(  # noqa: PLR0917 - hypothesis passes them by position
        epoch: int, seq: int, key: str, index: int, lite: bytes | None,
                              full: bytes | None, domains: bytes | None) -> None:
    rec = decode_record(encode_record(epoch, seq, key, index, lite, full, domains))
    mask = ((STREAM_LITE if lite is not None else 0) | (STREAM_FULL if full is not None else 0)
            | (STREAM_DOMAINS if domains is not None else 0))
    assert rec == Record(epoch, seq, key, index, mask, lite, full, domains)


def test_version_2_carries_seen_and_the_filter_field_and_version_1_is_still_read() -> None:
    new = encode_record(3, 4, "log", 5, b"lite", None, b"dom", seen=1795613141536000,
                        fields=b"issuer\0log\0names")
    rec = decode_record(new)
    assert new[0] == 2
    assert (rec.seen, rec.fields, rec.lite, rec.domains) == (
        1795613141536000, b"issuer\0log\0names", b"lite", b"dom")
    assert rec.mask == STREAM_LITE | STREAM_DOMAINS | FILTER_FIELDS
    # What an ingest of the previous release writes, during a rolling upgrade.
    old = encode_record(3, 4, "log", 5, b"lite", None, b"dom", version=1)
    assert old[0] == 1
    assert decode_record(old) == Record(3, 4, "log", 5, STREAM_LITE | STREAM_DOMAINS,
                                        b"lite", None, b"dom")


@pytest.mark.parametrize("mangle", [
    lambda b: b[:10],  # cut inside the header
    lambda b: b[:-1],  # a payload cut short
    lambda b: b + b"x",  # trailing bytes
    lambda b: bytes([9]) + b[1:],  # a version this does not read
    lambda b: b[:21] + bytes([0x80]) + b[22:],  # an unknown stream bit
])
def test_a_malformed_record_is_a_remote_protocol_error(mangle: object) -> None:
    good = encode_record(1, 2, "https://log/", 3, b"lite", None, b"dom")
    assert decode_record(good).lite == b"lite"
    with pytest.raises(RemoteProtocolError):
        decode_record(mangle(good))  # type: ignore[operator]


def test_stream_ids_order_as_redis_orders_them() -> None:
    assert parse_stream_id(b"1700000000000-12") == StreamId(1700000000000, 12)
    assert parse_stream_id("9-1") < parse_stream_id("10-0") < parse_stream_id("10-1")
    assert str(parse_stream_id("5-3")) == "5-3"
    with pytest.raises(ValueError):
        parse_stream_id("12")


def rec(seq: int, index: int, *, epoch: int = 7, key: str = "log") -> Record:
    return decode_record(encode_record(epoch, seq, key, index, b"x", None, None))


def test_records_in_order_are_delivered_without_a_gap() -> None:
    t = SequenceTracker()
    t.start_at(7, 4)
    verdicts = [t.judge(rec(s, s)) for s in (5, 6, 7)]
    assert all(v.deliver and not v.lost for v in verdicts)
    assert (t.gaps, t.lost, t.repeats) == (0, 0, 0)


def test_a_hole_in_the_numbers_is_a_gap_of_exactly_its_size() -> None:
    t = SequenceTracker()
    t.start_at(7, 10)
    assert t.judge(rec(11, 1)).lost == 0
    v = t.judge(rec(15, 5))  # 12, 13, 14 were trimmed or lost
    assert v.deliver and v.lost == 3
    assert (t.gaps, t.lost) == (1, 3)


def test_a_number_delivered_already_is_a_repeat() -> None:
    t = SequenceTracker()
    t.start_at(7, 10)
    t.judge(rec(11, 1))
    v = t.judge(rec(11, 1))
    assert not v.deliver and v.repeat and t.repeats == 1
    assert t.judge(rec(12, 2)).deliver


def test_a_new_epoch_is_a_gap_of_unknown_size_and_numbering_starts_again() -> None:
    t = SequenceTracker()
    t.start_at(7, 100)
    v = t.judge(rec(1, 500, epoch=8))
    assert v.deliver and v.lost == UNKNOWN
    assert t.judge(rec(2, 501, epoch=8)).lost == 0
    assert (t.gaps, t.unknown_gaps, t.lost) == (1, 1, 0)


def test_an_index_delivered_already_under_a_new_number_is_a_repeat() -> None:
    """An ingest that took over from a stale position repeats entries under new numbers."""
    t = SequenceTracker()
    for s in (1, 2, 3):
        t.judge(rec(s, 100 + s))
    v = t.judge(rec(4, 102))  # index 102 of "log" again
    assert not v.deliver and v.repeat
    assert t.judge(rec(5, 104)).deliver
    assert t.judge(rec(6, 1, key="other")).deliver  # another log's indices are its own


def test_a_reader_that_started_on_an_empty_stream_takes_the_first_record_as_is() -> None:
    t = SequenceTracker()
    t.start_at(None, None)
    assert t.judge(rec(42, 1)).lost == 0


def test_gap_notices_are_the_slow_client_notices_or_say_the_count_is_unknown() -> None:
    assert gap_notice(3, ws=True) == drop_notice(3, ws=True)
    assert gap_notice(3, ws=False) == drop_notice(3, ws=False)
    ws = gap_notice(UNKNOWN, ws=True)
    assert ws[0] == 0x81 and json.loads(ws[2:]) == {"message_type": "notice", "dropped": None}
    assert gap_notice(UNKNOWN, ws=False) == b": dropped unknown\n\n"
