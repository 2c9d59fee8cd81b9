# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Bounded, TTL-aware dedup ring: the compiled twin of ``_dedup_py.py``.

Same algorithm, same results, same counters; see ``_dedup_py.py`` for the theory of
operation.  The arrays are allocated once in ``__cinit__`` and never grow.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.math cimport isnan
from libc.stdint cimport int32_t, uint8_t, uint64_t
from libc.string cimport memset

from certstream.errors import LocalProtocolError

MAX_CAPACITY = 1 << 30

cdef uint64_t _GOLDEN = 0x9E3779B97F4A7C15ULL
cdef int32_t _EMPTY = -1


cdef class DedupRing:
    cdef int32_t *_slots
    cdef uint64_t *_keys
    cdef double *_times
    cdef uint8_t *_live
    cdef Py_ssize_t _capacity
    cdef uint64_t _mask
    cdef int _shift
    cdef Py_ssize_t _head
    cdef Py_ssize_t _len
    cdef double _ttl
    cdef Py_ssize_t _hits, _misses, _evictions

    def __cinit__(self, *args, **kwargs):
        self._slots = NULL
        self._keys = NULL
        self._times = NULL
        self._live = NULL

    def __init__(self, capacity, ttl_secs):
        if not 1 <= capacity <= MAX_CAPACITY:
            raise LocalProtocolError(f"dedup capacity must be 1..{MAX_CAPACITY}, not {capacity}")
        cdef double ttl = ttl_secs
        if isnan(ttl) or ttl < 0:
            raise LocalProtocolError(f"dedup ttl must be >= 0 seconds, not {ttl_secs}")
        if self._slots != NULL:
            raise LocalProtocolError("DedupRing.__init__ called twice")
        cdef int bits = max(3, (2 * capacity - 1).bit_length())
        cdef Py_ssize_t size = (<Py_ssize_t>1) << bits
        self._capacity = capacity
        self._ttl = ttl
        self._shift = 64 - bits
        self._mask = <uint64_t>(size - 1)
        self._slots = <int32_t *>PyMem_Malloc(size * sizeof(int32_t))
        self._keys = <uint64_t *>PyMem_Malloc(self._capacity * sizeof(uint64_t))
        self._times = <double *>PyMem_Malloc(self._capacity * sizeof(double))
        self._live = <uint8_t *>PyMem_Malloc(self._capacity * sizeof(uint8_t))
        if not (self._slots and self._keys and self._times and self._live):
            raise MemoryError()
        # 0xff bytes make every int32 slot -1 (_EMPTY).
        memset(self._slots, 0xFF, size * sizeof(int32_t))
        memset(self._keys, 0, self._capacity * sizeof(uint64_t))
        memset(self._times, 0, self._capacity * sizeof(double))
        memset(self._live, 0, self._capacity * sizeof(uint8_t))
        self._head = 0
        self._len = 0
        self._hits = self._misses = self._evictions = 0

    def __dealloc__(self):
        PyMem_Free(self._slots)
        PyMem_Free(self._keys)
        PyMem_Free(self._times)
        PyMem_Free(self._live)

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
        return (k * _GOLDEN) >> self._shift

    def add(self, key, double now):
        """Record a sighting of ``key`` at time ``now``; True if it should be emitted."""
        if self._slots == NULL:
            # Only reachable through __new__ without __init__; never touch NULL arrays.
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
        cdef int32_t pos
        while True:
            pos = self._slots[s]
            if pos == _EMPTY:
                break
            if self._keys[pos] == k:
                if now - self._times[pos] < self._ttl:
                    self._hits += 1
                    return False
                # Expired: forget the old record; it is re-admitted at the head below.
                self._remove_slot(s)
                self._live[pos] = 0
                self._len -= 1
                break
            s = (s + 1) & self._mask
        self._misses += 1
        self._insert(k, now)
        return True

    cdef void _insert(self, uint64_t k, double now) noexcept:
        cdef Py_ssize_t head = self._head
        if self._live[head]:
            self._evict(head)
        cdef uint64_t s = self._home(k)
        while self._slots[s] != _EMPTY:
            s = (s + 1) & self._mask
        self._slots[s] = <int32_t>head
        self._keys[head] = k
        self._times[head] = now
        self._live[head] = 1
        self._len += 1
        head += 1
        self._head = 0 if head == self._capacity else head

    cdef void _evict(self, Py_ssize_t pos) noexcept:
        cdef uint64_t s = self._home(self._keys[pos])
        while self._slots[s] != pos:
            s = (s + 1) & self._mask
        self._remove_slot(s)
        self._live[pos] = 0
        self._len -= 1
        self._evictions += 1

    cdef void _remove_slot(self, uint64_t i) noexcept:
        # Backward-shift deletion, exactly as in the pure twin.
        cdef uint64_t j = i
        cdef uint64_t h
        cdef int32_t pos
        cdef bint stay
        while True:
            j = (j + 1) & self._mask
            pos = self._slots[j]
            if pos == _EMPTY:
                break
            h = self._home(self._keys[pos])
            if i <= j:
                stay = i < h <= j
            else:
                stay = i < h or h <= j
            if stay:
                continue
            self._slots[i] = pos
            i = j
        self._slots[i] = _EMPTY
