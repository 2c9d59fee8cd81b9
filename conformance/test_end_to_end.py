"""The whole server under gunicorn, replay log -> one ingest -> two workers -> clients.

That the running server delivers each peer's golden frames on every WebSocket and SSE
endpoint is ``test_harness.py``'s job (the conformance harness, run as a user runs it).
This file checks what the harness does not see: with two gunicorn workers, clients on both
get every entry and the CT log is read once.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from tests.support import RawWS, run_server, sockets_on_port, wait_until

from conformance import compare
from conformance.replay import ReplayServer


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
