"""Configured stream and metrics paths (certstream-server-go's full_url, lite_url,
domains_only_url, metrics_url), and a listener that serves the metrics alone."""

from __future__ import annotations

from certstream.core.routes import Route, RouteTable
from certstream.core.streams import STREAM_DOMAINS, STREAM_FULL, STREAM_LITE


def test_custom_paths_with_and_without_a_trailing_slash() -> None:
    table = RouteTable(lite_path="/lite/", full_path="/stream/full", domains_path="/dom",
                       metrics_path="/prom")
    for target in (b"/lite", b"/lite/", b"/lite?x=1"):
        assert table.resolve(target, upgrade=True) == Route("ws", STREAM_LITE)
    assert table.resolve(b"/stream/full/", upgrade=True) == Route("ws", STREAM_FULL)
    assert table.resolve(b"/dom", upgrade=True) == Route("ws", STREAM_DOMAINS)
    assert table.resolve(b"/dom", upgrade=False) == Route("http", STREAM_DOMAINS, "ws_page")
    assert table.resolve(b"/stream/full/example.json", upgrade=False) == Route(
        "http", STREAM_FULL, "example")
    assert table.resolve(b"/lite/example.json", upgrade=False) == Route(
        "http", STREAM_LITE, "example")
    assert table.resolve(b"/prom/", upgrade=False) == Route("http", 0, "metrics")
    # the default paths are gone
    for target in (b"/", b"/full-stream", b"/domains-only", b"/metrics", b"/example.json"):
        assert table.resolve(target, upgrade=True) is None, target


def test_defaults_are_gos_paths() -> None:
    table = RouteTable()
    assert table.resolve(b"/", upgrade=True) == Route("ws", STREAM_LITE)
    assert table.resolve(b"/full-stream/", upgrade=True) == Route("ws", STREAM_FULL)
    assert table.resolve(b"/example.json", upgrade=False) == Route("http", STREAM_LITE,
                                                                   "example")
    assert table.resolve(b"/metrics", upgrade=False) == Route("http", 0, "metrics")


def test_metrics_only_listener() -> None:
    table = RouteTable.metrics_only("/")
    assert table.resolve(b"/", upgrade=False) == Route("http", 0, "metrics")
    for target in (b"/full-stream", b"/sse", b"/health", b"/example.json", b"/metrics"):
        assert table.resolve(target, upgrade=True) is None, target
        assert table.resolve(target, upgrade=False) is None, target
