"""The benchmark suite runs end to end and prints every figure (never judged on timing)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from bench.clients import SinkStats
from bench.common import Figure, Report, metric
from bench.procmem import Rollup, label

REPO = Path(__file__).resolve().parent.parent

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
FIGURE_LINE = re.compile(
    r"^FIGURE (?P<name>.+?) = (?P<value>[0-9.,]+) (?P<unit>\S.*?)  \[(?P<target>[^\]]*)\]"
    r"  (?P<verdict>MET|MISSED|info)"
)


@pytest.mark.slow
def test_ingest_benchmark_prints_every_figure(tmp_path: Path) -> None:
    results = tmp_path / "last.txt"
    res = subprocess.run(
        [sys.executable, "-m", "bench", "ingest", "--quick", "--results", str(results)],
        cwd=REPO,
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
    "memory.whole server, 10 lite clients, certstream",
    "memory.whole server, 40 lite clients, certstream",
    "memory.RSS per idle client, 20 -> 40 clients, certstream",
]


@pytest.mark.slow
def test_memory_benchmark_reads_every_process_and_part(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "bench", "memory", "--quick", "--breakdown",
         "--results", str(tmp_path / "last.txt")],
        cwd=REPO,
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
    # The probe answered from inside each process (module counts, not a placeholder).
    inside = out.split("| process | modules |", 1)[1].splitlines()[2:5]
    assert [row.split("|")[1].strip() for row in inside] == ["master", "ingest", "worker"]
    assert all(int(row.split("|")[2]) > 100 for row in inside)
    for part in ("Dedup ring at capacity 200,000", "| lite |", "| greenlet |", "log list"):
        assert part in out


def test_mappings_are_labelled_by_what_holds_them() -> None:
    assert label("").startswith("anonymous mmap")
    assert label("[heap]").startswith("[heap]")
    assert label("/x/lib/python3.11/site-packages/gevent/_gevent_c_hub.so") == (
        "site-packages: gevent"
    )
    assert label("/r/src/certstream/_fast/_der.cpython-311-x86_64-linux-gnu.so").startswith(
        "certstream._fast"
    )
    assert label("/tmp/certstream-metrics-ab12/counter_7.db").startswith("prometheus")
    assert label("/usr/lib/x86_64-linux-gnu/libssl.so.3").startswith("system libraries")
    assert label("/opt/py/lib/libpython3.11.so.1.0").startswith("python interpreter")


def test_rollup_of_this_process_adds_up() -> None:
    r = Rollup.read(os.getpid())
    assert r.rss > 0 and r.pss > 0
    # Every resident page is either shared or private.
    assert abs(r.shared + r.private - r.rss) <= 64 * 1024
    assert (r + r).rss == 2 * r.rss
    assert Rollup.read(2**22 + 12345) == Rollup()  # no such process: zeros, no error


def test_figure_verdicts() -> None:
    assert Figure("s", "n", 10, "x", ">=", 10).verdict == "MET"
    assert Figure("s", "n", 9.9, "x", ">=", 10).verdict == "MISSED"
    assert Figure("s", "n", 0.5, "us", "<=", 1).verdict == "MET"
    assert Figure("s", "n", 1.5, "us", "<=", 1).verdict == "MISSED"
    assert Figure("s", "n", 1.5, "us").verdict == "info"
    line = Figure("fanout", "cpu", 1234.5, "frames/s", ">=", 1e6).line()
    m = FIGURE_LINE.match(line)
    assert m is not None and m["verdict"] == "MISSED" and m["name"] == "fanout.cpu"


def test_report_markdown_has_a_row_per_figure() -> None:
    r = Report()
    r.add(Figure("a", "one", 1, "x"))
    r.add(Figure("b", "two", 2, "y", "<=", 1))
    rows = r.markdown().splitlines()
    assert len(rows) == 4 and "MISSED" in rows[3] and "| b | two |" in rows[3]


def test_metric_sums_every_label_set_and_tells_absent_from_zero() -> None:
    text = (
        "# HELP certstream_payloads_built_total x\n"
        "# TYPE certstream_payloads_built_total counter\n"
        'certstream_payloads_built_total{stream="lite"} 3.0\n'
        'certstream_payloads_built_total{stream="full"} 4.0\n'
        "certstream_payloads_built_totalx 100\n"
        "certstream_other_total 0.0\n"
    )
    assert metric(text, "certstream_payloads_built_total") == 7.0
    assert metric(text, "certstream_other_total") == 0.0
    assert metric(text, "certstream_missing_total") is None


def test_sink_stats_parse() -> None:
    st = SinkStats.parse(
        "open=2 ok=3 failed=1 closed=1 frames=10 bytes=100 pings=0 lat_n=10 p50=5 p90=6 "
        "p99=7 p999=8 max=9"
    )
    assert (st.open, st.failed, st.frames, st.p99, st.max) == (2, 1, 10, 7, 9)
