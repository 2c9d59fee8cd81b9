"""What every scenario shares: figures with targets, the report, and /proc readings.

A benchmark here measures and prints; it never asserts.  Each number is a ``Figure`` carrying
its target, so the printed line says whether the target was met, and the same figures make the
Markdown table that ``bench/README.md`` quotes.  CPU and memory are read from ``/proc`` for the
server's whole process tree (master, workers, ingest), because that is what a deployment pays.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured number, with the target it is judged against.

    ``op`` is ``">="`` or ``"<="`` (or ``""`` for a figure reported without a target).
    """

    scenario: str
    name: str
    value: float
    unit: str
    op: str = ""
    target: float | None = None
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.target is None or not self.op:
            return "info"
        ok = self.value >= self.target if self.op == ">=" else self.value <= self.target
        return "MET" if ok else "MISSED"

    def line(self) -> str:
        tgt = f"target {self.op} {fmt(self.target)} {self.unit}" if self.target is not None else ""
        note = f"  ({self.note})" if self.note else ""
        return (
            f"FIGURE {self.scenario}.{self.name} = {fmt(self.value)} {self.unit}"
            f"  [{tgt or 'no target'}]  {self.verdict}{note}"
        )


def fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if x == 0 or abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


@dataclass
class Report:
    """Collects figures and notes; prints each as it comes so a long run shows progress."""

    figures: list[Figure] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def say(self, text: str) -> None:
        self.lines.append(text)
        print(text, flush=True)

    def add(self, fig: Figure) -> Figure:
        self.figures.append(fig)
        self.say(fig.line())
        return fig

    def markdown(self) -> str:
        rows = [
            "| scenario | figure | value | target | verdict |",
            "|---|---|---|---|---|",
        ]
        for f in self.figures:
            tgt = f"{f.op} {fmt(f.target)}" if f.target is not None else ""
            note = f" ({f.note})" if f.note else ""
            rows.append(
                f"| {f.scenario} | {f.name}{note} | {fmt(f.value)} {f.unit} | {tgt} | {f.verdict} |"
            )
        return "\n".join(rows)

    def write(self, header: str, out: Path | None = None) -> Path:
        out = out or RESULTS / "last.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(header + "\n" + "\n".join(self.lines) + "\n\n" + self.markdown() + "\n")
        return out


# --- /proc -------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in seconds (0.0 once it has gone)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # The command name may hold spaces and parentheses: split after the last ")".
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    """VmRSS of one process in bytes (0 once it has gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants, found by walking /proc (children of children too)."""
    parents: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            raw = (d / "stat").read_text()
        except OSError:
            continue
        ppid = int(raw[raw.rindex(")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(parents.get(p, []))
    return out


@dataclass(frozen=True, slots=True)
class Sample:
    """CPU-seconds per process at one moment; differences of two samples give usage."""

    at: float
    cpu: dict[int, float]

    @classmethod
    def take(cls, pids: list[int]) -> Sample:
        return cls(time.monotonic(), {p: cpu_seconds(p) for p in pids})

    def cpu_since(self, earlier: Sample) -> float:
        return sum(v - earlier.cpu.get(p, v) for p, v in self.cpu.items())


def socket_count(pid: int) -> int:
    """Open sockets of one process: how many clients a worker holds (plus a few of its own)."""
    n = 0
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return 0
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                n += 1
    return n


def tree_rss(pid: int) -> int:
    return sum(rss_bytes(p) for p in tree(pid))


def pin(pid: int, cpus: set[int]) -> None:
    """Pin a process to some cores; silently a no-op where the machine has fewer."""
    avail = os.sched_getaffinity(0)
    want = cpus & avail
    if want and want != avail:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, want)


# --- sockets and HTTP ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(
    port: int, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


def http_get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return str(resp.read().decode("utf-8", "replace"))


def metric(text: str, name: str) -> float | None:
    """Sum of every sample of one Prometheus metric (all label sets), or None if absent."""
    total, found = 0.0, False
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        if head == name or head.startswith(name + "{"):
            with contextlib.suppress(ValueError):
                total += float(value)
                found = True
    return total if found else None


def stop(proc: subprocess.Popen[bytes] | subprocess.Popen[str], grace: float = 10.0) -> None:
    """TERM, wait, then KILL: a benchmark must never leave a server behind."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@contextlib.contextmanager
def running(
    cmd: list[str], env: dict[str, str] | None = None, **kw: object
) -> Iterator[subprocess.Popen[bytes]]:
    proc: subprocess.Popen[bytes] = subprocess.Popen(  # type: ignore[call-overload]
        cmd, env=env, start_new_session=True, **kw
    )
    try:
        yield proc
    finally:
        # The server's process group: gunicorn's workers and its ingest go with it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait(5)


def python() -> str:
    return sys.executable
