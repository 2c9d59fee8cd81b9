"""The static-ct issuer cache: issuer certificates by SHA-256, fetched once for all logs."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable

import gevent.event

from certstream.core.lru import ENTRY_OVERHEAD, BoundedLRU
from certstream.core.tiles import issuer_path
from certstream.errors import DecodeError
from certstream.shell.httpclient import HTTPClient, HTTPError

__all__ = ["ISSUER_ATTEMPTS", "ISSUER_CACHE_BYTES", "ISSUER_RETRY_SECS", "IssuerCache"]

#: Failed fetches of one issuer before entries that name it go out without it.
ISSUER_ATTEMPTS = 3
#: How long an issuer given up on is then left alone before one more fetch is tried.
ISSUER_RETRY_SECS = 600.0
#: Issuer certificates are ~1.5 KiB: 16 MiB keeps ~10,000 of them, more than all the CAs
#: that issue into CT, and bounds a log that serves odd or huge ones.
ISSUER_CACHE_BYTES = 16 * 1024 * 1024


class IssuerCache:
    """Issuer certificates of static-ct logs by SHA-256, fetched once for all logs.

    Concurrent requests for the same fingerprint share one fetch.  Bodies are checked
    against their fingerprint before they are cached, so a bad response is never kept.
    An issuer that cannot be had (404, a body that does not hash to its name) fails the
    caller's request ``ISSUER_ATTEMPTS`` times, so that a passing fault costs a retry, not
    a chain; after that it is left out of what ``get_many`` returns (the entries go out
    with the chain they have) and fetched again only every ``ISSUER_RETRY_SECS``: one
    issuer a log cannot serve must not stall the log.
    The least recently used go when the cache holds ``capacity`` issuers or ``max_bytes``.
    """

    def __init__(self, http: HTTPClient, capacity: int = 100_000,
                 max_bytes: int = ISSUER_CACHE_BYTES) -> None:
        self.http = http
        self.capacity = capacity
        self._certs: BoundedLRU[bytes, bytes] = BoundedLRU(capacity, max_bytes)
        self._pending: dict[bytes, gevent.event.AsyncResult] = {}
        # fingerprint -> (failed fetches, monotonic time of the last one)
        self._failed: dict[bytes, tuple[int, float]] = {}

    def __len__(self) -> int:
        return len(self._certs)

    def given_up(self, fp: bytes, now: float) -> bool:
        """``fp`` failed ``ISSUER_ATTEMPTS`` times and is not due for another try."""
        failed = self._failed.get(fp)
        return (failed is not None and failed[0] >= ISSUER_ATTEMPTS
                and now - failed[1] < ISSUER_RETRY_SECS)

    def get_many(self, prefix: str, fingerprints: Iterable[bytes]) -> dict[bytes, bytes]:
        """DER of every fingerprint but those given up on (see the class docstring); raises
        HTTPError or DecodeError while one is unavailable but not given up on yet."""
        out: dict[bytes, bytes] = {}
        for fp in set(fingerprints):
            der = self._certs.get(fp)
            if der is not None:
                out[fp] = der
            elif not self.given_up(fp, time.monotonic()):
                try:
                    out[fp] = self._fetch(prefix, fp)
                except (HTTPError, DecodeError):
                    if not self.given_up(fp, time.monotonic()):
                        raise
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
            self._failed.pop(fp, None)
            waiter.set(body)
            return body
        except BaseException as exc:
            if isinstance(exc, HTTPError | DecodeError):
                count = self._failed.pop(fp, (0, 0.0))[0] + 1
                if len(self._failed) >= self.capacity:
                    self._failed.pop(next(iter(self._failed)))
                self._failed[fp] = (count, time.monotonic())
            waiter.set_exception(exc)
            raise
        finally:
            del self._pending[fp]
