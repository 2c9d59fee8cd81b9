"""The one-shot endpoints' logic without a server: health rules, access checks, cert cache."""

from __future__ import annotations

import dataclasses
import json

import pytest
from tests.support import golden_payloads

from certstream.config import AuthSettings, ConnectionLimitSettings, RateLimitSettings, Settings
from certstream.core.ratelimit import RateLimiter
from certstream.core.routes import Route, RouteTable
from certstream.core.session import RequestReceived
from certstream.shell.endpoints import (
    Access,
    CertCache,
    ServerContext,
    access_for,
    answer,
    log_counts,
    refuse,
)
from certstream.shell.hub import Hub

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
    ],
)
def test_health_deep_rule(statuses: tuple[str, ...], code: int, status: str) -> None:
    hub = Hub(4)
    hub.set_state(_state(*statuses))
    got, body, ctype = answer(ServerContext(hub), _request("health_deep"))
    deep = json.loads(body)
    assert (got, deep["status"], ctype) == (code, status, b"application/json")
    assert deep["logs_total"] == len(statuses)


def test_log_counts_ignores_junk() -> None:
    assert log_counts({"logs": [{"status": "healthy"}, "junk", {"status": "odd"}, {}]}) == {
        "healthy": 1, "degraded": 0, "unhealthy": 0}
    assert log_counts(None) == {"healthy": 0, "degraded": 0, "unhealthy": 0}
    assert log_counts({"logs": None}) == {"healthy": 0, "degraded": 0, "unhealthy": 0}


def test_example_is_null_before_any_entry() -> None:
    assert answer(ServerContext(Hub(4)), _request("example"))[:2] == (200, b"null")


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


def test_ws_page_escapes_the_path() -> None:
    status, body, ctype = answer(ServerContext(Hub(4)), _request("ws_page", "/<x>?a"))
    assert status == 200 and ctype.startswith(b"text/html") and b"<x>" not in body


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
    ctx = ServerContext(Hub(4), RouteTable(api=True),
                        access=Access(tokens=(b"t",), max_connections=0))
    assert refuse(ctx, _request("health"), "1.2.3.4") is None
    assert refuse(ctx, _request("example"), "1.2.3.4") is None
    refused = refuse(ctx, _request("api_logs"), "1.2.3.4")
    assert refused is not None and refused[0] == 401
    stream = _request("", kind="ws", headers=((b"authorization", b"t"),))
    refused = refuse(ctx, stream, "1.2.3.4")
    assert refused is not None and refused[0] == 429  # max_connections=0: full


def test_rate_limit_refuses_with_retry_after_and_counts() -> None:
    limiter = RateLimiter(rate=0.5, burst=2)  # a token per 2 s
    ctx = ServerContext(Hub(4), access=Access(tokens=(b"t",), limiter=limiter))
    assert refuse(ctx, _request("health"), "1.2.3.4", now=100.0) is None
    assert refuse(ctx, _request("health"), "1.2.3.4", now=100.0) is None
    refused = refuse(ctx, _request("health"), "1.2.3.4", now=100.5)
    assert refused is not None
    status, body, ctype, headers = refused
    assert (status, json.loads(body), ctype) == (429, {"error": "Too Many Requests"},
                                                 b"application/json")
    assert dict(headers) == {b"Retry-After": b"2"}  # 1.5 s until a token, rounded up
    assert ctx.access.rate_limited == 1
    # Another address has its own bucket; the rate limit is checked before the token, so
    # a client guessing tokens is limited too.
    assert refuse(ctx, _request("health"), "5.6.7.8", now=100.5) is None
    guess = _request("", kind="ws", headers=((b"authorization", b"wrong"),))
    assert refuse(ctx, guess, "1.2.3.4", now=100.6) is not None
    assert ctx.access.rate_limited == 2
    refused = refuse(ctx, guess, "1.2.3.4", now=102.0)
    assert refused is not None and refused[0] == 401  # a token is back: now auth answers


def test_no_limiter_means_no_rate_limit() -> None:
    ctx = ServerContext(Hub(4))
    assert all(refuse(ctx, _request("health"), "1.2.3.4", now=0.0) is None for _ in range(500))
    assert ctx.access.rate_limited == 0


def test_access_rebuilt_on_reload_keeps_live_state() -> None:
    on = dataclasses.replace(Settings(), rate_limit=RateLimitSettings(True, 1.0, 3),
                             connection_limit=ConnectionLimitSettings(True, 10, 2))
    access = access_for(on)
    assert access.limiter is not None and access.max_connections == 10
    access.per_ip["1.2.3.4"] = 1
    assert access.limiter.check("1.2.3.4", 0.0) == 0.0
    access.rate_limited = 5
    tighter = dataclasses.replace(on, rate_limit=RateLimitSettings(True, 2.0, 1),
                                  auth=AuthSettings(True, ("tok",)))
    new = access_for(tighter, keep=access)
    assert new.limiter is access.limiter and (new.limiter.rate, new.limiter.burst) == (2.0, 1)
    assert new.per_ip is access.per_ip and new.rate_limited == 5
    assert new.tokens == (b"tok",)
    assert new.limiter.check("1.2.3.4", 0.0) == 0.0  # two tokens were left, capped at 1
    assert new.limiter.check("1.2.3.4", 0.0) > 0
    off = access_for(dataclasses.replace(tighter, rate_limit=RateLimitSettings()), keep=new)
    assert off.limiter is None and off.rate_limited == 5


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
