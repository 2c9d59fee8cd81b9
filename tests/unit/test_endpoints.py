"""The one-shot endpoints' logic without a server: health rules, access checks, cert cache."""

from __future__ import annotations

import dataclasses
import json

import pytest
from tests.support import golden_payloads

from certstream.config import AuthSettings, ConnectionLimitSettings, RateLimitSettings, Settings
from certstream.core.ratelimit import RateRule
from certstream.core.routes import Route, RouteTable
from certstream.core.session import RequestReceived
from certstream.shell.access import Access, access_for
from certstream.shell.certcache import CertCache
from certstream.shell.endpoints import (
    ServerContext,
    admit_stream,
    answer,
    log_counts,
    refuse,
    reserve_place,
)
from certstream.shell.hub import Hub
from certstream.shell.sharedlimits import LocalConnections, Place

LITE = golden_payloads("lite")


def _request(name: str, target: str = "/", kind: str = "http",
             headers: tuple[tuple[bytes, bytes], ...] = ()) -> RequestReceived:
    return RequestReceived(Route(kind, 0, name), "GET", target, headers)


def _state(*statuses: str) -> dict[str, object]:
    return {"logs": [{"name": str(i), "status": s} for i, s in enumerate(statuses)]}


@pytest.mark.parametrize(
    ("statuses", "code", "status"),
    [
        ((), 200, "healthy"),
        (("healthy", "healthy"), 200, "healthy"),
        (("healthy", "degraded"), 200, "degraded"),
        (("healthy", "unhealthy"), 200, "degraded"),  # exactly half: not more than half
        (("unhealthy", "unhealthy", "healthy"), 503, "unhealthy"),
        # A log not reached yet is not known to be healthy.
        (("healthy", "starting"), 200, "starting"),
        (("starting", "degraded"), 200, "degraded"),
        (("unhealthy", "unhealthy", "starting"), 503, "unhealthy"),
    ],
)
def test_health_deep_rule(statuses: tuple[str, ...], code: int, status: str) -> None:
    hub = Hub(4)
    hub.set_state(_state(*statuses))
    got, body, ctype = answer(ServerContext(hub), _request("health_deep"))
    deep = json.loads(body)
    assert (got, deep["status"], ctype) == (code, status, b"application/json")
    assert deep["logs_total"] == len(statuses)
    assert [(log["name"], log["status"]) for log in deep["logs"]] == [
        (str(i), s) for i, s in enumerate(statuses)]
    assert deep["logs_starting"] == statuses.count("starting")


def test_health_deep_before_the_first_state_is_starting() -> None:
    got, body, _ = answer(ServerContext(Hub(4)), _request("health_deep"))
    assert (got, json.loads(body)["status"]) == (200, "starting")


def test_log_counts_ignores_junk() -> None:
    none = {"healthy": 0, "degraded": 0, "unhealthy": 0, "starting": 0}
    assert log_counts({"logs": [{"status": "healthy"}, "junk", {"status": "odd"}, {}]}) == {
        **none, "healthy": 1}
    assert log_counts(None) == none
    assert log_counts({"logs": None}) == none


def test_example_before_any_entry_is_503_with_a_reason() -> None:
    ctx = ServerContext(Hub(4), lite_example=lambda: None)
    for request in (_request("example"),
                    RequestReceived(Route("http", 2, "example"), "GET", "/full-stream/example.json",
                                    ())):
        status, body, ctype = answer(ctx, request)
        assert (status, ctype) == (503, b"application/json")
        reason = json.loads(body)
        assert reason["error"] == "Service Unavailable" and "no certificate" in reason["reason"]


def test_lite_example_comes_from_the_worker_hook_other_streams_from_the_hub() -> None:
    hub = Hub(4)
    hub.publish(1 | 2, LITE[0], b'{"full":0}', None)
    asked: list[int] = []

    def lite_example() -> bytes:
        asked.append(1)
        return LITE[3]

    ctx = ServerContext(hub, lite_example=lite_example)
    assert answer(ctx, _request("example"))[1] == LITE[3]
    full = RequestReceived(Route("http", 2, "example"), "GET", "/full-stream/example.json", ())
    assert answer(ctx, full)[1] == b'{"full":0}'
    assert asked == [1]


def test_a_plain_get_on_a_stream_path_is_the_live_page_with_its_favicon() -> None:
    ctx = ServerContext(Hub(4), page=b"<!DOCTYPE html>page", favicon=b"<svg/>")
    assert answer(ctx, _request("ws_page", "/full-stream?x")) == (
        200, b"<!DOCTYPE html>page", b"text/html; charset=utf-8")
    assert answer(ctx, _request("favicon", "/favicon.ico")) == (200, b"<svg/>", b"image/svg+xml")


