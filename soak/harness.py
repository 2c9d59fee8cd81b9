"""What the soak run and the crash tests share: a replay CT log that grows, the real server
following it, and a reading of that server's processes.

* :class:`GrowingLog`: the replay CT log (``conformance.replay``) in this process, one RFC
  6962 log of unique entries made as they are served (``UniqueEntryLog``), none visible at
  first; ``grow`` reveals more, ``Grower`` does it at a steady rate from a thread.
* :class:`ServerProcess`: the ``certstream`` command (gunicorn master, its workers, the one
  ingest), default settings but for the port, the worker count, log lists off, the replay
  log as its one custom log and a state file in the run's directory; started in a session of
  its own so that the whole server can be killed at once, as an operator's kill -9 would.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from bench.common import cpu_seconds, free_port, rss_bytes, tree, wait_port
from bench.ingest import load_base
from conformance.replay import ReplayServer
from conformance.synth import UniqueEntryLog

__all__ = ["LOG_PATH", "Grower", "GrowingLog", "Roles", "ServerProcess", "anon_of", "cpu_of",
           "rss_of"]

LOG_PATH = "/soak/"
INGEST_MODULE = b"certstream.shell.ingest"


class GrowingLog:
    """One replay RFC 6962 log of ``total`` unique entries, none visible at first."""

    def __init__(self, total: int, seed: int = 7, max_batch: int = 256) -> None:
        self.total = total
        self.replay = ReplayServer()
        self.replay.add_rfc6962_log(LOG_PATH, UniqueEntryLog(load_base(), total, seed), 0,
                                    visible=0, max_batch=max_batch)
        self.replay.start()
        self.url = self.replay.url + LOG_PATH

    @property
    def size(self) -> int:
        return self.replay.tree_size(LOG_PATH)

    def grow(self, n: int) -> None:
        self.replay.grow(LOG_PATH, n)

    def hold(self) -> None:
        """Data requests wait (the tree head still answers) until ``release``."""
        self.replay.hold(LOG_PATH)

    def release(self) -> None:
        self.replay.release(LOG_PATH)

    def entries_served(self) -> list[tuple[int, int]]:
        """Every get-entries window asked for, as (start, end)."""
        out = []
        for _m, target in self.replay.requests(LOG_PATH):
            if "get-entries?" in target:
                query = dict(p.split("=", 1) for p in target.split("?", 1)[1].split("&"))
                out.append((int(query["start"]), int(query["end"])))
        return out

    def close(self) -> None:
        self.replay.stop()


class Grower:
    """Grows a log at ``rate`` entries/s in ticks of ``tick`` s, from a thread, until
    ``stop`` or the log is full."""

    def __init__(self, log: GrowingLog, rate: float, tick: float = 0.1) -> None:
        self.log, self.rate, self.tick = log, rate, tick
        self.grown = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-grower", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.wait(self.tick):
            due = int(self.rate * (time.monotonic() - start)) - self.grown
            due = min(due, self.log.total - self.log.size)
            if due > 0:
                self.log.grow(due)
                self.grown += due

    def stop(self) -> int:
        """Stop growing; returns the entries added."""
        self._stop.set()
        self._thread.join(5)
        return self.grown


@dataclass(frozen=True, slots=True)
class Roles:
    """The server's processes by role at one moment."""

    master: int
    workers: tuple[int, ...]
    ingest: tuple[int, ...]

    @property
    def all(self) -> list[int]:
        return [self.master, *self.workers, *self.ingest]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


