"""Sans-IO retry pacing: exponential backoff with jitter, and token buckets for politeness.

Neither reads a clock: the caller passes ``now`` (seconds, any monotonic origin) and gets
back how long to wait.  Randomness comes from an injected ``random.Random`` so tests can
pin it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

__all__ = ["MAX_RETRY_AFTER", "Backoff", "OperatorBudgets", "TokenBucket"]

#: A Retry-After longer than this is clamped: a log asking for an hour is more likely
#: misconfigured than serious, and we would rather ask again politely in ten minutes.
MAX_RETRY_AFTER = 600.0


class Backoff:
    """Exponential backoff with "equal jitter" for the failures of one log.

    After the k-th consecutive failure the delay is drawn uniformly from
    ``[d/2, d]`` with ``d = min(max_delay, initial * 2**(k-1))``: never hot (at least half
    the nominal delay), yet spread so that many logs failing together do not retry in
    lockstep.  A server's Retry-After wins when it is longer.
    """

    def __init__(
        self, initial: float, maximum: float, rng: random.Random | None = None
    ) -> None:
        self.initial = max(initial, 0.001)
        self.maximum = max(maximum, self.initial)
        self.failures = 0
        self._rng = rng or random.Random()

    def nominal(self) -> float:
        """The un-jittered delay for the current failure count (0 when none)."""
        if self.failures == 0:
            return 0.0
        # Cap the exponent so that a log failing for days does not overflow a float.
        return min(self.maximum, self.initial * 2.0 ** min(self.failures - 1, 60))

    def failure(self, retry_after: float | None = None) -> float:
        """Record a failure; return the delay before the next attempt."""
        self.failures += 1
        d = self.nominal()
        delay = self._rng.uniform(d / 2.0, d)
        if retry_after is not None and retry_after > 0:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
        return delay

    def success(self) -> None:
        self.failures = 0


class TokenBucket:
    """One request every ``interval`` seconds on average, with bursts of ``burst``.

    Shared by all logs of one operator so that an operator with many shards sees the
    same load as one with a single log.  ``reserve(now)`` takes a token and returns how
    long the caller must wait before using it; reservations queue up fairly in call order.
    """

    def __init__(self, interval: float, burst: int = 4) -> None:
        self.interval = max(interval, 0.0)
        self.burst = max(burst, 1)
        # The time at which the bucket will next be "full minus nothing": tokens are
        # modelled as a theoretical arrival time (GCRA), which needs no refill loop.
        self._tat: float | None = None

    def reserve(self, now: float) -> float:
        if self.interval == 0.0:
            return 0.0
        tat = now if self._tat is None else max(self._tat, now)
        # Allowed when tat - now <= (burst - 1) * interval.
        wait = max(0.0, tat - now - (self.burst - 1) * self.interval)
        self._tat = tat + self.interval
        return wait


class OperatorBudgets:
    """The politeness budget: one ``TokenBucket`` per operator (or host), made on first use.

    ``per_operator`` overrides the interval of named operators; every other name gets
    ``default_interval``.
    """

    def __init__(
        self, default_interval: float, per_operator: Mapping[str, float], burst: int = 4
    ) -> None:
        self.default_interval = default_interval
        self.per_operator = dict(per_operator)
        self.burst = burst
        self._buckets: dict[str, TokenBucket] = {}

    def reserve(self, name: str, now: float) -> float:
        """Take a token of ``name``'s bucket; how long to wait before using it."""
        bucket = self._buckets.get(name)
        if bucket is None:
            interval = self.per_operator.get(name, self.default_interval)
            bucket = self._buckets[name] = TokenBucket(interval, burst=self.burst)
        return bucket.reserve(now)
