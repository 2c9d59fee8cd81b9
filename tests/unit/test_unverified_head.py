"""WindowPlanner never trusts an unverified tree head beyond what the log serves.

Under ``sth_signature: warn`` a head whose signature does not verify is used.  Before this
was fixed, one such head claiming a larger tree raised the planner's tree size for good: the
log was asked for entries it did not have (HTTP 400) again and again until its real tree
caught up, and later good heads below the claim were refused as a shrinking tree.
"""

from __future__ import annotations

from certstream.core.follow import Window, WindowPlanner


def read_all(p: WindowPlanner[int], served: int) -> list[Window]:
    """Answer windows like a log whose real tree has ``served`` entries; return the windows
    it refused (HTTP 400: start at or past its tree)."""
    refused: list[Window] = []
    for _ in range(1000):
        inflight = []
        while (w := p.next_window()) is not None:
            inflight.append(w)
        if not inflight:
            return refused
        for w in inflight:
            if w.start >= served:
                refused.append(w)
                assert p.refuse(w)
            else:
                p.complete(w, min(w.end, served - 1) - w.start + 1, 0)
        p.ready()
    raise AssertionError("the planner keeps asking")


def test_an_unverified_larger_head_is_refuted_by_one_400_and_then_ignored() -> None:
    p: WindowPlanner[int] = WindowPlanner(0, batch_size=32, concurrency=4, tree_size=100)
    assert read_all(p, 100) == []
    assert p.set_tree_size(10_000, verified=False)  # warn mode: used, but provisionally
    refused = read_all(p, 120)  # the log really has 120
    assert p.next_index == 120  # everything it serves was read
    # The windows in flight when the log said 400, and the rest of the one it cut short.
    assert 1 <= len(refused) <= 4 + 1
    assert p.tree_size == 120
    # The same head again: nothing more is asked for.
    assert p.set_tree_size(10_000, verified=False)
    assert p.next_window() is None
    # A verified head below the claim is no shrink; the log is read up to it, and the
    # windows planned past it wait for a head that covers them.
    assert p.set_tree_size(150, verified=True)
    read_all(p, 150)
    assert p.next_index == 150
    assert p.next_window() is None
    assert p.set_tree_size(300, verified=True)
    assert read_all(p, 300) == []
    assert p.next_index == 300 and p.outstanding == 0


def test_entries_a_verified_head_promised_are_never_given_up() -> None:
    p: WindowPlanner[int] = WindowPlanner(0, batch_size=10, concurrency=1, tree_size=50)
    w = p.next_window()
    assert w == Window(0, 9)
    # A 400 inside a verified tree: an ordinary failure, retried as it was.
    assert not p.refuse(w)
    assert p.tree_size == 50
    assert p.next_window() == w


def test_a_verified_head_still_never_shrinks() -> None:
    p: WindowPlanner[int] = WindowPlanner(0, batch_size=10, tree_size=50)
    assert not p.set_tree_size(40, verified=True)
    assert not p.set_tree_size(40, verified=False)
    assert p.tree_size == 50


def test_a_true_unverified_head_is_read_to_its_end() -> None:
    # A log whose key is wrong in the config: every head fails, every head is true.
    p: WindowPlanner[int] = WindowPlanner(0, batch_size=16, concurrency=3, tree_size=0)
    for size in (40, 90, 91, 200):
        assert p.set_tree_size(size, verified=False)
        assert read_all(p, size) == []
    assert p.next_index == 200


def test_a_new_unverified_claim_after_a_refuted_one_is_tried() -> None:
    p: WindowPlanner[int] = WindowPlanner(0, batch_size=16, concurrency=2, tree_size=10)
    p.set_tree_size(1000, verified=False)
    read_all(p, 30)
    assert p.next_index == 30
    p.set_tree_size(64, verified=False)  # the log grew and says so, unverified again
    assert read_all(p, 64) == []
    assert p.next_index == 64 and p.outstanding == 0
