"""A memory probe loaded into every process of a benchmarked server (bench only, never shipped).

``bench.memparts`` puts this directory on ``PYTHONPATH`` and sets ``BENCH_MEMDUMP_DIR``;
Python then imports this module at start-up in the gunicorn master, in the ingest (a fresh
interpreter) and, through the fork, in every worker.  It installs one handler, for the
real-time signal ``SIGRTMIN+3`` (gunicorn uses none of those): the process forks, and the
child writes ``<dir>/<pid of the parent>.json`` with what the parent had imported, what the
collector tracks and, when ``PYTHONTRACEMALLOC`` is set, the traced Python heap grouped by
source file, then exits.  The work and its garbage stay in the child, so the server's own
memory is not changed by being looked at.
"""

from __future__ import annotations

import contextlib
import os

_DIR = os.environ.get("BENCH_MEMDUMP_DIR")


def _write(parent: int) -> None:
    import collections  # noqa: PLC0415 - only in the dumping child
    import gc  # noqa: PLC0415
    import json  # noqa: PLC0415
    import sys  # noqa: PLC0415
    import tracemalloc  # noqa: PLC0415

    out: dict[str, object] = {
        "pid": parent,
        "argv": list(sys.argv),
        "modules": sorted(sys.modules),
        "gc_frozen": gc.get_freeze_count(),
    }
    if tracemalloc.is_tracing():
        out["traced"] = tracemalloc.get_traced_memory()[0]
        stats = tracemalloc.take_snapshot().statistics("filename")
        out["by_file"] = [(s.traceback[0].filename, s.size, s.count) for s in stats]
        if tracemalloc.get_traceback_limit() > 1:  # PYTHONTRACEMALLOC=N, N > 1: call paths
            top = tracemalloc.take_snapshot().statistics("traceback")[:25]
            out["by_traceback"] = [
                ([f"{f.filename}:{f.lineno}" for f in s.traceback], s.size, s.count) for s in top
            ]
    objs = gc.get_objects()
    out["gc_objects"] = len(objs)
    out["gc_top_types"] = collections.Counter(type(o).__qualname__ for o in objs).most_common(25)
    assert _DIR is not None
    tmp = os.path.join(_DIR, f".{parent}.json")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(out, f)
    os.replace(tmp, os.path.join(_DIR, f"{parent}.json"))


def _dump(signum: int, frame: object) -> None:
    import posix  # noqa: PLC0415 - the unpatched fork, whatever gevent did to ``os``

    parent = os.getpid()
    child = posix.fork()
    if child == 0:
        try:
            _write(parent)
        finally:
            os._exit(0)
    # A SIGCHLD handler (gunicorn's arbiter) may reap it first.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(child, 0)


if _DIR:
    import signal

    signal.signal(signal.SIGRTMIN + 3, _dump)
