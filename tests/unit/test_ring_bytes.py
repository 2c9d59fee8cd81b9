"""Rings bounded in bytes and writes capped in bytes (core.rings, core.fanout), on plain
values: what the byte bound evicts, what a client behind it is told, filtered and resuming
clients across it, and a client catching up in pieces that never exceed the cap, shared by
the clients at the same place."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.support.fanout import Recorder, client

from certstream.core import frames
from certstream.core.deflate import compressed_frame, deflate_key
from certstream.core.fanout import Cursor, drop_notice
from certstream.core.filterfields import FilterSpec, encode_match_fields
from certstream.core.resume import EPOCH_SHIFT, Resume, Stamp, stamp_key
from certstream.core.rings import Ring
from certstream.core.streams import STREAM_LITE

EPOCH = 1_700_000_000_000
EVEN = FilterSpec(domains=("*.even.org",))


def stamp(n: int) -> Stamp:
    name = f"h{n}.{'even' if n % 2 == 0 else 'odd'}.org"
    return Stamp(stamp_key(EPOCH, n), n * 1000, (EPOCH << EPOCH_SHIFT) | n,
                 encode_match_fields([name], "", "", ""))


def payload(n: int, size: int = 20) -> bytes:
    """Record ``n``'s payload, ``size`` bytes long."""
    head = b'{"n":%d,"p":"' % n
    assert len(head) + 2 <= size
    return head + b"x" * (size - len(head) - 2) + b'"}'


def publish(fan: Recorder, ns: range | list[int], size: int = 20, *,
            skip: tuple[int, ...] = ()) -> None:
    """Records ``ns`` of the lite stream; those in ``skip`` come without a payload (nobody
    wanted the stream then)."""
    for n in ns:
        fan.publish(0 if n in skip else STREAM_LITE, None if n in skip else payload(n, size),
                    None, None, stamp=stamp(n))


def ws(*ns: int, size: int = 20) -> bytes:
    return b"".join(frames.ws_frame(payload(n, size)) for n in ns)


def drain(fan: Recorder, cursor: Cursor) -> Iterator[bytes]:
    """What the shell's writer does once a busy client's write is taken: ask for the next
    piece while the client is owed one."""
    cursor.busy = False
    while cursor.seq < cursor.ring.next_seq and not cursor.closing:
        data = fan.owed(cursor)
        if data:
            yield data


def test_the_byte_bound_evicts_the_oldest_exactly_and_frees_what_was_built() -> None:
    ring: Ring[Cursor] = Ring(STREAM_LITE, 10, max_bytes=100)
    for n in range(3):
        ring.append(b"a" * 30, stamp(n))
    assert (ring.oldest, ring.held) == (0, 90)
    event = ring.sse_event(0)
    assert event.endswith(b"data: " + b"a" * 30 + b"\n\n")
    ring.append(b"b" * 30, stamp(3))  # 120 bytes: the first goes
    assert (ring.oldest, ring.held, ring.next_seq) == (1, 90, 4)
    assert ring.payloads[0] == b"" and ring.sse[0] is None and ring.stamps[0] is None
    ring.append(b"c" * 95, stamp(4))  # 185: three go, 95 left
    assert (ring.oldest, ring.held) == (4, 95)
    ring.append(b"d" * 200, stamp(5))  # larger than the bound alone: kept, alone
    assert (ring.oldest, ring.held) == (5, 200) and ring.payload(5) == b"d" * 200
    ring.append(b"e", stamp(6))
    assert (ring.oldest, ring.held) == (6, 1)
    # The entry bound still holds: the later of the two wins.
    small: Ring[Cursor] = Ring(STREAM_LITE, 3, max_bytes=1000)
    for n in range(5):
        small.append(b"f" * 10, stamp(n))
    assert (small.oldest, small.held) == (2, 30)
    assert small.after_key(stamp_key(EPOCH, 0)) is None  # older than held
    assert small.after_key(stamp_key(EPOCH, 2)) == 3


def test_a_client_behind_the_byte_bound_is_told_how_many_it_lost() -> None:
    fan = Recorder(100, buffer_bytes=200)  # ten 20-byte records
    c = client(fan)
    c.busy = True  # a write is pending: the flusher leaves it be
    publish(fan, range(25))
    assert fan.rings[STREAM_LITE].oldest == 15
    got = b"".join(drain(fan, c))
    assert got == drop_notice(15, ws=True) + ws(*range(15, 25))
    assert c.dropped == fan.drops == 15 and c.seq == 25
    # Past its budget it is closed by the flusher, with the count.
    fan = Recorder(100, buffer_bytes=200, drop_budget=10)
    c = client(fan)
    c.busy = True
    publish(fan, range(25))  # the byte bound flushes in line every 100 bytes
    fan.flush()
    assert fan.closed == [(c, 1008, "too slow: 15 messages dropped")]


def test_a_filtered_client_behind_the_byte_bound_counts_its_own_records() -> None:
    fan = Recorder(100, buffer_bytes=200)
    c = client(fan, spec=EVEN)
    c.busy = True
    publish(fan, range(30))
    # The ring holds 20..29; the view the even ones among them; 0..18 were lost to c.
    assert fan.rings[STREAM_LITE].oldest == 20
    got = b"".join(drain(fan, c))
    assert got == drop_notice(10, ws=True) + ws(20, 22, 24, 26, 28)
    assert c.dropped == 10


