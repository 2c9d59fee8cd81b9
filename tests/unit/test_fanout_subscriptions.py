"""Subscriptions in the fan-out bookkeeping (core.fanout, core.views) with plain values:
filtered clients read views of sequence numbers and get the ring's own frames; compressed
clients get each frame compressed once per window and shared."""

from __future__ import annotations

import json
import zlib

import pytest
from tests.support import golden_payloads
from tests.support.fanout import Recorder, client
from tests.support.wsframes import read_frames

from certstream.core import frames
from certstream.core.deflate import compressed_frame
from certstream.core.fanout import View, drop_notice
from certstream.core.filterfields import FilterSpec, encode_match_fields
from certstream.core.streams import FILTER_FIELDS, STREAM_DOMAINS, STREAM_FULL, STREAM_LITE

LITE = golden_payloads("lite")
MESSAGES = [json.loads(p) for p in LITE]
WORKDAY = FilterSpec(domains=("*workday*",))
FRITZ = FilterSpec(domains=("*.myfritz.net",))


def _field(message: dict[str, object]) -> bytes:
    data = message["data"]
    assert isinstance(data, dict)
    leaf, source = data["leaf_cert"], data["source"]
    return encode_match_fields(leaf["all_domains"], leaf["issuer"]["aggregated"],
                               source["name"], source["url"])


FIELDS = [_field(m) for m in MESSAGES]


def _names(i: int) -> list[str]:
    return [n.lower() for n in MESSAGES[i]["data"]["leaf_cert"]["all_domains"]]


def _matching(pred: object) -> list[int]:
    return [i for i in range(len(LITE)) if pred(_names(i))]  # type: ignore[operator]


WORKDAY_AT = _matching(lambda names: any("workday" in n for n in names))
FRITZ_AT = _matching(lambda names: any(n.endswith(".myfritz.net") for n in names))


def _publish_all(fan: Recorder, *, fields: bool = True) -> None:
    for payload, field in zip(LITE, FIELDS, strict=True):
        fan.publish(STREAM_LITE, payload, None, None, field if fields else None)
    fan.flush()


def ws(*payloads: bytes) -> bytes:
    return b"".join(frames.ws_frame(p) for p in payloads)


def test_the_live40_data_has_records_each_filter_matches_and_records_it_does_not() -> None:
    assert 0 < len(WORKDAY_AT) < len(LITE) and 0 < len(FRITZ_AT) < len(LITE)


def test_filtered_clients_get_the_ring_frames_of_their_matches_and_nothing_else() -> None:
    fan = Recorder(100)
    everything = client(fan)
    workday = client(fan, spec=WORKDAY)
    either = client(fan, spec=FilterSpec(domains=("*workday*", "*.myfritz.net")))
    _publish_all(fan)
    assert fan.got(everything) == ws(*LITE)
    assert fan.got(workday) == ws(*(LITE[i] for i in WORKDAY_AT))
    assert fan.got(either) == ws(*(LITE[i] for i in sorted({*WORKDAY_AT, *FRITZ_AT})))
    # Byte for byte the unfiltered stream's frames, from the ring's own records.
    ring = fan.rings[STREAM_LITE]
    assert isinstance(workday.ring, View) and workday.ring.base is ring
    assert list(workday.ring.ring_seqs(0)) == WORKDAY_AT


