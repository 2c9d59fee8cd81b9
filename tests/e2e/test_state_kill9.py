"""A state file written by a process killed with SIGKILL in the middle of its writes is
still a valid file (the store itself is tests/unit/test_state.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from certstream.shell.state import StateStore

WRITER = """
import sys, time
from certstream.shell.state import StateStore
st = StateStore(sys.argv[1])
i = 0
while True:
    i += 1
    st.delivered("k", i, i, now=float(i))
    st.flush()
    if i == 50:
        print("ready", flush=True)
"""


@pytest.mark.slow
def test_kill_9_mid_writes_leaves_a_valid_file(tmp_path: Path) -> None:
    p = tmp_path / "s.json"
    for _ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(p)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        got = StateStore(str(p)).load()
        assert got["k"].next_index >= 50
