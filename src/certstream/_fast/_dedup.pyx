# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Bounded, TTL-aware dedup ring: the compiled twin of ``_dedup_py.py``.

Same algorithm, same layout, same results, same counters; see ``_dedup_py.py`` for the
theory of operation.  The ring records and the table live in one anonymous memory map made
in ``__init__``; it never grows, and its pages cost memory only once written.
"""

from libc.math cimport isnan
from libc.stdint cimport uint32_t, uint64_t
from posix.mman cimport (
    MAP_ANONYMOUS, MAP_FAILED, MAP_PRIVATE, PROT_READ, PROT_WRITE, mmap, munmap,
)

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_GET_SIZE

from certstream.errors import LocalProtocolError

MAX_CAPACITY = 1 << 30
RECORD_BYTES = 16
SLOT_BYTES = 4

cdef uint64_t _GOLDEN = 0x9E3779B97F4A7C15ULL


def table_slots(capacity):
    """Slots of the table for a ring of ``capacity``: at most two thirds of them are used."""
    return capacity * 3 // 2 + 1


cdef struct Record:
    uint64_t key
    double time


cdef class DedupRing:
    cdef void *_map
    cdef size_t _map_bytes
    cdef Record *_ring
    cdef uint32_t *_slots
    cdef Py_ssize_t _capacity
    cdef uint64_t _size
    cdef Py_ssize_t _head
    cdef Py_ssize_t _filled
    cdef Py_ssize_t _len
    cdef double _ttl
    cdef Py_ssize_t _hits, _misses, _evictions

    def __cinit__(self, *args, **kwargs):
        self._map = NULL
        self._map_bytes = 0
        self._ring = NULL
        self._slots = NULL

    def __init__(self, capacity, ttl_secs):
        if not 1 <= capacity <= MAX_CAPACITY:
            raise LocalProtocolError(f"dedup capacity must be 1..{MAX_CAPACITY}, not {capacity}")
        cdef double ttl = ttl_secs
        if isnan(ttl) or ttl < 0:
            raise LocalProtocolError(f"dedup ttl must be >= 0 seconds, not {ttl_secs}")
        if self._map != NULL:
            raise LocalProtocolError("DedupRing.__init__ called twice")
        cdef Py_ssize_t cap = capacity
        cdef uint64_t size = table_slots(capacity)
        cdef size_t ring_bytes = cap * sizeof(Record)
        cdef size_t total = ring_bytes + size * sizeof(uint32_t)
        # Anonymous and private: zero pages until written, returned to the system when freed.
        cdef void *p = mmap(
            NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0
        )
        if p == MAP_FAILED:
            raise MemoryError()
        self._map = p
        self._map_bytes = total
        self._ring = <Record *>p
        self._slots = <uint32_t *>(<char *>p + ring_bytes)
        self._capacity = cap
        self._size = size
        self._ttl = ttl
        self._head = 0
        self._filled = 0
        self._len = 0
        self._hits = self._misses = self._evictions = 0

    def __dealloc__(self):
        if self._map != NULL:
            munmap(self._map, self._map_bytes)

    @property
    def capacity(self):
        return self._capacity

    @property
    def ttl_secs(self):
        return self._ttl

    @property
    def hits(self):
        return self._hits

    @property
    def misses(self):
        return self._misses

    @property
    def evictions(self):
        return self._evictions

    def __len__(self):
        return self._len

    cdef inline uint64_t _home(self, uint64_t k) noexcept nogil:
        return (((k * _GOLDEN) >> 32) * self._size) >> 32

    cdef inline uint64_t _next(self, uint64_t s) noexcept nogil:
        s += 1
        return 0 if s == self._size else s

    def add(self, key, double now):
        """Record a sighting of ``key`` at time ``now``; True if it should be emitted."""
        if self._map == NULL:
            # Only reachable through __new__ without __init__; never touch an unmapped ring.
            raise LocalProtocolError("DedupRing was not initialised")
        if not PyBytes_CheckExact(key):
            key = bytes(key)
        if PyBytes_GET_SIZE(key) < 8:
            raise LocalProtocolError(
                f"dedup key must be at least 8 bytes, not {PyBytes_GET_SIZE(key)}"
            )
        cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(key)
        cdef uint64_t k = 0
        cdef int b
        for b in range(8):
            k = (k << 8) | p[b]
        return self._add(k, now)

    cdef bint _add(self, uint64_t k, double now) noexcept:
        cdef uint64_t s = self._home(k)
        cdef uint32_t ref
        cdef Record *rec
        while True:
            ref = self._slots[s]
            if ref == 0:
                break
            rec = &self._ring[ref - 1]
            if rec.key == k:
                if now - rec.time < self._ttl:
                    self._hits += 1
                    return False
                # Expired: forget the old record; it is re-admitted at the head below.
                self._remove_slot(s)
                self._len -= 1
                break
            s = self._next(s)
        self._misses += 1
        self._insert(k, now)
        return True

    cdef void _insert(self, uint64_t k, double now) noexcept:
        cdef Py_ssize_t head = self._head
        if head < self._filled:
            self._evict(head)
        else:
            self._filled = head + 1
        cdef uint64_t s = self._home(k)
        while self._slots[s] != 0:
            s = self._next(s)
        self._slots[s] = <uint32_t>(head + 1)
        self._ring[head].key = k
        self._ring[head].time = now
        self._len += 1
        head += 1
        self._head = 0 if head == self._capacity else head

    cdef void _evict(self, Py_ssize_t pos) noexcept:
        # Drop the record at ``pos`` from the table if it is still live there.
        cdef uint32_t want = <uint32_t>(pos + 1)
        cdef uint64_t s = self._home(self._ring[pos].key)
        cdef uint32_t found
        while True:
            found = self._slots[s]
            if found == 0:
                return  # dropped earlier, when its key expired
            if found == want:
                break
            s = self._next(s)
        self._remove_slot(s)
        self._len -= 1
        self._evictions += 1

    cdef void _remove_slot(self, uint64_t i) noexcept:
        # Backward-shift deletion, exactly as in the pure twin.
        cdef uint64_t j = i
        cdef uint64_t h
        cdef uint32_t ref
        cdef bint stay
        while True:
            j = self._next(j)
            ref = self._slots[j]
            if ref == 0:
                break
            h = self._home(self._ring[ref - 1].key)
            if i <= j:
                stay = i < h <= j
            else:
                stay = i < h or h <= j
            if stay:
                continue
            self._slots[i] = ref
            i = j
        self._slots[i] = 0