class ServerProcess:
    """The real server following ``log_url`` (see the module docstring)."""

    def __init__(self, tmp: Path, log_url: str, *, workers: int = 2, port: int | None = None,
                 settings: dict[str, Any] | None = None) -> None:
        self.tmp = tmp
        self.port = port or free_port()
        self.state_file = tmp / "state.json"
        config: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "workers": workers,
            "ct_log": {"log_list_urls": [], "state_file": str(self.state_file)},
            "custom_logs": [{"name": "Soak replay", "url": log_url, "start_index": 0}],
        }
        for key, value in (settings or {}).items():
            if isinstance(value, dict):
                config.setdefault(key, {}).update(value)
            else:
                config[key] = value
        self.config = tmp / "config.yaml"
        self.config.write_text(yaml.safe_dump(config, sort_keys=False))
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self, timeout: float = 60.0) -> None:
        """Start it (again, on the same state file) and wait until it listens."""
        self.runs += 1
        env = {k: v for k, v in os.environ.items() if not k.startswith("CERTSTREAM_")}
        exe = Path(sys.executable).parent / "certstream"
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "certstream"]
        with (self.tmp / f"server-{self.runs}.log").open("wb") as out:
            self.proc = subprocess.Popen(
                [*cmd, "--config", str(self.config)], cwd=self.tmp, env=env,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        wait_port(self.port, timeout, self.proc)

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace")
                         for p in sorted(self.tmp.glob("server-*.log")))

    @property
    def master(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def roles(self) -> Roles:
        """The processes by role (the ingest is the child running its module)."""
        pids = [p for p in tree(self.master) if p != self.master]
        ingest = tuple(p for p in pids if INGEST_MODULE in _cmdline(p))
        workers = tuple(p for p in pids if p not in ingest and _is_child(p, self.master))
        return Roles(self.master, workers, ingest)

    def wait_roles(self, workers: int, timeout: float = 60.0) -> Roles:
        """Until ``workers`` workers and one ingest run; the roles then."""
        deadline = time.monotonic() + timeout
        roles = self.roles()
        while (len(roles.workers) < workers or len(roles.ingest) != 1) and \
                time.monotonic() < deadline:
            time.sleep(0.1)
            roles = self.roles()
        return roles

    def kill_all(self) -> None:
        """kill -9 of every process of the server at once, as a crash of the machine's
        service would do (nothing gets to flush or close)."""
        assert self.proc is not None
        dirs = self._private_dirs()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.wait_gone()
        _remove(dirs)

    def kill_master(self) -> None:
        """kill -9 of the gunicorn master alone: its workers and the ingest must notice and
        exit by themselves."""
        assert self.proc is not None
        dirs = self._private_dirs()
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.wait_gone(30)
        _remove(dirs)  # a killed master cannot remove its private directories

    def wait_gone(self, timeout: float = 10.0) -> bool:
        """Until no process of the server's session is left; False if some still run."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while any(_alive(p) for p in _session(self.proc.pid)):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def _private_dirs(self) -> list[Path]:
        """The directories the master made for itself (metrics, the feed socket), as its
        ingest's environment names them."""
        out = []
        for pid in self.roles().ingest:
            with contextlib.suppress(OSError, ValueError, KeyError):
                env = dict(item.split(b"=", 1) for item in
                           Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if b"=" in item)
                if b"PROMETHEUS_MULTIPROC_DIR" in env:
                    out.append(Path(env[b"PROMETHEUS_MULTIPROC_DIR"].decode()))
                resolved = json.loads(env[b"CERTSTREAM_RESOLVED_SETTINGS"])
                if resolved.get("feed_socket"):
                    out.append(Path(resolved["feed_socket"]).parent)
        return out

    def stop(self) -> None:
        """SIGTERM the server's session, then SIGKILL whatever is left."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def saved_position(self) -> int | None:
        """The next index the state file holds for the log, if any."""
        try:
            logs = json.loads(self.state_file.read_text())["logs"]
        except (OSError, ValueError, KeyError):
            return None
        return next((int(v["next_index"]) for v in logs.values()), None)


def _remove(dirs: list[Path]) -> None:
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


def _is_child(pid: int, parent: int) -> bool:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return int(raw[raw.rindex(")") + 2 :].split()[1]) == parent


def _alive(pid: int) -> bool:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return raw[raw.rindex(")") + 2] != "Z"


def _session(sid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                raw = (d / "stat").read_text()
                if int(raw[raw.rindex(")") + 2 :].split()[3]) == sid:
                    out.append(int(d.name))
    return out


def rss_of(pids: list[int] | tuple[int, ...]) -> int:
    return sum(rss_bytes(p) for p in pids)


def anon_of(pids: list[int] | tuple[int, ...]) -> int:
    """Anonymous resident memory (``RssAnon``: the heap, what a leak grows), in bytes.
    Unlike VmRSS it does not fall when the kernel evicts the pages of the program's files
    (code, shared libraries) under another process's memory pressure."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("RssAnon:"):
                    total += int(line.split()[1]) * 1024
                    break
    return total


def cpu_of(pids: list[int] | tuple[int, ...]) -> float:
    return sum(cpu_seconds(p) for p in pids)


