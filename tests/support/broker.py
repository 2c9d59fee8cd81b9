"""Several certstream servers on one Redis, for the multi-machine tests: ``role: ingest``
nodes following the replay CT log and ``role: edge`` nodes serving clients, each the real
``certstream`` command on a free port in a temporary directory of its own.

:func:`live40_replay` serves the live40 set's logs held back (the harness's way: clients
connect first, then the logs open) and gives the ingest's config for them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from conformance import compare
from conformance.harness import served_logs
from conformance.replay import ReplayServer
from conformance.serverconfig import write_config
from tests.support.clients import http_get
from tests.support.net import accepts, free_port
from tests.support.procs import children, clean_env, is_ingest
from tests.support.wait import wait_until


@dataclass
class Node:
    """One server of the deployment."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    workdir: Path

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def worker_pids(self) -> list[int]:
        return [p.pid for p in children(self.proc.pid) if not is_ingest(p)]

    def ingest_pid(self) -> int | None:
        found = [p.pid for p in children(self.proc.pid) if is_ingest(p)]
        return found[0] if found else None

    def deep(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(http_get(self.port, "/health/deep")[2] or b"{}")
        return doc

    def metric(self, name: str) -> float:
        """The sum of every series of ``name`` in ``/metrics`` (0 when absent)."""
        text = http_get(self.port, "/metrics")[2].decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and line[len(name):len(name) + 1] in (" ", "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total


def live40_replay(visible: int | None = None,
                  ) -> tuple[ReplayServer, list[str], dict[str, Any], int]:
    """The replay CT log serving live40 (started), the logs' paths, the ingest's config for
    them, and the number of entries.  Every log is held back; with ``visible`` each shows
    that many entries (grow them with ``replay.grow``)."""
    replay = ReplayServer("127.0.0.1", 0)
    manifest = compare.manifest("live40")
    paths = []
    for log in manifest["logs"]:
        body = json.loads((compare.INPUTS / "live40" / log["entries"]).read_text())
        replay.add_rfc6962_log(log["path"], body["entries"], int(log["first_index"]),
                               visible=visible)
        replay.hold(log["path"])
        paths.append(log["path"])
    replay.start()
    total = sum(int(log["count"]) for log in manifest["logs"])
    return replay, paths, _ingest_logs(replay), total


def _ingest_logs(replay: ReplayServer) -> dict[str, Any]:
    """The keys of the harness's own config for the set (logs, profile, polling)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = write_config("certstream", Path(tmp) / "c.yaml", 1,
                            served_logs(replay, compare.DATA, "live40"), peer="go")
        conf: dict[str, Any] = yaml.safe_load(path.read_text())
    return {k: conf[k] for k in ("custom_logs", "static_logs", "output")} | {
        "ct_log": {k: v for k, v in conf["ct_log"].items() if k != "state_file"}}


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@contextlib.contextmanager
def start_node(name: str, workdir: Path, role: str, broker_url: str,
               extra: Mapping[str, Any] | None = None, *, workers: int = 1) -> Iterator[Node]:
    """``certstream`` in ``role`` on a free port; ready once it accepts and (edges, and the
    ingest's own workers) its workers read the broker.  Stopped (SIGTERM, then SIGKILL) on
    the way out; an ingest left behind is killed."""
    home = workdir / name
    home.mkdir()
    port = free_port()
    settings = _merge({
        "host": "127.0.0.1", "port": port, "workers": workers, "role": role,
        "broker": {"url": broker_url, "lease_ms": 2000},
        "ct_log": {"log_list_urls": [], "state_file": str(home / "state.json")},
        "flush_interval_ms": 20,
    }, extra or {})
    (home / "config.yaml").write_text(yaml.safe_dump(settings))
    env = clean_env(PYTHONUNBUFFERED="1", CERTSTREAM_CONFIG=str(home / "config.yaml"))
    with open(home / "server.log", "wb") as out:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "certstream")], cwd=home,
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    node = Node(name, port, proc, home)
    try:
        def ready() -> bool:
            assert proc.poll() is None, f"{name} exited:\n{node.log()}"
            if not accepts(port):
                return False
            broker = node.deep().get("broker") or {}
            return bool(broker.get("connected"))

        wait_until(ready, 60, f"{name} to serve and read the broker", interval=0.1)
        yield node
    finally:
        ingest = node.ingest_pid()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if ingest is not None:
            with contextlib.suppress(OSError):
                os.kill(ingest, signal.SIGCONT)  # a test may have left it stopped
                os.kill(ingest, signal.SIGKILL)
    # Reached only when the test passed: no process of the node may have logged a crash.
    assert "Traceback" not in node.log(), node.log()

