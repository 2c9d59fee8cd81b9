"""A server's process tree from /proc, and Ctrl-C as a terminal delivers it.

A terminal sends SIGINT to every process of its foreground group at once: the master, its
workers, the ingest (and with ``--demo`` the demo log).  :func:`interrupt_all` does the same
to a server started by a test, whatever its process group.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path


def _children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                out += [int(c) for c in (task / "children").read_text().split()]
    return out


def family(pid: int) -> list[int]:
    """``pid`` and all its descendants, parents first."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        out.append(p)
        todo += _children(p)
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"  # a zombie has exited


def interrupt_all(pid: int) -> list[int]:
    """SIGINT to ``pid`` and every descendant, as Ctrl-C does; the pids signalled."""
    pids = family(pid)
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGINT)
    return pids
