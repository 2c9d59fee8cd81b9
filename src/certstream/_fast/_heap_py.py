"""Handing freed heap back to the system: glibc's ``malloc_trim`` through ctypes (the pure
twin of ``_heap.pyx``, which calls it directly and spares the process ctypes' ~0.35 MiB).

Decoding a burst of entries allocates and frees tens of MiB of transient objects too small
for their own mappings; glibc keeps the freed memory in its arenas until asked.
``malloc_trim(0)`` returns the free pages of every arena to the kernel.  On a libc without
it (musl, macOS) this is a no-op.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

__all__ = ["malloc_trim"]


@functools.cache
def _libc_trim() -> Callable[[int], int] | None:
    try:
        import ctypes  # noqa: PLC0415 - only in a process that trims

        fn: Any = ctypes.CDLL(None).malloc_trim  # this process's symbols: its libc's
    except (ImportError, OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn  # type: ignore[no-any-return]


def malloc_trim() -> bool:
    """Give every arena's free pages back to the system; False where the libc cannot."""
    fn = _libc_trim()
    if fn is None:
        return False
    fn(0)
    return True