def test_equal_filters_share_a_view_and_a_buffer_other_streams_share_the_slot() -> None:
    fan = Recorder(100)
    a = client(fan, spec=WORKDAY)
    b = client(fan, spec=WORKDAY)
    full = client(fan, STREAM_FULL, spec=WORKDAY)
    other = client(fan, spec=FRITZ)
    assert a.ring is b.ring and a.ring is not other.ring
    assert isinstance(full.ring, View) and isinstance(a.ring, View)
    assert full.ring.slot == a.ring.slot and full.ring is not a.ring
    assert fan.filters is not None and len(fan.filters) == 2 and fan.filters.subscribers == 4
    for payload, field in zip(LITE, FIELDS, strict=True):
        fan.publish(STREAM_LITE | STREAM_FULL, payload, payload + b" ", None, field)
    fan.flush()
    writes = {id(c): [d for w, d in fan.written if w is c] for c in (a, b)}
    assert len(writes[id(a)]) == len(writes[id(b)]) == 1
    assert writes[id(a)][0] is writes[id(b)][0]  # joined once for both
    assert fan.got(full) == ws(*(LITE[i] + b" " for i in WORKDAY_AT))
    assert fan.got(other) == ws(*(LITE[i] for i in FRITZ_AT))
    assert fan.filters.records_matched == len({*WORKDAY_AT, *FRITZ_AT})


def test_a_record_nobody_matched_costs_the_clients_nothing() -> None:
    fan = Recorder(100)
    filtered = client(fan, spec=WORKDAY)
    ring = fan.rings[STREAM_LITE]
    miss = next(i for i in range(len(LITE)) if i not in WORKDAY_AT)
    fan.publish(STREAM_LITE, LITE[miss], None, None, FIELDS[miss])
    # With only filtered clients, a record no filter matched is only kept (a client may come
    # to resume from before it): nothing framed, nothing to flush, nobody woken.
    assert ring.next_seq == 1 and ring.sse[0] is None and fan.wakes == 0
    fan.flush()
    assert fan.got(filtered) == b""
    hit = WORKDAY_AT[0]
    fan.publish(STREAM_LITE, LITE[hit], None, None, FIELDS[hit])
    fan.flush()
    assert ring.next_seq == 2 and fan.got(filtered) == ws(LITE[hit])


def test_wanted_asks_for_the_filter_field_while_a_view_lives_and_views_go_with_clients() -> None:
    seen: list[int] = []
    fan = Recorder(10, on_wanted=seen.append)
    plain = client(fan)
    a = client(fan, STREAM_DOMAINS, spec=WORKDAY)
    b = client(fan, STREAM_DOMAINS, spec=WORKDAY)
    assert seen == [STREAM_LITE, STREAM_LITE | STREAM_DOMAINS | FILTER_FIELDS]
    fan._detach(a)
    assert fan.rings[STREAM_DOMAINS].views  # b still reads it
    fan._detach(a)  # twice: nothing more happens
    fan._detach(b)
    assert not fan.rings[STREAM_DOMAINS].views and fan.rings[STREAM_DOMAINS].view_mask == 0
    assert seen[-1] == STREAM_LITE
    assert fan.filters is not None and len(fan.filters) == 0 and fan.filters.subscribers == 0
    # Nothing is matched any more: an entry is not even looked at by the filters.
    records = fan.filters.records
    fan.publish(STREAM_LITE, LITE[0], None, None, FIELDS[0])
    assert fan.filters.records == records
    assert fan.counts()["websocket"] == {"lite": 1, "full": 0, "domains": 0}
    fan._detach(plain)
    assert seen[-1] == 0


def test_counts_and_clients_include_filtered_and_compressed_clients() -> None:
    fan = Recorder(10)
    client(fan)
    client(fan, spec=WORKDAY)
    client(fan, wbits=15)
    client(fan, STREAM_FULL, ws=False, spec=FRITZ)
    assert fan.counts() == {
        "websocket": {"lite": 3, "full": 0, "domains": 0},
        "sse": {"lite": 0, "full": 1, "domains": 0},
    }
    assert fan.total() == 4
    assert len(list(fan.clients(ws=True))) == 3 and len(list(fan.clients(ws=False))) == 1


