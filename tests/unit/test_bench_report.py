"""The benchmark suite's report: figure lines and verdicts, the Markdown table, metric sums,
the sink's stats line (the suite run end to end is tests/e2e/test_bench_smoke.py)."""

from __future__ import annotations

import os

from bench.clients import SinkStats
from bench.common import Figure, Report, metric
from bench.procmem import Rollup, label
from tests.support.figures import FIGURE_LINE


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
