"""Connection shares: each worker's open connections in memory shared by all the workers of
one master, so that a worker ahead of its peers leaves the next connection to them.

The memory is mapped in the gunicorn master by :func:`create_shared`, called from the
``on_starting`` hook (which both ``certstream`` and ``gunicorn -c gunicorn.conf.py`` run)
before any worker forks, so every worker maps the same pages; nothing is created at import.
"""

from __future__ import annotations

import mmap
import os
import struct

__all__ = ["ConnectionShares", "create_shared", "pid_alive", "shared"]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: the slot's pid was reused
        return False
    return True


class ConnectionShares:
    """Open connections per worker, in anonymous shared memory.

    A worker claims a slot (``pid``, ``count``) in ``claim`` and updates its count on every
    accept and close; ``may_accept`` compares it with its live peers.  Plain reads and
    writes of aligned 8-byte fields: a stale read costs one connection's worth of balance,
    never correctness.
    """

    SLACK = 1  # connections a worker may be ahead of the least loaded peer
    #: A peer whose count has not moved for this long is not accepting (busy, stuck or
    #: full): stop deferring to it.
    STALL_SECS = 0.05
    RETRY_SECS = 0.002  # how soon a deferring worker looks again
    PEERS_SECS = 0.1  # how often the list of live peers is read again
    _REC = struct.Struct("=qq")
    _Q = struct.Struct("=q")

    def __init__(self, slots: int = 64) -> None:
        self.slots = slots
        self.mem = mmap.mmap(-1, slots * self._REC.size)  # MAP_SHARED: survives fork()
        self.slot = -1
        self.count = 0
        self._peers: list[int] = []
        self._peers_at = float("-inf")
        self._peer_total = -1
        self._peer_moved = 0.0

    def claim(self, start: int, pid: int) -> None:
        """Take the first free slot from ``start`` (a worker's age spreads the starts)."""
        rec = self._REC
        for i in range(self.slots):
            slot = (start + i) % self.slots
            owner, _ = rec.unpack_from(self.mem, slot * rec.size)
            if owner in (0, pid) or not pid_alive(owner):
                rec.pack_into(self.mem, slot * rec.size, pid, self.count)
                self.slot = slot
                return
        # No slot: this worker simply accepts as it comes.

    def release(self) -> None:
        if self.slot >= 0:
            self._REC.pack_into(self.mem, self.slot * self._REC.size, 0, 0)
            self.slot = -1

    def opened(self) -> None:
        self.count += 1
        if self.slot >= 0:
            self._Q.pack_into(self.mem, self.slot * self._REC.size + 8, self.count)

    def closed(self) -> None:
        self.count -= 1
        if self.slot >= 0:
            self._Q.pack_into(self.mem, self.slot * self._REC.size + 8, self.count)

    def live(self) -> int:
        """Workers (this one included) holding a slot now."""
        rec = self._REC
        return sum(
            1 for slot in range(self.slots)
            if (owner := rec.unpack_from(self.mem, slot * rec.size)[0]) and pid_alive(owner)
        )

    def _refresh_peers(self) -> None:
        rec, peers = self._REC, []
        for slot in range(self.slots):
            owner, _ = rec.unpack_from(self.mem, slot * rec.size)
            if owner and slot != self.slot and pid_alive(owner):
                peers.append(slot)
        self._peers = peers

    def may_accept(self, now: float) -> bool:
        if self.slot < 0:
            return True
        # Workers come and go (and start together: a peer that claimed its slot a moment
        # after this worker's first look must count at once): look every 0.1 s, ~25 µs.
        if now - self._peers_at >= self.PEERS_SECS:
            self._peers_at = now
            self._refresh_peers()
        rec, mem = self._REC, self.mem
        least, total = None, 0
        for slot in self._peers:
            owner, count = rec.unpack_from(mem, slot * rec.size)
            if owner == 0:
                continue  # it left (released its slot)
            total += count
            least = count if least is None or count < least else least
        if least is None or self.count <= least + self.SLACK:
            self._peer_total = -1  # the next deferral starts its own clock
            return True
        if total != self._peer_total:
            self._peer_total, self._peer_moved = total, now
        return now - self._peer_moved >= self.STALL_SECS


class _Master:
    """The shares this master mapped for its workers (None until ``create_shared``)."""

    shares: ConnectionShares | None = None


def create_shared() -> ConnectionShares:
    """Map the shares in the master, before any worker forks (idempotent)."""
    if _Master.shares is None:
        _Master.shares = ConnectionShares()
    return _Master.shares


def shared() -> ConnectionShares | None:
    """The shares a forked worker inherited from its master, if it mapped any."""
    return _Master.shares
