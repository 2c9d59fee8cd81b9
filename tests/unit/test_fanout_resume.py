"""Clients that resume (core.fanout with core.resume), on plain values: where each starts,
what it is told it lost, gaps kept in order in the rings, filtered and compressed clients."""

from __future__ import annotations

import json

import pytest
from tests.support.fanout import Recorder, client

from certstream.core import frames
from certstream.core.deflate import compressed_frame, deflate_key
from certstream.core.fanout import drop_notice
from certstream.core.filterfields import FilterSpec, encode_match_fields
from certstream.core.resume import EPOCH_SHIFT, UNKNOWN, Resume, Stamp, stamp_key
from certstream.core.streams import STREAM_DOMAINS, STREAM_FULL, STREAM_LITE

EPOCH = 1_700_000_000_000


def stamp(n: int, *, epoch: int = EPOCH, seen: int | None = None,
          fields: bytes | None = None) -> Stamp:
    """Record ``n`` of ``epoch``: id ``<epoch>-<n>``, seen ``n`` ms."""
    return Stamp(stamp_key(epoch, n), n * 1000 if seen is None else seen,
                 (epoch << EPOCH_SHIFT) | n, fields)


def payload(n: int) -> bytes:
    return b'{"n":%d}\n' % n


def publish(fan: Recorder, first: int, last: int, streams: int = STREAM_LITE) -> None:
    for n in range(first, last + 1):
        fan.publish(streams, payload(n) if streams & STREAM_LITE else None,
                    payload(n) if streams & STREAM_FULL else None, None, stamp=stamp(n))


def ws(*ns: int) -> bytes:
    return b"".join(frames.ws_frame(payload(n)) for n in ns)


def sse(*ns: int) -> bytes:
    return b"".join(frames.sse_event(payload(n), b"%d-%d" % (EPOCH, n)) for n in ns)


def after(n: int, number: int | None = None) -> Resume:
    return Resume(key=stamp_key(EPOCH, n), number=number)


def test_an_sse_client_resumes_right_after_its_last_event() -> None:
    fan = Recorder(100)
    live = client(fan, ws=False)  # connected all along
    publish(fan, 1, 20)
    fan.flush()
    back = client(fan, ws=False, resume=after(10))
    fan.flush()
    # Events 11..20 exactly, the same bytes the live client got for them.
    assert fan.got(back) == sse(*range(11, 21))
    assert fan.got(live).endswith(fan.got(back))
    publish(fan, 21, 22)
    fan.flush()
    assert fan.got(back) == sse(*range(11, 23))


def test_a_websocket_client_resumes_from_the_seen_of_its_last_frame() -> None:
    fan = Recorder(100)
    live = client(fan)
    # Records 1..20; 9, 10 and 11 were seen in the same millisecond.
    for n in range(1, 21):
        seen = 10_000 if n in (9, 10, 11) else n * 1000
        fan.publish(STREAM_LITE, payload(n), None, None, stamp=stamp(n, seen=seen))
    fan.flush()
    back = client(fan, resume=Resume(seen=10_000))  # its last frame was record 10
    fan.flush()
    # Every record seen at or after it: 9 and 10 again (same seen), then everything after.
    assert fan.got(back) == ws(*range(9, 21))
    assert fan.got(live).endswith(fan.got(back))


def test_resuming_on_a_worker_whose_clients_never_read_that_stream() -> None:
    fan = Recorder(100)
    publish(fan, 1, 6, STREAM_LITE | STREAM_FULL)  # nobody here: kept, framed for nobody
    assert fan.rings[STREAM_FULL].sse[0] is None
    back = client(fan, STREAM_FULL, resume=after(3))
    fan.flush()
    assert fan.got(back) == ws(4, 5, 6)


def test_from_before_the_ring_the_client_is_told_exactly_how_many_it_lost() -> None:
    fan = Recorder(10)
    publish(fan, 1, 30)  # the ring holds 21..30
    assert fan.needs_number(STREAM_LITE, stamp_key(EPOCH, 12))
    assert not fan.needs_number(STREAM_LITE, stamp_key(EPOCH, 25))
    c = client(fan, ws=False, resume=after(12, (EPOCH << EPOCH_SHIFT) | 12))
    fan.flush()
    assert fan.got(c) == b": dropped 8\n\n" + sse(*range(21, 31))  # 13..20 are gone
    # The record just before the oldest held: nothing lost, no notice.
    d = client(fan, ws=False, resume=after(20, (EPOCH << EPOCH_SHIFT) | 20))
    fan.flush()
    assert fan.got(d) == sse(*range(21, 31))
    # Its number unknown (the broker no longer has it), or of another epoch: null.
    for number in (None, (EPOCH - 1) << EPOCH_SHIFT | 12):
        e = client(fan, resume=after(12, number))
        fan.flush()
        assert fan.got(e) == drop_notice(UNKNOWN, ws=True) + ws(*range(21, 31))
    assert json.loads(drop_notice(UNKNOWN, ws=True)[2:]) == {"message_type": "notice",
                                                             "dropped": None}
    # The loss of a resume is not a slow client's: no drop budget spent.
    assert (c.dropped, fan.drops) == (0, 0)


