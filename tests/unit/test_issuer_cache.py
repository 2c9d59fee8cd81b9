"""shell.issuers.IssuerCache bounded in bytes: the least recently used issuers go, and come
back by a new fetch (the real fetches over HTTP are tests/integration/test_followers.py)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from certstream.shell.issuers import IssuerCache


@dataclass
class _Body:
    body: bytes


class _Log:
    """Serves issuer bodies by the fingerprint at the end of the path, and counts requests."""

    def __init__(self, bodies: list[bytes]) -> None:
        self.by_hex = {hashlib.sha256(b).hexdigest(): b for b in bodies}
        self.gets: list[str] = []

    def get(self, url: str) -> _Body:
        self.gets.append(url)
        return _Body(self.by_hex[url.rsplit("/", 1)[1]])


def test_issuers_are_bounded_in_bytes_and_fetched_again_when_evicted() -> None:
    bodies = [bytes([i]) * 4000 for i in range(4)]
    fps = [hashlib.sha256(b).digest() for b in bodies]
    log = _Log(bodies)
    http: Any = log
    cache = IssuerCache(http, max_bytes=10_000)  # room for two of them
    for fp, body in zip(fps, bodies, strict=True):
        assert cache.get_many("https://log/", [fp]) == {fp: body}
    assert len(cache) == 2 and len(log.gets) == 4
    assert cache.get_many("https://log/", [fps[3]]) == {fps[3]: bodies[3]}
    assert len(log.gets) == 4  # still cached
    assert cache.get_many("https://log/", [fps[0]]) == {fps[0]: bodies[0]}
    assert len(log.gets) == 5  # evicted, fetched again
