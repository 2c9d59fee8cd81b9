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
from pathlib import Path
from typing import Any

import pytest
from tests.support.broker import Node, live40_replay, start_node
from tests.support.net import short_tmpdir
from tests.support.redis import needs_redis, redis_server
from tests.support.wait import wait_until

from conformance.clients import WS_PATHS, WSReader
from conformance.harness import Capture
from conformance.replay import ReplayServer
from conformance.verdict import format_verdict, judge

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
