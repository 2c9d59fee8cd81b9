"""The benchmark suite runs end to end and prints every figure (never judged on timing)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.data import ROOT
from tests.support.figures import FIGURE_LINE

# Every figure the ingest scenario promises, whatever the numbers turn out to be.
INGEST_FIGURES = [
    "ingest.decode (compiled)",
    "ingest.decode (pure)",
    "ingest.decode+dedup (compiled)",
    "ingest.decode+dedup (pure)",
    "ingest.pipeline (compiled)",
    "ingest.pipeline (pure)",
    "ingest.pipeline compiled/pure ratio",
    "ingest.payloads built, no stream wanted",
]


@pytest.mark.slow
def test_ingest_benchmark_prints_every_figure(tmp_path: Path) -> None:
    results = tmp_path / "last.txt"
    res = subprocess.run(
        [sys.executable, "-m", "bench", "ingest", "--quick", "--results", str(results)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert "NOT RUN" not in res.stdout, res.stdout
    lines = {m["name"]: m for m in map(FIGURE_LINE.match, res.stdout.splitlines()) if m}
    missing = [name for name in INGEST_FIGURES if name not in lines]
    assert not missing, f"figures not printed: {missing}\n{res.stdout}"
    # A rate is a positive number; the zero-payload figure is judged against its target.
    assert float(lines["ingest.pipeline (compiled)"]["value"].replace(",", "")) > 0
    assert lines["ingest.payloads built, no stream wanted"]["target"] == "target <= 0 payloads"
    # The report file holds the same figures and the Markdown table the README quotes.
    written = results.read_text()
    assert "| scenario | figure | value | target | verdict |" in written
    for name in INGEST_FIGURES:
        assert f"FIGURE {name} =" in written


MEMORY_FIGURES = [
    "memory.whole server idle, empty log, certstream",
    "memory.whole server PSS idle, empty log, certstream",
    "memory.whole server, 10 lite clients, certstream",
    "memory.whole server PSS, 10 lite clients, certstream",
    "memory.whole server, 40 lite clients, certstream",
    "memory.RSS per idle client, 20 -> 40 clients, certstream",
    "memory.whole server idle, empty log, certstream, embedded ingest",
    "memory.whole server, 10 lite clients, certstream, embedded ingest",
    "memory.whole server idle, empty log, certstream, single process",
    "memory.whole server, 10 lite clients, certstream, single process",
]


@pytest.mark.slow
def test_memory_benchmark_reads_every_process_and_part(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "bench", "memory", "--quick", "--breakdown",
         "--results", str(tmp_path / "last.txt")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = res.stdout
    assert res.returncode == 0, res.stderr
    assert "NOT RUN" not in out, out
    lines = {m["name"]: m for m in map(FIGURE_LINE.match, out.splitlines()) if m}
    missing = [name for name in MEMORY_FIGURES if name not in lines]
    assert not missing, f"figures not printed: {missing}\n{out}"
    assert lines[MEMORY_FIGURES[0]]["target"] == "target <= 80.00 MiB"
    # Every process of the server is in the table, and the 300 entries reached every client.
    for role in ("| master |", "| ingest |", "| worker |", "| **all** |"):
        assert role in out
    assert "certstream: 10 clients got 3,000 of 3,000 frames" in out
    assert "certstream, embedded ingest: 10 clients got 3,000 of 3,000 frames" in out
    assert "certstream, single process: 10 clients got 3,000 of 3,000 frames" in out
    # The probe answered from inside each process (module counts, not a placeholder).
    inside = out.split("| process | modules |", 1)[1].splitlines()[2:5]
    assert [row.split("|")[1].strip() for row in inside] == ["master", "ingest", "worker"]
    assert all(int(row.split("|")[2]) > 100 for row in inside)
    for part in ("Dedup ring at capacity 200,000", "| lite |", "| greenlet |", "log list"):
        assert part in out
