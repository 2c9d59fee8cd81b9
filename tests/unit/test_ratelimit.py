"""The per-address token bucket: burst, refill, the LRU bound and the Retry-After value."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from certstream.core.ratelimit import RateLimiter, retry_after_header


def _admitted(limiter: RateLimiter, key: str, now: float, n: int) -> int:
    return sum(1 for _ in range(n) if limiter.check(key, now) == 0.0)


def test_burst_then_refused() -> None:
    limiter = RateLimiter(rate=10, burst=5)
    assert _admitted(limiter, "a", 100.0, 5) == 5
    wait = limiter.check("a", 100.0)
    assert wait == pytest.approx(0.1)  # one token at 10/s
    assert limiter.check("a", 100.0) > 0  # still refused: a refusal costs nothing, gains nothing


def test_refill_at_rate_and_capped_at_burst() -> None:
    limiter = RateLimiter(rate=2, burst=4)
    assert _admitted(limiter, "a", 0.0, 10) == 4
    # 1.5 s at 2/s: three tokens back, not more.
    assert _admitted(limiter, "a", 1.5, 10) == 3
    # A long idle spell refills to the burst, never beyond.
    assert _admitted(limiter, "a", 1000.0, 10) == 4


def test_addresses_are_independent() -> None:
    limiter = RateLimiter(rate=1, burst=2)
    assert _admitted(limiter, "a", 0.0, 5) == 2
    assert _admitted(limiter, "b", 0.0, 5) == 2
    assert limiter.check("a", 0.0) > 0


def test_retry_after_says_when_a_token_is_back() -> None:
    limiter = RateLimiter(rate=0.25, burst=1)  # one request per 4 s
    assert limiter.check("a", 10.0) == 0.0
    wait = limiter.check("a", 11.0)
    assert wait == pytest.approx(3.0)
    assert retry_after_header(wait) == b"3"
    assert limiter.check("a", 11.0 + wait - 0.01) > 0
    assert limiter.check("a", 11.0 + wait) == 0.0


def test_retry_after_header_rounds_up_and_is_never_zero() -> None:
    assert retry_after_header(0.001) == b"1"
    assert retry_after_header(1.0) == b"1"
    assert retry_after_header(1.2) == b"2"
    assert retry_after_header(59.9) == b"60"


def test_clock_going_back_adds_nothing() -> None:
    limiter = RateLimiter(rate=10, burst=1)
    assert limiter.check("a", 50.0) == 0.0
    assert limiter.check("a", 10.0) > 0  # earlier than the last request: no refill
    assert limiter.check("a", 50.1) == 0.0


def test_table_is_bounded_and_drops_the_least_recent() -> None:
    limiter = RateLimiter(rate=1, burst=1, max_keys=3)
    for key in ("a", "b", "c"):
        assert limiter.check(key, 0.0) == 0.0
    assert limiter.check("a", 0.0) > 0  # touch "a": now "b" is the least recent
    assert limiter.check("d", 0.0) == 0.0
    assert len(limiter) == 3
    assert "b" not in limiter
    assert "a" in limiter and "c" in limiter and "d" in limiter
    # "a" was kept, so it is still limited; "b" was forgotten and starts afresh.
    assert limiter.check("a", 0.0) > 0
    assert limiter.check("b", 0.0) == 0.0
    assert len(limiter) == 3


def test_configure_caps_tokens_and_changes_the_rate() -> None:
    limiter = RateLimiter(rate=1, burst=100)
    assert _admitted(limiter, "a", 0.0, 10) == 10  # 90 left
    limiter.configure(rate=5, burst=3)
    assert _admitted(limiter, "a", 0.0, 10) == 3  # capped at the new burst
    assert limiter.check("a", 0.0) == pytest.approx(0.2)  # the new rate


@pytest.mark.parametrize(("rate", "burst", "max_keys"), [(0, 1, 1), (-1, 1, 1), (1, 0, 1),
                                                          (1, 1, 0)])
def test_bad_limits_are_refused(rate: float, burst: int, max_keys: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        RateLimiter(rate, burst, max_keys)


@given(
    rate=st.floats(0.1, 100),
    burst=st.integers(1, 50),
    gaps=st.lists(st.floats(0, 2), min_size=1, max_size=200),
)
def test_never_admits_more_than_burst_plus_refill(rate: float, burst: int,
                                                   gaps: list[float]) -> None:
    limiter = RateLimiter(rate, burst)
    now, admitted = 0.0, 0
    for gap in gaps:
        now += gap
        admitted += limiter.check("a", now) == 0.0
    assert admitted <= burst + rate * now + 1e-6
