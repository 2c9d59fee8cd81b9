"""core.lru.BoundedLRU: bounded in entries and in bytes, least recently used out first."""

from __future__ import annotations

from certstream.core.lru import BoundedLRU


def test_bounded_in_entries_oldest_first() -> None:
    lru: BoundedLRU[str, int] = BoundedLRU(2, 1000)
    lru.put("a", 1, 10)
    lru.put("b", 2, 10)
    assert lru.get("a") == 1  # "b" is now the least recently used
    lru.put("c", 3, 10)
    assert "b" not in lru and lru.get("a") == 1 and lru.get("c") == 3
    assert len(lru) == 2 and lru.nbytes == 20


def test_bounded_in_bytes_whatever_the_count() -> None:
    gone: list[str] = []
    lru: BoundedLRU[str, bytes] = BoundedLRU(1000, 100, on_evict=lambda k, _v: gone.append(k))
    for key in "abcde":
        lru.put(key, b"x" * 30, 30)
    assert lru.nbytes == 90 and len(lru) == 3 and gone == ["a", "b"]
    lru.put("big", b"x" * 90, 90)  # fits alone: everything older goes
    assert list(gone) == ["a", "b", "c", "d", "e"] and lru.nbytes == 90


def test_a_value_larger_than_the_budget_is_not_kept() -> None:
    lru: BoundedLRU[str, bytes] = BoundedLRU(10, 100)
    lru.put("small", b"s", 1)
    lru.put("huge", b"h", 101)
    assert "huge" not in lru and lru.get("small") == b"s" and lru.nbytes == 1


def test_replacing_a_key_counts_its_bytes_once() -> None:
    lru: BoundedLRU[str, int] = BoundedLRU(10, 100)
    lru.put("a", 1, 40)
    lru.put("a", 2, 50)
    assert lru.get("a") == 2 and lru.nbytes == 50 and len(lru) == 1
    assert lru.get("missing") is None
