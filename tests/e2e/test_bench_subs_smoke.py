"""The subscription benchmarks (filters and deflate in one process; filtered and compressed
on the real workers) run end to end and print their figures (never judged on timing)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIGURES = [
    "FIGURE filters.match per record, 10,000 patterns = ",
    "FIGURE filters.record fields from the feed's filter field = ",
    "FIGURE deflate.wire/plain, lite = ",
    "FIGURE deflate.wire/plain, full = ",
    "FIGURE deflate.CPU per compressed frame, full = ",
]


@pytest.mark.slow
def test_filters_and_deflate_benchmarks_print_their_figures(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "bench", "filters", "deflate", "--quick",
         "--results", str(tmp_path / "last.txt")],
        cwd=REPO, capture_output=True, text=True, timeout=240, check=False,
    )
    assert res.returncode == 0, res.stderr
    assert "NOT RUN" not in res.stdout, res.stdout
    for head in FIGURES:
        assert head in res.stdout, f"{head!r} not printed:\n{res.stdout}"
    # The wire ratios are judged against certstream-server-go's, whatever they come to.
    assert "[target <= 0.54 ]" in res.stdout and "[target <= 0.6 ]" in res.stdout


SERVER_FIGURES = [
    "FIGURE filtered.server CPU filtered / unfiltered = ",
    "FIGURE filtered.filtered clients got what their filters select = ",
    "FIGURE compressed.CPU per frame compressed / plain = ",
    "FIGURE compressed.compressed messages that did not inflate = ",
    "FIGURE compressed.whole-server CPU per compressed frame, certstream = ",
]


@pytest.mark.slow
def test_filtered_and_compressed_benchmarks_print_their_figures(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "bench", "filtered", "compressed", "--quick",
         "--results", str(tmp_path / "last.txt")],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )
    assert res.returncode == 0, res.stderr
    assert "NOT RUN" not in res.stdout, res.stdout
    for head in SERVER_FIGURES:
        assert head in res.stdout, f"{head!r} not printed:\n{res.stdout}"
