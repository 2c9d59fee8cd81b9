"""``python -m bench.batch_size`` runs and prints a row per (cap, batch) pair (never judged on
its numbers)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| (\d+) \| (\d+) \| [0-9.]+ \| [0-9,]+ \| (\d+) \| [0-9.]+ MiB \|$")


@pytest.mark.slow
def test_batch_size_bench_prints_every_pair() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "bench.batch_size", "--entries", "256", "--caps", "32,256",
         "--batches", "64,256", "--interval", "0"],
        cwd=REPO, capture_output=True, text=True, timeout=240, check=False)
    assert res.returncode == 0, res.stderr
    rows = [ROW.match(line) for line in res.stdout.splitlines()]
    got = [(int(m.group(1)), int(m.group(2)), int(m.group(3))) for m in rows if m]
    # The requests follow from the log's cap and the batch: 256 entries, at most min() each.
    assert got == [(32, 64, 8), (32, 256, 8), (256, 64, 4), (256, 256, 1)], res.stdout
