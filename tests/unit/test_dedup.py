"""The dedup ring: duplicate within the TTL, re-admission after it, FIFO eviction, twins agree,
and a table that grows with what the ring holds, paying its pages only as it does."""

from __future__ import annotations

import hashlib
import importlib
import random
import resource
import sys
from collections import deque
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certstream._fast import NO_EXTENSIONS
from certstream._fast._dedup_py import DedupRing as DedupRingPy
from certstream._fast._dedup_py import table_slots
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


# The table grows: it starts at 1,024 slots (or the most, if fewer) and doubles, rehashed in
# place, whenever an insert would leave it more than two thirds full.


class _RingModel:
    """The ring's exact semantics, in the obvious way: a deque of the last ``capacity``
    admissions and a dict of the live keys.  Unlike ``_Model`` above, a record left behind by
    a re-admitted key still takes its place in the queue: when the head comes round to it,
    nothing is evicted, and a re-admission into a full queue evicts the oldest admission."""

    def __init__(self, capacity: int, ttl: float) -> None:
        self.ttl = ttl
        self.queue: deque[tuple[bytes, int]] = deque(maxlen=capacity)  # (key, admission no.)
        self.live: dict[bytes, tuple[float, int]] = {}  # key -> (admitted at, admission no.)
        self.admitted = self.hits = self.misses = self.evictions = 0

    def add(self, key: bytes, now: float) -> bool:
        k = key[:8]
        if k in self.live:
            if now - self.live[k][0] < self.ttl:
                self.hits += 1
                return False
            del self.live[k]
        if len(self.queue) == self.queue.maxlen:
            old, no = self.queue[0]
            if old in self.live and self.live[old][1] == no:
                del self.live[old]
                self.evictions += 1
        self.misses += 1
        self.admitted += 1
        self.queue.append((k, self.admitted))
        self.live[k] = (now, self.admitted)
        return True


def _twins() -> list[ModuleType]:
    """The pure twin, and the compiled one unless extensions are off (a build that should
    have it and does not is caught by tests/e2e/test_fast_loaded.py)."""
    mods = [importlib.import_module("certstream._fast._dedup_py")]
    if not NO_EXTENSIONS:
        mods.append(importlib.import_module("certstream._fast._dedup"))
    return mods


def _check_table(ring: DedupRingPy) -> None:
    """White-box check of the pure twin's table: exactly ``len`` live records, each reachable
    from its home slot without crossing an empty slot (what lookups and eviction rely on)."""
    size, slots, keys = ring.table_size, ring._slots, ring._keys
    assert all(slots[i] == 0 for i in range(size, len(slots)))  # never touched past the size
    refs = [slots[i] for i in range(size) if slots[i]]
    assert len(refs) == len(set(refs)) == len(ring)
    for s in range(size):
        if slots[s]:
            h = ring._home(keys[2 * (slots[s] - 1)])
            while h != s:
                assert slots[h] != 0
                h = h + 1 if h + 1 < size else 0


# (capacity, ttl, key space, calls, mean time step x 2, seed).  A seed, not st.randoms():
# thousands of draws from hypothesis's buffer would overrun it, and the long runs that grow
# the table would be dropped as invalid.
_SMALL_RUNS = st.tuples(  # rings of at most 451 slots, which never grow: wrap and evict
    st.integers(1, 300),
    st.sampled_from([0.0, 0.5, 5.0, 50.0, 1e9]),
    st.sampled_from([3, 50, 1_000, 1 << 40]),
    st.integers(1, 3_000),
    st.sampled_from([0.0, 0.01, 0.2, 3.0]),
    st.integers(0, 2**32 - 1),
)
_GROWING_RUNS = st.tuples(  # past 682 live keys the table grows, once or twice, then wraps
    st.integers(683, 2_500),
    st.sampled_from([5.0, 50.0, 1e9]),
    st.sampled_from([1_000, 5_000, 1 << 40]),
    st.integers(1_500, 6_000),
    st.sampled_from([0.0, 0.001, 0.01, 0.2]),
    st.integers(0, 2**32 - 1),
)


