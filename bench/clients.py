"""The load clients: ``sink.c`` compiled at run time, driven over its stdin/stdout.

The sink is built with gcc into a temporary directory on first use (nothing compiled is kept
in the repository), runs in its own process, and is pinned to the core the server is not on,
so that the server's CPU figures are the server's alone.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from bench.common import cpu_seconds, pin

SOURCE = Path(__file__).resolve().parent / "sink.c"
_built: dict[Path, Path] = {}


def build_c(source: Path, libs: tuple[str, ...] = ()) -> Path:
    """Compile one C client once per run, linked with ``libs``; raises RuntimeError naming
    the compiler's complaint (the soak's checking clients are built the same way)."""
    built = _built.get(source)
    if built is not None and built.exists():
        return built
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise RuntimeError(f"no C compiler (gcc or cc) on PATH: {source.name} cannot be built")
    tmp = Path(tempfile.mkdtemp(prefix="certstream-bench-"))
    atexit.register(shutil.rmtree, tmp, True)
    out = tmp / source.stem
    res = subprocess.run(
        [cc, "-O2", "-Wall", "-o", str(out), str(source), *libs],
        check=False,
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        raise RuntimeError(f"building {source.name} failed:\n{res.stderr}")
    _built[source] = out
    return out


def build_sink() -> Path:
    """Compile sink.c once per run (zlib inflates the compressed frames)."""
    return build_c(SOURCE, ("-lz",))


@dataclass(frozen=True, slots=True)
class SinkStats:
    """One ``R`` answer of the sink; latency fields are microseconds."""

    open: int
    ok: int
    failed: int
    closed: int
    frames: int
    bytes: int
    pings: int
    lat_n: int
    p50: int
    p90: int
    p99: int
    p999: int
    max: int
    zframes: int = 0  # compressed messages (RSV1), each inflated on its own
    zbytes: int = 0  # their compressed payload bytes
    zerrors: int = 0  # compressed messages that did not inflate

    @classmethod
    def parse(cls, line: str) -> SinkStats:
        kv = dict(part.split("=", 1) for part in line.split())
        return cls(**{k: int(v) for k, v in kv.items()})


class CommandedProcess:
    """A C load generator driven by one-line commands on its stdin (``Q`` ends it)."""

    proc: subprocess.Popen[str]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("Q\n")
                self.proc.stdin.flush()
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Sink(CommandedProcess):
    """K WebSocket connections in one C process.  ``path`` "@FILE" gives each connection
    its own path (line i % n of FILE); ``deflate`` makes each offer permessage-deflate and
    inflate every compressed message it gets."""

    def __init__(
        self, port: int, path: str, clients: int, ts_key: str = "", cpus: set[int] | None = None,
        *, deflate: bool = False, sources: list[str] | None = None,
    ) -> None:
        exe = build_sink()
        self.clients = clients
        env = dict(os.environ)
        if sources:  # source addresses (127.x): more connections than one has ports
            env["SINK_SOURCES"] = ",".join(sources)
        self.proc = subprocess.Popen(
            [str(exe), "127.0.0.1", str(port), path, str(clients), ts_key,
             *(["deflate"] if deflate else [])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
            env=env,
        )
        if cpus:
            pin(self.proc.pid, cpus)

    def _ask(self, cmd: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the sink exited (code {self.proc.poll()})")
        return line.strip()

    def stats(self) -> SinkStats:
        return SinkStats.parse(self._ask("R"))

    def reset_latency(self) -> None:
        self._ask("L")

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def wait_connected(self, timeout: float = 60.0) -> SinkStats:
        """Until every connection is open or has failed; returns the last reading."""
        deadline = time.monotonic() + timeout
        st = self.stats()
        while st.ok + st.failed < self.clients and time.monotonic() < deadline:
            time.sleep(0.1)
            st = self.stats()
        return st
