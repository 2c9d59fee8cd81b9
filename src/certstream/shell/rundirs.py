"""Private temporary directories of a running server, and the sweep of those a dead one left.

The master keeps its feed socket, its Prometheus files and (``--demo``) the demo's state in
directories of its own under the temporary directory.  It removes them when it exits; a
master killed with SIGKILL cannot, so each name carries the pid of the process that made it
(``certstream-run-<pid>-xxxxxxxx``) and every start removes the directories whose maker is
gone.  Only this user's directories are touched, and only names of that exact shape: a
directory another certstream still uses, or anything else in ``/tmp``, is left alone.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

__all__ = ["KINDS", "private_dir", "sweep_stale"]

#: What the directories hold: the feed socket, the metrics files, the demo's state.
KINDS = ("run", "metrics", "demo")

_NAME = re.compile(r"^certstream-(?:" + "|".join(KINDS) + r")-(\d+)-[^/]+$")


def private_dir(kind: str) -> str:
    """A new directory, mode 0700, named for ``kind`` and this process's pid."""
    if kind not in KINDS:
        raise ValueError(f"unknown run directory kind {kind!r}")
    return tempfile.mkdtemp(prefix=f"certstream-{kind}-{os.getpid()}-")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process holds the pid: not ours to judge
        return True
    return True


def sweep_stale(tmp: str | None = None) -> list[str]:
    """Remove this user's run directories whose maker is no longer running; return them."""
    root = Path(tmp or tempfile.gettempdir())
    removed: list[str] = []
    try:
        candidates = list(root.iterdir())
    except OSError:
        return removed
    uid = os.getuid()
    for path in candidates:
        m = _NAME.match(path.name)
        if m is None:
            continue
        try:
            st = path.lstat()
        except OSError:
            continue
        if st.st_uid != uid or not path.is_dir() or path.is_symlink():
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or _alive(pid):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(str(path))
    return removed
