"""Several machines on one Redis, as real processes: a real redis-server, ``role: ingest``
nodes following the replay CT log, ``role: edge`` nodes (no logs of their own) serving
WebSocket clients, compared with certstream-server-go's golden frames as ``conformance/``
compares them.

* one ingest + two edges: clients on each edge get exactly live40's golden frames, and the
  CT log serves each index once;
* the leading ingest stopped (SIGSTOP) past its lease: a standby takes over where it
  stopped; woken (SIGCONT), the old leader's publishes are refused and it steps down;
  clients see every entry exactly once;
* Redis restarted mid-stream without persistence: the edges and the ingest recover, no
  client is disconnected, and what Redis lost reaches the clients as a gap notice.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conformance.clients import WS_PATHS, WSReader
from conformance.harness import Capture
from conformance.replay import ReplayServer
from conformance.verdict import format_verdict, judge
from tests.support.broker import Node, live40_replay, start_node
from tests.support.net import short_tmpdir
from tests.support.redis import needs_redis, redis_server
from tests.support.wait import wait_until

pytestmark = [pytest.mark.slow, needs_redis]


def _readers(node: Node) -> dict[tuple[str, str], WSReader]:
    return {("ws", stream): WSReader("127.0.0.1", node.port, path, timeout=10.0)
            for stream, path in WS_PATHS.items()}


def _collect(readers: list[dict[tuple[str, str], WSReader]], expected: int,
             timeout: float = 60.0, quiet: float = 1.5) -> None:
    """Until every reader has ``expected`` frames and nothing came for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    every = [r for group in readers for r in group.values()]
    while time.monotonic() < deadline:
        time.sleep(0.1)
        last = max(r.last_frame for r in every)
        if all(r.count() >= expected for r in every) and time.monotonic() - last >= quiet:
            return


def _entries(reader: WSReader) -> list[tuple[str, int]]:
    """(log URL, index) of each certificate frame, in arrival order (notices left out)."""
    out = []
    for text in reader.frames:
        doc = json.loads(text)
        if doc.get("message_type") == "certificate_update":
            out.append((doc["data"]["source"]["url"], int(doc["data"]["cert_index"])))
    return out


def _notices(reader: WSReader) -> list[dict[str, Any]]:
    return [d for d in map(json.loads, reader.frames) if d.get("message_type") == "notice"]


def _served_once(replay: ReplayServer, paths: list[str]) -> None:
    """Each index of each log was served by exactly one get-entries answer."""
    for path in paths:
        seen: list[int] = []
        for _method, target in replay.requests(path):
            if "get-entries" not in target:
                continue
            params = dict(p.split("=") for p in target.split("?", 1)[1].split("&"))
            seen += range(int(params["start"]), int(params["end"]) + 1)
        assert len(seen) == len(set(seen)), f"{path}: an index was requested twice"


@contextlib.contextmanager
def _replay() -> Iterator[tuple[ReplayServer, list[str], dict[str, Any], int]]:
    replay, paths, logs, total = live40_replay()
    try:
        yield replay, paths, logs, total
    finally:
        replay.stop()


def test_one_ingest_two_edges_deliver_the_golden_frames() -> None:
    with short_tmpdir("cs-broker-") as tmp, redis_server(tmp) as redis, \
            _replay() as (replay, paths, logs, total):
        with start_node("ingest", tmp, "ingest", redis.url, logs) as ingest, \
                start_node("edge1", tmp, "edge", redis.url) as edge1, \
                start_node("edge2", tmp, "edge", redis.url) as edge2:
            groups = [_readers(edge1), _readers(edge2)]
            try:
                time.sleep(2.5)  # every edge's wants reach the ingest (written each second)
                for path in paths:
                    replay.release(path)
                _collect(groups, total)
                for node, group in zip((edge1, edge2), groups, strict=True):
                    frames = {key: list(r.frames) for key, r in group.items()}
                    verdict = judge("go", "live40",
                                    Capture(replay.url, frames, node.log(), []))
                    assert verdict.ok, f"{node.name}:\n{format_verdict(verdict)}"
                    assert verdict.matched == verdict.expected == 3 * total, \
                        format_verdict(verdict)
            finally:
                for group in groups:
                    for reader in group.values():
                        reader.close()
            assert ingest.metric("certstream_broker_published_total") == total
            leaders = {node.deep()["broker"]["leader"] for node in (ingest, edge1, edge2)}
            assert len(leaders) == 1 and leaders.pop(), leaders
        _served_once(replay, paths)


def _grow_all(replay: ReplayServer, paths: list[str], n: int) -> None:
    for path in paths:
        replay.grow(path, n)
        replay.release(path)


def _got(group: dict[tuple[str, str], WSReader]) -> int:
    """Entry frames (certificate updates, dns entries) the slowest stream has so far."""
    return min(len(r.frames) - len(_notices(r)) for r in group.values())


def _exactly_once(group: dict[tuple[str, str], WSReader], total: int) -> None:
    for (_t, stream), reader in group.items():
        if stream == "domains":  # dns_entries frames carry no index; judged by the verdict
            continue
        got = _entries(reader)
        assert len(got) == len(set(got)) == total, (stream, len(got), len(set(got)))


