"""The dedup ring: duplicate within the TTL, re-admission after it, FIFO eviction, twins agree."""

from __future__ import annotations

import hashlib
import random
import resource
import sys
from types import ModuleType

import pytest

from certstream._fast._dedup_py import DedupRing as DedupRingPy
from certstream.config import DedupSettings
from certstream.errors import LocalProtocolError


def _key(i: int) -> bytes:
    return hashlib.sha256(i.to_bytes(8, "big")).digest()


def test_duplicate_within_ttl(dedup_mod: ModuleType) -> None:
    ring = dedup_mod.DedupRing(100, 60.0)
    assert ring.add(_key(1), 1000.0) is True
    assert ring.add(_key(1), 1000.0) is False
    assert ring.add(_key(1), 1059.9) is False
    assert ring.add(_key(2), 1059.9) is True
    assert (ring.hits, ring.misses, ring.evictions, len(ring)) == (2, 2, 0, 2)


def test_readmitted_after_ttl_counted_from_admission(dedup_mod: ModuleType) -> None:
    ring = dedup_mod.DedupRing(100, 10.0)
    assert ring.add(_key(1), 0.0)
    # A duplicate sighting does not extend the window: 10 s after admission it is new again.
    assert not ring.add(_key(1), 9.0)
    assert ring.add(_key(1), 10.0)
    assert not ring.add(_key(1), 19.5)
    assert ring.add(_key(1), 25.0)
    assert len(ring) == 1
    assert (ring.hits, ring.misses) == (2, 3)


def test_eviction_at_capacity_is_fifo(dedup_mod: ModuleType) -> None:
    ring = dedup_mod.DedupRing(3, 1e9)
    for i in range(3):
        assert ring.add(_key(i), float(i))
    assert len(ring) == 3
    assert ring.add(_key(3), 3.0)  # evicts key 0, the oldest
    assert ring.evictions == 1
    assert len(ring) == 3
    assert not ring.add(_key(1), 4.0)
    assert not ring.add(_key(3), 4.0)
    assert ring.add(_key(0), 5.0)  # forgotten, so new again; evicts key 1
    assert ring.add(_key(1), 6.0)
    assert ring.evictions == 3


def test_readmission_moves_a_key_to_the_back_of_the_queue(dedup_mod: ModuleType) -> None:
    ring = dedup_mod.DedupRing(3, 10.0)
    ring.add(_key(0), 0.0)
    ring.add(_key(1), 1.0)
    ring.add(_key(2), 2.0)
    assert ring.add(_key(0), 20.0)  # expired: re-admitted as the newest record
    assert len(ring) == 3
    assert ring.evictions == 0
    assert ring.add(_key(3), 21.0)  # evicts key 1, now the oldest live record
    assert ring.evictions == 1
    assert not ring.add(_key(0), 22.0)
    assert ring.add(_key(1), 22.0)


def test_capacity_one_and_zero_ttl(dedup_mod: ModuleType) -> None:
    ring = dedup_mod.DedupRing(1, 0.0)
    assert ring.add(_key(1), 5.0)
    assert ring.add(_key(1), 5.0)  # ttl 0: nothing is ever a duplicate
    assert ring.add(_key(2), 5.0)
    assert len(ring) == 1


def test_only_the_first_eight_bytes_count(dedup_mod: ModuleType) -> None:
    ring = dedup_mod.DedupRing(10, 100.0)
    assert ring.add(b"ABCDEFGH" + bytes(24), 0.0)
    assert not ring.add(b"ABCDEFGH" + b"\xff" * 24, 1.0)
    assert not ring.add(bytearray(b"ABCDEFGH"), 1.0)
    assert ring.add(b"ABCDEFGI", 1.0)


@pytest.mark.parametrize(("capacity", "ttl"), [(0, 1.0), (-5, 1.0), (10, -1.0), (10, float("nan"))])
def test_bad_arguments(dedup_mod: ModuleType, capacity: int, ttl: float) -> None:
    with pytest.raises(LocalProtocolError):
        dedup_mod.DedupRing(capacity, ttl)


def test_short_key_is_a_local_error(dedup_mod: ModuleType) -> None:
    ring = dedup_mod.DedupRing(10, 1.0)
    with pytest.raises(LocalProtocolError):
        ring.add(b"short", 0.0)


