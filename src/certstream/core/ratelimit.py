"""Per-address request rate limiting: one token bucket per client IP, in a bounded LRU table.

certstream-server-rust chains three limiters (a 1000/60 s sliding window, a 100-token bucket at
10/s, a burst of 20 per 10 s), whose combined effect is hard to state and whose per-IP maps grow
without bound.  One token bucket says the same thing plainly: an address may make ``burst``
requests at once, then ``rate`` per second on average.

Each address holds ``tokens`` (a float) and the time they were counted.  A request first adds
``elapsed * rate`` tokens (at most ``burst``), then takes one if there is one; otherwise it is
refused, and the answer says how long until a whole token is back (``Retry-After``).

The table keeps at most ``max_keys`` addresses, least recently seen dropped first.  A dropped
address starts again with a full bucket, so the bound trades memory for a flood of distinct
addresses being able to reset each other; it cannot make the server admit more than ``burst``
from any address it still remembers.

Sans-IO: time is passed in (any monotonic clock, in seconds); nothing here reads a clock.
"""

from __future__ import annotations

import math
from collections import OrderedDict

__all__ = ["DEFAULT_MAX_KEYS", "RateLimiter", "retry_after_header"]

#: Addresses remembered at most: ~100 bytes each, so ~6.5 MB per worker when full.
DEFAULT_MAX_KEYS = 65536


class RateLimiter:
    """Token buckets by key (a client IP).  ``check`` is the only hot call."""

    __slots__ = ("_buckets", "burst", "max_keys", "rate")

    def __init__(self, rate: float, burst: int, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0, not {rate!r}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, not {burst!r}")
        if max_keys < 1:
            raise ValueError(f"max_keys must be >= 1, not {max_keys!r}")
        self.rate = float(rate)
        self.burst = int(burst)
        self.max_keys = max_keys
        # key -> [tokens, time they were counted]; a list so a hit updates in place.
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()

    def configure(self, rate: float, burst: int) -> None:
        """New limits (a config reload).  Remembered addresses keep their tokens, capped at
        the new burst, so a reload neither forgives nor punishes anyone."""
        if not rate > 0 or burst < 1:
            raise ValueError(f"rate must be > 0 and burst >= 1, not {rate!r}, {burst!r}")
        self.rate, self.burst = float(rate), int(burst)
        for bucket in self._buckets.values():
            bucket[0] = min(bucket[0], self.burst)

    def check(self, key: str, now: float) -> float:
        """Count one request from ``key`` at ``now``: 0.0 when it may proceed, else the
        seconds (> 0) until it would be allowed."""
        buckets = self._buckets
        bucket = buckets.get(key)
        if bucket is None:
            if len(buckets) >= self.max_keys:
                buckets.popitem(last=False)  # the least recently seen address
            buckets[key] = [self.burst - 1.0, now]
            return 0.0
        buckets.move_to_end(key)
        tokens, then = bucket
        if now > then:  # a clock that went backwards adds nothing (and takes nothing)
            tokens = min(float(self.burst), tokens + (now - then) * self.rate)
            bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / self.rate

    def __len__(self) -> int:
        return len(self._buckets)

    def __contains__(self, key: object) -> bool:
        return key in self._buckets


def retry_after_header(wait: float) -> bytes:
    """``Retry-After`` is whole seconds (RFC 9110 §10.2.3): round up, so a client that waits
    exactly that long finds a token, and never say 0 to a refused client."""
    return str(max(1, math.ceil(wait))).encode("ascii")
