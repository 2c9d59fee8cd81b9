"""Who may connect: a worker's access rules (tokens, connection and rate limits, the
whitelist), built from the ``auth``, ``connection_limit``, ``rate_limit`` and ``whitelist``
settings, and where their counts live.

``certstream.shell.endpoints`` applies them to each request (``refuse``, ``rate_refusal``,
``reserve_place``); the counts are the whole server's when the workers share memory
(``shell.sharedlimits``).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Protocol

from certstream.config import Settings
from certstream.core.clientip import AllowList
from certstream.core.ratelimit import RateLimiter, RateRule
from certstream.shell.sharedlimits import LocalConnections, Place

__all__ = ["Access", "Connections", "Rates", "access_for", "rate_rule"]


class Connections(Protocol):
    """Where streaming connections are counted (``shell.sharedlimits``)."""

    def admit(self, ip: str, max_total: int | None, per_ip: int | None) -> Place | str: ...
    def release(self, place: Place) -> None: ...


class Rates(Protocol):
    """Where the rate-limit states live (``shell.sharedlimits``, ``core.ratelimit``)."""

    def check(self, ip: str, rule: RateRule, now: float) -> float: ...


@dataclass(slots=True)
class Access:
    """Who may connect (``auth.*``, ``connection_limit.*`` and ``rate_limit.*`` settings).

    Like certstream-server-rust, a token is read from one header (``Bearer `` optional) and
    guards the streams and the REST API; health, metrics and the examples stay public.  The
    limits are the whole server's: ``connections`` and ``rates`` are counted in the memory
    the workers share (``shell.sharedlimits``), and outlive a reload of these rules.
    """

    tokens: tuple[bytes, ...] = ()
    header: bytes = b"authorization"
    max_connections: int | None = None
    per_ip_limit: int | None = None
    #: The rate rule, when ``rate_limit`` is on.
    rate_rule: RateRule | None = None
    rates: Rates = field(default_factory=RateLimiter)
    connections: Connections = field(default_factory=LocalConnections)
    #: Requests refused by the rate limit; the worker copies it into the metrics.
    rate_limited: int = 0
    #: ``whitelist``: only these addresses get past 403 (empty: everyone).
    allow: AllowList = field(default_factory=AllowList)

    def token_ok(self, headers: tuple[tuple[bytes, bytes], ...]) -> bool:
        if not self.tokens:
            return True
        for name, value in headers:
            if name.lower() == self.header:
                given = value.strip()
                if given[:7].lower() == b"bearer ":
                    given = given[7:].strip()
                # Compare with every token in constant time: no early exit on a match.
                ok = False
                for token in self.tokens:
                    ok |= hmac.compare_digest(given, token)
                return ok
        return False


def rate_rule(settings: Settings) -> RateRule | None:
    """The rate rule of ``settings``, or None when ``rate_limit`` is off."""
    rate = settings.rate_limit
    if not rate.enabled:
        return None
    return RateRule(
        max_tokens=rate.max_tokens, refill_rate=rate.refill_rate, burst=rate.burst,
        burst_window_secs=float(rate.burst_window_seconds),
        window_secs=float(rate.window_seconds), window_max=rate.window_max_requests,
    )


def access_for(settings: Settings, keep: Access | None = None, *,
               connections: Connections | None = None, rates: Rates | None = None,
               split: int = 1) -> Access:
    """The access rules of ``settings``.  ``keep``: the rules they replace (a hot reload),
    whose counts carry over: the connections, the rate states, the refusal count.
    ``connections`` and ``rates``: where to count (default: this process alone).  ``split``:
    how many processes share ``max_connections`` when they cannot count together (each gets
    its share, rounded up)."""
    auth, limit = settings.auth, settings.connection_limit
    max_connections = per_ip = None
    if limit.enabled:
        max_connections = -(-limit.max_connections // max(1, split))
        per_ip = limit.per_ip_limit
    return Access(
        tokens=tuple(t.encode() for t in auth.tokens) if auth.enabled else (),
        header=auth.header_name.lower().encode("latin-1"),
        max_connections=max_connections,
        per_ip_limit=per_ip,
        rate_rule=rate_rule(settings),
        rates=keep.rates if keep is not None else (rates or RateLimiter()),
        connections=(keep.connections if keep is not None
                     else (connections or LocalConnections())),
        rate_limited=keep.rate_limited if keep is not None else 0,
        # A listener's whitelist is read at start (hot reload lists it as needing a restart).
        allow=keep.allow if keep is not None else AllowList(settings.whitelist),
    )
