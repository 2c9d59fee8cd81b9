"""A real Redis for tests: ``redis-server`` (Debian's package; ``make test`` installs it when
it is missing and may) on a free loopback port, in a temporary directory, without
persistence unless asked; stopped on the way out.  Tests that need it skip, saying why,
when there is no ``redis-server``."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.support.net import free_port

REDIS_SERVER = shutil.which("redis-server")
SKIP_REASON = ("redis-server is not installed (make test installs Debian's redis-server when "
               "run as root): the broker tests need a real Redis")

needs_redis = pytest.mark.skipif(REDIS_SERVER is None, reason=SKIP_REASON)


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisServer:
    """One redis-server process; :meth:`restart` keeps the port (and, without persistence,
    loses every key, as a real Redis restarted without persistence does)."""

    workdir: Path
    port: int = field(default_factory=free_port)
    persist: bool = False
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert REDIS_SERVER is not None, SKIP_REASON
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.workdir), "--daemonize", "no", "--protected-mode", "no",
                "--save", "", "--appendonly", "yes" if self.persist else "no",
                "--logfile", str(self.workdir / f"redis-{self.port}.log")]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not _ping(self.port):
            assert self.proc.poll() is None, f"redis-server exited: {self.log()}"
            assert time.monotonic() < deadline, "redis-server did not answer in 10 s"
            time.sleep(0.02)

    def stop(self, sig: int = signal.SIGKILL) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def restart(self, down_secs: float = 0.0) -> None:
        self.stop()
        time.sleep(down_secs)
        self.start()

    def log(self) -> str:
        path = self.workdir / f"redis-{self.port}.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextlib.contextmanager
def redis_server(workdir: Path, *, persist: bool = False) -> Iterator[RedisServer]:
    """A started :class:`RedisServer`, stopped on the way out."""
    if REDIS_SERVER is None:
        pytest.skip(SKIP_REASON)
    server = RedisServer(workdir, persist=persist)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class SentinelServer:
    """One Redis Sentinel watching ``master`` as ``service`` (quorum 1)."""

    workdir: Path
    master: RedisServer
    service: str = "certstream-test"
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}/{self.service}/0"

    def start(self) -> None:
        assert REDIS_SERVER is not None, SKIP_REASON
        conf = self.workdir / f"sentinel-{self.port}.conf"
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.workdir}\n"
            f"sentinel monitor {self.service} 127.0.0.1 {self.master.port} 1\n"
            f"sentinel down-after-milliseconds {self.service} 1000\n")
        self.proc = subprocess.Popen([REDIS_SERVER, str(conf), "--sentinel"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not _ping(self.port):
            assert self.proc.poll() is None, "redis-sentinel exited"
            assert time.monotonic() < deadline, "redis-sentinel did not answer in 10 s"
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def sentinel_for(master: RedisServer) -> Iterator[SentinelServer]:
    """A started :class:`SentinelServer` for ``master``, stopped on the way out."""
    sentinel = SentinelServer(master.workdir, master)
    sentinel.start()
    try:
        yield sentinel
    finally:
        sentinel.stop()