class _Model:
    """The obvious, unbounded-time reference: a dict plus an admission-ordered list."""

    def __init__(self, capacity: int, ttl: float) -> None:
        self.capacity, self.ttl = capacity, ttl
        self.seen: dict[bytes, float] = {}  # insertion order = admission order
        self.hits = self.misses = self.evictions = 0

    def add(self, key: bytes, now: float) -> bool:
        k = key[:8]
        if k in self.seen:
            if now - self.seen[k] < self.ttl:
                self.hits += 1
                return False
            del self.seen[k]
        elif len(self.seen) == self.capacity:
            del self.seen[next(iter(self.seen))]
            self.evictions += 1
        self.misses += 1
        self.seen[k] = now
        return True


@pytest.mark.parametrize("seed", range(4))
def test_matches_a_reference_model_on_random_sequences(dedup_mod: ModuleType, seed: int) -> None:
    rnd = random.Random(seed)
    capacity = rnd.choice([1, 2, 7, 64, 300])
    ttl = rnd.choice([0.5, 5.0, 50.0])
    ring = dedup_mod.DedupRing(capacity, ttl)
    model = _Model(capacity, ttl)
    pure = DedupRingPy(capacity, ttl)
    now = 0.0
    # A small key space makes duplicates, expiries and evictions all frequent.
    space = rnd.choice([3, 50, 1000])
    for _ in range(20_000):
        now += rnd.random() * 0.2
        key = _key(rnd.randrange(space))
        want = model.add(key, now)
        assert ring.add(key, now) is want
        assert pure.add(key, now) is want
    for r in (ring, pure):
        assert (r.hits, r.misses, r.evictions) == (model.hits, model.misses, model.evictions)
        assert len(r) <= capacity
    assert len(ring) == len(pure)


def test_many_distinct_keys_in_flat_memory(dedup_mod: ModuleType) -> None:
    # The pure twin gets a smaller run; the compiled one is timed by bench/.
    n = 1_000_000 if dedup_mod.__name__.endswith("_dedup") else 100_000
    ring = dedup_mod.DedupRing(10_000, 900.0)
    keys = [_key(i) for i in range(20_000)]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for i in range(n):
        # Every key is distinct (the counter is mixed into the prefix), recycling one buffer.
        k = keys[i % 20_000]
        assert ring.add((i).to_bytes(8, "big") + k[8:], float(i) * 1e-6)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert len(ring) == 10_000
    assert ring.evictions == n - 10_000
    assert ring.misses == n
    # ru_maxrss is KiB on Linux; the ring itself is ~0.5 MB, so growth means a leak.
    if sys.platform.startswith("linux"):
        assert rss_after - rss_before < 50_000


def _rss() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_memory_is_fixed_and_paid_only_as_the_ring_fills(dedup_mod: ModuleType) -> None:
    capacity = DedupSettings().capacity
    per_entry = dedup_mod.RECORD_BYTES + dedup_mod.SLOT_BYTES * 3 / 2
    assert dedup_mod.table_slots(capacity) == capacity * 3 // 2 + 1
    before = _rss()
    ring = dedup_mod.DedupRing(capacity, 900.0)
    built = _rss()
    # One map, none of it written yet: an idle server does not pay for an empty ring.
    assert built - before < 512 * 1024
    add = ring.add
    for i in range(capacity + capacity // 4):  # full, then evicting
        add(i.to_bytes(8, "big"), float(i))
    full = _rss()
    assert len(ring) == capacity
    # 16-byte records plus 1.5 four-byte slots per entry (4.2 MiB here), and nothing else.
    assert full - before < capacity * per_entry + 1024 * 1024


@pytest.mark.slow
def test_ten_million_distinct_keys_compiled() -> None:
    # The scale, through a ring of the default capacity; run in `make test`, skipped
    # with -m "not slow".
    mod = pytest.importorskip("certstream._fast._dedup")
    capacity = DedupSettings().capacity
    ring = mod.DedupRing(capacity, 900.0)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    add = ring.add
    for i in range(10_000_000):
        add(i.to_bytes(8, "big"), i * 1e-6)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert ring.misses == 10_000_000
    assert ring.evictions == 10_000_000 - capacity
    assert len(ring) == capacity
    if sys.platform.startswith("linux"):
        # KiB of peak RSS: the ring's fixed map is touched as it fills (22 bytes per entry,
        # 4.3 MiB at the default capacity); evicting 9.8M keys after that must add nothing.
        assert rss_after - rss_before < 8_000