def test_resuming_from_before_the_byte_bound_counts_exactly() -> None:
    fan = Recorder(100, buffer_bytes=200)
    publish(fan, range(1, 31))
    # Older than held: the shell looks its number up (``needs_number``) and passes it.
    back = client(fan, resume=Resume(key=stamp_key(EPOCH, 5), number=stamp(5).number))
    filtered = client(fan, ws=False, spec=EVEN, resume=Resume(key=stamp_key(EPOCH, 25)))
    fan.flush()
    assert fan.got(back) == drop_notice(15, ws=True) + ws(*range(21, 31))
    assert fan.got(filtered) == b"".join(
        frames.sse_event(payload(n), b"%d-%d" % (EPOCH, n)) for n in (26, 28, 30))


@pytest.mark.parametrize("form", ["ws", "sse", "deflate"])
def test_a_slow_client_catches_up_in_pieces_under_the_cap_every_frame_in_order(
        form: str) -> None:
    cap = 1000
    fan = Recorder(1000, write_cap=cap)
    a = client(fan, ws=form != "sse", wbits=15 if form == "deflate" else 0)
    b = client(fan, ws=form != "sse", wbits=15 if form == "deflate" else 0)
    a.busy = b.busy = True
    publish(fan, range(60), size=100)
    pieces_a, pieces_b = list(drain(fan, a)), list(drain(fan, b))
    if form == "ws":
        want = ws(*range(60), size=100)
    elif form == "sse":
        want = b"".join(frames.sse_event(payload(n, 100), b"%d-%d" % (EPOCH, n))
                        for n in range(60))
    else:
        want = b"".join(compressed_frame(payload(n, 100), deflate_key(100, 15))
                        for n in range(60))
    assert b"".join(pieces_a) == want
    assert len(pieces_a) > 1 and all(len(p) <= cap for p in pieces_a)
    assert all(len(p) > cap - 200 for p in pieces_a[:-1])  # full pieces, not one per frame
    # b, at the same place, got the very same pieces: joined once for both.
    assert len(pieces_a) == len(pieces_b)
    assert all(x is y for x, y in zip(pieces_a, pieces_b, strict=True))


def test_the_flusher_writes_pieces_while_they_are_taken_shared_by_equal_cursors() -> None:
    fan = Recorder(1000, write_cap=1000)
    a, b = client(fan), client(fan)
    publish(fan, range(30), size=100)  # 3,060 bytes of frames, flushed in one go
    fan.flush()
    writes_a = [d for c, d in fan.written if c is a]
    writes_b = [d for c, d in fan.written if c is b]
    assert b"".join(writes_a) == ws(*range(30), size=100)
    assert len(writes_a) == 4 and all(len(d) <= 1000 for d in writes_a)
    assert all(x is y for x, y in zip(writes_a, writes_b, strict=True))
    # A client whose write is not taken stops there; the rest is owed to its writer.
    fan = Recorder(1000, write_cap=1000)
    c = client(fan)
    fan.stalled.add(c)
    publish(fan, range(30), size=100)
    fan.flush()
    assert fan.written == [] and c.busy and c.seq == 9  # one piece handed over
    fan.stalled.clear()
    assert b"".join(drain(fan, c)) == ws(*range(9, 30), size=100)


def _resumed_scenario(cap: int) -> dict[str, list[bytes | memoryview]]:
    """Clients resuming across holes (records without a lite payload), a gap, filtered or
    not, over WebSocket, SSE and compressed, then live: their writes with ``cap``."""
    fan = Recorder(1000, write_cap=cap)
    publish(fan, range(1, 41), size=100, skip=(7, 8, 15, 16, 17, 31))
    fan.gap(3)
    publish(fan, range(44, 60), size=100, skip=(59,))
    cursors = {
        "ws": client(fan, resume=Resume(key=stamp_key(EPOCH, 2))),
        "sse": client(fan, ws=False, resume=Resume(key=stamp_key(EPOCH, 2))),
        "z": client(fan, wbits=15, resume=Resume(key=stamp_key(EPOCH, 2))),
        "even": client(fan, spec=EVEN, resume=Resume(key=stamp_key(EPOCH, 2))),
        "even_sse": client(fan, ws=False, spec=EVEN, resume=Resume(seen=9000)),
        "twin": client(fan, resume=Resume(key=stamp_key(EPOCH, 2))),
    }
    publish(fan, range(60, 64), size=100)
    fan.flush()
    return {name: [d for c, d in fan.written if c is cursor]
            for name, cursor in cursors.items()}


def test_a_resumed_backlog_in_pieces_is_the_same_bytes_as_in_one_write() -> None:
    whole = _resumed_scenario(1 << 20)
    pieces = _resumed_scenario(600)
    for name, writes in whole.items():
        assert b"".join(pieces[name]) == b"".join(writes), name
        assert len(pieces[name]) > len(writes), name
        assert all(len(w) <= 600 for w in pieces[name]), name
    # In order: the holes where they are, the gap's own notice, the tail, then live.
    want = (ws(3, 4, 5, 6, size=100) + drop_notice(2, ws=True)
            + ws(*range(9, 15), size=100) + drop_notice(3, ws=True)
            + ws(*range(18, 31), size=100) + drop_notice(1, ws=True)
            + ws(*range(32, 41), size=100) + drop_notice(3, ws=True)
            + ws(*range(44, 59), size=100) + drop_notice(1, ws=True)
            + ws(*range(60, 64), size=100))
    assert b"".join(pieces["ws"]) == want
    # A second client resuming from the same place got the same pieces, joined once.
    assert all(x is y for x, y in zip(pieces["ws"][:-1], pieces["twin"][:-1], strict=True))
