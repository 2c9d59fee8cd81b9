"""The conformance harness run against our own ``certstream`` command in some mode (set by
environment variables): live40's golden frames of certstream-server-go, every stream over
WebSocket and SSE, asserted clean; the server's log is returned for the mode's own checks."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.support.data import ROOT

__all__ = ["CLEAN", "serve_live40_through_the_harness"]

BIN = Path(sys.executable).parent
#: What the harness says of a stream with nothing wrong.
CLEAN = "0 missing, 0 extra, 0 repeated, 0 out of order, 0 differing"


def serve_live40_through_the_harness(workdir: Path, env: dict[str, str]) -> str:
    """Run ``certstream`` with ``env`` (added to an environment without ``CERTSTREAM_*``)
    under the harness, keeping its files in ``workdir``; assert all 240 frames matched on
    the six endpoints; the server's log."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CERTSTREAM_")}
    full_env.update(env)
    run = subprocess.run(
        [sys.executable, "-m", "conformance", "run", "--quiet", "0.5",
         "--server-cmd", f"{BIN / 'certstream'} --config {{config}}",
         "--config-style", "certstream", "--peer", "go", "--set", "live40",
         "--transport", "both", "--keep-workdir", str(workdir)],
        cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=240, check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines()[-1] == "go/live40: 240/240 frames match"
    lines = [line for line in run.stdout.splitlines() if re.match(r"  (ws |sse) ", line)]
    assert [line.split()[:2] for line in lines] == [
        [t, s] for t in ("ws", "sse") for s in ("lite", "full", "domains")
    ]
    assert all(CLEAN in line for line in lines), run.stdout
    return (workdir / "server.log").read_text()
