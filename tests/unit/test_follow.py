"""Sans-IO follower planning: windows, ordering, short/empty batches, failures, pacing."""

from __future__ import annotations

import random
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certstream.core.backoff import Backoff, TokenBucket
from certstream.core.follow import TileRequest, Window, WindowPlanner, plan_tiles
from certstream.core.health import DEGRADED, HEALTHY, STARTING, UNHEALTHY, HealthTracker
from certstream.errors import LocalProtocolError

T = TypeVar("T")


def drain_windows(p: WindowPlanner[T]) -> list[Window]:
    out = []
    while (w := p.next_window()) is not None:
        out.append(w)
    return out


def test_windows_never_past_sth_and_inclusive() -> None:
    p: WindowPlanner[object] = WindowPlanner(10, batch_size=4, concurrency=8, tree_size=19)
    ws = drain_windows(p)
    assert ws == [Window(10, 13), Window(14, 17), Window(18, 18)]
    assert all(w.end <= 18 for w in ws)
    # Nothing more to plan until the tree grows.
    assert p.next_window() is None


def test_no_window_before_any_sth() -> None:
    p: WindowPlanner[object] = WindowPlanner(0, batch_size=4, concurrency=2)
    assert p.next_window() is None
    assert p.caught_up


def test_concurrency_bounds_windows_in_flight_and_unreleased() -> None:
    p: WindowPlanner[str] = WindowPlanner(0, batch_size=10, concurrency=3, tree_size=1000)
    ws = drain_windows(p)
    assert len(ws) == 3
    # Later windows complete; the first is still out: they wait and nothing new is planned.
    p.complete(ws[2], 10, "c")
    p.complete(ws[1], 10, "b")
    assert p.ready() == []
    assert p.next_window() is None
    p.complete(ws[0], 10, "a")
    assert p.ready() == [(0, "a"), (10, "b"), (20, "c")]
    assert p.next_index == 30
    assert len(drain_windows(p)) == 3


def test_short_batch_requeues_rest_first_and_adapts_batch() -> None:
    p: WindowPlanner[str] = WindowPlanner(0, batch_size=100, concurrency=2, tree_size=1000)
    w1, w2 = drain_windows(p)
    p.complete(w1, 32, "a")
    assert p.ready() == [(0, "a")]
    assert p.next_index == 32
    # The rest of the short window comes back before anything new.
    nxt = p.next_window()
    assert nxt == Window(32, 99)
    assert p.window_size == 32 and p.batch_size == 100
    p.complete(w2, 32, "c")
    p.complete(nxt, 32, "b")
    assert p.ready() == [(32, "b")]
    # 64..99 still missing, and 100..131 waits behind it
    assert p.next_index == 64
    w = p.next_window()
    assert w == Window(64, 99)
    p.complete(w, 36, "b2")
    assert [s for s, _ in p.ready()] == [64, 100]
    assert p.next_index == 132


def test_empty_batch_and_failure_retry_same_window_never_skip() -> None:
    p: WindowPlanner[str] = WindowPlanner(5, batch_size=10, concurrency=1, tree_size=100)
    w = p.next_window()
    assert w == Window(5, 14)
    p.complete(w, 0, "")
    assert p.ready() == []
    assert p.next_window() == w
    # A 400 (or any failure) is retried as is: never a jump to the head.
    p.fail(w)
    assert p.next_index == 5
    assert p.next_window() == w


def test_tree_size_never_shrinks() -> None:
    p: WindowPlanner[object] = WindowPlanner(0, batch_size=10, tree_size=50)
    assert not p.set_tree_size(40)
    assert p.tree_size == 50
    assert p.set_tree_size(60)


def test_readonly_stops_at_final_size() -> None:
    p: WindowPlanner[str] = WindowPlanner(0, batch_size=8, concurrency=4, tree_size=100, stop_at=10)
    ws = drain_windows(p)
    assert ws == [Window(0, 7), Window(8, 9)]
    for w in ws:
        p.complete(w, w.size, "x")
    p.ready()
    assert p.finished and p.caught_up


def test_misuse_is_local_error() -> None:
    p: WindowPlanner[str] = WindowPlanner(0, batch_size=8, tree_size=100)
    with pytest.raises(LocalProtocolError):
        p.complete(Window(0, 7), 8, "x")
    w = p.next_window()
    assert w is not None
    with pytest.raises(LocalProtocolError):
        p.complete(w, 9, "x")
    with pytest.raises(LocalProtocolError):
        WindowPlanner(-1, batch_size=8)


