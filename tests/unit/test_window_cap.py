"""WindowPlanner learns a log's batch cap from whole windows, never from one small answer.

Plain numbers only: a simulated log answers each window with at most its cap.  Before this
was fixed, one short answer to a 2-entry window set the batch size to 1 for the life of the
follower (3,000 entries then took 3,000 requests).
"""

from __future__ import annotations

import math

from certstream.core import follow
from certstream.core.follow import Window, WindowPlanner


def serve(p: WindowPlanner[int], cap: int, until: int, limit: int = 100_000) -> list[Window]:
    """Answer every window with ``min(size, cap)`` entries until ``next_index == until``;
    returns the windows asked for, in order."""
    asked: list[Window] = []
    while p.next_index < until:
        assert len(asked) < limit, "the planner does not make progress"
        inflight = []
        while (w := p.next_window()) is not None:
            inflight.append(w)
        assert inflight, "nothing to ask for before the end"
        for w in inflight:
            asked.append(w)
            p.complete(w, min(w.size, cap), 0)
        p.ready()
    return asked


def test_a_short_answer_to_a_small_window_does_not_shrink_the_batch() -> None:
    p: WindowPlanner[int] = WindowPlanner(0, batch_size=256, concurrency=4, tree_size=2)
    w = p.next_window()
    assert w == Window(0, 1)
    p.complete(w, 1, 0)  # the log's backend was one entry behind its tree head
    p.ready()
    rest = p.next_window()
    assert rest == Window(1, 1)
    p.complete(rest, 1, 0)
    p.ready()
    p.set_tree_size(3002)
    asked = serve(p, cap=256, until=3002)
    # 3,000 entries in windows of up to 256: a dozen requests, not 3,000.
    assert asked[0] == Window(2, 257)
    assert len(asked) <= math.ceil(3000 / 256) + 3


def test_the_cap_is_learned_from_a_whole_window_inside_the_tree() -> None:
    p: WindowPlanner[int] = WindowPlanner(0, batch_size=1024, concurrency=1, tree_size=100_000)
    w = p.next_window()
    assert w == Window(0, 1023)
    p.complete(w, 32, 0)
    p.ready()
    assert p.window_size == 32
    assert p.next_window() == Window(32, 1023)  # the rest of the short window first


def test_one_short_answer_never_goes_below_what_the_log_served_recently() -> None:
    p: WindowPlanner[int] = WindowPlanner(0, batch_size=256, concurrency=1, tree_size=100_000)
    serve(p, cap=256, until=2560)
    assert p.window_size == 256
    # A whole window answered with 10 (a lagging backend, a busy log): the cap stays.
    w = p.next_window()
    assert w is not None and w.size == 256
    p.complete(w, 10, 0)
    p.ready()
    assert p.window_size == 256


def test_a_cap_that_really_shrank_is_learned_after_a_few_answers() -> None:
    p: WindowPlanner[int] = WindowPlanner(0, batch_size=256, concurrency=1, tree_size=100_000)
    serve(p, cap=256, until=2560)
    serve(p, cap=32, until=2560 + 32 * 40)
    assert p.window_size == 32


def test_probes_upwards_until_the_real_cap() -> None:
    # An aligned log: the first answer stops at the next multiple of 1,000 (100 entries),
    # though the log serves 1,000 per request.
    p: WindowPlanner[int] = WindowPlanner(900, batch_size=1024, concurrency=1, tree_size=10**6)
    w = p.next_window()
    assert w == Window(900, 1923)
    p.complete(w, 100, 0)
    p.ready()
    assert p.window_size == 100
    asked = serve(p, cap=1000, until=200_000)
    assert p.window_size == 1000
    # Doubling from 100 reaches 1,000 in a few probes; then nearly every request is whole.
    assert len(asked) <= 200_000 // 1000 + 12 * follow.PROBE_AFTER


def test_a_failed_probe_costs_no_extra_request() -> None:
    p: WindowPlanner[int] = WindowPlanner(0, batch_size=1024, concurrency=2, tree_size=10**6)
    asked = serve(p, cap=32, until=32 * 2000)
    # Every answer carries a whole 32 entries, probes and the rests of probes included.
    assert all(w.size >= 32 for w in asked)
    assert any(w.size > 32 for w in asked[1:]), "it never probed"


def test_windows_at_the_tree_end_do_not_teach_a_cap() -> None:
    p: WindowPlanner[int] = WindowPlanner(0, batch_size=64, concurrency=1, tree_size=64)
    serve(p, cap=64, until=64)
    for size in range(65, 80):  # tailing a log that grows by one entry at a time
        p.set_tree_size(size)
        w = p.next_window()
        assert w is not None and w.size == 1
        p.complete(w, 1, 0)
        p.ready()
    assert p.window_size == 64
