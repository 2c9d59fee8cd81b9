"""The spec's per-address rate rule (sliding window, token bucket, burst), its state as plain
floats, the bounded in-process table and the Retry-After value."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from certstream.core.ratelimit import (
    WINDOW_SLOTS,
    RateLimiter,
    RateRule,
    check,
    fresh_state,
    is_idle,
    retry_after_header,
)

#: Only the bucket: no burst allowance, a window too wide to matter.
BUCKET = RateRule(max_tokens=5, refill_rate=10, burst=0, window_max=10**9)


def _admitted(limiter: RateLimiter, key: str, rule: RateRule, now: float, n: int) -> int:
    return sum(1 for _ in range(n) if limiter.check(key, rule, now) == 0.0)


def test_the_defaults_are_the_specs() -> None:
    rule = RateRule()
    assert (rule.max_tokens, rule.refill_rate, rule.burst, rule.burst_window_secs,
            rule.window_secs, rule.window_max) == (100, 10, 20, 10, 60, 1000)


def test_bucket_then_refused_with_the_time_to_a_token() -> None:
    limiter = RateLimiter()
    assert _admitted(limiter, "a", BUCKET, 100.0, 5) == 5
    assert limiter.check("a", BUCKET, 100.0) == pytest.approx(0.1)  # one token at 10/s
    assert limiter.check("a", BUCKET, 100.1) == 0.0


def test_refill_at_rate_and_capped_at_max_tokens() -> None:
    rule = RateRule(max_tokens=4, refill_rate=2, burst=0)
    limiter = RateLimiter()
    assert _admitted(limiter, "a", rule, 0.0, 10) == 4
    assert _admitted(limiter, "a", rule, 1.5, 10) == 3  # 1.5 s at 2/s
    assert _admitted(limiter, "a", rule, 1000.0, 10) == 4  # a long pause: full, not more


def test_burst_comes_after_the_bucket_and_restarts_per_burst_window() -> None:
    rule = RateRule(max_tokens=3, refill_rate=0.001, burst=2, burst_window_secs=10)
    limiter = RateLimiter()
    assert _admitted(limiter, "a", rule, 0.0, 10) == 5  # 3 tokens + 2 burst
    wait = limiter.check("a", rule, 1.0)
    assert wait == pytest.approx(9.0)  # the burst window started at 0 ends at 10
    assert _admitted(limiter, "a", rule, 10.0, 10) == 2  # a new burst window, no token yet


def test_sliding_window_caps_any_window_and_counts_bucket_refusals() -> None:
    rule = RateRule(max_tokens=100, refill_rate=100, burst=0, window_secs=60, window_max=10)
    limiter = RateLimiter()
    assert _admitted(limiter, "a", rule, 0.0, 30) == 10
    wait = limiter.check("a", rule, 30.0)
    # Everything was counted in the sub-window of t=0, which leaves the window at 64 s at
    # the latest (one sub-window of 4 s late: the window never admits more than allowed).
    assert 30.0 <= wait <= 34.0
    assert limiter.check("a", rule, 30.0 + wait) == 0.0
    # The bucket's refusals use up the window too, as the spec counts them.
    tight = RateRule(max_tokens=1, refill_rate=0.001, burst=0, window_secs=60, window_max=3)
    state = fresh_state(tight, 0.0)
    assert [check(tight, state, 0.0) == 0.0 for _ in range(4)] == [True, False, False, False]
    # At 59 s the window still holds those 3, so it answers first: they leave with their
    # sub-window, at 64 s.
    assert check(tight, state, 59.0) == pytest.approx(5.0)


def test_retry_after_header_rounds_up_and_is_never_zero() -> None:
    assert retry_after_header(0.001) == b"1"
    assert retry_after_header(1.0) == b"1"
    assert retry_after_header(1.2) == b"2"
    assert retry_after_header(59.9) == b"60"


def test_clock_going_back_adds_nothing() -> None:
    rule = RateRule(max_tokens=1, refill_rate=10, burst=0)
    limiter = RateLimiter()
    assert limiter.check("a", rule, 50.0) == 0.0
    assert limiter.check("a", rule, 10.0) > 0  # earlier than the last request: no refill
    assert limiter.check("a", rule, 50.1) == 0.0


def test_table_is_bounded_and_drops_the_least_recent() -> None:
    rule = RateRule(max_tokens=1, refill_rate=1, burst=0)
    limiter = RateLimiter(max_keys=3)
    for key in ("a", "b", "c"):
        assert limiter.check(key, rule, 0.0) == 0.0
    assert limiter.check("a", rule, 0.0) > 0  # touch "a": now "b" is the least recent
    assert limiter.check("d", rule, 0.0) == 0.0
    assert len(limiter) == 3
    assert "b" not in limiter
    assert "a" in limiter and "c" in limiter and "d" in limiter
    assert limiter.check("a", rule, 0.0) > 0  # kept, so still limited
    assert limiter.check("b", rule, 0.0) == 0.0  # forgotten: starts afresh


def test_a_new_rule_keeps_the_state_capped_at_its_size() -> None:
    limiter = RateLimiter()
    big = RateRule(max_tokens=100, refill_rate=1, burst=0)
    assert _admitted(limiter, "a", big, 0.0, 10) == 10  # 90 left
    small = RateRule(max_tokens=3, refill_rate=5, burst=0)
    assert _admitted(limiter, "a", small, 0.0, 10) == 3  # capped at the new size
    assert limiter.check("a", small, 0.0) == pytest.approx(0.2)  # the new rate


@pytest.mark.parametrize("kwargs", [{"max_tokens": 0.5}, {"refill_rate": 0}, {"burst": -1},
                                    {"window_secs": 0}, {"window_max": 0},
                                    {"burst_window_secs": 0}])
def test_bad_rules_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="rate rule"):
        RateRule(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_keys"):
        RateLimiter(0)


def test_idle_means_as_good_as_new() -> None:
    rule = RateRule(max_tokens=2, refill_rate=1, burst=1, burst_window_secs=5,
                    window_secs=15, window_max=100)
    state = fresh_state(rule, 0.0)
    assert is_idle(rule, state, 0.0)
    for _ in range(3):
        assert check(rule, state, 0.0) == 0.0  # 2 tokens and the burst
    assert not is_idle(rule, state, 2.0)  # tokens back, but the burst window still runs
    assert not is_idle(rule, state, 6.0)  # the window still counts the 3 requests
    assert is_idle(rule, state, 0.0 + 15 + rule.slot_secs)
    before = list(state)
    is_idle(rule, state, 100.0)
    assert state == before  # reads only


@given(
    max_tokens=st.integers(1, 30),
    rate=st.floats(0.1, 50),
    burst=st.integers(0, 10),
    window_max=st.integers(1, 60),
    gaps=st.lists(st.floats(0, 2), min_size=1, max_size=300),
)
def test_never_admits_more_than_the_rule_allows(max_tokens: int, rate: float, burst: int,
                                                window_max: int, gaps: list[float]) -> None:
    rule = RateRule(max_tokens=max_tokens, refill_rate=rate, burst=burst,
                    burst_window_secs=10, window_secs=30, window_max=window_max)
    state = fresh_state(rule, 0.0)
    now, admitted_at = 0.0, []
    for gap in gaps:
        now += gap
        if check(rule, state, now) == 0.0:
            admitted_at.append(now)
    # The bucket and burst: at most this many in total.
    bursts = 1 + int(now // 10) + 1
    assert len(admitted_at) <= max_tokens + rate * now + burst * bursts + 1e-6
    # The window: never more than window_max within any 30 s.
    for i, t in enumerate(admitted_at):
        inside = [u for u in admitted_at[i:] if u < t + 30]
        assert len(inside) <= window_max
    assert WINDOW_SLOTS > 2
