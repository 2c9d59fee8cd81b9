"""The whole server against the peers' goldens: replay log -> ingest -> feed -> worker -> client.

``test_conformance.py`` proves that the message builder reproduces each peer's golden frames;
this test proves that the running server (the ``certstream`` command with its real ingest,
following the recorded ``live40`` set served by the replay CT log) delivers exactly those
frames on every endpoint: the three WebSocket paths and the three SSE variants, each entry
once, in log order per log.  A frame whose golden matches our builder byte for byte must
match the server's frame byte for byte too; the few frames that differ by a documented
deviation (``DEVIATIONS.md``) must equal our builder's frame instead.  ``seen`` is the only
token normalized.
"""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from typing import Any

import pytest
from tests.support import RawWS, SSEClient, run_server, sockets_on_port, wait_until

from conformance import compare
from conformance.replay import ReplayServer

WS_PATHS = {"/": "lite", "/full-stream": "full", "/domains-only": "domains"}
SSE_TARGETS = {"/sse": "lite", "/sse?stream=full": "full", "/sse?stream=domains": "domains"}
_SEEN = re.compile(r'"seen":-?[0-9][0-9.eE+-]*')


def _norm(text: str) -> str:
    return _SEEN.sub('"seen":0', text)


def _key(text: str) -> tuple[str, int]:
    data = json.loads(text)["data"]
    return data["source"]["url"], int(data["cert_index"])


def _live40_replay(manifest: dict[str, Any]) -> tuple[ReplayServer, dict[str, Any]]:
    """The replay log serving live40's logs (nothing visible yet), started, and a server
    config that follows them from their first index."""
    replay = ReplayServer()
    for log in manifest["logs"]:
        entries = json.loads((compare.INPUTS / "live40" / log["entries"]).read_text())["entries"]
        replay.add_rfc6962_log(log["path"], entries, log["first_index"], visible=0)
    replay.start()
    config: dict[str, Any] = {
        "ct_log": {"poll_interval_ms": 200},
        "custom_logs": [
            {"name": log["name"], "url": replay.url + log["path"],
             "start_index": log["first_index"], "operator": log["operator"]}
            for log in manifest["logs"]
        ],
    }
    return replay, config


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["go", "calidog", "rust"])
def test_server_delivers_the_golden_frames_on_every_endpoint(profile: str) -> None:
    logs = compare.load_set("live40")
    manifest = json.loads((compare.INPUTS / "live40" / "manifest.json").read_text())
    golden = compare.load_golden(profile, "live40")
    # Which golden frames our builder matches exactly (the rest are documented deviations).
    status = {
        (r.stream, f.log_url, f.index): f.status
        for r in compare.compare_set(profile, "live40")
        for f in r.frames
    }
    offline = compare._Ours(profile, "live40", logs).frames

    replay, config = _live40_replay(manifest)
    config["output"] = {"profile": profile}
    total = sum(len(log.entries) for log in logs)
    try:
        with run_server(config, ingest=True) as srv:
            ws = {path: RawWS(srv.port, path, timeout=30) for path in WS_PATHS}
            sse = {target: SSEClient(srv.port, target, timeout=30) for target in SSE_TARGETS}
            try:
                time.sleep(1.0)  # the worker's WANT reaches the ingest before entries exist
                for log in manifest["logs"]:
                    replay.grow(log["path"], log["count"])
                received: dict[tuple[str, str], list[str]] = {}
                for path, stream in WS_PATHS.items():
                    frames = [ws[path].recv_data().decode() for _ in range(total)]
                    received[("ws", stream)] = frames
                for target, stream in SSE_TARGETS.items():
                    events = [sse[target].next_event() for _ in range(total)]
                    assert all(e is not None for e in events), target
                    received[("sse", stream)] = [e[1].decode() for e in events if e]
            finally:
                clients: list[RawWS | SSEClient] = [*ws.values(), *sse.values()]
                for client in clients:
                    client.close()
    finally:
        replay.stop()

    def ours(text: str) -> str:
        # The server read the replay log's URLs; the comparer's frames carry its own base.
        return text.replace(replay.url, compare.OUR_BASE)

    for transport in ("ws", "sse"):
        lite_keys = [_key(ours(t)) for t in received[(transport, "lite")]]
        # Each entry exactly once, in index order within each log.
        assert len(set(lite_keys)) == total == len(lite_keys)
        by_log: dict[str, list[int]] = defaultdict(list)
        for url, index in lite_keys:
            by_log[url].append(index)
        for url, indices in by_log.items():
            assert indices == sorted(indices), (transport, url)
        for stream in ("lite", "full", "domains"):
            texts = [ours(t) for t in received[(transport, stream)]]
            # Domains frames carry no index: one broadcast feeds every stream in order.
            keys = lite_keys if stream == "domains" else [_key(t) for t in texts]
            assert keys == lite_keys, (transport, stream)
            exact = 0
            for key, text in zip(keys, texts, strict=True):
                built = offline[key][stream]
                if transport == "sse":
                    built = built.rstrip("\n")  # SSE data lines cannot end in a newline
                assert _norm(text) == _norm(built), (transport, stream, key)
                if status[(stream, *key)] == "match":
                    gold = golden.frames[stream][_golden_position(golden, stream, key)]
                    if transport == "sse":
                        gold = gold.rstrip("\n")
                    assert _norm(text) == _norm(gold), (transport, stream, key)
                    exact += 1
                else:
                    assert status[(stream, *key)] == "deviation", (stream, key)
            # Guards against a comparison that silently checked nothing.
            assert exact >= total - 5, (transport, stream, exact)


