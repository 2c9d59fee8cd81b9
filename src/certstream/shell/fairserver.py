"""``FairStreamServer``: gevent's ``StreamServer`` that asks :class:`AcceptShares` before each
accept, so that a crowd connecting at once spreads over the workers, and so that one worker
never holds more than its limit of connections.

The counts are the workers' rows in the memory the master shared (``shell.sharedmem``), the
same rows the whole-server limits and status are kept in: each worker's ``open`` count is
every connection it holds, from its accept to its end, whether a handler greenlet or a
stream reader (``shell.reader``) holds it.  (The limits' ``admitted`` count cannot serve
here: a connection is admitted only once its request has arrived, and a crowd of clients
reconnecting is accepted before any of them has sent one.)
"""

from __future__ import annotations

import time
from typing import Any

import gevent
from gevent.server import StreamServer

from certstream.shell.sharedmem import SharedMemory

__all__ = ["AcceptShares", "FairStreamServer"]


class AcceptShares:
    """This worker's open connections, and whether it should accept the next one.

    With ``mem`` (several workers), the count is also published in row ``row`` of the
    shared memory, and a worker ahead of its least loaded peer by more than ``SLACK``
    leaves the next connection to the others, as long as they make progress (a stuck or
    full peer must not stop the server accepting).  A stale read costs one connection's
    worth of balance, never correctness.  Whatever the peers, a worker holding ``limit``
    connections stops accepting until one ends.
    """

    SLACK = 1  # connections a worker may be ahead of the least loaded peer
    #: A peer whose count has not moved for this long is not accepting (busy, stuck or
    #: full): stop deferring to it.
    STALL_SECS = 0.05
    RETRY_SECS = 0.002  # how soon a deferring worker looks again
    FULL_RETRY_SECS = 0.05  # how soon a worker at its limit looks again
    PEERS_SECS = 0.1  # how often the list of live peers is read again

    def __init__(self, limit: int, mem: SharedMemory | None = None, row: int = -1) -> None:
        self.limit = limit
        self.mem = mem if row >= 0 else None
        self.row = row
        self.count = 0
        self._peers: list[int] = []
        self._peers_at = float("-inf")
        self._peer_total = -1
        self._peer_moved = 0.0

    def opened(self) -> None:
        self.count += 1
        if self.mem is not None:
            self.mem.count_open(self.row, 1)

    def closed(self) -> None:
        self.count -= 1
        if self.mem is not None:
            self.mem.count_open(self.row, -1)

    def live(self) -> int:
        """Workers (this one included) running now."""
        return len(self.mem.running()) if self.mem is not None else 1

    def wait(self, now: float, *, capped: bool = True) -> float:
        """0 when this worker should accept now, else how long to leave the listening
        socket to the others before looking again.  ``capped``: the limit applies (not on
        the metrics' own listener, whose scrapes should reach even a full worker)."""
        if capped and self.count >= self.limit:
            return self.FULL_RETRY_SECS
        mem = self.mem
        if mem is None:
            return 0.0
        # Workers come and go (and start together: a peer that claimed its row a moment
        # after this worker's first look must count at once): look every 0.1 s.
        if now - self._peers_at >= self.PEERS_SECS:
            self._peers_at = now
            self._peers = [row for row in mem.running() if row != self.row]
        counts = mem.open_counts(self._peers) if self._peers else []
        if not counts or self.count <= min(counts) + self.SLACK:
            self._peer_total = -1  # the next deferral starts its own clock
            return 0.0
        total = sum(counts)
        if total != self._peer_total:
            self._peer_total, self._peer_moved = total, now
        return 0.0 if now - self._peer_moved >= self.STALL_SECS else self.RETRY_SECS


class FairStreamServer(StreamServer):  # type: ignore[misc]  # gevent's server is untyped
    """A ``StreamServer`` that leaves a connection to a less loaded worker (or in the
    listen backlog while this one is at its limit) as long as ``shares`` says so, and
    looks again when it says."""

    shares: AcceptShares | None = None
    #: Whether ``shares.limit`` stops this server accepting (see ``AcceptShares.wait``).
    capped = True
    #: The pending "look again" timer (our own: gevent's ``_timer`` is private).
    _retry: Any = None

    def do_read(self) -> Any:
        shares = self.shares
        if shares is not None:
            wait = shares.wait(time.monotonic(), capped=self.capped)
            if wait > 0:
                # Leave the connection to another worker, or to the backlog; look again
                # shortly (as gevent itself does after an accept error).
                self.stop_accepting()
                self._retry = gevent.get_hub().loop.timer(wait)
                self._retry.start(self._look_again)
                return None
        args = super().do_read()
        if args and shares is not None:
            shares.opened()
        return args

    def stop_accepting(self) -> None:
        super().stop_accepting()
        self._cancel_retry()

    def _look_again(self) -> None:
        self._cancel_retry()
        if self.started:  # not closed or stopped meanwhile
            self.start_accepting()

    def _cancel_retry(self) -> None:
        retry, self._retry = self._retry, None
        if retry is not None:
            retry.stop()
            retry.close()