def test_without_the_field_the_payload_is_read_instead() -> None:
    fan = Recorder(100)
    lite = client(fan, spec=WORKDAY)
    by_issuer = client(fan, STREAM_DOMAINS, spec=FilterSpec(issuers=("let's encrypt",)))
    by_name = client(fan, STREAM_DOMAINS, spec=WORKDAY)
    domains = [b'{"data":%s,"message_type":"dns_entries"}'
               % json.dumps(MESSAGES[i]["data"]["leaf_cert"]["all_domains"]).encode()
               for i in range(len(LITE))]
    for i in range(len(LITE)):
        fan.publish(STREAM_LITE, LITE[i], None, None)  # the ingest had not been asked yet
        fan.publish(STREAM_DOMAINS, None, None, domains[i])
    fan.flush()
    assert fan.got(lite) == ws(*(LITE[i] for i in WORKDAY_AT))
    assert fan.got(by_name) == ws(*(domains[i] for i in WORKDAY_AT))
    assert fan.got(by_issuer) == b""  # a domains payload has no issuer: counted unmatched
    assert fan.unfielded == 2 * len(LITE)
    fan.publish(STREAM_LITE, b"not json", None, None)
    fan.publish(STREAM_LITE, LITE[0], None, None, b"no separators")
    fan.flush()
    assert fan.got(lite) == ws(*(LITE[i] for i in WORKDAY_AT))  # unreadable: no match


def test_filtered_sse_clients_get_the_unfiltered_events_with_their_ids() -> None:
    fan = Recorder(100)
    everything = client(fan, ws=False)
    filtered = client(fan, ws=False, spec=WORKDAY)
    _publish_all(fan)
    events = fan.got(everything).split(b"\n\n")[:-1]
    assert fan.got(filtered) == b"".join(events[i] + b"\n\n" for i in WORKDAY_AT)
    # The record's id (here the fan-out's own numbering from 1: no stamps were given).
    assert fan.got(filtered).startswith(b"id: 0-%d\n" % (WORKDAY_AT[0] + 1))


def test_a_slow_filtered_client_is_told_what_it_lost_of_its_own_records() -> None:
    # A ring of 4: every other record matches "*.even", so the view outlives the ring.
    fan = Recorder(4, drop_budget=100)
    everything = client(fan)  # so the ring holds every record, matched or not
    quick = client(fan, spec=FilterSpec(domains=("*.even",)))
    slow = client(fan, spec=FilterSpec(domains=("*.even",)))
    fan.stalled.add(slow)
    payloads = [b"p%d" % i for i in range(12)]
    for i, p in enumerate(payloads):
        name = f"r{i}.even" if i % 2 == 0 else f"r{i}.odd"
        fan.publish(STREAM_LITE, p, None, None, encode_match_fields([name], "", "", ""))
        if i == 0:
            fan.flush()  # slow takes nothing: busy from here on
    fan.flush()
    assert fan.got(everything) == ws(*payloads)
    assert fan.got(quick) == ws(*payloads[0::2])
    # The ring kept p8..p11, so slow's view still holds p8 and p10; of its 5 records after
    # the first one, it lost p2, p4 and p6: 3, not the 7 stream records behind.
    assert fan.owed(slow) == drop_notice(3, ws=True) + ws(payloads[8], payloads[10])
    assert slow.dropped == 3 and fan.drops == 3


def test_a_view_starts_small_and_grows_only_with_its_live_records() -> None:
    fan = Recorder(1000)
    c = client(fan, spec=FilterSpec(domains=("*",)))
    view = c.ring
    assert isinstance(view, View) and len(view.seqs) == 8
    for i in range(300):
        fan.publish(STREAM_LITE, b"%d" % i, None, None, encode_match_fields(["x"], "", "", ""))
    fan.flush()
    assert len(view.seqs) == 512  # doubled as its 300 live records needed
    assert fan.got(c) == ws(*(b"%d" % i for i in range(300)))
    rare = client(fan, spec=FilterSpec(domains=("y",)))
    for i in range(3000):
        name = "y" if i % 1000 == 0 else "x"
        fan.publish(STREAM_LITE, b"%d" % i, None, None, encode_match_fields([name], "", "", ""))
    fan.flush()
    assert isinstance(rare.ring, View) and len(rare.ring.seqs) == 8
    assert fan.got(rare) == ws(b"0", b"1000", b"2000")
    assert len(view.seqs) == 1000  # never more than the ring holds