def _golden_position(golden: compare.Golden, stream: str, key: tuple[str, int]) -> int:
    lite_keys = [_key(t) for t in golden.frames["lite"]]
    keys = lite_keys if stream == "domains" else [_key(t) for t in golden.frames[stream]]
    return keys.index(key)


@pytest.mark.slow
def test_gunicorn_two_workers_one_ingest_every_entry_everywhere() -> None:
    """``gunicorn -c gunicorn.conf.py`` with 2 workers: clients on both workers get every
    entry, and the CT log sees each get-entries range requested once (one ingest)."""
    manifest = json.loads((compare.INPUTS / "live40" / "manifest.json").read_text())
    replay, config = _live40_replay(manifest)
    total = sum(int(log["count"]) for log in manifest["logs"])
    clients: list[RawWS] = []
    try:
        with run_server(config, workers=2, ingest=True, gunicorn=True) as srv:
            assert wait_until(lambda: len(srv.worker_pids()) == 2, 30), srv.log()
            workers = srv.worker_pids()
            port = srv.port
            # Connect until both workers hold clients (the kernel hands each new connection to
            # whichever worker accepts first), at most 64 clients.
            while len(clients) < 64:
                clients.append(RawWS(port, "/", timeout=30))
                counts = {pid: sockets_on_port(pid, port) for pid in workers}
                if len(clients) >= 8 and all(counts.values()):
                    break
            counts = {pid: sockets_on_port(pid, port) for pid in workers}
            assert all(counts.values()), counts
            time.sleep(1.0)  # both workers' WANT masks reach the ingest
            for log in manifest["logs"]:
                replay.grow(log["path"], log["count"])
            expected = None
            for client in clients:
                got = [_key(client.recv_data().decode()) for _ in range(total)]
                assert len(set(got)) == total
                expected = expected or got
                assert got == expected  # every client, on either worker, the same sequence
            for log in manifest["logs"]:
                requests = replay.requests(log["path"])
                ranges = [t.split("?", 1)[1] for _m, t in requests if "get-entries" in t]
                assert ranges, log["path"]
                assert len(ranges) == len(set(ranges)), ranges  # no range asked twice
                covered: set[int] = set()
                for r in ranges:
                    params = dict(p.split("=") for p in r.split("&"))
                    covered.update(range(int(params["start"]), int(params["end"]) + 1))
                first = int(log["first_index"])
                assert covered == set(range(first, first + int(log["count"])))
    finally:
        for client in clients:
            client.close()
        replay.stop()
