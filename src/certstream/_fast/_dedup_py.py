"""Bounded, TTL-aware "have I emitted this certificate lately?" set: the pure-Python twin.

The same certificate is logged in two or three CT logs within minutes, and each log is
followed independently; the ring lets the first sighting through and drops the others.

Theory of operation
-------------------
Memory is bounded at construction, whatever the traffic, and lives in one anonymous memory
map: the kernel hands out its pages as they are first written, so a ring that has seen few
certificates costs little, and a full one costs 16 + 6 = 22 bytes per entry:

* a FIFO ring of ``capacity`` fixed-size records of 16 bytes (64-bit key prefix, time
  admitted as a double), written at ``head``; when the ring is full the record at ``head``
  (the oldest) is evicted;
* an open-addressing table of 32-bit slots (linear probing) holding ring position + 1 of each
  live record, 0 for an empty slot.  A key's home slot is
  ``((k * golden) mod 2**64 >> 32) * slots >> 32`` (a multiply-shift range reduction, so the
  table need not be a power of two).  Deletion uses backward shifting rather than tombstones,
  so probe chains never degrade over a long run.

The table grows with what it holds.  Keys hash over every slot of the table, so a table sized
for a full ring would have all of its pages written after a few thousand keys; instead it
starts at ``min(1024, table_slots(capacity))`` slots and, when an insert would leave it more
than two thirds full, doubles (up to ``table_slots(capacity)``, which a full ring never fills
past two thirds).  Its region of the map is sized for the largest table from the start, so
growing never moves or reallocates anything: only the pages of the slots in use are touched.

Growing rehashes in place, with no temporary memory (the point is memory): every occupied
slot is marked *pending* with its top bit, which a ring position + 1 never uses (capacity is
at most ``2**30``); then each pending entry, in slot order, is taken out and placed at the
first slot of its new probe chain that is empty or still pending, and a pending entry it
displaces is placed next, and so on.  Every slot a placed entry probed past holds a placed
entry and stays occupied, so each probe chain is whole when the last pending entry is placed.
Only the table is read and written (and the keys of live records): expired records, already
out of the table, stay out, and the records themselves are untouched.

A record is live exactly when a slot points at it: a record whose key expired is dropped from
the table and left in the ring, and when ``head`` comes round to it there is nothing to evict.

A key is the SHA-256 of the certificate; its first 8 bytes are uniformly distributed, so a
64-bit prefix is as good as the whole hash here (a false duplicate needs a 64-bit collision).

``add`` is O(1) expected.  A key seen again within ``ttl_secs`` of the time it was admitted is
a duplicate (``False``; the time is not refreshed, so a certificate that keeps reappearing is
still emitted once per TTL).  A key whose record is at least ``ttl_secs`` old is admitted
again: its old record is dropped and a new one written at ``head``, so FIFO order stays the
order of admission.

The compiled twin ``_dedup.pyx`` implements exactly the same algorithm and layout, so the two
agree on every return value and counter for any sequence of calls.
"""

from __future__ import annotations

import math
import mmap

from certstream.errors import LocalProtocolError

__all__ = ["MAX_CAPACITY", "RECORD_BYTES", "SLOT_BYTES", "DedupRing", "table_slots"]

#: Ring positions + 1 are stored in unsigned 32-bit slots, leaving the top bit for rehashing.
MAX_CAPACITY = 1 << 30
#: One ring record: the key prefix (uint64) and the time it was admitted (double).
RECORD_BYTES = 16
SLOT_BYTES = 4

_M64 = (1 << 64) - 1
# Fibonacci hashing: spreads keys that are not uniformly distributed (tests, misuse) too.
_GOLDEN = 0x9E3779B97F4A7C15
# A new table's slots: 4 KiB, one page, so an idle or quiet ring writes one page of table.
_FIRST_SLOTS = 1024
# Marks a slot not yet rehashed while the table grows; no ring position + 1 reaches it.
_PENDING = 1 << 31


def table_slots(capacity: int) -> int:
    """The most slots the table of a ring of ``capacity`` grows to, and what its region of the
    map is sized for: a full ring fills at most two thirds of them.  The table starts smaller
    and doubles as the ring fills (``DedupRing.table_size`` is its current slot count)."""
    return capacity * 3 // 2 + 1


def _grow_at(size: int, max_size: int) -> int:
    # Live records at which the next insert must grow the table first: (len + 1) * 3 > 2 * size
    # would break the two-thirds bound, and for integers that is len >= 2 * size // 3.  A table
    # at its largest never grows (a full ring fits), so the bound is out of reach.
    return 2 * size // 3 if size < max_size else MAX_CAPACITY + 1


