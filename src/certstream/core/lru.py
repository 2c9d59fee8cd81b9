"""A least-recently-used map bounded in bytes as well as in entries.

A cache bounded only by its number of entries is bounded in memory only as far as its
entries are alike: chain certificates, issuer certificates and payloads vary from a few
hundred bytes to tens of KiB.  Each entry here carries the caller's estimate of the bytes it
keeps alive, and the oldest entries go when either bound is passed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["ENTRY_OVERHEAD", "BoundedLRU"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: What one entry costs besides its payload bytes (the map's node, the value tuple, the
#: key and value object headers), for callers that estimate sizes from payload lengths.
ENTRY_OVERHEAD = 200


class BoundedLRU(Generic[K, V]):
    """``get`` refreshes an entry, ``put`` adds one and evicts the least recently used until
    at most ``max_entries`` entries and ``max_bytes`` bytes remain.  A value larger than
    ``max_bytes`` on its own is not kept.  ``on_evict(key, value)`` hears of every entry
    that leaves because of the bounds."""

    __slots__ = ("_items", "max_bytes", "max_entries", "nbytes", "on_evict")

    def __init__(self, max_entries: int, max_bytes: int,
                 on_evict: Callable[[K, V], None] | None = None) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.on_evict = on_evict
        self.nbytes = 0
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: K) -> V | None:
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: K, value: V, size: int) -> None:
        items = self._items
        old = items.pop(key, None)
        if old is not None:
            self.nbytes -= old[1]
        if size > self.max_bytes:
            return
        items[key] = (value, size)
        self.nbytes += size
        while len(items) > self.max_entries or self.nbytes > self.max_bytes:
            gone, (value_gone, size_gone) = items.popitem(last=False)
            self.nbytes -= size_gone
            if self.on_evict is not None:
                self.on_evict(gone, value_gone)
