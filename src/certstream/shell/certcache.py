"""The REST API's certificate cache: the last lite messages by certificate hash, for
``/api/cert/{hash}``, bounded in count and in bytes.

A worker feeds it every lite message it receives (``api.cache_capacity``,
``api.cache_max_bytes``); ``certstream.shell.endpoints`` answers from it.
"""

from __future__ import annotations

from certstream.config import ApiSettings
from certstream.core.lru import ENTRY_OVERHEAD, BoundedLRU

__all__ = ["CertCache"]


class CertCache:
    """The last ``capacity`` lite messages by certificate hash, for ``/api/cert/{hash}``, and
    at most ``max_bytes`` of them (a payload's size varies with its certificate's names).

    The hashes are read from the payload bytes (the first ``"sha256"``, ``"sha1"`` and
    ``"fingerprint"`` values: the leaf's, as a lite message carries no chain) instead of
    parsing the JSON, so feeding the cache costs a few substring searches per entry.  Keys
    are upper-case hex without colons; lookups ignore case and colons the same way.  Each
    message is kept once, under its first hash; the others point to that one.
    """

    _KEYS = (b'"sha256":"', b'"sha1":"', b'"fingerprint":"')

    def __init__(self, capacity: int, max_bytes: int = ApiSettings().cache_max_bytes) -> None:
        self.capacity = capacity
        self._alias: dict[bytes, bytes] = {}  # every hash -> the first one
        self._certs: BoundedLRU[bytes, tuple[bytes, tuple[bytes, ...]]] = BoundedLRU(
            capacity, max_bytes, on_evict=self._forget)

    @staticmethod
    def normalize(text: bytes) -> bytes:
        return text.replace(b":", b"").strip().upper()

    def add(self, lite: bytes) -> None:
        digests: list[bytes] = []
        for key in self._KEYS:
            start = lite.find(key)
            if start < 0:
                continue
            start += len(key)
            end = lite.find(b'"', start)
            if end < 0:
                continue
            digest = self.normalize(lite[start:end])
            if digest and digest not in digests:
                digests.append(digest)
        if not digests:
            return
        first = digests[0]
        for digest in digests:
            self._alias[digest] = first
        size = len(lite) + sum(map(len, digests)) + ENTRY_OVERHEAD
        self._certs.put(first, (lite, tuple(digests)), size)

    def _forget(self, first: bytes, value: tuple[bytes, tuple[bytes, ...]]) -> None:
        for digest in value[1]:
            if self._alias.get(digest) == first:
                del self._alias[digest]

    def get(self, text: str) -> bytes | None:
        first = self._alias.get(self.normalize(text.encode("ascii", "replace")))
        cached = self._certs.get(first) if first is not None else None
        return cached[0] if cached is not None else None

    def __len__(self) -> int:
        """Hashes that find a message (two or three per certificate)."""
        return len(self._alias)
