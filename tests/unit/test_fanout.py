"""The fan-out bookkeeping (core.fanout) with plain values: a recording subclass stands in
for the sockets, numbers stand in for the clock."""

from __future__ import annotations

import json

import pytest
from tests.support.fanout import Recorder, client

from certstream.core import frames
from certstream.core.fanout import drop_notice
from certstream.core.resume import Stamp, stamp_key
from certstream.core.streams import STREAM_DOMAINS, STREAM_FULL, STREAM_LITE

PAYLOADS = [b'{"n":%d}\n' % i for i in range(40)]


def ws(*payloads: bytes) -> bytes:
    return b"".join(frames.ws_frame(p) for p in payloads)


def test_each_client_gets_what_it_is_owed_in_one_write_shared_by_equal_cursors() -> None:
    fan = Recorder(100)
    a, b = client(fan), client(fan)
    for p in PAYLOADS[:5]:
        fan.publish(STREAM_LITE, p, None, None)
    fan.flush()
    assert [c for c, _ in fan.written] in ([a, b], [b, a])
    assert fan.written[0][1] == ws(*PAYLOADS[:5])
    assert fan.written[0][1] is fan.written[1][1]  # joined once for both
    assert a.seq == b.seq == 5 and fan.frames_sent == 10
    fan.flush()  # nothing new: nothing written
    assert len(fan.written) == 2


def test_a_new_client_starts_at_the_head() -> None:
    fan = Recorder(100)
    first = client(fan)
    fan.publish(STREAM_LITE, b"old", None, None)
    late = client(fan)
    fan.publish(STREAM_LITE, b"new", None, None)
    fan.flush()
    assert fan.got(first) == ws(b"old", b"new")
    assert fan.got(late) == ws(b"new")


def test_streams_are_separate_and_nothing_is_framed_for_nobody() -> None:
    fan = Recorder(10)
    full = client(fan, STREAM_FULL)
    fan.publish(STREAM_LITE | STREAM_FULL | STREAM_DOMAINS, b"L", b"F", b"D")
    fan.flush()
    assert fan.got(full) == ws(b"F")
    # Kept for a client that may come to resume, but framed for nobody.
    for stream, payload in ((STREAM_LITE, b"L"), (STREAM_DOMAINS, b"D")):
        ring = fan.rings[stream]
        assert ring.next_seq == 1 and ring.payloads == [payload] + [b""] * 9
        assert ring.sse == [None] * 10
    assert (fan.latest(STREAM_LITE), fan.latest(STREAM_DOMAINS)) == (b"L", b"D")
    fan.set_example(b"sample")
    assert fan.latest(STREAM_LITE) == b"sample" and fan.example_count == 1


def test_sse_events_carry_their_record_ids_and_are_built_once() -> None:
    fan = Recorder(10, epoch_ms=1700000000000)
    a, b = client(fan, ws=False), client(fan, ws=False)
    fan.publish(STREAM_LITE, b'{"a":1}', None, None)  # numbered by the worker: no stamp
    fan.publish(STREAM_LITE, b'{"a":2}', None, None, stamp=Stamp(stamp_key(1800000000000, 7),
                                                                   0, 7))
    fan.flush()
    assert fan.got(a) == fan.got(b) == (b'id: 1700000000000-1\ndata: {"a":1}\n\n'
                                        b'id: 1800000000000-7\ndata: {"a":2}\n\n')
    ring = fan.rings[STREAM_LITE]
    assert ring.sse_event(0) is ring.sse_event(0)


def test_wanted_follows_the_first_and_last_subscriber_of_each_stream() -> None:
    seen: list[int] = []
    fan = Recorder(10, on_wanted=seen.append)
    c1 = client(fan, STREAM_FULL)
    c2 = client(fan, STREAM_FULL, ws=False)
    c3 = client(fan, STREAM_DOMAINS)
    for c in (c1, c2, c3):
        fan._detach(c)
    assert seen == [STREAM_FULL, STREAM_FULL | STREAM_DOMAINS, STREAM_DOMAINS, 0]
    assert fan.total() == 0 and c1.closing


def test_counts_by_transport_and_stream() -> None:
    fan = Recorder(10)
    client(fan)
    client(fan, STREAM_FULL, ws=False)
    assert fan.counts() == {
        "websocket": {"lite": 1, "full": 0, "domains": 0},
        "sse": {"lite": 0, "full": 1, "domains": 0},
    }
    assert fan.total() == 2 and len(list(fan.clients())) == 2


def test_publish_wakes_the_flusher_and_flushes_in_line_before_the_ring_could_overrun() -> None:
    fan = Recorder(8)  # flushes in line every 8 // 2 = 4 unflushed entries
    c = client(fan)
    for p in PAYLOADS[:3]:
        fan.publish(STREAM_LITE, p, None, None)
    assert fan.wakes == 3 and not fan.written
    fan.publish(STREAM_LITE, PAYLOADS[3], None, None)
    assert fan.wakes == 3 and fan.got(c) == ws(*PAYLOADS[:4])
    # A burst twice the ring's size reaches a client that keeps up, without a drop.
    for p in PAYLOADS[4:20]:
        fan.publish(STREAM_LITE, p, None, None)
    fan.flush()
    assert fan.got(c) == ws(*PAYLOADS[:20]) and c.dropped == 0