def test_a_websocket_client_from_before_the_ring_is_told_from_the_seen_index() -> None:
    fan = Recorder(10)
    publish(fan, 1, 30)
    c = client(fan, resume=Resume(seen=12_000))  # its last frame was record 12
    fan.flush()
    assert fan.got(c) == drop_notice(8, ws=True) + ws(*range(21, 31))  # 13..20
    # Older than anything this worker saw: nobody can say.
    d = client(fan, resume=Resume(seen=500))
    fan.flush()
    assert fan.got(d) == drop_notice(UNKNOWN, ws=True) + ws(*range(21, 31))


def test_a_client_that_is_current_gets_nothing_again() -> None:
    fan = Recorder(10)
    publish(fan, 1, 5)
    for resume in (after(5), after(9), Resume(seen=6000)):
        c = client(fan, resume=resume)
        fan.flush()
        assert fan.got(c) == b""
    publish(fan, 6, 6)
    fan.flush()
    assert fan.got(c) == ws(6)
    # A worker that has seen nothing has nothing to tell.
    empty = Recorder(10)
    c = client(empty, ws=False, resume=after(3, (EPOCH << EPOCH_SHIFT) | 3))
    empty.flush()
    assert empty.got(c) == b""


def test_a_stream_without_records_since_counts_what_came_on_the_others() -> None:
    fan = Recorder(10)
    publish(fan, 1, 5, STREAM_FULL)  # lite was wanted by nobody: no lite payload exists
    c = client(fan, resume=after(2, (EPOCH << EPOCH_SHIFT) | 2))
    fan.flush()
    assert fan.got(c) == drop_notice(3, ws=True)  # 3, 4 and 5 happened without it


def test_a_gap_reaches_clients_in_order_live_behind_and_resumed() -> None:
    fan = Recorder(100)
    live = client(fan, ws=False)
    behind = client(fan)
    behind.busy = True  # a write is pending: the gap must not overtake what it is owed
    publish(fan, 1, 3)
    fan.flush()
    fan.gap(5)
    publish(fan, 9, 10)
    fan.flush()
    notice_sse = drop_notice(5, ws=False)
    assert fan.got(live) == sse(1, 2, 3) + notice_sse + sse(9, 10)
    assert fan.got(behind) == b""
    behind.busy = False  # its writer drained the socket and asks for what it is owed
    assert fan.owed(behind) == ws(1, 2, 3) + drop_notice(5, ws=True) + ws(9, 10)
    # Resuming from before it, a client crosses it and is told; from after it, not.
    across = client(fan, ws=False, resume=after(2))
    past = client(fan, ws=False, resume=after(9))
    fan.flush()
    assert fan.got(across) == sse(3) + notice_sse + sse(9, 10)
    assert fan.got(past) == sse(10)
    fan.gap(UNKNOWN)
    fan.flush()
    assert fan.got(live).endswith(b": dropped unknown\n\n")


def test_counting_from_before_a_gap_at_the_oldest_slot() -> None:
    fan = Recorder(4)
    publish(fan, 1, 6)
    fan.gap(3)  # records 7..9 lost
    publish(fan, 10, 12)
    # The ring holds: gap, 10, 11, 12.  A client that had 2 lost 3..6 before the gap.
    c = client(fan, ws=False, resume=after(2, (EPOCH << EPOCH_SHIFT) | 2))
    fan.flush()
    assert fan.got(c) == b": dropped 4\n\n: dropped 3\n\n" + sse(10, 11, 12)


def test_filtered_clients_resume_with_the_filter_matched_on_the_records_held() -> None:
    fields = {n: encode_match_fields([f"host{n}.{'even' if n % 2 == 0 else 'odd'}.org"],
                                     "", "", "") for n in range(1, 21)}
    fan = Recorder(100)
    for n in range(1, 21):
        fan.publish(STREAM_LITE, payload(n), None, None, stamp=stamp(n, fields=fields[n]))
    fan.flush()
    even = FilterSpec(domains=("*.even.org",))
    a = client(fan, spec=even, resume=after(10))  # the first with this filter: matched now
    fan.flush()
    assert fan.got(a) == ws(12, 14, 16, 18, 20)
    b = client(fan, ws=False, spec=even, resume=after(4))  # further back than the view
    c = client(fan, spec=even, resume=Resume(seen=15_000))
    fan.flush()
    assert fan.got(b) == sse(6, 8, 10, 12, 14, 16, 18, 20)
    assert fan.got(c) == ws(16, 18, 20)
    fan.publish(STREAM_LITE, payload(22), None, None,
                stamp=stamp(22, fields=encode_match_fields(["x.even.org"], "", "", "")))
    fan.publish(STREAM_LITE, payload(23), None, None,
                stamp=stamp(23, fields=encode_match_fields(["x.odd.org"], "", "", "")))
    fan.flush()
    assert fan.got(a).endswith(ws(20, 22)) and fan.got(b).endswith(sse(22))
    # A record without its filter field is matched from its payload (lite carries names).
    fan2 = Recorder(100)
    doc = b'{"data":{"leaf_cert":{"all_domains":["a.even.org"]}},"message_type":"x"}'
    fan2.publish(STREAM_LITE, doc, None, None, stamp=stamp(1))
    d = client(fan2, spec=even, resume=after(0, EPOCH << EPOCH_SHIFT))
    fan2.flush()
    assert fan2.got(d) == frames.ws_frame(doc)


