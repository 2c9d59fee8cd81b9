"""The static-ct issuer cache: issuer certificates by SHA-256, fetched once for all logs."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import gevent.event

from certstream.core.lru import ENTRY_OVERHEAD, BoundedLRU
from certstream.core.tiles import issuer_path
from certstream.errors import DecodeError
from certstream.shell.httpclient import HTTPClient

__all__ = ["ISSUER_CACHE_BYTES", "IssuerCache"]

#: Issuer certificates are ~1.5 KiB: 16 MiB keeps ~10,000 of them, more than all the CAs
#: that issue into CT, and bounds a log that serves odd or huge ones.
ISSUER_CACHE_BYTES = 16 * 1024 * 1024


class IssuerCache:
    """Issuer certificates of static-ct logs by SHA-256, fetched once for all logs.

    Concurrent requests for the same fingerprint share one fetch.  Bodies are checked
    against their fingerprint before they are cached, so a bad response is never kept.
    The least recently used go when the cache holds ``capacity`` issuers or ``max_bytes``.
    """

    def __init__(self, http: HTTPClient, capacity: int = 100_000,
                 max_bytes: int = ISSUER_CACHE_BYTES) -> None:
        self.http = http
        self.capacity = capacity
        self._certs: BoundedLRU[bytes, bytes] = BoundedLRU(capacity, max_bytes)
        self._pending: dict[bytes, gevent.event.AsyncResult] = {}

    def __len__(self) -> int:
        return len(self._certs)

    def get_many(self, prefix: str, fingerprints: Iterable[bytes]) -> dict[bytes, bytes]:
        """DER of every fingerprint; raises HTTPError or DecodeError if one is unavailable."""
        out: dict[bytes, bytes] = {}
        for fp in set(fingerprints):
            der = self._certs.get(fp)
            out[fp] = der if der is not None else self._fetch(prefix, fp)
        return out

    def _fetch(self, prefix: str, fp: bytes) -> bytes:
        waiter = self._pending.get(fp)
        if waiter is not None:
            result: bytes = waiter.get()
            return result
        waiter = self._pending[fp] = gevent.event.AsyncResult()
        try:
            body = self.http.get(prefix + issuer_path(fp)).body
            if hashlib.sha256(body).digest() != fp:
                raise DecodeError(f"issuer {fp.hex()}: body does not hash to its name")
            self._certs.put(fp, body, len(body) + ENTRY_OVERHEAD)
            waiter.set(body)
            return body
        except BaseException as exc:
            waiter.set_exception(exc)
            raise
        finally:
            del self._pending[fp]