def test_an_entry_for_nobody_neither_wakes_nor_counts_toward_a_flush() -> None:
    fan = Recorder(8)
    fan.publish(STREAM_LITE, b"x", None, None)
    assert fan.wakes == 0 and fan.entries == 1


def test_a_cursor_that_fell_off_the_ring_gets_a_notice_then_the_oldest_kept() -> None:
    fan = Recorder(4, drop_budget=100)
    c = client(fan)
    ring = fan.rings[STREAM_LITE]
    for p in PAYLOADS[:10]:
        ring.append(p)  # no flush in between, as after a burst with no chance to flush
    fan._dirty.add(ring)
    fan.flush()
    assert fan.got(c) == drop_notice(6, ws=True) + ws(*PAYLOADS[6:10])
    notice = frames.ws_frame(b'{"message_type":"notice","dropped":6}')
    assert drop_notice(6, ws=True) == notice
    assert json.loads(notice[2:]) == {"message_type": "notice", "dropped": 6}
    assert (c.dropped, fan.drops, c.seq) == (6, 6, 10)


def test_a_busy_client_is_skipped_then_owed_everything_in_one_piece() -> None:
    fan = Recorder(100)
    slow, quick = client(fan), client(fan)
    fan.stalled.add(slow)
    fan.publish(STREAM_LITE, PAYLOADS[0], None, None)
    fan.flush()
    assert slow.busy and fan.got(slow) == b""
    for p in PAYLOADS[1:4]:
        fan.publish(STREAM_LITE, p, None, None)
    fan.flush()
    assert fan.got(quick) == ws(*PAYLOADS[:4])
    assert slow.seq == 1  # its first write is still pending: the cursor moved past it
    # Its drainer caught up: everything since, in one piece, and the cursor at the head.
    assert fan.owed(slow) == ws(*PAYLOADS[1:4])
    assert slow.seq == 4 and fan.owed(slow) == b""


def test_a_slow_sse_client_gets_a_comment_for_what_it_lost() -> None:
    fan = Recorder(4, drop_budget=100)
    c = client(fan, ws=False)
    fan.stalled.add(c)
    fan.publish(STREAM_LITE, b"0", None, None)
    fan.flush()
    for i in range(1, 8):
        fan.publish(STREAM_LITE, b"%d" % i, None, None)
    owed = fan.owed(c)
    # Numbered by the fan-out itself here (no stamps, epoch 0): records 1..8.
    assert owed.startswith(b": dropped 3\n\n") and owed.endswith(b"id: 0-8\ndata: 7\n\n")
    assert c.dropped == 3


def test_past_its_drop_budget_a_client_is_closed_with_the_count() -> None:
    fan = Recorder(4, drop_budget=5, close_code=1013)
    slow, quick = client(fan), client(fan)
    fan.stalled.add(slow)
    fan.publish(STREAM_LITE, b"0", None, None)
    fan.flush()
    for i in range(1, 11):  # the ring keeps 4: at the end slow is 6 behind the oldest
        fan.publish(STREAM_LITE, b"%d" % i, None, None)  # (flushes in line every 2)
        if i == 8:
            assert not fan.closed  # 4 behind the oldest: within the budget of 5
    fan.flush()
    assert fan.closed == [(slow, 1013, "too slow: 6 messages dropped")]
    assert fan.slow_closed == 1 and slow.closing and fan.total() == 1
    assert fan.owed(slow) == b""  # what a drainer gets for a closed client: nothing
    assert fan.got(quick) == ws(*[b"%d" % i for i in range(11)])


def test_owed_closes_instead_of_sending_when_the_loss_is_over_budget() -> None:
    fan = Recorder(2, drop_budget=3)
    c = client(fan)
    fan.stalled.add(c)
    for i in range(8):
        fan.rings[STREAM_LITE].append(b"%d" % i)
    assert fan.owed(c) == b""
    assert fan.closed == [(c, 1008, "too slow: 6 messages dropped")]
    assert (c.dropped, fan.drops) == (6, 6)


@pytest.mark.parametrize(("last", "now", "wait"), [
    (0.0, 10.0, -9.98),   # long idle: flush at once
    (10.0, 10.005, 0.015),  # 5 ms after the last flush: wait out the rest of the 20 ms
    (10.0, 10.02, 0.0),
])
def test_flush_delay_coalesces_writes_to_one_per_interval(
    last: float, now: float, wait: float
) -> None:
    fan = Recorder(10, flush_interval=0.02)
    fan.last_flush = last
    assert fan.flush_delay(now) == pytest.approx(wait)


def test_no_interval_means_no_wait() -> None:
    fan = Recorder(10)
    fan.last_flush = 5.0
    assert fan.flush_delay(5.0) == 0.0
