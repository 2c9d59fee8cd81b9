"""Starting the servers under test: our workers on a bench feed, or any whole server.

``feed_server`` runs the real gunicorn workers with no ingest, subscribed to a feed socket
owned by ``bench.feeder``, so fan-out is measured with a controlled, CT-free input.
``whole_server`` (in ``bench.latency``) runs a complete server command (ours, or another
certstream server given with ``--server-cmd``) that follows a replay CT log, with the config
written by ``whole_settings``: our keys and, for a peer, certstream-server-go's, so one file
serves both (each server warns about, and ignores, the other's keys).

Cores: on a 2-core machine the server gets core 0 and the load generator (sink, feeder, replay
log) core 1, so the server's CPU readings are its own.  With two workers both cores are the
server's; the load generator then shares them, and the report says so.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bench.common import REPO, free_port, pin, stop, tree, wait_port

SERVER_CPUS = {0}
LOAD_CPUS = {1}


def two_cores() -> bool:
    return len(os.sched_getaffinity(0)) >= 2


@dataclass
class Feeder:
    """The ``bench.feeder`` process: a FeedPublisher on a socket, driven over stdin."""

    proc: subprocess.Popen[str]

    def ask(self, cmd: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the feeder exited (code {self.proc.poll()})")
        return line.strip()

    def want(self) -> int:
        return int(self.ask("W").split("=", 1)[1])

    def steady(self, rate: float, seconds: float) -> int:
        return int(self.ask(f"S {rate} {seconds}").split()[1])

    def burst(self, n: int) -> int:
        return int(self.ask(f"B {n}").split()[1])


@dataclass
class Server:
    """A running server: its port, root process, and how to read its processes."""

    port: int
    proc: subprocess.Popen[bytes]
    label: str
    extra: dict[str, str] = field(default_factory=dict)

    def pids(self) -> list[int]:
        return tree(self.proc.pid)


def write_config(path: Path, settings: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


def base_settings(port: int, workers: int, buffer_size: int) -> dict[str, object]:
    return {
        "host": "127.0.0.1",
        "port": port,
        "workers": workers,
        "buffer_size": buffer_size,
        "log_level": "warning",
        "ct_log": {"log_list_urls": []},
        # The sink is one address with thousands of connections: no per-IP limit here.
        "connection_limit": {"enabled": False, "max_connections": 60000},
        "websocket": {"slow_client_drop_budget": 1_000_000},
    }


@contextlib.contextmanager
def feed_server(
    workers: int = 1, buffer_size: int = 10_000, port: int | None = None
) -> Iterator[tuple[Server, Feeder]]:
    """gunicorn workers with no ingest, plus the bench feeder they subscribe to."""
    with tempfile.TemporaryDirectory(prefix="certstream-bench-") as tmp:
        sock = str(Path(tmp) / "feed.sock")
        feeder_proc = subprocess.Popen(
            [sys.executable, "-m", "bench.feeder", "--socket", sock],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        assert feeder_proc.stdout is not None
        ready = feeder_proc.stdout.readline()
        if not ready.startswith("ready"):
            stop(feeder_proc)
            raise RuntimeError("the bench feeder did not start")
        pin(feeder_proc.pid, LOAD_CPUS)
        port = port or free_port()
        settings = base_settings(port, workers, buffer_size)
        settings["feed_socket"] = sock
        cfg = write_config(Path(tmp) / "config.yaml", settings)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CERTSTREAM_")}
        env["PYTHONPATH"] = str(REPO)  # bench.no_ingest, from a cwd with no config in it
        cmd = [sys.executable, "-m", "bench.no_ingest", str(cfg)]
        proc: subprocess.Popen[bytes] = subprocess.Popen(
            cmd, cwd=tmp, env=env, start_new_session=True
        )
        try:
            wait_port(port, 30, proc)
            if workers == 1:
                for pid in tree(proc.pid):
                    pin(pid, SERVER_CPUS)
            yield (
                Server(port, proc, f"certstream, {workers} worker(s), bench feed"),
                Feeder(feeder_proc),
            )
        finally:
            stop_group(proc)
            with contextlib.suppress(OSError, RuntimeError):
                Feeder(feeder_proc).ask("Q")
            stop(feeder_proc)


@contextlib.contextmanager
def launch(
    cmd: list[str],
    port: int,
    cwd: Path,
    *,
    pin_server: bool = True,
    env: dict[str, str] | None = None,
    log: Path | None = None,
) -> Iterator[Server]:
    """Run a whole server command until it listens on ``port``; stop its session after.

    ``env`` adds to the environment; ``log`` takes its stdout and stderr (a peer can be
    chatty), else they are inherited.  ``pin_server`` puts every process of it on the server
    core, as in the fan-out scenarios, so runs repeat and servers compare on one core.
    """
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(open(log, "ab")) if log is not None else None
        proc: subprocess.Popen[bytes] = subprocess.Popen(
            cmd,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            stdout=out,
            stderr=out,
        )
        try:
            wait_port(port, 30, proc)
            if pin_server:
                time.sleep(0.5)  # our ingest is started once the listeners are bound
                for pid in tree(proc.pid):
                    pin(pid, SERVER_CPUS)
            yield Server(port, proc, cmd[0])
        finally:
            stop_group(proc)


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """TERM the server's session (master, workers, ingest), then KILL what is left."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait(5)


def whole_settings(
    port: int, log_url: str, tmp: Path, *, workers: int = 1, buffer_size: int | None = 10_000
) -> dict[str, object]:
    """Our config for a whole server following one replay log from its first entry.

    ``buffer_size=None`` leaves the deployment default (the memory scenario measures that).
    """
    settings: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "workers": workers,
        "log_level": "warning",
        "ct_log": {
            "log_list_urls": [],
            "poll_interval_ms": 100,
            "state_file": str(tmp / "state.json"),
            "default_operator_rate_limit_ms": 0,
        },
        "custom_logs": [{"name": "Bench replay", "url": log_url, "start_index": 0}],
        "websocket": {"slow_client_drop_budget": 1_000_000},
    }
    if buffer_size is not None:
        settings["buffer_size"] = buffer_size
    return settings


def peer_settings(port: int, log_url: str) -> dict[str, object]:
    """certstream-server-go's keys for the same deployment: the same port and paths, only the
    replay log (``disable_default_logs``), metrics on the same port, no resume file."""
    return {
        "webserver": {
            "listen_addr": "127.0.0.1",
            "listen_port": port,
            "full_url": "/full-stream",
            "lite_url": "/",
            "domains_only_url": "/domains-only",
        },
        "prometheus": {
            "enabled": True,
            "listen_addr": "127.0.0.1",
            "listen_port": port,
            "metrics_url": "/metrics",
        },
        "general": {
            "disable_default_logs": True,
            "additional_logs": [
                {"url": log_url, "operator": "Bench", "description": "Bench replay"}
            ],
            "recovery": {"enabled": False},
        },
    }


def server_cmd(template: str, port: int, config: Path, replay_url: str) -> list[str]:
    """Expand ``--server-cmd``: {port}, {config} and {replay_url} are substituted."""
    return shlex.split(template.format(port=port, config=str(config), replay_url=replay_url))
