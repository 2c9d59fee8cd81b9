"""The static-ct issuer cache: issuer certificates by SHA-256, fetched once for all logs."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import gevent.event

from certstream.core.tiles import issuer_path
from certstream.errors import DecodeError
from certstream.shell.httpclient import HTTPClient

__all__ = ["IssuerCache"]


class IssuerCache:
    """Issuer certificates of static-ct logs by SHA-256, fetched once for all logs.

    Concurrent requests for the same fingerprint share one fetch.  Bodies are checked
    against their fingerprint before they are cached, so a bad response is never kept.
    """

    def __init__(self, http: HTTPClient, capacity: int = 100_000) -> None:
        self.http = http
        self.capacity = capacity
        self._certs: dict[bytes, bytes] = {}
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
            if len(self._certs) >= self.capacity:
                self._certs.pop(next(iter(self._certs)))
            self._certs[fp] = body
            waiter.set(body)
            return body
        except BaseException as exc:
            waiter.set_exception(exc)
            raise
        finally:
            del self._pending[fp]
