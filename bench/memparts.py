"""Where a server's memory goes: per-process tables and the cost of each part.

Used by ``python -m bench memory --breakdown``.  Three kinds of reading:

* **From outside, any server:** ``/proc/PID/smaps_rollup`` per process (RSS, PSS, shared vs
  private, anonymous) and ``/proc/PID/smaps`` grouped by what each mapping holds
  (``bench.procmem.label``), plus the prometheus-client multiprocess files of our server.
* **From inside our processes:** ``bench/memhook/sitecustomize.py`` (on ``PYTHONPATH`` only
  for this run) makes each of them, on ``SIGRTMIN+3``, fork a child that writes what the
  process has imported, what the collector tracks and, with ``--tracemalloc``, the traced
  Python heap by source file.  The child does the work, so the server's own RSS is not
  touched by the dump (tracemalloc itself is: its traces cost memory, so RSS figures of a
  ``--tracemalloc`` run are not comparable with others).
* **In fresh interpreters** (``bench.memprobe``): what importing each package costs, the dedup
  ring, the frame rings per stream, the message builder's caches, the parsed log list.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import REPO, Report
from bench.procmem import MiB, Rollup, group_mappings, peak_rss, roles

__all__ = [
    "HOOK_DIR",
    "hook_env",
    "is_python",
    "mapping_table",
    "parts",
    "process_table",
    "prometheus_files",
    "request_dumps",
]

HOOK_DIR = REPO / "bench" / "memhook"
DUMP_SIGNAL = signal.SIGRTMIN + 3


def hook_env(dump_dir: Path, trace: bool) -> dict[str, str]:
    """Environment that loads the memory probe into every process of our server."""
    path = os.pathsep.join(p for p in (str(HOOK_DIR), os.environ.get("PYTHONPATH", "")) if p)
    env = {"PYTHONPATH": path, "BENCH_MEMDUMP_DIR": str(dump_dir)}
    if trace:
        env["PYTHONTRACEMALLOC"] = "1"
    return env


def mib(n: float) -> str:
    return f"{n / MiB:.1f}"


def process_table(report: Report, pids: list[int], root: int, title: str) -> Rollup:
    """One row per process (master, ingest, workers) and the sum; returns the sum."""
    report.say(f"\n{title} (MiB)\n")
    report.say("| process | pid | RSS | PSS | shared | private | anonymous | peak RSS so far |")
    report.say("|---|---|---|---|---|---|---|---|")
    total, peaks = Rollup(), 0
    for name, pid in roles(pids, root):
        r = Rollup.read(pid)
        peak = peak_rss(pid)
        total, peaks = total + r, peaks + peak
        report.say(
            f"| {name} | {pid} | {mib(r.rss)} | {mib(r.pss)} | {mib(r.shared)} | "
            f"{mib(r.private)} | {mib(r.anonymous)} | {mib(peak)} |"
        )
    report.say(
        f"| **all** | | **{mib(total.rss)}** | {mib(total.pss)} | {mib(total.shared)} | "
        f"{mib(total.private)} | {mib(total.anonymous)} | {mib(peaks)} |"
    )
    return total


def mapping_table(report: Report, pids: list[int], root: int) -> None:
    """RSS (private part in brackets) per mapping group, one column per process."""
    procs = roles(pids, root)
    groups = {pid: group_mappings(pid) for _name, pid in procs}
    names = sorted(
        {g for gs in groups.values() for g in gs},
        key=lambda g: -sum(gs[g].rss for gs in groups.values() if g in gs),
    )
    report.say("\nRSS by mapping, MiB (private part in brackets):\n")
    report.say("| mapping | " + " | ".join(f"{n} {p}" for n, p in procs) + " |")
    report.say("|---|" + "---|" * len(procs))
    for g in names:
        cells = []
        for _n, pid in procs:
            grp = groups[pid].get(g)
            if grp is None or grp.rss == 0:
                cells.append("")
                continue
            files = f", {grp.files} files" if "prometheus" in g else ""
            cells.append(f"{mib(grp.rss)} ({mib(grp.private)}){files}")
        if any(cells):
            report.say(f"| {g} | " + " | ".join(cells) + " |")


def prometheus_files(pids: list[int]) -> tuple[int, int] | None:
    """(count, bytes) of the .db files in the server's PROMETHEUS_MULTIPROC_DIR.

    The master sets the variable after it started, so only a process started after that
    (the ingest) has it in ``/proc/PID/environ``, which shows the environment at exec.
    """
    for pid in pids:
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for item in environ:
            if item.startswith(b"PROMETHEUS_MULTIPROC_DIR="):
                d = Path(item.split(b"=", 1)[1].decode())
                files = list(d.glob("*.db"))
                return len(files), sum(f.stat().st_size for f in files)
    return None


def is_python(pid: int) -> bool:
    """A Python process (the probe can only be in those)."""
    try:
        return "python" in Path(os.readlink(f"/proc/{pid}/exe")).name
    except OSError:
        return False


def request_dumps(
    pids: list[int], root: int, dump_dir: Path, timeout: float = 20.0
) -> dict[int, dict[str, Any]]:
    """Ask each of our processes for a dump; wait for the files and for the dumpers to end."""
    for f in dump_dir.glob("*.json"):
        f.unlink()
    for pid in pids:
        try:
            os.kill(pid, DUMP_SIGNAL)
        except OSError:
            continue
    out: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while len(out) < len(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
        for pid in pids:
            f = dump_dir / f"{pid}.json"
            if pid not in out and f.exists():
                out[pid] = json.loads(f.read_text())
    time.sleep(0.5)  # the forked dumpers exit right after writing
    return out


def _owner(filename: str) -> str:
    """A traced allocation's file, shortened to what a reader recognises."""
    if filename.startswith("<frozen importlib"):
        return "imports (code objects, module dicts: <frozen importlib>)"
    for marker in ("/site-packages/", "/src/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    if "/lib/python3" in filename:
        return "stdlib " + filename.split("/lib/python3", 1)[1].split("/", 1)[-1]
    return filename


def dump_table(
    report: Report, dumps: dict[int, dict[str, Any]], pids: list[int], root: int
) -> None:
    procs = [(n, p) for n, p in roles(pids, root) if p in dumps]
    if not procs:
        report.say("(no process answered the dump signal: is the probe on PYTHONPATH?)")
        return
    report.say("\nInside each process:\n")
    report.say("| process | modules | gc-tracked objects | frozen | traced heap MiB |")
    report.say("|---|---|---|---|---|")
    for name, pid in procs:
        d = dumps[pid]
        traced = mib(d["traced"]) if "traced" in d else "-"
        report.say(
            f"| {name} | {len(d['modules'])} | {d['gc_objects']:,} | {d['gc_frozen']:,} | "
            f"{traced} |"
        )
    for name, pid in procs:
        d = dumps[pid]
        tops = sorted(
            _count_by_package(d["modules"]).items(), key=lambda kv: -kv[1]
        )[:12]
        report.say(f"{name}: modules by package: " + ", ".join(f"{k} {v}" for k, v in tops))
        if "by_file" in d:
            merged: dict[str, int] = {}
            for filename, size, _count in d["by_file"]:
                key = _owner(filename)
                merged[key] = merged.get(key, 0) + size
            top = sorted(merged.items(), key=lambda kv: -kv[1])[:12]
            report.say(
                f"{name}: traced heap by file (KiB): "
                + "; ".join(f"{k} {v / 1024:,.0f}" for k, v in top)
            )


def _count_by_package(modules: Sequence[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for m in modules:
        top = m.split(".")[0]
        out[top] = out.get(top, 0) + 1
    return out


# --- parts, each in a fresh interpreter ----------------------------------------------------

#: (label, arguments of ``memprobe imports``) for the import table.  ``--block`` rows make a
#: package free (a stand-in): the difference to the row above is its marginal cost in that
#: process.
_CRYPTO = ",".join(
    ["cryptography", "cryptography.exceptions", "cryptography.hazmat"]
    + [f"cryptography.hazmat.primitives{s}" for s in ("", ".asymmetric", ".serialization")]
)
_PROM = "--block=prometheus_client,prometheus_client.multiprocess"
IMPORTS: list[tuple[str, list[str]]] = [
    ("gunicorn master (app.base, arbiter)", ["gunicorn.app.base", "gunicorn.arbiter"]),
    ("gunicorn gevent worker base (ggevent)", ["gunicorn.workers.ggevent"]),
    ("gevent (+ pool, server)", ["gevent", "gevent.pool", "gevent.server"]),
    (
        "cryptography (the primitives core/ uses)",
        [f"cryptography.hazmat.primitives{s}" for s in (".asymmetric.ec", ".asymmetric.rsa",
                                                        ".serialization")],
    ),
    ("prometheus_client", ["prometheus_client"]),
    ("yaml", ["yaml"]),
    ("h11", ["h11"]),
    ("wsproto", ["wsproto"]),
    ("certstream (the package: its names load on first use)", ["certstream"]),
    ("certstream.config", ["certstream.config"]),
    ("master: certstream.cli + shell.app + shell.workerclass (what gunicorn loads there)",
     ["certstream.cli", "certstream.shell.app", "certstream.shell.workerclass"]),
    ("worker: certstream.shell.worker", ["certstream.shell.worker"]),
    ("worker without prometheus_client", [_PROM, "certstream.shell.worker"]),
    ("ingest: certstream.shell.ingest", ["certstream.shell.ingest"]),
    ("ingest without prometheus_client", [_PROM, "certstream.shell.ingest"]),
    ("ingest without cryptography", [f"--block={_CRYPTO}", "certstream.shell.ingest"]),
    ("embedded worker: shell.worker + shell.ingest",
     ["certstream.shell.worker", "certstream.shell.ingest"]),
]


def probe(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    res = subprocess.run(
        [sys.executable, "-m", "bench.memprobe", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )
    if res.returncode != 0:
        raise RuntimeError(f"memprobe {' '.join(args)} failed: {res.stderr.strip()[-500:]}")
    result: dict[str, Any] = json.loads(res.stdout)
    return result


def parts(report: Report, buffer_size: int, dedup_capacity: int, quick: bool = False) -> None:
    """Every table of the parts; ``quick`` (a smoke run) measures a few rows of each."""
    report.say("\n## memory: the parts, each in a fresh interpreter\n")
    base = probe(["imports"])
    report.say(
        f"A bare interpreter (with this probe) has RSS {mib(base['rss'])} MiB. "
        "Importing (deltas are not additive: packages share the standard library):\n"
    )
    report.say("| import | RSS after | +RSS | +private dirty | +modules |")
    report.say("|---|---|---|---|---|")
    for label, args in IMPORTS[-3:] if quick else IMPORTS:
        r = probe(["imports", *args])
        report.say(
            f"| {label} | {mib(r['rss'])} | {mib(r['rss_delta'])} | "
            f"{mib(r['private_dirty_delta'])} | {r['modules_delta']} |"
        )
    pure = {"CERTSTREAM_NO_EXTENSIONS": "1"}
    report.say(f"\nDedup ring at capacity {dedup_capacity:,} (the default):\n")
    report.say("| twin | traced when built | RSS when built | RSS full | RSS evicting | "
               "bytes per entry (full) |")
    report.say("|---|---|---|---|---|---|")
    for name, env in (("compiled", None), ("pure", pure)):
        d = probe(["dedup", str(dedup_capacity)], env)
        report.say(
            f"| {name}{'' if d['compiled'] == (env is None) else ' (fell back)'} | "
            f"{mib(d['traced_built'])} | {mib(d['rss_built'])} | {mib(d['rss_full'])} | "
            f"{mib(d['rss_evicting'])} | {d['rss_full'] / d['capacity']:.1f} |"
        )
    b = probe(["builder", "2000"])
    report.say(
        f"\nFrames per stream (live40 made unique, {b['entries']:,} entries, go profile). "
        f"A worker's ring keeps one bytes object per slot (the payload; frames are built "
        f"where a write joins them), {buffer_size:,} slots per stream (and at most "
        "`buffer_bytes`):\n"
    )
    report.say("| stream | payload bytes (avg) | ring slot bytes (the payload object) | "
               f"ring at buffer_size {buffer_size:,} |")
    report.say("|---|---|---|---|")
    for stream in ("lite", "full", "domains"):
        slot = b["slot_bytes_avg"][stream]
        report.say(
            f"| {stream} | {b['payload_avg'][stream]:,.0f} | {slot:,.0f} | "
            f"{mib(slot * buffer_size)} MiB |"
        )
    n, cap, size, limit = b["chain_cache"]
    cn, ccap, csize, climit = b["chains"]
    report.say(
        f"\nMessage builder caches after {b['entries']:,} entries (the builder kept "
        f"{b['builder_kept_traced'] / 1024:,.0f} KiB traced): chain certificates {n} of "
        f"{cap:,} ({size / max(n, 1) / 1024:.1f} KiB each: DER + JSON text; at most "
        f"{mib(limit)} MiB), whole chains {cn} of {ccap:,} "
        f"({csize / max(cn, 1) / 1024:.1f} KiB each; at most {mib(climit)} MiB)."
    )
    report.say(
        "\nAn idle connection under gevent (socket pairs, nothing else): waited on by a "
        "greenlet blocked in recv (a TLS client's model in the worker, and every client's "
        "before shell.reader: its C stack slice, its frames' data-stack chunk and the "
        "Greenlet) or by a read watcher with a callback (a plain client's):\n"
    )
    report.say("| model | RSS per connection |")
    report.say("|---|---|")
    for model in ("greenlet", "watcher"):
        d = probe(["idle", model, "500" if quick else "5000"])
        report.say(f"| {model} | {d['per_connection']:,.0f} bytes |")
    ll = probe(["loglist"])
    report.say(
        f"\nThe packaged Google log list: {ll['file_bytes'] / 1024:.0f} KiB of JSON, "
        f"{ll['logs']} logs, {ll['traced_parsed'] / 1024:.0f} KiB parsed."
    )
