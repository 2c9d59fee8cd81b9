"""Sampling a running worker with py-spy (optional: used only when ``py-spy`` is on PATH).

cProfile can only profile its own process; the fan-out cost lives in a gunicorn worker, so
``--py-spy`` attaches py-spy to it for the steady phase and prints where the samples fell.
Idle time (the worker waiting in its event loop) is not sampled, so the shares are of the
time the worker was actually running.
"""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.common import REPO

_NOISE = re.compile(r"^.*?(site-packages/|lib/python3\.\d+/)")


def available() -> str | None:
    return shutil.which("py-spy")


def start(pid: int, seconds: float) -> tuple[subprocess.Popen[bytes], Path] | None:
    """Begin sampling ``pid`` for ``seconds``; None when py-spy is not installed."""
    exe = available()
    if exe is None:
        return None
    out = Path(tempfile.mkdtemp(prefix="certstream-bench-")) / "stacks.txt"
    proc = subprocess.Popen(
        [
            exe,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, int(seconds))),
            "--rate",
            "200",
            "--format",
            "raw",
            "--nonblocking",
            "-o",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc, out


def summary(raw: Path, top: int = 12) -> str:
    """Self and inclusive shares of the sampled frames, from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_NOISE.sub("", f.replace(str(REPO) + "/", "")) for f in stack.split(";")]
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    if not total:
        return "py-spy: no samples"
    lines = [f"py-spy: {total} samples of the worker; self time:"]
    lines += [f"  {c / total * 100:5.1f}%  {f}" for f, c in own.most_common(top)]
    lines.append("inclusive:")
    lines += [f"  {c / total * 100:5.1f}%  {f}" for f, c in incl.most_common(top)]
    return "\n".join(lines)


def finish(handle: tuple[subprocess.Popen[bytes], Path] | None) -> str:
    if handle is None:
        return "py-spy: not on PATH, no worker profile"
    proc, out = handle
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    text = summary(out) if out.exists() else "py-spy: it wrote nothing (permissions?)"
    shutil.rmtree(out.parent, ignore_errors=True)
    return text