class DedupRing:
    """A fixed-size set of recently admitted keys with a time-to-live."""

    __slots__ = (
        "_capacity",
        "_evictions",
        "_filled",
        "_grow_at",
        "_head",
        "_hits",
        "_keys",
        "_len",
        "_map",
        "_max_size",
        "_misses",
        "_size",
        "_slots",
        "_times",
        "_ttl",
    )

    def __init__(self, capacity: int, ttl_secs: float) -> None:
        if not 1 <= capacity <= MAX_CAPACITY:
            raise LocalProtocolError(f"dedup capacity must be 1..{MAX_CAPACITY}, not {capacity}")
        if math.isnan(ttl_secs) or ttl_secs < 0:
            raise LocalProtocolError(f"dedup ttl must be >= 0 seconds, not {ttl_secs}")
        max_size = table_slots(capacity)
        ring_bytes = capacity * RECORD_BYTES
        self._capacity = capacity
        self._ttl = float(ttl_secs)
        self._max_size = max_size
        self._size = min(_FIRST_SLOTS, max_size)
        self._grow_at = _grow_at(self._size, max_size)
        # Anonymous and private: zero pages until written, returned to the system when freed.
        # The table's region is sized for its largest; slots past the current size stay zero.
        self._map = mmap.mmap(-1, ring_bytes + max_size * SLOT_BYTES)
        view = memoryview(self._map)
        # Record i is keys[2 * i] (its key prefix) and times[2 * i + 1] (its admission time).
        self._keys = view[:ring_bytes].cast("Q")
        self._times = view[:ring_bytes].cast("d")
        self._slots = view[ring_bytes:].cast("I")
        self._head = 0
        self._filled = 0  # records ever written, up to capacity: the rest were never used
        self._len = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def ttl_secs(self) -> float:
        return self._ttl

    @property
    def hits(self) -> int:
        """Calls that returned False (a duplicate within the TTL)."""
        return self._hits

    @property
    def misses(self) -> int:
        """Calls that returned True (new, or re-admitted after the TTL)."""
        return self._misses

    @property
    def evictions(self) -> int:
        """Live records pushed out by a newer key because the ring was full."""
        return self._evictions

    @property
    def table_size(self) -> int:
        """Slots of the table now: it doubles as the ring fills, up to ``table_slots``."""
        return self._size

    def __len__(self) -> int:
        return self._len

    def _home(self, k: int) -> int:
        return ((((k * _GOLDEN) & _M64) >> 32) * self._size) >> 32

    def add(self, key: bytes, now: float) -> bool:
        """Record a sighting of ``key`` at time ``now``; True if it should be emitted."""
        if len(key) < 8:
            raise LocalProtocolError(f"dedup key must be at least 8 bytes, not {len(key)}")
        k = int.from_bytes(key[:8], "big")
        slots, keys, size = self._slots, self._keys, self._size
        s = self._home(k)
        while True:
            ref = slots[s]
            if ref == 0:
                break
            pos = ref - 1
            if keys[2 * pos] == k:
                if now - self._times[2 * pos + 1] < self._ttl:
                    self._hits += 1
                    return False
                # Expired: forget the old record; it is re-admitted at the head below.
                self._remove_slot(s)
                self._len -= 1
                break
            s += 1
            if s == size:
                s = 0
        self._misses += 1
        self._insert(k, now)
        return True

    def _insert(self, k: int, now: float) -> None:
        head = self._head
        if head < self._filled:
            self._evict(head)
        else:
            self._filled = head + 1
        if self._len >= self._grow_at:
            self._grow()
        slots, size = self._slots, self._size
        s = self._home(k)
        while slots[s] != 0:
            s += 1
            if s == size:
                s = 0
        slots[s] = head + 1
        self._keys[2 * head] = k
        self._times[2 * head + 1] = now
        self._len += 1
        head += 1
        self._head = 0 if head == self._capacity else head

    def _grow(self) -> None:
        """Rehash the table into twice the slots (or the most), in place: see the module doc."""
        old = self._size
        size = min(2 * old, self._max_size)
        slots, keys = self._slots, self._keys
        for i in range(old):
            if slots[i]:
                slots[i] |= _PENDING
        # Slots [old, size) were never written: the table only grows, so they are still zero.
        self._size = size
        self._grow_at = _grow_at(size, self._max_size)
        for i in range(old):
            ref = slots[i]
            if not ref & _PENDING:
                continue  # empty, or an entry placed here earlier in this pass
            slots[i] = 0
            ref ^= _PENDING
            while True:
                # A pending slot counts as free: its entry is placed later anyway, and an
                # entry never probes past a slot that may still be emptied.
                s = self._home(keys[2 * (ref - 1)])
                while True:
                    found = slots[s]
                    if found == 0 or found & _PENDING:
                        break
                    s += 1
                    if s == size:
                        s = 0
                slots[s] = ref
                if found == 0:
                    break
                ref = found ^ _PENDING  # displaced: place it next

    def _evict(self, pos: int) -> None:
        """Drop the record at ``pos`` from the table if it is still live there."""
        slots, size, ref = self._slots, self._size, pos + 1
        s = self._home(self._keys[2 * pos])
        while True:
            found = slots[s]
            if found == 0:
                return  # dropped earlier, when its key expired
            if found == ref:
                break
            s += 1
            if s == size:
                s = 0
        self._remove_slot(s)
        self._len -= 1
        self._evictions += 1

    def _remove_slot(self, i: int) -> None:
        # Backward-shift deletion: pull later members of the probe chain into the hole
        # unless their home lies cyclically in (hole, their slot], where they must stay.
        slots, keys, size = self._slots, self._keys, self._size
        j = i
        while True:
            j += 1
            if j == size:
                j = 0
            ref = slots[j]
            if ref == 0:
                break
            h = self._home(keys[2 * (ref - 1)])
            if (i < h <= j) if i <= j else (i < h or h <= j):
                continue
            slots[i] = ref
            i = j
        slots[i] = 0
