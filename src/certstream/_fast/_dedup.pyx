# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Bounded, TTL-aware dedup ring: the compiled twin of ``_dedup_py.py``.

Same algorithm, same layout, same results, same counters; see ``_dedup_py.py`` for the
theory of operation.  The ring records and the table live in one anonymous memory map made
in ``__init__``, sized for the largest table; the map never grows or moves, and its pages cost
memory only once written.  The table starts at 1,024 slots and doubles, rehashed in place, as
the ring fills (``table_size``), so only the pages of the slots in use are written.
"""

from libc.math cimport isnan
from libc.stdint cimport uint32_t, uint64_t
from posix.mman cimport (
    MAP_ANONYMOUS, MAP_FAILED, MAP_PRIVATE, PROT_READ, PROT_WRITE, mmap, munmap,
)

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_GET_SIZE

from certstream.errors import LocalProtocolError

cdef Py_ssize_t MAX_CAPACITY_C = 1 << 30  # typed, for the table's growth bound below
MAX_CAPACITY = MAX_CAPACITY_C
RECORD_BYTES = 16
SLOT_BYTES = 4

cdef uint64_t _GOLDEN = 0x9E3779B97F4A7C15ULL
# A new table's slots (one 4 KiB page), and the slot bit that marks an entry not yet rehashed
# while the table grows: a ring position + 1 never reaches it (capacity <= 2**30).
cdef uint64_t _FIRST_SLOTS = 1024
cdef uint32_t _PENDING = 0x80000000U


def table_slots(capacity):
    """The most slots the table of a ring of ``capacity`` grows to (see the pure twin)."""
    return capacity * 3 // 2 + 1


cdef inline Py_ssize_t _grow_at(uint64_t size, uint64_t max_size) noexcept nogil:
    # Live records at which the next insert grows the table first ((len + 1) * 3 > 2 * size);
    # a table at its largest holds a full ring within two thirds and never grows.
    return <Py_ssize_t>(2 * size // 3) if size < max_size else MAX_CAPACITY_C + 1


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
    cdef uint64_t _max_size
    cdef Py_ssize_t _grow_at
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
        cdef uint64_t max_size = table_slots(capacity)
        cdef size_t ring_bytes = cap * sizeof(Record)
        cdef size_t total = ring_bytes + max_size * sizeof(uint32_t)
        # Anonymous and private: zero pages until written, returned to the system when freed.
        # The table's region is sized for its largest; slots past the current size stay zero.
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
        self._max_size = max_size
        self._size = _FIRST_SLOTS if _FIRST_SLOTS < max_size else max_size
        self._grow_at = _grow_at(self._size, max_size)
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

    @property
    def table_size(self):
        """Slots of the table now: it doubles as the ring fills, up to ``table_slots``."""
        return self._size

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
        if self._len >= self._grow_at:
            self._grow()
        cdef uint64_t s = self._home(k)
        while self._slots[s] != 0:
            s = self._next(s)
        self._slots[s] = <uint32_t>(head + 1)
        self._ring[head].key = k
        self._ring[head].time = now
        self._len += 1
        head += 1
        self._head = 0 if head == self._capacity else head

    cdef void _grow(self) noexcept:
        # Rehash into twice the slots (or the most), in place, exactly as in the pure twin:
        # mark every entry pending, then place each at the first empty or pending slot of its
        # new probe chain, placing whatever pending entry it displaces next.
        cdef uint64_t old = self._size
        cdef uint64_t size = 2 * old
        if size > self._max_size:
            size = self._max_size
        cdef uint32_t *slots = self._slots
        cdef uint64_t i, s
        cdef uint32_t ref, found
        for i in range(old):
            if slots[i] != 0:
                slots[i] |= _PENDING
        # Slots [old, size) were never written: the table only grows, so they are still zero.
        self._size = size
        self._grow_at = _grow_at(size, self._max_size)
        for i in range(old):
            ref = slots[i]
            if not (ref & _PENDING):
                continue  # empty, or an entry placed here earlier in this pass
            slots[i] = 0
            ref ^= _PENDING
            while True:
                s = self._home(self._ring[ref - 1].key)
                while True:
                    found = slots[s]
                    if found == 0 or (found & _PENDING):
                        break
                    s = self._next(s)
                slots[s] = ref
                if found == 0:
                    break
                ref = found ^ _PENDING  # displaced: place it next

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