def _inflate(payload: bytes) -> bytes:
    """One message on its own: a fresh raw inflater, with the tail RFC 7692 removes."""
    return zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")


def test_compressed_clients_get_each_frame_compressed_once_and_shared() -> None:
    fan = Recorder(100)
    plain = client(fan)
    a, b = client(fan, wbits=15), client(fan, wbits=15)
    small = client(fan, wbits=9)  # server_max_window_bits=9
    filtered = client(fan, spec=WORKDAY, wbits=15)
    _publish_all(fan)
    assert fan.got(plain) == ws(*LITE)
    for c in (a, b, small):
        got = fan.got(c)
        frames_got = _raw_frames(got)
        assert [rsv1 for rsv1, _ in frames_got] == [True] * len(LITE)
        assert [_inflate(p) for _, p in frames_got] == LITE
    assert fan.got(a) == fan.got(b) == b"".join(compressed_frame(p) for p in LITE)
    assert fan.got(small) == b"".join(compressed_frame(p, 9) for p in LITE)
    assert [_inflate(p) for _, p in _raw_frames(fan.got(filtered))] == [
        LITE[i] for i in WORKDAY_AT]
    ring = fan.rings[STREAM_LITE]
    first = ring.zframes[0]
    assert first is not None and len(first) == 2  # window 15 (or what fits) and window 9
    assert ring.z_frame(0, 15) is ring.z_frame(0, 15)  # built once


def test_a_slow_compressed_client_gets_a_plain_notice_then_compressed_frames() -> None:
    fan = Recorder(4, drop_budget=100)
    c = client(fan, wbits=15)
    fan.stalled.add(c)
    fan.publish(STREAM_LITE, LITE[0], None, None)
    fan.flush()
    for p in LITE[1:8]:
        fan.publish(STREAM_LITE, p, None, None)
    owed = fan.owed(c)
    notice = drop_notice(3, ws=True)
    assert owed.startswith(notice)  # a plain text frame: RSV1 clear
    assert [_inflate(p) for _, p in _raw_frames(owed[len(notice):])] == LITE[4:8]


def _raw_frames(data: bytes) -> list[tuple[bool, bytes]]:
    """``(RSV1 set, payload)`` of each text frame in ``data``."""
    out = []
    while data:
        first = data[0]
        (opcode, payload), = read_frames(_first_frame(data))
        assert opcode == 1
        out.append((bool(first & 0x40), payload))
        data = data[len(_first_frame(data)):]
    return out


def _first_frame(data: bytes) -> bytes:
    n, start = data[1] & 0x7F, 2
    if n == 126:
        n, start = int.from_bytes(data[2:4], "big"), 4
    elif n == 127:
        n, start = int.from_bytes(data[2:10], "big"), 10
    return data[: start + n]


@pytest.mark.parametrize("ws_client", [True, False])
def test_a_filtered_client_behind_the_whole_ring_resumes_at_the_oldest_kept(
    ws_client: bool,
) -> None:
    fan = Recorder(4, drop_budget=100)
    c = client(fan, ws=ws_client, spec=FilterSpec(domains=("*",)))
    ring = fan.rings[STREAM_LITE]
    for i in range(10):  # more than the ring without a flush, as after a long burst
        ring.append(b"%d" % i)
        view = c.ring
        assert isinstance(view, View)
        view.push(ring.next_seq - 1)
        fan._dirty.add(view)
    fan.flush()
    kept = [b"%d" % i for i in range(6, 10)]
    rest = ws(*kept) if ws_client else b"".join(
        frames.sse_event(p, b"0-0") for p in kept)  # appended without stamps
    assert fan.got(c) == drop_notice(6, ws=ws_client) + rest
    assert c.dropped == 6
