"""Loopback networking for tests: a free port, whether a port accepts, the connections a
process holds."""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def sockets_on_port(pid: int, port: int) -> int:
    """Established TCP connections on local ``port`` that process ``pid`` holds (/proc)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                # fields[3] == "01" is ESTABLISHED; fields[9] is the socket inode.
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                    inodes.add(f"socket:[{fields[9]}]")
    held = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            held += os.readlink(fd) in inodes
    return held


@contextlib.contextmanager
def short_tmpdir(prefix: str = "cs-") -> Iterator[Path]:
    """A temporary directory with a short path: a Unix socket's path must fit in about 107
    bytes, and pytest's ``tmp_path`` can be longer."""
    with tempfile.TemporaryDirectory(prefix=prefix, ignore_cleanup_errors=True) as path:
        yield Path(path)
