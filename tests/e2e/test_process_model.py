"""The process model, with real processes: one gunicorn master, its workers, exactly one ingest.

Process facts come from /proc (psutil is not a dependency).  The server tests are marked slow;
the command-line checks (--validate-config, a bad config) and the cross-process metrics are not.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.support.data import ROOT
from tests.support.wait import wait_until

BIN = Path(sys.executable).parent
GRACE = 10.0  # certstream.shell.app.GRACEFUL_TIMEOUT
INGEST_ARGV = ["-m", "certstream.shell.ingest"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CERTSTREAM_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- /proc -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    argv: tuple[str, ...]


def processes() -> list[Proc]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # exited meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] == "Z":
            continue  # a zombie has exited; only its parent has not reaped it yet
        out.append(Proc(int(entry.name), int(fields[1]),
                        tuple(a.decode(errors="replace") for a in argv if a)))
    return out


def children(pid: int) -> list[Proc]:
    return [p for p in processes() if p.ppid == pid]


def is_ingest(p: Proc) -> bool:
    return list(p.argv[1:3]) == INGEST_ARGV


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def proc_env(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


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


@dataclass
class Deployment:
    master: subprocess.Popen[bytes]
    port: int

    def tree(self) -> tuple[list[Proc], list[Proc]]:
        kids = children(self.master.pid)
        return [p for p in kids if is_ingest(p)], [p for p in kids if not is_ingest(p)]


@contextlib.contextmanager
def start(argv: list[str], tmp_path: Path, workers: int, port: int,
          **env: str) -> Iterator[Deployment]:
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(argv, cwd=tmp_path, env=clean_env(**env), stdout=log,
                            stderr=subprocess.STDOUT)
    dep = Deployment(proc, port)
    try:
        def ready() -> bool:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            ingests, workers_ = dep.tree()
            return len(ingests) == 1 and len(workers_) == workers
        wait_until(ready, 60, "the master to start its workers and the ingest")
        yield dep
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for p in processes():  # never leave an orphaned ingest behind
            if is_ingest(p) and proc_env(p.pid).get("CERTSTREAM_MASTER_PID") == str(proc.pid):
                os.kill(p.pid, signal.SIGKILL)
        log.close()


def check_one_ingest_and_clean_stop(dep: Deployment, workers: int) -> None:
    ingests, worker_procs = dep.tree()
    assert len(ingests) == 1
    assert len(worker_procs) == workers
    # Still exactly one after a while (it was not restarted or duplicated).
    time.sleep(1.0)
    assert [p.pid for p in dep.tree()[0]] == [ingests[0].pid]
    ingest = ingests[0]
    env = proc_env(ingest.pid)
    assert env["CERTSTREAM_MASTER_PID"] == str(dep.master.pid)
    resolved = json.loads(env["CERTSTREAM_RESOLVED_SETTINGS"])
    assert resolved["port"] == dep.port
    feed = Path(resolved["feed_socket"])
    prom = Path(env["PROMETHEUS_MULTIPROC_DIR"])
    # (The workers' copy cannot be read here: /proc shows a forked process's exec-time
    # environment, and the workers inherit os.environ by fork, not exec.)
    with socket.create_connection(("127.0.0.1", dep.port), timeout=5):
        pass  # the port is served

    t0 = time.monotonic()
    dep.master.send_signal(signal.SIGTERM)
    dep.master.wait(timeout=GRACE + 5)
    pids = [ingest.pid] + [w.pid for w in worker_procs]
    wait_until(lambda: not any(alive(p) for p in pids), 5, "workers and ingest to exit")
    assert time.monotonic() - t0 < GRACE + 2
    assert dep.master.returncode == 0
    # The private run and metrics directories went with it.
    assert not feed.parent.exists()
    assert not prom.exists()


@pytest.mark.slow
def test_certstream_command_runs_one_ingest_and_stops_cleanly(tmp_path: Path,
                                                             server_deps: None) -> None:
    port = free_port()
    (tmp_path / "c.yaml").write_text(
        f"host: 127.0.0.1\nport: {port}\nct_log:\n  log_list_urls: []\n"
        f"  state_file: {tmp_path / 'state.json'}\n")
    argv = [str(BIN / "certstream"), "--config", "c.yaml"]
    with start(argv, tmp_path, 1, port) as dep:
        check_one_ingest_and_clean_stop(dep, 1)


@pytest.mark.slow
def test_gunicorn_conf_runs_one_ingest_with_two_workers(tmp_path: Path,
                                                        server_deps: None) -> None:
    port = free_port()
    argv = [str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py")]
    with start(argv, tmp_path, 2, port, CERTSTREAM_HOST="127.0.0.1",
               CERTSTREAM_PORT=str(port), CERTSTREAM_WORKERS="2",
               CERTSTREAM_CT_LOG_LOG_LIST_URLS="",
               CERTSTREAM_CT_LOG_STATE_FILE=str(tmp_path / "state.json")) as dep:
        check_one_ingest_and_clean_stop(dep, 2)


@pytest.mark.slow
def test_ingest_and_workers_exit_when_the_master_is_killed(tmp_path: Path,
                                                          server_deps: None) -> None:
    port = free_port()
    argv = [str(BIN / "certstream"), "--port", str(port), "--host", "127.0.0.1"]
    with start(argv, tmp_path, 1, port, CERTSTREAM_CT_LOG_LOG_LIST_URLS="",
               CERTSTREAM_CT_LOG_STATE_FILE=str(tmp_path / "state.json")) as dep:
        ingests, workers = dep.tree()
        pids = [p.pid for p in ingests + workers]
        env = proc_env(ingests[0].pid)
        dep.master.kill()
        dep.master.wait()
        wait_until(lambda: not any(alive(p) for p in pids), 30,
                 "the orphaned ingest and worker to notice and exit")
    # A killed master cannot remove its private directories: do it for it.
    shutil.rmtree(env["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
    feed = json.loads(env["CERTSTREAM_RESOLVED_SETTINGS"])["feed_socket"]
    shutil.rmtree(Path(feed).parent, ignore_errors=True)


@pytest.mark.slow
def test_master_restarts_an_ingest_that_died(tmp_path: Path, server_deps: None) -> None:
    port = free_port()
    argv = [str(BIN / "certstream"), "--port", str(port), "--host", "127.0.0.1"]
    with start(argv, tmp_path, 1, port, CERTSTREAM_CT_LOG_LOG_LIST_URLS="",
               CERTSTREAM_CT_LOG_STATE_FILE=str(tmp_path / "state.json")) as dep:
        (first,) = dep.tree()[0]
        os.kill(first.pid, signal.SIGKILL)

        def replaced() -> bool:
            ingests = dep.tree()[0]
            return len(ingests) == 1 and ingests[0].pid != first.pid
        wait_until(replaced, 30, "a new ingest")
        check_one_ingest_and_clean_stop(dep, 1)