@pytest.mark.parametrize(("accept", "page"), [
    (b"text/html,application/xhtml+xml,*/*;q=0.8", True),  # a browser navigating
    (b"text/event-stream", False),  # EventSource
    (b"*/*", False),  # curl
    (None, False),
])
def test_a_browser_on_an_sse_path_gets_the_page_a_stream_client_its_stream(
    accept: bytes | None, page: bool
) -> None:
    ctx = ServerContext(Hub(4), page=b"page")
    headers = ((b"accept", accept),) if accept is not None else ()
    refused, spec = admit_stream(ctx, _request("", "/sse", kind="sse", headers=headers))
    assert spec is None
    assert refused == ((200, b"page", b"text/html; charset=utf-8", ()) if page else None)
    # A WebSocket upgrade is never a page, whatever it accepts.
    assert admit_stream(ctx, _request("", "/", kind="ws", headers=headers)) == (None, None)


def test_a_stream_request_gets_its_filter_or_a_400_with_the_reason() -> None:
    ctx = ServerContext(Hub(4), max_filter_patterns=2)
    refused, spec = admit_stream(
        ctx, _request("", "/sse?stream=full&domain=*.Example.com&log=argon", kind="sse"))
    assert refused is None and spec is not None
    assert (spec.domains, spec.logs) == (("*.example.com",), ("argon",))
    assert admit_stream(ctx, _request("", "/full-stream?x=1", kind="ws")) == (None, None)
    for target, param in (("/?domain_re=(unclosed", "domain_re"),
                          ("/?domain=a&domain=b&issuer=c", "issuer"),  # over max_patterns
                          ("/?domain=" + "a" * 254, "domain")):
        refused, spec = admit_stream(ctx, _request("", target, kind="ws"))
        assert refused is not None and spec is None
        status, body, ctype, _headers = refused
        assert (status, ctype) == (400, b"application/json")
        reason = json.loads(body)
        assert reason["error"] == "bad filter" and reason["param"] == param and reason["reason"]


def test_an_unknown_sse_stream_is_a_400_naming_the_allowed_values() -> None:
    ctx = ServerContext(Hub(4))
    route = ctx.routes.resolve(b"/sse?stream=bogus", upgrade=False)
    assert route is not None
    status, body, ctype = answer(ctx, RequestReceived(route, "GET", "/sse?stream=bogus", ()))
    assert (status, ctype) == (400, b"application/json")
    reason = json.loads(body)["reason"]
    for value in ("lite", "full", "domains", "domains-only", "dns"):
        assert value in reason


@pytest.mark.parametrize(
    ("value", "ok"),
    [(b"Bearer s3cret", True), (b"bearer s3cret", True), (b"s3cret", True), (b"other", True),
     (b"Bearer s3cre", False), (b"", False), (b"Bearer", False)],
)
def test_token_header(value: bytes, ok: bool) -> None:
    access = Access(tokens=(b"s3cret", b"other"), header=b"x-token")
    assert access.token_ok(((b"x-token", value),)) is ok
    assert not access.token_ok(((b"authorization", b"Bearer s3cret"),))  # another header
    assert Access().token_ok(())  # no tokens configured: open


def test_refuse_guards_streams_and_api_only() -> None:
    ctx = ServerContext(Hub(4), RouteTable(api=True), access=Access(tokens=(b"t",)))
    assert refuse(ctx, _request("health"), "1.2.3.4") is None
    assert refuse(ctx, _request("example"), "1.2.3.4") is None
    refused = refuse(ctx, _request("api_logs"), "1.2.3.4")
    assert refused is not None and refused[0] == 401
    stream = _request("", kind="ws", headers=((b"authorization", b"t"),))
    assert refuse(ctx, stream, "1.2.3.4") is None


def test_reserve_place_reserves_until_released() -> None:
    ctx = ServerContext(Hub(4), access=Access(max_connections=3, per_ip_limit=2))
    first, second = reserve_place(ctx, "1.2.3.4"), reserve_place(ctx, "1.2.3.4")
    assert isinstance(first, Place) and isinstance(second, Place)
    refused = reserve_place(ctx, "1.2.3.4")  # a third from this address
    assert not isinstance(refused, Place) and refused[:2] == (
        429, b'{"error":"Too Many Connections"}')
    assert isinstance(reserve_place(ctx, "::1"), Place)
    assert not isinstance(reserve_place(ctx, "5.6.7.8"), Place)  # 3 in all
    ctx.access.connections.release(first)
    assert isinstance(reserve_place(ctx, "1.2.3.4"), Place)  # its place came back
    # IPv4 and its IPv6-mapped form are one address.
    local = LocalConnections()
    assert isinstance(local.admit("10.0.0.1", None, 1), Place)
    assert local.admit("::ffff:10.0.0.1", None, 1) == "per_ip_limit"


