"""Waiting in tests: poll a condition until it holds or a deadline passes."""

from __future__ import annotations

import time
from collections.abc import Callable

import gevent


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, what: str | None = None,
               *, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true; whether it became true within ``timeout`` seconds.

    With ``what``, a timeout fails the test instead, saying what was awaited; without it the
    caller asserts the result (``assert wait_until(...), details``).

    Between polls it sleeps with ``gevent.sleep``: greenlets of this process (a feed
    subscriber, a follower, the hub's flusher) run while the test waits, and gevent's loop
    releases the GIL while it sleeps, so threads (a FakeFeed's, a reader's) run as well.
    Where nothing runs on gevent this is a plain sleep.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        gevent.sleep(interval)
    if predicate():
        return True
    if what is not None:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")
    return False
