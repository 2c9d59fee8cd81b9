"""Per-process memory from /proc: smaps_rollup totals, mappings grouped by what holds them.

A server's RSS summed over its processes counts a page shared by two processes twice; that is
what the host is charged for in most tools (and what the issue's targets use), so it is the
headline.  PSS (each shared page divided among the processes that map it) and the private
part (pages nobody else maps: what stopping that process would free) say how much of it is
really per process, and what forked workers share with the gunicorn master.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MiB", "Rollup", "group_mappings", "label", "peak_rss", "role", "roles"]

MiB = 1024 * 1024
_HEADER = re.compile(r"^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$")
_ROLLUP_KEYS = {
    "Rss": "rss",
    "Pss": "pss",
    "Shared_Clean": "shared_clean",
    "Shared_Dirty": "shared_dirty",
    "Private_Clean": "private_clean",
    "Private_Dirty": "private_dirty",
    "Anonymous": "anonymous",
    "Swap": "swap",
}


@dataclass(frozen=True, slots=True)
class Rollup:
    """``/proc/PID/smaps_rollup`` in bytes."""

    rss: int = 0
    pss: int = 0
    shared_clean: int = 0
    shared_dirty: int = 0
    private_clean: int = 0
    private_dirty: int = 0
    anonymous: int = 0
    swap: int = 0

    @property
    def shared(self) -> int:
        return self.shared_clean + self.shared_dirty

    @property
    def private(self) -> int:
        return self.private_clean + self.private_dirty

    @classmethod
    def read(cls, pid: int) -> Rollup:
        """The process's rollup; all zero once it has gone."""
        values: dict[str, int] = {}
        try:
            lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        except OSError:
            return cls()
        for line in lines[1:]:
            key, _, rest = line.partition(":")
            name = _ROLLUP_KEYS.get(key)
            if name is not None:
                values[name] = int(rest.split()[0]) * 1024
        return cls(**values)

    def __add__(self, other: Rollup) -> Rollup:
        return Rollup(
            *(getattr(self, f) + getattr(other, f) for f in _ROLLUP_KEYS.values())
        )


def peak_rss(pid: int) -> int:
    """The process's highest RSS since it started (``VmHWM``), in bytes; 0 once it has gone.
    A container's memory limit is met by the peak of a burst, not by the settled figure."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def role(pid: int, root: int) -> str:
    """master / ingest / worker for certstream's processes, ``server`` for a one-process peer."""
    if "certstream.shell.ingest" in _cmdline(pid):
        return "ingest"
    if pid == root:
        return "master"
    return "worker"


def roles(pids: list[int], root: int) -> list[tuple[str, int]]:
    """(role, pid) in a stable order: master, ingest, then workers by pid."""
    order = {"master": 0, "ingest": 1, "worker": 2}
    out = [(role(p, root), p) for p in pids]
    if len(out) == 1:
        return [("server", pids[0])]
    return sorted(out, key=lambda rp: (order[rp[0]], rp[1]))


def label(path: str) -> str:
    """What a mapping holds, from its path: the groups of the 'Where the memory goes' tables."""
    if not path:
        return "anonymous mmap (pymalloc arenas, large mallocs, C buffers)"
    if path == "[heap]":
        return "[heap] (brk: mallocs below the mmap threshold)"
    if path.startswith("[stack"):
        return "stacks"
    if path.startswith("["):
        return "kernel ([vvar], [vdso], ...)"
    if path.endswith(".db") or "certstream-metrics-" in path:
        return "prometheus multiprocess .db (mmap)"
    if "libpython" in path or re.search(r"/bin/python[0-9.]*$", path):
        return "python interpreter (libpython, binary)"
    if "/lib-dynload/" in path:
        return "stdlib C modules (lib-dynload)"
    if "/_fast/" in path:
        return "certstream._fast (compiled twins)"
    if "/site-packages/" in path:
        pkg = path.split("/site-packages/", 1)[1].split("/", 1)[0]
        pkg = pkg.split(".")[0].split("-")[0].lstrip("_")
        return f"site-packages: {pkg}"
    if path.startswith(("/lib", "/usr/lib")):
        return "system libraries (libc, libssl, ...)"
    if path.startswith(("/dev/shm", "/memfd:")) or "(deleted)" in path:
        return "shared memory (memfd, /dev/shm)"
    return "other files"


@dataclass
class Group:
    rss: int = 0
    private: int = 0
    shared: int = 0
    files: int = 0


def group_mappings(pid: int) -> dict[str, Group]:
    """``/proc/PID/smaps`` summed per :func:`label` (files = distinct paths in the group)."""
    groups: dict[str, Group] = defaultdict(Group)
    paths: dict[str, set[str]] = defaultdict(set)
    current = ""
    try:
        text = Path(f"/proc/{pid}/smaps").read_text()
    except OSError:
        return {}
    for line in text.splitlines():
        m = _HEADER.match(line)
        if m is not None:
            path = m.group(1).strip()
            current = label(path)
            if path:
                paths[current].add(path)
            continue
        key, _, rest = line.partition(":")
        if key == "Rss":
            groups[current].rss += int(rest.split()[0]) * 1024
        elif key in ("Private_Clean", "Private_Dirty"):
            groups[current].private += int(rest.split()[0]) * 1024
        elif key in ("Shared_Clean", "Shared_Dirty"):
            groups[current].shared += int(rest.split()[0]) * 1024
    for name, ps in paths.items():
        groups[name].files = len(ps)
    return dict(groups)
