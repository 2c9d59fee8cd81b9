"""Stopping a deployment: Ctrl-C is graceful in every process, and SIGKILL leaves nothing
behind that the next start does not clear away.

Ctrl-C is sent as a terminal sends it: SIGINT to the master, its workers and the ingest at
once.  (``tests/e2e/test_demo.py`` does the same to ``certstream --demo``.)
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from tests.support import RawWS, SSEClient, close_info, run_server, wait_until
from tests.support.procs import alive, cmdline, family, interrupt_all


@pytest.mark.slow
def test_ctrl_c_closes_every_client_and_logs_json_lines_without_a_traceback() -> None:
    # gunicorn -c gunicorn.conf.py, two workers, the real ingest, log_format: json
    with run_server({"log_format": "json"}, workers=2, ingest=True, gunicorn=True) as server:
        sockets = [RawWS(server.port, path, timeout=15) for path in ("/", "/full-stream",
                                                                    "/domains-only", "/")]
        streams = [SSEClient(server.port, target, timeout=15)
                   for target in ("/sse", "/sse?stream=full")]
        pids = family(server.proc.pid)
        assert len(pids) == 4, [cmdline(p) for p in pids]  # master, 2 workers, ingest
        interrupt_all(server.proc.pid)
        for ws_client in sockets:
            while True:
                opcode, payload = ws_client.recv_frame()
                if opcode == 8:
                    assert close_info(payload) == (1001, "server shutting down")
                    break
            ws_client.close()
        for sse_client in streams:
            while sse_client.next_block() is not None:
                pass
            sse_client.close()
        assert server.proc.wait(30) == 0
        assert wait_until(lambda: not any(alive(p) for p in pids), 10)
        lines = server.log().splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert {r["pid"] for r in records} >= set(pids)  # master, workers and ingest all wrote
    assert any(r["logger"] == "certstream.ingest" and r["message"] == "stopping"
               for r in records)
    assert any("Handling signal: int" in r["message"] for r in records)
    for r in records:
        assert {"time", "level", "logger", "message", "pid"} <= set(r)


@pytest.mark.slow
def test_what_a_sigkilled_master_left_is_removed_by_the_next_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))  # the servers' temporary directory, ours alone
    # feed_socket "" lets the master make its private run directory too
    with run_server({"feed_socket": ""}, ingest=True) as first:
        pids = family(first.proc.pid)
        assert wait_until(lambda: len(list(tmp.glob("certstream-*"))) == 2, 10)
        left = sorted(tmp.glob("certstream-*"))
        assert [p.name.split("-")[1] for p in left] == ["metrics", "run"]
        assert all(p.name.split("-")[2] == str(first.proc.pid) for p in left)
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait()
        # the orphaned workers and ingest notice and exit on their own
        assert wait_until(lambda: not any(alive(p) for p in pids), 30)
    assert all(p.exists() for p in left)  # nobody could remove them
    with run_server({"feed_socket": ""}, ingest=True) as second:
        assert not any(p.exists() for p in left)
        assert "its server is gone" in second.log()
        mine = sorted(tmp.glob("certstream-*"))
        assert len(mine) == 2
        assert all(p.name.split("-")[2] == str(second.proc.pid) for p in mine)
        second.proc.send_signal(signal.SIGTERM)
        assert second.proc.wait(30) == 0
    deadline = time.monotonic() + 5
    while list(tmp.glob("certstream-*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(tmp.glob("certstream-*")) == []  # a clean stop removes its own
    assert os.environ["TMPDIR"] == str(tmp)
