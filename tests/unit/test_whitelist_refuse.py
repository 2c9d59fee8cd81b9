"""``whitelist``: an address off the list gets 403 before anything else looks at it (the
rate limiter keeps no bucket for it), on every endpoint."""

from __future__ import annotations

from certstream.core.clientip import AllowList
from certstream.core.ratelimit import RateRule
from certstream.core.routes import Route
from certstream.core.session import RequestReceived
from certstream.shell.access import Access
from certstream.shell.endpoints import ServerContext, refuse
from certstream.shell.hub import Hub


def test_an_address_off_the_whitelist_gets_403_first() -> None:
    rule = RateRule(max_tokens=1, refill_rate=1.0, burst=0)
    ctx = ServerContext(Hub(4), access=Access(allow=AllowList(["127.0.0.1/8"]),
                                              rate_rule=rule, tokens=(b"t",)))
    for route in (Route("ws", 1), Route("http", 0, "metrics"), Route("http", 0, "health")):
        request = RequestReceived(route, "GET", "/", ())
        status, body, _ctype, _headers = refuse(ctx, request, "192.0.2.1", now=0.0) or (0, b"",
                                                                                      b"", ())
        assert (status, body) == (403, b'{"error":"Forbidden"}')
    assert ctx.access.rate_limited == 0
    # a listed address goes on to the next rules (here: the token)
    request = RequestReceived(Route("ws", 1), "GET", "/", ())
    assert refuse(ctx, request, "127.0.0.1", now=0.0)[0] == 401  # type: ignore[index]