@settings(max_examples=200, deadline=None)
@given(
    start=st.integers(0, 50),
    batch=st.integers(1, 40),
    conc=st.integers(1, 5),
    cap=st.integers(1, 40),
    growth=st.lists(st.integers(0, 60), min_size=1, max_size=6),
    seed=st.integers(0, 2**32),
)
def test_every_index_released_once_in_order(  # noqa: PLR0917 (hypothesis arguments)
    start: int, batch: int, conc: int, cap: int, growth: list[int], seed: int
) -> None:
    """A random simulated log (caps, empties, failures, growth): nothing lost or repeated."""
    rng = random.Random(seed)
    p: WindowPlanner[list[int]] = WindowPlanner(start, batch, conc, tree_size=start)
    released: list[int] = []
    size = start
    inflight: list[Window] = []
    for g in growth:
        size += g
        p.set_tree_size(size)
        for _ in range(2000):
            while (w := p.next_window()) is not None:
                assert start <= w.start <= w.end < size
                inflight.append(w)
            if not inflight:
                break
            w = inflight.pop(rng.randrange(len(inflight)))
            r = rng.random()
            if r < 0.15:
                p.fail(w)
            elif r < 0.25:
                p.complete(w, 0, [])
            else:
                n = min(w.size, cap, rng.randint(1, w.size))
                p.complete(w, n, list(range(w.start, w.start + n)))
            for s, items in p.ready():
                assert items[0] == s
                released.extend(items)
        assert not inflight
        assert p.caught_up
    assert released == list(range(start, size))


def test_plan_tiles_full_partial_and_skip() -> None:
    assert plan_tiles(0, 0) == []
    assert plan_tiles(778, 778) == []
    assert plan_tiles(0, 778) == [
        TileRequest(0, 256), TileRequest(1, 256), TileRequest(2, 256), TileRequest(3, 10),
    ]
    got = plan_tiles(770, 1024)
    assert got == [TileRequest(3, 256, skip=2)]
    assert got[0].first_index == 768 and not got[0].partial
    assert plan_tiles(256, 300) == [TileRequest(1, 44)]
    assert plan_tiles(0, 1000, stop_at=256) == [TileRequest(0, 256)]


@given(a=st.integers(0, 5000), b=st.integers(0, 5000))
def test_plan_tiles_covers_exactly(a: int, b: int) -> None:
    idx = [t.first_index + k for t in plan_tiles(a, b) for k in range(t.skip, t.width)]
    assert idx == list(range(a, b))


def test_backoff_bounds_and_retry_after() -> None:
    b = Backoff(1.0, 30.0, random.Random(1))
    delays = [b.failure() for _ in range(12)]
    for k, d in enumerate(delays, 1):
        nominal = min(30.0, 2.0 ** (k - 1))
        assert nominal / 2 <= d <= nominal
    assert max(delays) <= 30.0 and min(delays) >= 0.5
    assert b.failure(retry_after=45.0) == 45.0
    assert b.failure(retry_after=10_000.0) == 600.0
    b.success()
    assert b.failures == 0
    assert 0.5 <= b.failure() <= 1.0


def test_backoff_jitter_spreads() -> None:
    b = Backoff(1.0, 30.0, random.Random(7))
    seen = set()
    for _ in range(20):
        b.failures = 4
        seen.add(round(b.failure(), 6))
    assert len(seen) > 10


def test_token_bucket_rate_and_burst() -> None:
    tb = TokenBucket(0.5, burst=2)
    assert tb.reserve(100.0) == 0.0
    assert tb.reserve(100.0) == 0.0
    assert tb.reserve(100.0) == pytest.approx(0.5)
    assert tb.reserve(100.0) == pytest.approx(1.0)
    # After a long pause the burst is available again, never more.
    assert tb.reserve(200.0) == 0.0
    assert tb.reserve(200.0) == 0.0
    assert tb.reserve(200.0) > 0.0
    assert TokenBucket(0.0).reserve(1.0) == 0.0


def test_token_bucket_long_run_rate() -> None:
    tb = TokenBucket(0.1, burst=4)
    now = 0.0
    for _ in range(104):
        now += tb.reserve(now)
    # 104 requests: 4 free, then 100 at 0.1 s spacing.
    assert now == pytest.approx(10.0)


def test_health_transitions() -> None:
    h = HealthTracker(healthy_threshold=2, unhealthy_threshold=3)
    assert h.status == STARTING  # nothing answered yet: not known to be healthy
    assert h.failure("timeout") == DEGRADED
    assert h.failure("http_500") == DEGRADED
    assert h.failure("http_500") == UNHEALTHY
    assert h.errors == 3 and h.errors_by_kind == {"timeout": 1, "http_500": 2}
    assert h.success(10.0) == DEGRADED
    assert h.success(11.0) == HEALTHY
    assert h.last_success == 11.0
    assert h.snapshot().consecutive_failures == 0
    # A log's first answer makes it healthy at once (it was not recovering from anything).
    fresh = HealthTracker(healthy_threshold=2, unhealthy_threshold=3)
    assert fresh.success(1.0) == HEALTHY