def test_rate_limit_refuses_with_retry_after_and_counts() -> None:
    rule = RateRule(max_tokens=2, refill_rate=0.5, burst=0)  # then a token per 2 s
    ctx = ServerContext(Hub(4), access=Access(tokens=(b"t",), rate_rule=rule))
    assert refuse(ctx, _request("health"), "1.2.3.4", now=100.0) is None
    assert refuse(ctx, _request("health"), "1.2.3.4", now=100.0) is None
    refused = refuse(ctx, _request("health"), "1.2.3.4", now=100.5)
    assert refused is not None
    status, body, ctype, headers = refused
    assert (status, json.loads(body), ctype) == (429, {"error": "Too Many Requests"},
                                                 b"application/json")
    assert dict(headers) == {b"Retry-After": b"2"}  # 1.75 s until a token, rounded up
    assert ctx.access.rate_limited == 1
    # Another address has its own bucket; the rate limit is checked before the token, so
    # a client guessing tokens is limited too.
    assert refuse(ctx, _request("health"), "5.6.7.8", now=100.5) is None
    guess = _request("", kind="ws", headers=((b"authorization", b"wrong"),))
    assert refuse(ctx, guess, "1.2.3.4", now=100.6) is not None
    assert ctx.access.rate_limited == 2
    refused = refuse(ctx, guess, "1.2.3.4", now=102.5)
    assert refused is not None and refused[0] == 401  # a token is back: now auth answers


def test_no_rule_means_no_rate_limit() -> None:
    ctx = ServerContext(Hub(4))
    assert all(refuse(ctx, _request("health"), "1.2.3.4", now=0.0) is None for _ in range(500))
    assert ctx.access.rate_limited == 0


def test_access_rebuilt_on_reload_keeps_live_state() -> None:
    on = dataclasses.replace(
        Settings(), rate_limit=RateLimitSettings(True, max_tokens=3, refill_rate=1.0, burst=0),
        connection_limit=ConnectionLimitSettings(True, 10, 2), workers=4)
    access = access_for(on)
    assert access.rate_rule is not None and access.rate_rule.max_tokens == 3
    assert (access.max_connections, access.per_ip_limit) == (10, 2)
    assert access_for(on, split=4).max_connections == 3  # ceil(10 / 4) each, counted apart
    place = access.connections.admit("1.2.3.4", None, None)
    assert isinstance(place, Place)
    assert access.rates.check("1.2.3.4", access.rate_rule, 0.0) == 0.0
    access.rate_limited = 5
    tighter = dataclasses.replace(
        on, rate_limit=RateLimitSettings(True, max_tokens=1, refill_rate=2.0, burst=0),
        auth=AuthSettings(True, ("tok",)))
    new = access_for(tighter, keep=access)
    assert new.rates is access.rates and new.connections is access.connections
    assert new.rate_rule is not None and (new.rate_rule.max_tokens, new.rate_rule.refill_rate) \
        == (1, 2.0)
    assert new.rate_limited == 5
    assert new.tokens == (b"tok",)
    assert new.rates.check("1.2.3.4", new.rate_rule, 0.0) == 0.0  # two were left, capped at 1
    assert new.rates.check("1.2.3.4", new.rate_rule, 0.0) > 0
    assert isinstance(new.connections, LocalConnections) and new.connections.total == 1
    off = access_for(dataclasses.replace(tighter, rate_limit=RateLimitSettings()), keep=new)
    assert off.rate_rule is None and off.rate_limited == 5


def test_cert_cache_finds_by_either_hash_and_forgets_the_oldest() -> None:
    cache = CertCache(3)
    for payload in LITE[:5]:
        cache.add(payload)
    newest = json.loads(LITE[4])["data"]["leaf_cert"]
    assert cache.get(newest["sha256"]) == LITE[4]
    assert cache.get(newest["sha256"].replace(":", "").lower()) == LITE[4]
    assert cache.get(newest["sha1"]) == LITE[4]
    oldest = json.loads(LITE[0])["data"]["leaf_cert"]
    assert cache.get(oldest["sha256"]) is None  # only the last 3 are kept
    assert cache.get("nonsense") is None
    assert len(cache) == 6  # sha256 and sha1 (= fingerprint) for each of 3


def test_cert_cache_is_bounded_in_bytes_too() -> None:
    # Room for about two messages, whatever the capacity in entries says.
    budget = 2 * max(len(p) for p in LITE[:5]) + 1000
    cache = CertCache(1000, max_bytes=budget)
    for payload in LITE[:5]:
        cache.add(payload)
    kept = [p for p in LITE[:5]
            if cache.get(json.loads(p)["data"]["leaf_cert"]["sha256"]) == p]
    assert kept == LITE[3:5]  # the newest that fit
    assert cache.get(json.loads(LITE[2])["data"]["leaf_cert"]["sha1"]) is None
    assert len(cache) == 4  # the hashes of an evicted message go with it


def test_api_cert_endpoint() -> None:
    certs = CertCache(10)
    certs.add(LITE[1])
    ctx = ServerContext(Hub(4), RouteTable(api=True), certs=certs)
    sha = json.loads(LITE[1])["data"]["leaf_cert"]["sha256"]
    assert answer(ctx, _request("api_cert", f"/api/cert/{sha}"))[:2] == (200, LITE[1])
    assert answer(ctx, _request("api_cert", "/api/cert/00"))[0] == 404