def test_compressed_clients_resume_with_the_shared_compressed_frames() -> None:
    fan = Recorder(100)
    live = client(fan, wbits=15)
    publish(fan, 1, 8)
    fan.flush()
    back = client(fan, wbits=15, resume=after(5))
    fan.flush()
    want = b"".join(compressed_frame(payload(n), deflate_key(len(payload(n)), 15))
                    for n in (6, 7, 8))
    assert fan.got(back) == want and fan.got(live).endswith(want)
    fan.gap(2)
    fan.flush()
    assert fan.got(back).endswith(drop_notice(2, ws=True))  # notices stay plain


def test_seen_never_goes_back_along_the_ring() -> None:
    fan = Recorder(100)
    fan.publish(STREAM_LITE, payload(0), None, None, stamp=stamp(0, seen=1000))
    fan.publish(STREAM_LITE, payload(1), None, None, stamp=stamp(1, seen=5000))
    fan.publish(STREAM_LITE, payload(2), None, None, stamp=stamp(2, seen=3000))  # clock back
    fan.publish(STREAM_LITE, payload(3), None, None, stamp=stamp(3, seen=6000))
    ring = fan.rings[STREAM_LITE]
    assert [ring.stamp(s).seen for s in range(4)] == [1000, 5000, 5000, 6000]
    # A client whose last frame said 3000 gets record 2 again, and loses nothing.
    c = client(fan, resume=Resume(seen=3000))
    fan.flush()
    assert fan.got(c) == ws(1, 2, 3)


@pytest.mark.parametrize("stream", [STREAM_LITE, STREAM_DOMAINS])
def test_records_published_without_a_stamp_are_numbered_by_the_worker(stream: int) -> None:
    fan = Recorder(10, epoch_ms=42)
    fan.publish(stream, b"a" if stream == STREAM_LITE else None, None,
                b"a" if stream == STREAM_DOMAINS else None)
    assert fan.last == Stamp(stamp_key(42, 1), 0, (42 << EPOCH_SHIFT) | 1)


def test_records_that_came_while_nobody_wanted_the_stream_are_counted() -> None:
    fan = Recorder(100)
    publish(fan, 1, 3)
    for n in (4, 5, 6):  # published without payloads: nobody anywhere wanted a stream
        fan.publish(0, None, None, None, stamp=stamp(n))
    publish(fan, 7, 7)
    by_id = client(fan, ws=False, resume=after(3))
    by_seen = client(fan, resume=Resume(seen=3000))
    fan.flush()
    assert fan.got(by_id) == b": dropped 3\n\n" + sse(7)
    assert fan.got(by_seen) == ws(3) + drop_notice(3, ws=True) + ws(7)
    # The same while nothing came after them yet.
    fan2 = Recorder(100)
    publish(fan2, 1, 2)
    fan2.publish(0, None, None, None, stamp=stamp(3))
    c = client(fan2, ws=False, resume=after(2))
    fan2.flush()
    assert fan2.got(c) == b": dropped 1\n\n"


def test_holes_along_the_way_are_told_where_they_are_filtered_or_not() -> None:
    fan = Recorder(100)
    even = FilterSpec(domains=("*.even.org",))

    def record(n: int, *, lite: bool = True) -> None:
        name = f"h{n}.{'even' if n % 2 == 0 else 'odd'}.org"
        fan.publish(STREAM_LITE if lite else 0, payload(n) if lite else None, None, None,
                    stamp=stamp(n, fields=encode_match_fields([name], "", "", "")))

    for n in (1, 2, 3, 4):
        record(n)
    record(5, lite=False)  # nobody wanted lite for a moment
    record(6, lite=False)
    record(7)
    record(8)
    plain = client(fan, ws=False, resume=after(1))
    filtered = client(fan, spec=even, resume=after(1))
    twin = client(fan, spec=even, resume=after(1))
    fan.flush()
    assert fan.got(plain) == sse(2, 3, 4) + b": dropped 2\n\n" + sse(7, 8)
    assert fan.got(filtered) == ws(2, 4) + drop_notice(2, ws=True) + ws(8)
    # A second client resuming from the same place gets the same joined bytes.
    assert fan.written[-1][1] is fan.written[-2][1]
    assert fan.got(twin) == fan.got(filtered)
    record(9, lite=False)
    tail = client(fan, ws=False, resume=after(8))
    fan.flush()
    assert fan.got(tail) == b": dropped 1\n\n"
