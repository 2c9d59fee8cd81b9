"""Processes as /proc shows them (psutil is not a dependency): who is whose child, which one
is the ingest, whether a process is still alive, what environment it was started with, and
Ctrl-C as a terminal delivers it."""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

INGEST_ARGV = ["-m", "certstream.shell.ingest"]


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    argv: tuple[str, ...]


def processes() -> list[Proc]:
    """Every process that has not exited (zombies are left out: they have)."""
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
    """Whether ``pid`` runs (a zombie counts as gone: it has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def proc_env(pid: int) -> dict[str, str]:
    """The environment ``pid`` was exec'd with (a forked child shows its parent's)."""
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without the settings a server would read from it, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CERTSTREAM_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(extra)
    return env


# -- Ctrl-C ------------------------------------------------------------------------------------
# A terminal sends SIGINT to every process of its foreground group at once: the master, its
# workers, the ingest (and with ``--demo`` the demo log).  :func:`interrupt_all` does the same
# to a server started by a test, whatever its process group.


def family(pid: int) -> list[int]:
    """``pid`` and all its descendants, parents first."""
    procs = processes()
    out, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        out.append(p)
        todo += [c.pid for c in procs if c.ppid == p]
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def interrupt_all(pid: int) -> list[int]:
    """SIGINT to ``pid`` and every descendant, as Ctrl-C does; the pids signalled."""
    pids = family(pid)
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGINT)
    return pids


def socket_owner(pids: list[int], local_port: int, remote_port: int) -> int | None:
    """Which of ``pids`` holds the TCP socket from ``local_port`` to ``remote_port`` (on
    loopback): the worker that accepted a test client's connection, found by the socket's
    inode in ``/proc/net/tcp`` and the processes' open files."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                local, remote = cols[1], cols[2]
                if (int(local.rsplit(":", 1)[1], 16) == local_port
                        and int(remote.rsplit(":", 1)[1], 16) == remote_port):
                    inodes.add(f"socket:[{cols[9]}]")
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return pid
    return None
