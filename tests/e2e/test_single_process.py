"""``process_model: single`` end to end: the real ``certstream`` command serving from its own
process (the embedded ingest and the worker's serving loop, no gunicorn master, no child),
against the replay CT log.

* the conformance harness: the golden frames of certstream-server-go's live40 capture on all
  three streams, over WebSocket and SSE;
* one process, which tells systemd it is ready; ``/health/deep``, ``/metrics`` (the spec's
  series) and ``/api/stats`` answer;
* SIGTERM: the WebSocket gets 1001, the SSE stream ends, the process exits 0 with no traceback,
  and it wrote its last position; SIGHUP re-reads the config file and does not stop it;
* under ``gunicorn -c gunicorn.conf.py`` it is refused with one line naming the key.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support import RawWS, SSEClient, close_info, http_get, run_server
from tests.support.data import INPUTS, ROOT
from tests.support.harnessrun import serve_live40_through_the_harness
from tests.support.net import free_port
from tests.support.procs import children, clean_env
from tests.support.wait import wait_until

BIN = Path(sys.executable).parent
SPEC_SERIES = ("certstream_messages_sent", "certstream_parse_failures",
               "certstream_worker_panics", "certstream_ct_logs_count",
               "certstream_duplicates_filtered", "certstream_dedup_cache_size")


@pytest.mark.slow
def test_single_process_serves_the_golden_frames_of_live40(tmp_path: Path) -> None:
    log = serve_live40_through_the_harness(
        tmp_path, {"CERTSTREAM_INGEST_MODE": "embedded", "CERTSTREAM_PROCESS_MODEL": "single"})
    assert "one process (process_model: single)" in log
    assert "ingest embedded in this worker" in log
    assert "Booting worker" not in log and "Traceback" not in log  # no gunicorn arbiter


def _replay_config(url: str, state: Path) -> dict[str, Any]:
    return {
        "custom_logs": [{"name": "Replay log", "url": url, "start_index": 0,
                         "operator": "Replay"}],
        "ct_log": {"poll_interval_ms": 200, "state_file": str(state)},
        "protocols": {"api": True},
    }


def _saved_next(state: Path) -> int:
    (position,) = json.loads(state.read_text())["logs"].values()
    return int(position["next_index"])


@pytest.mark.slow
def test_one_process_answers_everything_and_stops_gracefully_on_sigterm(
    tmp_path: Path,
) -> None:
    from conformance.replay import ReplayServer  # noqa: PLC0415 - the replay log is test-only

    entries = json.loads((INPUTS / "synth11" / "rfc6962.get-entries.json").read_text())["entries"]
    replay = ReplayServer()
    replay.add_rfc6962_log("/rfc6962/", entries, 0, visible=0)
    replay.start()
    state = tmp_path / "state.json"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # systemd's, for Type=notify
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(30)
    try:
        with run_server(_replay_config(replay.url + "/rfc6962/", state), ingest="single",
                        env={"NOTIFY_SOCKET": str(tmp_path / "notify")}) as srv:
            assert children(srv.proc.pid) == []  # no master, no worker, no ingest: one process
            assert notify.recv(4096).startswith(b"READY=1")
            ws = RawWS(srv.port, "/", timeout=30)
            sse = SSEClient(srv.port, "/sse", timeout=30)
            time.sleep(1.0)  # the clients' streams are wanted before the log grows
            replay.grow("/rfc6962/", 6)
            got_ws = [json.loads(ws.recv_data())["data"]["cert_index"] for _ in range(6)]
            got_sse: list[int] = []
            while len(got_sse) < 6:
                event = sse.next_event()
                assert event is not None, srv.log()
                got_sse.append(json.loads(event[1])["data"]["cert_index"])
            assert got_ws == got_sse == list(range(6))

            status, _, body = http_get(srv.port, "/health/deep")
            deep = json.loads(body)
            assert (status, deep["logs_total"], deep["feed_state_received"]) == (200, 1, True)
            status, _, body = http_get(srv.port, "/metrics")
            assert status == 200
            text = body.decode()
            for name in SPEC_SERIES:
                assert f"# TYPE {name} " in text, name
            sent = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                    if line.startswith('certstream_messages_sent{log="Replay log"} ')]
            assert sent == [6.0], text
            status, _, body = http_get(srv.port, "/api/stats")
            # The shared table's one row counts this process's clients: the two above.
            assert status == 200
            assert json.loads(body)["connections"] == {"total": 2, "websocket": 1, "sse": 1}

            # SIGHUP (the master's reload, here): the config is re-read; the server stays.
            srv.proc.send_signal(signal.SIGHUP)
            assert wait_until(lambda: "SIGHUP" in srv.log(), 10), srv.log()
            assert srv.proc.poll() is None and http_get(srv.port, "/health")[0] == 200

            srv.proc.send_signal(signal.SIGTERM)
            while True:
                opcode, payload = ws.recv_frame()
                if opcode == 8:
                    assert close_info(payload) == (1001, "server shutting down")
                    break
            while sse.next_block() is not None:
                pass
            ws.close()
            sse.close()
            assert srv.proc.wait(30) == 0
        assert _saved_next(state) == 6
    finally:
        notify.close()
        replay.stop()


def test_gunicorn_refuses_the_single_process_model_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({
        "process_model": "single", "ingest": {"mode": "embedded"}, "host": "127.0.0.1",
        "port": free_port(), "ct_log": {"log_list_urls": []}}))
    res = subprocess.run(
        [str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py")],
        check=False, cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env=clean_env(CERTSTREAM_CONFIG=str(tmp_path / "c.yaml")),
    )
    assert res.returncode == 2, res.stderr
    (line,) = [ln for ln in res.stderr.splitlines() if not ln.startswith("[")]
    assert "process_model" in line and "certstream command" in line
    assert "Traceback" not in res.stderr
