# cython: language_level=3
"""Handing freed heap back to the system: the compiled twin of ``_heap_py.py``.

The same call without ctypes: a process that trims pays for this small module instead of
ctypes' ~0.35 MiB.  Built everywhere; on a libc without ``malloc_trim`` (musl, macOS) it is
a no-op, as the pure twin is.
"""

cdef extern from *:
    """
    #if defined(__GLIBC__)
    #include <malloc.h>
    #define CS_HAVE_MALLOC_TRIM 1
    static int cs_malloc_trim(size_t pad) { return malloc_trim(pad); }
    #else
    #define CS_HAVE_MALLOC_TRIM 0
    static int cs_malloc_trim(size_t pad) { (void)pad; return 0; }
    #endif
    """
    const int CS_HAVE_MALLOC_TRIM
    int cs_malloc_trim(size_t pad) nogil

__all__ = ["malloc_trim"]


def malloc_trim() -> bool:
    """Give every arena's free pages back to the system; False where the libc cannot."""
    if not CS_HAVE_MALLOC_TRIM:
        return False
    with nogil:
        cs_malloc_trim(0)
    return True
