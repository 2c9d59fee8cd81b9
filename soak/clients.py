"""The checking clients: ``tally.c`` compiled at run time, driven over its stdin/stdout.

Built with gcc into a temporary directory on first use (nothing compiled is kept in the
repository), like the benchmarks' sink.  See ``tally.c`` for what each figure counts.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.clients import CommandedProcess, build_c

SOURCE = Path(__file__).resolve().parent / "tally.c"


@dataclass(frozen=True, slots=True)
class Totals:
    """One ``R`` answer: every client's figures summed (``min_last``/``max_last`` are the
    lowest and highest last index over the clients, -1 before any)."""

    open: int
    connects: int
    disconnects: int
    frames: int
    bytes: int
    repeats: int
    gaps: int
    missed: int
    notices: int
    closes: int
    min_last: int
    max_last: int

    @classmethod
    def parse(cls, line: str) -> Totals:
        kv = dict(part.split("=", 1) for part in line.split())
        return cls(**{k: int(v) for k, v in kv.items()})


@dataclass(frozen=True, slots=True)
class ClientFigures:
    """One client across its reconnections (``tally.c``'s ``P`` line)."""

    index: int
    kind: str
    first: int
    last: int
    frames: int
    repeats: int
    gaps: int
    missed: int
    connects: int

    @property
    def complete(self) -> bool:
        """Every index from its first to its last, each once."""
        return self.first >= 0 and self.frames == self.last - self.first + 1 and not (
            self.repeats or self.gaps or self.missed)


class Tally(CommandedProcess):
    """``ws`` WebSocket and ``sse`` SSE clients of ``127.0.0.1:port`` in one C process."""

    def __init__(self, port: int, ws: int, sse: int) -> None:
        self.clients = ws + sse
        self.proc = subprocess.Popen(
            [str(build_c(SOURCE)), "127.0.0.1", str(port), str(ws), str(sse)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )

    def _ask(self, cmd: str) -> list[str]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        lines = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"the tally clients exited (code {self.proc.poll()})")
            lines.append(line.strip())
            if cmd != "P" or line.strip() == "end":
                return lines

    def totals(self) -> Totals:
        return Totals.parse(self._ask("R")[0])

    def per_client(self) -> list[ClientFigures]:
        out = []
        for line in self._ask("P")[:-1]:
            i, kind, *rest = line.split()
            out.append(ClientFigures(int(i), kind, *(int(v) for v in rest)))
        return out

    def pid(self) -> int:
        return self.proc.pid

    def wait_open(self, count: int | None = None, timeout: float = 60.0) -> Totals:
        """Until ``count`` (default: all) clients are connected; the last reading."""
        want = self.clients if count is None else count
        deadline = time.monotonic() + timeout
        t = self.totals()
        while t.open < want and time.monotonic() < deadline:
            time.sleep(0.1)
            t = self.totals()
        return t

    def wait_index(self, last: int, timeout: float = 60.0) -> Totals:
        """Until every client has received index ``last``; the last reading."""
        deadline = time.monotonic() + timeout
        t = self.totals()
        while t.min_last < last and time.monotonic() < deadline:
            time.sleep(0.2)
            t = self.totals()
        return t
