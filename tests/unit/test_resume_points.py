"""Resume points as clients send them, record stamps, and the index of when records were
seen (core.resume), on plain values."""

from __future__ import annotations

import json

import pytest

from certstream.core.resume import (
    EPOCH_SHIFT,
    UNKNOWN,
    Resume,
    ResumeError,
    SeenIndex,
    Stamp,
    event_id_text,
    feed_number,
    lost_between,
    parse_event_id,
    parse_resume,
    parse_since,
    stamp_key,
)


def test_ids_order_as_redis_orders_them_and_gaps_sit_between() -> None:
    keys = [stamp_key(9, 1), stamp_key(10, 0), stamp_key(10, 1), stamp_key(10, 2)]
    assert keys == sorted(keys)
    gap = Stamp(stamp_key(10, 1) | 1, 0, 0)
    assert gap.gap and not Stamp(stamp_key(10, 1), 0, 0).gap
    assert stamp_key(10, 1) < gap.key < stamp_key(10, 2)
    assert event_id_text(stamp_key(1700000000000, 42)) == b"1700000000000-42"
    assert event_id_text(gap.key) == b"10-1"


@pytest.mark.parametrize(("text", "want"), [
    ("1700000000000-3", stamp_key(1700000000000, 3)),
    (" 5-0 ", stamp_key(5, 0)),
    ("12", stamp_key(12, 0)),  # Redis reads a bare <ms> as <ms>-0
    ("18446744073709551615-18446744073709551615", stamp_key(2**64 - 1, 2**64 - 1)),
])
def test_event_ids_are_read_as_redis_writes_them(text: str, want: int) -> None:
    assert parse_event_id(text) == want


@pytest.mark.parametrize("text", [
    "", "-", "abc", "1-", "-1", "1-2-3", "1.5-2", "+1-2", "1 -2", "١٢-3",  # Arabic digits
    "18446744073709551616-0", "1-18446744073709551616", "9" * 70,
])
def test_a_bad_event_id_is_a_400_naming_the_parameter(text: str) -> None:
    with pytest.raises(ResumeError) as err:
        parse_event_id(text, param="last_event_id")
    assert err.value.status_hint == 400
    body = json.loads(err.value.json_body())
    assert body["error"] == "bad resume point" and body["param"] == "last_event_id"
    assert "event id" in body["reason"] or "range" in body["reason"]


@pytest.mark.parametrize(("text", "micros"), [
    ("1795613141.536", 1795613141536000),
    ("1795613141.536123", 1795613141536123),
    ("1795613141.5361239", 1795613141536123),  # finer than a microsecond: rounded down
    ("1795613141", 1795613141000000),
    ("1.795613141536e9", 1795613141536000),  # as some JSON libraries print it
    ("0", 0),
])
def test_since_is_read_exactly_in_microseconds(text: str, micros: int) -> None:
    assert parse_since(text) == micros


@pytest.mark.parametrize("text", ["", "x", "-1", "nan", "inf", "1e400", "1,5", "0x10", "1" * 70])
def test_a_bad_since_is_a_400(text: str) -> None:
    with pytest.raises(ResumeError) as err:
        parse_since(text)
    assert json.loads(err.value.json_body())["param"] == "since"


def test_the_header_wins_over_the_query_and_an_id_over_a_time() -> None:
    header = ((b"Last-Event-ID", b"7-1"),)
    assert parse_resume("last_event_id=5-0&since=3", header) == Resume(key=stamp_key(7, 1))
    assert parse_resume("since=3&last_event_id=5-0", ()) == Resume(key=stamp_key(5, 0))
    assert parse_resume("domain=*.a.com&since=3.5", ()) == Resume(seen=3_500_000)
    # An empty header is no resume point (a browser with no id yet sends none).
    assert parse_resume("", ((b"last-event-id", b" "),)) is None
    assert parse_resume("stream=full&domain=x", ()) is None
    with pytest.raises(ResumeError):
        parse_resume("", ((b"last-event-id", b"nope"),))
    with pytest.raises(ResumeError):
        parse_resume("since=", ())


def test_counting_lost_records_needs_one_epoch() -> None:
    a = (7 << EPOCH_SHIFT) | 10
    assert lost_between(a, a + 1) == 0
    assert lost_between(a, a + 6) == 5
    assert lost_between(a, (8 << EPOCH_SHIFT) | 1) == UNKNOWN
    # On one machine an id is the record's number.
    assert feed_number(stamp_key(1700000000000, 42)) == (1700000000000 << EPOCH_SHIFT) | 42


def test_the_seen_index_finds_the_first_record_seen_at_or_after_a_time() -> None:
    index = SeenIndex(capacity=4)
    number = (3 << EPOCH_SHIFT) | 1
    for seen in (100, 100, 100, 200, 200, 300):  # three runs of records
        index.add(seen, number)
        number += 1
    assert index.first_from(100) == (3 << EPOCH_SHIFT) | 1
    assert index.first_from(150) == index.first_from(200) == (3 << EPOCH_SHIFT) | 4
    assert index.first_from(300) == (3 << EPOCH_SHIFT) | 6
    assert index.first_from(99) is None  # from before what it knows
    assert index.first_from(301) is None  # nothing seen since
    # Bounded: the older runs are forgotten, in halves.
    for seen in range(400, 1400, 100):
        index.add(seen, number)
        number += 1
    assert len(index.seens) <= 2 * index.capacity and index.dropped
    assert index.first_from(100) is None
    assert index.first_from(1300) == number - 1
