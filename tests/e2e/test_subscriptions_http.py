"""The real server's answers around subscriptions: a bad filter is a 400 with a JSON reason
before any upgrade, on every stream path; a browser's plain GET on a stream path gets the
live page (written for this server's switches) and its favicon; the filter metrics count
filtered clients, distinct filters and matched entries."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from tests.support import (
    LITE,
    RawWS,
    Server,
    SSEClient,
    golden_payloads,
    http_get,
    run_server,
    wait_until,
)

from certstream.core.filterfields import encode_match_fields

pytestmark = pytest.mark.slow

STREAM_PATHS = ("/", "/full-stream", "/domains-only")
SSE_TARGETS = ("/sse", "/sse?stream=full", "/sse?stream=domains")
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
BAD = (
    ("domain_re=a(%3F%3Db)", "domain_re", "RE2 refuses"),  # a look-ahead: not linear time
    ("domain=" + "a" * 254, "domain", "over 253"),
    ("domain=a&domain=b&issuer=c&log=d", "log", "more than 3"),  # filters.max_patterns: 3
)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with run_server({"filters": {"max_patterns": 3}}) as srv:
        yield srv


def _join(target: str, query: str) -> str:
    return target + ("&" if "?" in target else "?") + query


@pytest.mark.parametrize(("query", "param", "says"), BAD)
def test_a_bad_filter_is_a_400_with_its_reason_before_any_upgrade(
    server: Server, query: str, param: str, says: str
) -> None:
    for path in STREAM_PATHS:
        ws = RawWS(server.port, _join(path, query))
        try:
            assert ws.status == 400, ws.head
            assert b"upgrade" not in ws.head.lower()
            while len(ws.buf) < int(ws.head.lower().split(b"content-length: ")[1].split()[0]):
                ws.buf += ws.sock.recv(65536)
            reason = json.loads(ws.buf)
        finally:
            ws.close()
        assert reason["error"] == "bad filter" and reason["param"] == param, reason
        assert says in reason["reason"], reason
    for target in SSE_TARGETS:
        status, headers, body = http_get(server.port, _join(target, query))
        assert (status, headers["content-type"]) == (400, "application/json"), body
        assert json.loads(body)["param"] == param


def test_a_browser_gets_the_live_page_on_any_stream_path_and_its_icon(server: Server) -> None:
    for target in (*STREAM_PATHS, "/sse", "/sse?stream=full&domain=*.example.com"):
        status, headers, body = http_get(server.port, target, headers=BROWSER)
        assert (status, headers["content-type"]) == (200, "text/html; charset=utf-8"), target
        assert body.startswith(b"<!DOCTYPE html>") and b"EventSource" in body
        assert b'{"sse":"/sse","health":"/health/deep"}' in body
    for icon in ("/favicon.svg", "/favicon.ico"):
        status, headers, body = http_get(server.port, icon)
        assert (status, headers["content-type"]) == (200, "image/svg+xml")
        assert body.startswith(b"<svg")
    # EventSource asks for the stream, and so does curl: they get it.
    sse = SSEClient(server.port, "/sse")
    try:
        assert "text/event-stream" in sse.head
    finally:
        sse.close()


def test_the_page_asks_only_for_what_this_server_serves() -> None:
    config = {"streams": {"lite": False}, "protocols": {"health": False}}
    with run_server(config) as srv:
        status, _headers, body = http_get(srv.port, "/full-stream", headers=BROWSER)
    assert status == 200 and b'{"sse":"/sse?stream=full","health":null}' in body


def _metric(port: int, name: str) -> float:
    for line in http_get(port, "/metrics")[2].decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return float("nan")


def test_filter_metrics_count_clients_filters_and_matched_entries(server: Server) -> None:
    messages = [json.loads(p) for p in golden_payloads("lite")]
    hit = next(i for i, m in enumerate(messages)
               if any("workday" in n for n in m["data"]["leaf_cert"]["all_domains"]))
    a = RawWS(server.port, "/?domain=*workday*")
    b = RawWS(server.port, "/domains-only?domain=*WORKDAY*")
    c = RawWS(server.port, "/?log=argon")
    try:
        server.feed.wait_wanted(LITE | 16)  # lite, and the filter field (WANT bit 16)
        assert wait_until(lambda: _metric(server.port, "certstream_filtered_clients") == 3, 10)
        assert _metric(server.port, "certstream_filters") == 2  # equal filters share one
        before = _metric(server.port, "certstream_filter_records_matched_total")
        payload = golden_payloads("lite")[hit]
        domains = golden_payloads("domains")[hit]
        leaf = messages[hit]["data"]["leaf_cert"]
        fields = encode_match_fields(leaf["all_domains"], leaf["issuer"]["aggregated"],
                                     "other log", "https://example.net/")
        entry = SimpleNamespace(lite=payload, full=None, domains=domains, fields=fields)
        server.feed.publish([("k", 1, entry)])
        assert a.recv_data() == payload
        assert b.recv_data() == domains
        assert wait_until(
            lambda: _metric(server.port, "certstream_filter_records_matched_total") == before + 1,
            10)
    finally:
        for ws in (a, b, c):
            ws.close()
    assert wait_until(lambda: _metric(server.port, "certstream_filtered_clients") == 0, 10)
