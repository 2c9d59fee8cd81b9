"""Clients that reconnect and resume, against real processes: the server with its ingest and
2 workers on one machine (the client comes back to the other worker), and Redis with one
``role: ingest`` and two ``role: edge`` nodes (the client comes back to the other edge).

* an SSE client that reconnects with the ``Last-Event-ID`` of its 10th event gets events
  11.. exactly, the same ids and bytes, then the live ones;
* a WebSocket client with ``?since=<seen of its 10th frame>`` gets every frame after the
  10th (after those seen at the same time as the 10th, which may come again);
* from before what the rings hold, each is first told exactly how many it lost;
* a bad resume value is a 400 with a JSON reason, before any upgrade.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from conformance.replay import ReplayServer
from tests.support.broker import Node, live40_replay, start_node
from tests.support.clients import RawWS, SSEClient, http_get
from tests.support.live40 import live40_server
from tests.support.net import short_tmpdir
from tests.support.procs import socket_owner
from tests.support.redis import needs_redis, redis_server

pytestmark = pytest.mark.slow

SEEN = re.compile(rb'"seen":([0-9.]+)')
T = TypeVar("T", SSEClient, RawWS)
Event = tuple[str | None, bytes]


def _seen(frame: bytes) -> str:
    """The ``seen`` of a frame as it is written in it (what a client sends back)."""
    found = SEEN.search(frame)
    assert found is not None, frame[:200]
    return found.group(1).decode()


def _event(sse: SSEClient) -> Event:
    event = sse.next_event()
    assert event is not None, "the stream ended"
    return event


def _id_order(event_id: str | None) -> tuple[int, int]:
    assert event_id is not None
    ms, _, n = event_id.partition("-")
    return int(ms), int(n)


def _fingerprint(data: bytes) -> str:
    return str(json.loads(data)["data"]["leaf_cert"]["fingerprint"])


def _elsewhere(make: Callable[[], T], port: int, pids: list[int], avoid: int) -> T:
    """A connection that one of ``pids`` other than ``avoid`` accepted (workers take turns
    accepting as they wake: try again until another one has it)."""
    for _ in range(40):
        conn = make()
        owner = socket_owner(pids, port, conn.sock.getsockname()[1])
        if owner is not None and owner != avoid:
            return conn
        conn.close()
        time.sleep(0.05)
    raise AssertionError("no other worker accepted a connection")


def _owner(conn: SSEClient | RawWS, port: int, pids: list[int]) -> int:
    owner = socket_owner(pids, port, conn.sock.getsockname()[1])
    assert owner is not None
    return owner


def _resumed_ws(first: list[bytes], more: list[bytes], got: list[bytes]) -> None:
    """``got``, after ``?since=<seen of first[-1]>``: every frame of ``first`` seen at that
    same time (they may come again, from the first of them), then exactly ``more``."""
    since = _seen(first[-1])
    again = next(i for i, f in enumerate(first) if _seen(f) == since)
    assert got == first[again:] + more, (again, len(got))


def test_one_machine_clients_resume_on_the_other_worker() -> None:
    with live40_server(workers=2) as live:
        port, workers = live.server.port, live.server.worker_pids()
        sse = SSEClient(port, "/sse", timeout=15)
        ws = RawWS(port, "/", timeout=15)
        sse_pid, ws_pid = _owner(sse, port, workers), _owner(ws, port, workers)
        try:
            time.sleep(1.0)  # the workers tell the ingest which streams they want
            live.open(5)  # 10 entries (5 per log)
            sse_first = [_event(sse) for _ in range(10)]
            ws_first = [ws.recv_data() for _ in range(10)]
            live.open(10)
            sse_more = [_event(sse) for _ in range(10)]
            ws_more = [ws.recv_data() for _ in range(10)]
        finally:
            sse.close()
            ws.close()
        back = _elsewhere(lambda: SSEClient(
            port, "/sse", timeout=15, headers={"Last-Event-ID": str(sse_first[9][0])}),
            port, workers, sse_pid)
        ws_back = _elsewhere(lambda: RawWS(port, f"/?since={_seen(ws_first[9])}", timeout=15),
                             port, workers, ws_pid)
        try:
            # Events 11.. exactly: the same ids and bytes the first connection got.
            assert [_event(back) for _ in range(10)] == sse_more
            again = [ws_back.recv_data() for _ in range(len(ws_first) - next(
                i for i, f in enumerate(ws_first) if _seen(f) == _seen(ws_first[9])) + 10)]
            _resumed_ws(ws_first, ws_more, again)
            live.open()  # the other 20: live, on the connections that resumed
            sse_live = [_event(back) for _ in range(20)]
            ws_live = [ws_back.recv_data() for _ in range(20)]
        finally:
            back.close()
            ws_back.close()
    events = sse_first + sse_more + sse_live
    ids = [_id_order(i) for i, _d in events]
    assert ids == sorted(ids) and len(set(ids)) == 40  # one global id each, increasing
    assert len({_fingerprint(d) for _i, d in events}) == 40  # every certificate once
    assert [d for _i, d in sse_live] == [f.rstrip(b"\n") for f in ws_live]


def test_one_machine_from_before_the_ring_clients_are_told_exactly_what_they_lost() -> None:
    ring = 8
    with live40_server({"buffer_size": ring}, workers=2) as live:
        port = live.server.port
        keeper = RawWS(port, "/", timeout=15)  # connected all along: lite flows on
        sse = SSEClient(port, "/sse", timeout=15)
        ws = RawWS(port, "/", timeout=15)
        try:
            time.sleep(1.0)
            live.open(5)
            sse_first = [_event(sse) for _ in range(10)]
            ws_first = [ws.recv_data() for _ in range(10)]
            sse.close()
            ws.close()
            live.open()  # 30 more while they are away: more than the rings hold
            kept = [keeper.recv_data() for _ in range(40)]
            # Back after their 5th message: 6 .. 40-ring are gone, the last `ring` are held.
            back = SSEClient(port, "/sse", timeout=15,
                             headers={"Last-Event-ID": str(sse_first[4][0])})
            ws_back = RawWS(port, f"/?since={_seen(ws_first[4])}", timeout=15)
            lost = 40 - 5 - ring
            assert back.next_block() == b": dropped %d" % lost
            assert [d for _i, d in (_event(back) for _ in range(ring))] == [
                f.rstrip(b"\n") for f in kept[-ring:]]
            # Told from when each record was seen: the frames before its 5th that were seen
            # at the same time may be counted too (it cannot say which of them it had).
            same = sum(1 for f in ws_first[:4] if _seen(f) == _seen(ws_first[4]))
            notice = json.loads(ws_back.recv_data())
            assert notice == {"message_type": "notice", "dropped": lost + same}
            assert [ws_back.recv_data() for _ in range(ring)] == kept[-ring:]
            back.close()
            ws_back.close()
        finally:
            keeper.close()


def test_a_bad_resume_value_is_a_400_before_any_upgrade() -> None:
    with live40_server() as live:
        port = live.server.port
        status, headers, body = http_get(port, "/sse", headers={"Last-Event-ID": "yesterday"})
        assert status == 400 and headers["content-type"] == "application/json"
        assert json.loads(body)["param"] == "Last-Event-ID"
        ws = RawWS(port, "/?since=soon", timeout=5)
        try:
            assert ws.status == 400
            reason = json.loads(ws.buf or ws.sock.recv(4096))
            assert reason["error"] == "bad resume point" and reason["param"] == "since"
        finally:
            ws.close()
        status, _, body = http_get(port, "/sse?stream=full&last_event_id=1-2-3")
        assert status == 400 and json.loads(body)["param"] == "last_event_id"


# -- across two edges (Redis) --------------------------------------------------------------


@contextlib.contextmanager
def _deployment(extra: dict[str, Any] | None = None,
                ) -> Iterator[tuple[ReplayServer, list[str], Node, Node]]:
    with short_tmpdir("cs-resume-") as tmp, redis_server(tmp) as redis:
        replay, paths, logs, _total = live40_replay(0)
        try:
            with start_node("ingest", tmp, "ingest", redis.url, logs), \
                    start_node("edge1", tmp, "edge", redis.url, extra) as edge1, \
                    start_node("edge2", tmp, "edge", redis.url, extra) as edge2:
                yield replay, paths, edge1, edge2
        finally:
            replay.stop()


def _grow(replay: ReplayServer, paths: list[str], n: int) -> None:
    for path in paths:
        replay.grow(path, n)
        replay.release(path)


@needs_redis
def test_across_edges_clients_resume_on_the_other_edge() -> None:
    with _deployment() as (replay, paths, edge1, edge2):
        sse = SSEClient(edge1.port, "/sse", timeout=15)
        ws = RawWS(edge1.port, "/", timeout=15)
        try:
            time.sleep(2.5)  # every edge's wants reach the ingest (written each second)
            _grow(replay, paths, 5)
            sse_first = [_event(sse) for _ in range(10)]
            ws_first = [ws.recv_data() for _ in range(10)]
            _grow(replay, paths, 5)
            sse_more = [_event(sse) for _ in range(10)]
            ws_more = [ws.recv_data() for _ in range(10)]
        finally:
            sse.close()
            ws.close()
        back = SSEClient(edge2.port, "/sse", timeout=15,
                         headers={"Last-Event-ID": str(sse_first[9][0])})
        ws_back = RawWS(edge2.port, f"/?since={_seen(ws_first[9])}", timeout=15)
        try:
            assert [_event(back) for _ in range(10)] == sse_more  # the Redis stream ids
            again = [ws_back.recv_data() for _ in range(len(ws_first) - next(
                i for i, f in enumerate(ws_first) if _seen(f) == _seen(ws_first[9])) + 10)]
            _resumed_ws(ws_first, ws_more, again)
            _grow(replay, paths, 10)
            sse_live = [_event(back) for _ in range(20)]
            ws_live = [ws_back.recv_data() for _ in range(20)]
        finally:
            back.close()
            ws_back.close()
    events = sse_first + sse_more + sse_live
    ids = [_id_order(i) for i, _d in events]
    assert ids == sorted(ids) and len(set(ids)) == 40
    assert len({_fingerprint(d) for _i, d in events}) == 40
    assert [d for _i, d in sse_live] == [f.rstrip(b"\n") for f in ws_live]


@needs_redis
def test_across_edges_from_before_the_ring_clients_are_told_exactly_what_they_lost() -> None:
    ring = 8
    with _deployment({"buffer_size": ring}) as (replay, paths, edge1, edge2):
        keeper = RawWS(edge1.port, "/", timeout=15)
        sse = SSEClient(edge1.port, "/sse", timeout=15)
        ws = RawWS(edge1.port, "/", timeout=15)
        try:
            time.sleep(2.5)
            _grow(replay, paths, 5)
            sse_first = [_event(sse) for _ in range(10)]
            ws_first = [ws.recv_data() for _ in range(10)]
            sse.close()
            ws.close()
            _grow(replay, paths, 15)
            kept = [keeper.recv_data() for _ in range(40)]
            # On the other edge, whose rings hold the last 8: how many it lost comes from
            # the number of its last record, which the edge asks Redis for.
            back = SSEClient(edge2.port, "/sse", timeout=15,
                             headers={"Last-Event-ID": str(sse_first[4][0])})
            ws_back = RawWS(edge2.port, f"/?since={_seen(ws_first[4])}", timeout=15)
            lost = 40 - 5 - ring
            assert back.next_block() == b": dropped %d" % lost
            assert [d for _i, d in (_event(back) for _ in range(ring))] == [
                f.rstrip(b"\n") for f in kept[-ring:]]
            same = sum(1 for f in ws_first[:4] if _seen(f) == _seen(ws_first[4]))
            assert json.loads(ws_back.recv_data()) == {"message_type": "notice",
                                                       "dropped": lost + same}
            assert [ws_back.recv_data() for _ in range(ring)] == kept[-ring:]
            back.close()
            ws_back.close()
        finally:
            keeper.close()