@settings(max_examples=120, deadline=None)
@given(run=st.one_of(_SMALL_RUNS, _GROWING_RUNS))
def test_growing_table_matches_the_model_in_both_twins(
    run: tuple[int, float, int, int, float, int],
) -> None:
    capacity, ttl, space, n, step, seed = run
    rnd = random.Random(seed)
    rings = [mod.DedupRing(capacity, ttl) for mod in _twins()]
    model = _RingModel(capacity, ttl)
    most = rings[0].table_size
    assert most == min(1024, table_slots(capacity))
    now = 0.0
    for _ in range(n):
        now += rnd.random() * step
        key = _key(rnd.randrange(space))
        want = model.add(key, now)
        counts = (model.hits, model.misses, model.evictions, len(model.live))
        for ring in rings:
            assert ring.add(key, now) is want
            assert (ring.hits, ring.misses, ring.evictions, len(ring)) == counts
            # At most two thirds full, never past the region sized for it, never shrinking.
            assert len(ring) <= ring.table_size * 2 // 3
            assert most <= ring.table_size <= table_slots(capacity)
        assert len({ring.table_size for ring in rings}) == 1
        most = rings[0].table_size
    assert isinstance(rings[0], DedupRingPy)
    _check_table(rings[0])


@pytest.mark.parametrize(
    ("capacity", "sizes"),
    [
        (1, [(1, 2)]),
        (300, [(1, 451)]),
        (1_000, [(1, 1024), (683, 1501)]),
        (
            DedupSettings().capacity,
            [(1, 1024), (683, 2048), (1_366, 4096), (2_731, 8192), (5_462, 16_384),
             (10_923, 32_768), (21_846, 65_536), (43_691, 131_072), (87_382, 262_144),
             (174_763, 300_001)],
        ),
    ],
)
def test_table_grows_at_two_thirds_and_doubles(
    dedup_mod: ModuleType, capacity: int, sizes: list[tuple[int, int]]
) -> None:
    ring = dedup_mod.DedupRing(capacity, 1e9)
    assert ring.table_size == sizes[0][1]
    seen = [(1, ring.table_size)]
    size = ring.table_size
    for i in range(1, capacity + capacity // 2 + 1):  # full, then evicting: no more growth
        assert ring.add(i.to_bytes(8, "big"), float(i))
        if ring.table_size != size:
            size = ring.table_size
            seen.append((len(ring), size))
    # (live records after the insert that grew it, slots from then on)
    assert seen == sizes
    assert len(ring) == capacity
    assert size == dedup_mod.table_slots(capacity)
    # Every key still in the ring is found after all the rehashing; the evicted ones are not.
    assert not ring.add((capacity + capacity // 2).to_bytes(8, "big"), 0.0)
    assert not ring.add((capacity // 2 + 1).to_bytes(8, "big"), 0.0)
    assert ring.add((capacity // 2).to_bytes(8, "big"), 0.0)


def test_growth_leaves_expired_records_out(dedup_mod: ModuleType) -> None:
    # Records dropped when their key expired stay in the ring but must not be rehashed in:
    # they would count as live, and eviction would later count them twice.
    ring = dedup_mod.DedupRing(2_000, 10.0)
    for i in range(600):
        assert ring.add(_key(i), 0.0)
    for i in range(600):
        assert ring.add(_key(i), 20.0)  # expired: re-admitted, the old record dropped
    assert (len(ring), ring.table_size) == (600, 1024)
    for i in range(600, 700):
        assert ring.add(_key(i), 21.0)
    assert (len(ring), ring.table_size) == (700, 2048)
    for i in range(700):
        assert not ring.add(_key(i), 22.0)
    for i in range(700, 2_000):
        assert ring.add(_key(i), 23.0)
    # 2,600 records written into 2,000: the 600 overwritten are the dead ones, so nothing
    # live was evicted (a dead record rehashed into the table would be evicted and counted).
    assert (len(ring), ring.evictions) == (2_000, 0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_table_pages_are_paid_as_the_ring_fills(dedup_mod: ModuleType) -> None:
    capacity = DedupSettings().capacity
    full_table = dedup_mod.table_slots(capacity) * dedup_mod.SLOT_BYTES  # 1.2 MB
    before = _rss()
    ring = dedup_mod.DedupRing(capacity, 900.0)
    add = ring.add
    for i in range(10_000):
        add(_key(i), float(i))
    grown = _rss() - before
    records = 10_000 * dedup_mod.RECORD_BYTES
    # 16,384 slots (64 KiB) hold 10,000 keys; a table sized for the full ring from the start
    # would have every page of its 1.2 MB written by now.
    assert ring.table_size == 16_384
    assert grown - records < full_table // 2
