"""``ingest.mode: embedded`` end to end: the real ``certstream`` command with the ingest
running inside its one worker (no ingest process, no feed socket), against the replay CT log.

* the conformance harness: the golden frames of certstream-server-go's live40 capture on all
  three streams, over WebSocket and SSE;
* the same resume file (a restart neither repeats nor skips an entry, after a graceful stop
  and after a quick one), the ingest's metrics and ``/health/deep``;
* a bad combination (embedded with more than one worker) stops the start with one line
  naming the key.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tests.support import RawWS, http_get, run_server
from tests.support.data import INPUTS, ROOT
from tests.support.harnessrun import serve_live40_through_the_harness
from tests.support.net import free_port
from tests.support.procs import clean_env
from tests.support.wait import wait_until

BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_embedded_ingest_serves_the_golden_frames_of_live40(tmp_path: Path) -> None:
    log = serve_live40_through_the_harness(tmp_path, {"CERTSTREAM_INGEST_MODE": "embedded"})
    # And it was the embedded ingest that followed the log, not an ingest process.
    assert "ingest embedded in this worker" in log
    assert "ingest started (pid" not in log


def _replay_config(url: str, state: Path) -> dict[str, Any]:
    return {
        "custom_logs": [{"name": "Replay log", "url": url, "start_index": 0,
                         "operator": "Replay"}],
        "ct_log": {"poll_interval_ms": 200, "state_file": str(state)},
    }


def _indices(ws: RawWS, n: int) -> list[int]:
    return [json.loads(ws.recv_data())["data"]["cert_index"] for _ in range(n)]


def _saved_next(state: Path) -> int:
    (position,) = json.loads(state.read_text())["logs"].values()
    return int(position["next_index"])


@pytest.mark.slow
def test_embedded_ingest_resumes_reports_and_counts(tmp_path: Path) -> None:
    from conformance.replay import ReplayServer  # noqa: PLC0415 - the replay log is test-only

    entries = json.loads((INPUTS / "synth11" / "rfc6962.get-entries.json").read_text())["entries"]
    replay = ReplayServer()
    replay.add_rfc6962_log("/rfc6962/", entries, 0, visible=0)
    replay.start()
    state = tmp_path / "state.json"
    config = _replay_config(replay.url + "/rfc6962/", state)
    try:
        with run_server(config, ingest="embedded") as srv:
            ingests, workers = srv.tree()
            assert ingests == [] and len(workers) == 1  # one process less
            ws = RawWS(srv.port, "/")
            try:
                ws.sock.settimeout(30)
                time.sleep(1.0)  # the worker wants lite before the log grows
                replay.grow("/rfc6962/", 6)
                assert _indices(ws, 6) == list(range(6))
                # Saved once the hub has written the batch to its clients, not at a stop.
                assert wait_until(lambda: state.exists() and _saved_next(state) == 6, 10)
            finally:
                ws.close()
            status, _, body = http_get(srv.port, "/health/deep")
            deep = json.loads(body)
            assert (status, deep["logs_total"], deep["feed_state_received"]) == (200, 1, True)
            metrics = http_get(srv.port, "/metrics")[2].decode()
            entries_total = sum(
                float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                if line.startswith("certstream_entries_total{") and 'log="Replay log"' in line
            )
            assert entries_total == 6
            # A graceful stop writes the newest position.
            srv.proc.send_signal(signal.SIGTERM)
            assert srv.proc.wait(30) == 0
        assert _saved_next(state) == 6

        with run_server(config, ingest="embedded") as srv:
            ws = RawWS(srv.port, "/")
            try:
                ws.sock.settimeout(30)
                time.sleep(1.0)
                replay.grow("/rfc6962/", len(entries) - 6)
                assert _indices(ws, len(entries) - 6) == list(range(6, len(entries)))
            finally:
                ws.close()
            # run_server ends it with SIGQUIT: a quick exit, which skips the graceful path.
        assert _saved_next(state) == len(entries)
    finally:
        replay.stop()


def test_embedded_with_two_workers_is_one_line_and_status_2(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("workers: 2\ningest: {mode: embedded}\n"
                                     "ct_log: {log_list_urls: []}\n")
    res = subprocess.run([str(BIN / "certstream"), "--config", "c.yaml"], check=False,
                         cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [res.stderr.strip()]
    assert "ingest.mode" in res.stderr and "workers" in res.stderr


def test_gunicorn_asked_for_two_workers_with_embedded_is_one_line_and_status_2(
    tmp_path: Path,
) -> None:
    # The settings say one worker; gunicorn's own -w asks for two.
    res = subprocess.run(
        [str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "-w", "2"],
        check=False, cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env=clean_env(CERTSTREAM_INGEST_MODE="embedded", CERTSTREAM_HOST="127.0.0.1",
                      CERTSTREAM_PORT=str(free_port())),
    )
    assert res.returncode == 2, res.stderr
    # gunicorn logs its own start line before its first hook runs; ours is the one other.
    (line,) = [ln for ln in res.stderr.splitlines() if not ln.startswith("[")]
    assert "ingest.mode" in line and "2 workers" in line
    assert "Traceback" not in res.stderr
