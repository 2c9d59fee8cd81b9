"""Bounded, TTL-aware "have I emitted this certificate lately?" set: the pure-Python twin.

The same certificate is logged in two or three CT logs within minutes, and each log is
followed independently; the ring lets the first sighting through and drops the others.

Theory of operation
-------------------
Memory is fixed at construction, whatever the traffic:

* a FIFO ring of ``capacity`` records (64-bit key prefix, time admitted, live flag), written
  at ``head``; when the ring is full the record at ``head`` (the oldest) is evicted;
* an open-addressing table (linear probing, power-of-two size at least twice ``capacity``,
  so it is at most half full) mapping a key to its ring position.  Deletion uses backward
  shifting rather than tombstones, so probe chains never degrade over a long run.

A key is the SHA-256 of the certificate; its first 8 bytes are uniformly distributed, so a
64-bit prefix is as good as the whole hash here (a false duplicate needs a 64-bit collision).

``add`` is O(1) expected.  A key seen again within ``ttl_secs`` of the time it was admitted is
a duplicate (``False``; the time is not refreshed, so a certificate that keeps reappearing is
still emitted once per TTL).  A key whose record is at least ``ttl_secs`` old is admitted
again: its old record is dropped and a new one written at ``head``, so FIFO order stays the
order of admission.

The compiled twin ``_dedup.pyx`` implements exactly the same algorithm, so the two agree on
every return value and counter for any sequence of calls.
"""

from __future__ import annotations

import math
from array import array

from certstream.errors import LocalProtocolError

__all__ = ["MAX_CAPACITY", "DedupRing"]

#: Ring positions are stored as signed 32-bit ints in the table.
MAX_CAPACITY = 1 << 30

_M64 = (1 << 64) - 1
# Fibonacci hashing: spreads keys that are not uniformly distributed (tests, misuse) too.
_GOLDEN = 0x9E3779B97F4A7C15
_EMPTY = -1


class DedupRing:
    """A fixed-size set of recently admitted keys with a time-to-live."""

    __slots__ = (
        "_capacity",
        "_evictions",
        "_head",
        "_hits",
        "_keys",
        "_len",
        "_live",
        "_mask",
        "_misses",
        "_shift",
        "_slots",
        "_times",
        "_ttl",
    )

    def __init__(self, capacity: int, ttl_secs: float) -> None:
        if not 1 <= capacity <= MAX_CAPACITY:
            raise LocalProtocolError(f"dedup capacity must be 1..{MAX_CAPACITY}, not {capacity}")
        if math.isnan(ttl_secs) or ttl_secs < 0:
            raise LocalProtocolError(f"dedup ttl must be >= 0 seconds, not {ttl_secs}")
        bits = max(3, (2 * capacity - 1).bit_length())
        self._capacity = capacity
        self._ttl = float(ttl_secs)
        self._shift = 64 - bits
        self._mask = (1 << bits) - 1
        self._slots = array("i", [_EMPTY]) * (1 << bits)
        self._keys = array("Q", [0]) * capacity
        self._times = array("d", [0.0]) * capacity
        self._live = bytearray(capacity)
        self._head = 0
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

    def __len__(self) -> int:
        return self._len

    def _home(self, k: int) -> int:
        return ((k * _GOLDEN) & _M64) >> self._shift

    def add(self, key: bytes, now: float) -> bool:
        """Record a sighting of ``key`` at time ``now``; True if it should be emitted."""
        if len(key) < 8:
            raise LocalProtocolError(f"dedup key must be at least 8 bytes, not {len(key)}")
        k = int.from_bytes(key[:8], "big")
        slots, keys, mask = self._slots, self._keys, self._mask
        s = self._home(k)
        while True:
            pos = slots[s]
            if pos == _EMPTY:
                break
            if keys[pos] == k:
                if now - self._times[pos] < self._ttl:
                    self._hits += 1
                    return False
                # Expired: forget the old record; it is re-admitted at the head below.
                self._remove_slot(s)
                self._live[pos] = 0
                self._len -= 1
                break
            s = (s + 1) & mask
        self._misses += 1
        self._insert(k, now)
        return True

    def _insert(self, k: int, now: float) -> None:
        head = self._head
        if self._live[head]:
            self._evict(head)
        slots, mask = self._slots, self._mask
        s = self._home(k)
        while slots[s] != _EMPTY:
            s = (s + 1) & mask
        slots[s] = head
        self._keys[head] = k
        self._times[head] = now
        self._live[head] = 1
        self._len += 1
        head += 1
        self._head = 0 if head == self._capacity else head

    def _evict(self, pos: int) -> None:
        slots, mask = self._slots, self._mask
        s = self._home(self._keys[pos])
        while slots[s] != pos:
            s = (s + 1) & mask
        self._remove_slot(s)
        self._live[pos] = 0
        self._len -= 1
        self._evictions += 1

    def _remove_slot(self, i: int) -> None:
        # Backward-shift deletion: pull later members of the probe chain into the hole
        # unless their home lies cyclically in (hole, their slot], where they must stay.
        slots, keys, mask = self._slots, self._keys, self._mask
        j = i
        while True:
            j = (j + 1) & mask
            pos = slots[j]
            if pos == _EMPTY:
                break
            h = self._home(keys[pos])
            if (i < h <= j) if i <= j else (i < h or h <= j):
                continue
            slots[i] = pos
            i = j
        slots[i] = _EMPTY