def test_a_stopped_leader_is_fenced_out_and_a_standby_takes_over() -> None:
    half = 10
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(short_tmpdir("cs-broker-"))
        redis = stack.enter_context(redis_server(tmp))
        replay, paths, logs, total = stack.enter_context(_replay_visible(0))
        a = stack.enter_context(start_node("ingest-a", tmp, "ingest", redis.url, logs))
        assert wait_until(lambda: a.metric("certstream_broker_leader") == 1, 20), a.log()
        b = stack.enter_context(start_node("ingest-b", tmp, "ingest", redis.url, logs))
        edge = stack.enter_context(start_node("edge", tmp, "edge", redis.url))
        group = _readers(edge)
        try:
            time.sleep(2.5)
            assert b.metric("certstream_broker_leader") == 0
            _grow_all(replay, paths, half)
            assert wait_until(lambda: _got(group) >= 2 * half, 30), edge.log()
            leader = a.ingest_pid()
            assert leader is not None
            os.kill(leader, signal.SIGSTOP)
            try:
                # Past the lease (2 s): the standby takes over where A stopped.
                assert wait_until(lambda: b.metric("certstream_broker_leader") == 1,
                                  20), b.log()
                _grow_all(replay, paths, total // len(paths) - half)
                assert wait_until(lambda: _got(group) >= total, 30), edge.log()
            finally:
                os.kill(leader, signal.SIGCONT)
            # Woken, A finds the lease taken: refused, it steps down and stands by.
            assert wait_until(
                lambda: a.metric("certstream_broker_refused_total") >= 1, 20), a.log()
            assert wait_until(lambda: a.metric("certstream_broker_leader") == 0, 20)
            assert "stepped down" in a.log()
            time.sleep(2.0)  # anything A could still have sent would arrive now
            assert b.metric("certstream_broker_leader") == 1
            _exactly_once(group, total)
            frames = {key: list(r.frames) for key, r in group.items()}
            verdict = judge("go", "live40", Capture(replay.url, frames, edge.log(), []))
            assert verdict.ok, format_verdict(verdict)
            assert not any(_notices(r) for r in group.values())
        finally:
            for reader in group.values():
                reader.close()


def _await_published(ingest: Node, records: int) -> None:
    assert wait_until(
        lambda: ingest.metric("certstream_broker_published_total") >= records, 20), ingest.log()


@contextlib.contextmanager
def _replay_visible(visible: int) -> Iterator[tuple[ReplayServer, list[str], dict[str, Any],
                                                    int]]:
    replay, paths, logs, total = live40_replay(visible)
    try:
        yield replay, paths, logs, total
    finally:
        replay.stop()


def test_a_redis_restart_keeps_clients_and_reports_what_it_lost() -> None:
    step = 5  # entries per log per step: 2 logs, 4 steps = the 40 of live40
    with short_tmpdir("cs-broker-") as tmp, redis_server(tmp) as redis, \
            _replay_visible(0) as (replay, paths, logs, total), \
            start_node("ingest", tmp, "ingest", redis.url, logs) as ingest, \
            start_node("edge1", tmp, "edge", redis.url) as edge1, \
            start_node("edge2", tmp, "edge", redis.url) as edge2:
        groups = [_readers(edge1), _readers(edge2)]
        edge_workers = edge1.worker_pids() + edge2.worker_pids()
        try:
            time.sleep(2.5)
            _grow_all(replay, paths, step)
            assert wait_until(lambda: min(map(_got, groups)) >= 2 * step, 30)
            # The edges stop reading (not their clients' connections) while the ingest
            # publishes twice (one log, then the other); then Redis dies and comes back empty
            # (no persistence).  An edge's pending XREAD may have got the first batch into
            # its socket already; the second one it has surely not read: lost with Redis.
            for pid in edge_workers:
                os.kill(pid, signal.SIGSTOP)
            try:
                for n, path in enumerate(paths, 1):
                    replay.grow(path, step)
                    _await_published(ingest, 2 * step + n * step)
                redis.restart(down_secs=1.0)
            finally:
                for pid in edge_workers:
                    os.kill(pid, signal.SIGCONT)
            _grow_all(replay, paths, 2 * step)
            assert wait_until(lambda: min(map(_got, groups)) >= total - 2 * step, 30)
            time.sleep(1.5)  # anything more would arrive now
            for node, group in zip((edge1, edge2), groups, strict=True):
                for (_t, stream), reader in group.items():
                    assert not reader.closed_why, (node.name, stream, reader.closed_why)
                    notices = _notices(reader)
                    # What Redis lost before this edge read it, told once with its exact
                    # count: with what arrived, every entry is accounted for.
                    assert len(notices) == 1, (node.name, stream, notices)
                    lost = notices[0]["dropped"]
                    assert lost in (step, 2 * step), (node.name, stream, notices)
                    got = len(reader.frames) - len(notices)
                    assert got + lost == total, (node.name, stream, got, lost)
                    if stream != "domains":
                        keys = _entries(reader)
                        assert len(set(keys)) == len(keys), "a record came twice"
                assert node.metric("certstream_broker_lost_total") == lost
                assert node.metric("certstream_broker_gaps_total") == 1
                assert node.deep()["broker"]["connected"]
            assert ingest.metric("certstream_broker_published_total") == total
            assert "Traceback" not in redis.log()
        finally:
            for group in groups:
                for reader in group.values():
                    reader.close()
