"""A fixed-size table of records keyed by 16-byte keys, laid out in a plain buffer, so that
processes can share it through one memory mapping (``certstream.shell.sharedlimits`` keeps
client addresses there: connections per address, rate-limit states).

Layout: ``capacity`` records of ``record_size`` bytes from ``offset``.  A record starts with
a one-byte *used* flag, 7 bytes of padding and the 16-byte key (``KEY_END`` = 24); the rest
is the caller's.  ``capacity`` is a power of two.

Open addressing with linear probing, bounded: a key lives within ``window`` records of its
home (``hash & (capacity - 1)``), so every lookup reads at most ``window`` records, however
full the table is.  Records are never emptied once used (no holes, so a lookup may stop at
the first never-used record); a used record whose contents say it is as good as absent (no
connections left, a rate state that refilled) is *reusable*: the caller says which with a
predicate, and a new key takes the first reusable or never-used record of its window.  When
the window has neither, the table is full for that key and the caller decides (refuse, or
evict with :meth:`SlotTable.victim`).

Nothing here locks: the caller serialises access (one lock around each operation).  Sans-IO:
any writable buffer (an ``mmap``, a ``bytearray`` in tests) will do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import mmap

__all__ = ["KEY_END", "KEY_SIZE", "SlotTable"]

KEY_SIZE = 16
#: Where a record's own fields start.
KEY_END = 8 + KEY_SIZE
_KEY_START = 8


class SlotTable:
    """See the module docstring."""

    __slots__ = ("buf", "capacity", "mask", "offset", "record_size", "window")

    def __init__(self, buf: bytearray | mmap.mmap, offset: int, capacity: int, record_size: int,
                 window: int = 32) -> None:
        if capacity < 1 or capacity & (capacity - 1):
            raise ValueError(f"capacity must be a power of two, not {capacity}")
        if record_size < KEY_END or window < 1:
            raise ValueError("record_size must hold the key, window must be >= 1")
        if offset + capacity * record_size > len(buf):
            raise ValueError("the table does not fit in the buffer")
        self.buf = buf
        self.offset = offset
        self.capacity = capacity
        self.mask = capacity - 1
        self.record_size = record_size
        self.window = min(window, capacity)

    @staticmethod
    def size(capacity: int, record_size: int) -> int:
        """Bytes a table of this shape takes."""
        return capacity * record_size

    def at(self, index: int) -> int:
        """The buffer offset of record ``index``."""
        return self.offset + index * self.record_size

    def probe(self, hashed: int) -> Iterator[int]:
        """The record indices of a key's window, home first."""
        home = hashed & self.mask
        for i in range(self.window):
            yield (home + i) & self.mask

    def is_used(self, index: int) -> bool:
        at = self.at(index)
        return self.buf[at:at + 1] != b"\0"

    def key(self, index: int) -> bytes:
        at = self.at(index)
        return bytes(self.buf[at + _KEY_START:at + KEY_END])

    def lookup(self, key: bytes, hashed: int,
               reusable: Callable[[int], bool] | None = None) -> tuple[int, int]:
        """``(index of key, -1)`` if present, else ``(-1, a record it may take or -1)``."""
        buf, size, base = self.buf, self.record_size, self.offset
        free = -1
        for index in self.probe(hashed):
            at = base + index * size
            if buf[at:at + 1] == b"\0":
                return -1, (index if free < 0 else free)  # the chain ends here
            if buf[at + _KEY_START:at + KEY_END] == key:
                return index, -1
            if free < 0 and reusable is not None and reusable(index):
                free = index
        return -1, free

    def take(self, index: int, key: bytes, fields: bytes = b"") -> None:
        """Make record ``index`` the key's, its own fields set to ``fields`` (zeros when
        short)."""
        if len(key) != KEY_SIZE:
            raise ValueError(f"keys are {KEY_SIZE} bytes")
        at = self.at(index)
        body = fields.ljust(self.record_size - KEY_END, b"\0")
        self.buf[at:at + self.record_size] = b"\1" + b"\0" * 7 + key + body

    def victim(self, hashed: int, score: Callable[[int], float]) -> int:
        """The record of the key's window with the lowest ``score`` (e.g. the least
        recently used), to be taken over when the window is full."""
        return min(self.probe(hashed), key=score)

    def used(self) -> Iterator[int]:
        """Every used record's index (a full scan: for housekeeping, not per request)."""
        buf, size, base = self.buf, self.record_size, self.offset
        for index in range(self.capacity):
            at = base + index * size
            if buf[at:at + 1] != b"\0":
                yield index
