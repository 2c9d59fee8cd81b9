"""The process model, with real processes: one gunicorn master, its workers, exactly one ingest.

Process facts come from /proc (psutil is not a dependency).  The server tests are marked slow;
the command-line checks (--validate-config, a bad config) and the cross-process metrics are not.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.support.data import ROOT
from tests.support.net import free_port
from tests.support.procs import alive, clean_env, proc_env
from tests.support.server import Server, run_server
from tests.support.wait import wait_until

BIN = Path(sys.executable).parent
GRACE = 10.0  # certstream.shell.app.GRACEFUL_TIMEOUT


# -- command line (no server needed) -----------------------------------------------------------


def run_cli(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "certstream"), *args], check=False, cwd=tmp_path,
                          env=clean_env(**env), capture_output=True, text=True, timeout=60)


def test_validate_config_ok(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("port: 9999\nct_log: {log_list_urls: []}\n")
    res = run_cli(["--validate-config", "--config", "c.yaml"], tmp_path)
    assert (res.returncode, res.stdout.strip()) == (0, "OK")


@pytest.mark.parametrize(("args", "env", "key"), [
    (["--config", "c.yaml"], {}, "ct_log.fetch_concurrency"),
    (["--validate-config", "--config", "c.yaml"], {}, "ct_log.fetch_concurrency"),
    (["--validate-config"], {"CERTSTREAM_CONFIG": "c.yaml", "CERTSTREAM_PORT": "70000"}, "port"),
    (["--validate-config", "--config", "c.yaml", "--port", "0"], {}, "port"),
    (["--validate-config", "--config", "missing.yaml"], {}, "config"),
])
def test_bad_config_is_one_line_and_status_2(tmp_path: Path, args: list[str],
                                             env: dict[str, str], key: str) -> None:
    text = "ct_log: {fetch_concurrency: 99}\n" if key != "port" else "port: 8080\n"
    (tmp_path / "c.yaml").write_text(text)
    res = run_cli(args, tmp_path, **env)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert key in lines[0]
    assert "Traceback" not in res.stderr and res.stdout == ""


def test_gunicorn_conf_with_bad_env_is_one_line_and_status_2(tmp_path: Path) -> None:
    res = subprocess.run([str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py")],
                         check=False, cwd=tmp_path, env=clean_env(CERTSTREAM_WORKERS="none"),
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [res.stderr.strip()]
    assert "workers" in res.stderr and "CERTSTREAM_WORKERS" in res.stderr


def test_metrics_aggregate_across_processes(tmp_path: Path) -> None:
    # Two "workers" count into the shared directory; a third process renders the sum.
    code = ("import sys; from certstream.shell import metrics as m; "
            "m.FRAMES_SENT.labels('lite').inc(int(sys.argv[1])); "
            "m.CLIENTS.labels('lite', 'websocket').inc(int(sys.argv[1]))")
    env = clean_env(PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    for n in ("3", "4"):
        subprocess.run([sys.executable, "-c", code, n], env=env, check=True, timeout=60)
    render = ("from certstream.shell.metrics import render_metrics; "
              "print(render_metrics()[0].decode())")
    out = subprocess.run([sys.executable, "-c", render], env=env, check=True, timeout=60,
                         capture_output=True, text=True).stdout
    assert 'certstream_frames_sent_total{stream="lite"} 7.0' in out
    # livesum: the gauge of both (live, as far as the files tell) processes is summed
    assert 'certstream_clients{stream="lite",transport="websocket"} 7.0' in out


# -- real servers ------------------------------------------------------------------------------


@pytest.fixture
def server_deps() -> None:
    pytest.importorskip("certstream.shell.worker",
                        reason="needs the gunicorn worker class certstream.shell.worker")
    pytest.importorskip("certstream.shell.ingest",
                        reason="needs the ingest process module certstream.shell.ingest")


def check_one_ingest_and_clean_stop(srv: Server, workers: int) -> None:
    ingests, worker_procs = srv.tree()
    assert len(ingests) == 1
    assert len(worker_procs) == workers
    # Still exactly one after a while (it was not restarted or duplicated).
    time.sleep(1.0)
    assert [p.pid for p in srv.tree()[0]] == [ingests[0].pid]
    ingest = ingests[0]
    env = proc_env(ingest.pid)
    assert env["CERTSTREAM_MASTER_PID"] == str(srv.proc.pid)
    resolved = json.loads(env["CERTSTREAM_RESOLVED_SETTINGS"])
    assert resolved["port"] == srv.port
    feed = Path(resolved["feed_socket"])
    prom = Path(env["PROMETHEUS_MULTIPROC_DIR"])
    # (The workers' copy cannot be read here: /proc shows a forked process's exec-time
    # environment, and the workers inherit os.environ by fork, not exec.)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5):
        pass  # the port is served

    t0 = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    srv.proc.wait(timeout=GRACE + 5)
    pids = [ingest.pid] + [w.pid for w in worker_procs]
    wait_until(lambda: not any(alive(p) for p in pids), 5, "workers and ingest to exit")
    assert time.monotonic() - t0 < GRACE + 2
    assert srv.proc.returncode == 0
    # The private run and metrics directories went with it.
    assert not feed.parent.exists()
    assert not prom.exists()


# Configured with the command's own flags and CERTSTREAM_* variables, without a file.
ENV_CONFIG = {"CERTSTREAM_CT_LOG_LOG_LIST_URLS": ""}


@pytest.mark.slow
def test_certstream_command_runs_one_ingest_and_stops_cleanly(server_deps: None) -> None:
    with run_server(ingest=True, config_via="flag") as srv:
        check_one_ingest_and_clean_stop(srv, 1)


@pytest.mark.slow
def test_gunicorn_conf_runs_one_ingest_with_two_workers(tmp_path: Path,
                                                        server_deps: None) -> None:
    port = free_port()
    env = {"CERTSTREAM_HOST": "127.0.0.1", "CERTSTREAM_PORT": str(port),
           "CERTSTREAM_WORKERS": "2", "CERTSTREAM_CT_LOG_STATE_FILE": str(tmp_path / "state.json"),
           **ENV_CONFIG}
    with run_server(workers=2, ingest=True, gunicorn=True, config_via="none", port=port,
                    env=env) as srv:
        check_one_ingest_and_clean_stop(srv, 2)


def _flags_and_env(tmp_path: Path) -> tuple[int, list[str], dict[str, str]]:
    """A port, the command's flags that set it, and the rest of the settings as variables."""
    port = free_port()
    return (port, ["--port", str(port), "--host", "127.0.0.1"],
            {"CERTSTREAM_CT_LOG_STATE_FILE": str(tmp_path / "state.json"), **ENV_CONFIG})


@pytest.mark.slow
def test_ingest_and_workers_exit_when_the_master_is_killed(tmp_path: Path,
                                                          server_deps: None) -> None:
    port, args, env = _flags_and_env(tmp_path)
    with run_server(ingest=True, config_via="none", port=port, args=args, env=env) as srv:
        ingests, workers = srv.tree()
        pids = [p.pid for p in ingests + workers]
        ingest_env = proc_env(ingests[0].pid)
        srv.proc.kill()
        srv.proc.wait()
        wait_until(lambda: not any(alive(p) for p in pids), 30,
                   "the orphaned ingest and worker to notice and exit")
    # A killed master cannot remove its private directories: do it for it.
    shutil.rmtree(ingest_env["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
    feed = json.loads(ingest_env["CERTSTREAM_RESOLVED_SETTINGS"])["feed_socket"]
    shutil.rmtree(Path(feed).parent, ignore_errors=True)


@pytest.mark.slow
def test_master_restarts_an_ingest_that_died(tmp_path: Path, server_deps: None) -> None:
    port, args, env = _flags_and_env(tmp_path)
    with run_server(ingest=True, config_via="none", port=port, args=args, env=env) as srv:
        (first,) = srv.tree()[0]
        os.kill(first.pid, signal.SIGKILL)

        def replaced() -> bool:
            ingests = srv.tree()[0]
            return len(ingests) == 1 and ingests[0].pid != first.pid
        wait_until(replaced, 30, "a new ingest")
        check_one_ingest_and_clean_stop(srv, 1)
