"""The connection and rate limits of the whole server, whatever the number of workers:
streaming connections in total and per client address, and the per-address rate rule,
counted in the memory the workers share (``shell.sharedmem``).

Every streaming connection is counted while it is open (:meth:`SharedConnections.admit`
reserves a place before the upgrade, :meth:`~SharedConnections.release` gives it back when
the connection ends, however it ends), whether or not limits are on, so that limits switched
on by a hot reload count the connections already open.  A worker that dies gives its places
back through the master (``SharedMemory.reclaim``).

The address table is bounded (``sharedmem.create`` sizes it at twice ``max_connections``).
An address that finds no room in its window of the table is refused with 429 while a
per-address limit is on (it cannot be counted, so it cannot be let in safely), and admitted
uncounted per address when it is off.  The rate table keeps ``RATE_CAPACITY`` addresses: a
state that has refilled is as good as absent and is reused first; when an address's window
is full of live states, the least recently seen of them starts over (with a full bucket).

``LocalConnections`` and ``core.ratelimit.RateLimiter`` are the same limits for one process,
used when there is no shared memory (a worker started without the master's hooks, tests).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from certstream.core import ratelimit
from certstream.core.ratelimit import RateRule
from certstream.core.slottable import KEY_END
from certstream.shell.sharedmem import SharedMemory

__all__ = [
    "LocalConnections",
    "Place",
    "SharedConnections",
    "SharedRates",
    "address_key",
]

_STATE = struct.Struct("=" + "d" * ratelimit.STATE_LEN)
_U32 = struct.Struct("=I")
_V4_MAPPED = b"\0" * 10 + b"\xff\xff"

#: Refusal reasons of ``admit`` (also the label of the metric that counts them).
MAX_CONNECTIONS = "max_connections"
PER_IP_LIMIT = "per_ip_limit"
TABLE_FULL = "address_table_full"


def address_key(ip: str) -> bytes:
    """16 bytes per client address: IPv6 as is, IPv4 mapped into IPv6 (``::ffff:a.b.c.d``);
    anything else (a Unix socket's peer) is the all-zero key."""
    try:
        return socket.inet_pton(socket.AF_INET6, ip)
    except OSError:
        pass
    try:
        return _V4_MAPPED + socket.inet_pton(socket.AF_INET, ip)
    except OSError:
        return b"\0" * 16


@dataclass(frozen=True, slots=True)
class Place:
    """An admitted streaming connection: what ``release`` must give back."""

    key: bytes
    per_address: bool  # counted in the address table (not when it had no room)


class LocalConnections:
    """Streaming connections of this process only (no shared memory)."""

    __slots__ = ("by_address", "total")

    def __init__(self) -> None:
        self.total = 0
        self.by_address: dict[bytes, int] = {}

    def admit(self, ip: str, max_total: int | None, per_ip: int | None) -> Place | str:
        key = address_key(ip)
        if max_total is not None and self.total >= max_total:
            return MAX_CONNECTIONS
        held = self.by_address.get(key, 0)
        if per_ip is not None and held >= per_ip:
            return PER_IP_LIMIT
        self.total += 1
        self.by_address[key] = held + 1
        return Place(key, True)

    def release(self, place: Place) -> None:
        self.total -= 1
        left = self.by_address.pop(place.key, 1) - 1
        if left > 0:
            self.by_address[place.key] = left

    def count(self, ip: str) -> int:
        return self.by_address.get(address_key(ip), 0)


class SharedConnections:
    """Streaming connections of every worker, this one writing column ``row``."""

    __slots__ = ("mem", "row")

    def __init__(self, mem: SharedMemory, row: int) -> None:
        self.mem = mem
        self.row = row

    def _unused(self, index: int) -> bool:
        return not any(self.mem.address_counts(index))

    def admit(self, ip: str, max_total: int | None, per_ip: int | None) -> Place | str:
        """Reserve a place for a streaming connection from ``ip``, or say which limit is
        reached; checked and counted in one step under the lock, so that two workers never
        both take the last place."""
        key = address_key(ip)
        mem = self.mem
        table = mem.addresses
        with mem.lock:
            if max_total is not None and mem.total >= max_total:
                return MAX_CONNECTIONS
            index, free = table.lookup(key, hash(key), self._unused)
            if index < 0 and free >= 0:
                table.take(free, key)
                index = free
            if index >= 0:
                if per_ip is not None and sum(mem.address_counts(index)) >= per_ip:
                    return PER_IP_LIMIT
                at = mem.column_at(index, self.row)
                _U32.pack_into(mem.mem, at, _U32.unpack_from(mem.mem, at)[0] + 1)
            elif per_ip is not None:
                return TABLE_FULL
            mem.total = mem.total + 1
            mem.add(self.row, "admitted", 1)
        return Place(key, index >= 0)

    def release(self, place: Place) -> None:
        mem = self.mem
        with mem.lock:
            if place.per_address:
                index, _ = mem.addresses.lookup(place.key, hash(place.key))
                if index >= 0:
                    at = mem.column_at(index, self.row)
                    held = _U32.unpack_from(mem.mem, at)[0]
                    _U32.pack_into(mem.mem, at, max(0, held - 1))
            mem.total = max(0, mem.total - 1)
            mem.add(self.row, "admitted", -1)

    def count(self, ip: str) -> int:
        """Connections from ``ip`` on all workers."""
        key = address_key(ip)
        with self.mem.lock:
            index, _ = self.mem.addresses.lookup(key, hash(key))
            return sum(self.mem.address_counts(index)) if index >= 0 else 0


class SharedRates:
    """The rate-limit state of every address, shared by all workers."""

    __slots__ = ("mem",)

    def __init__(self, mem: SharedMemory) -> None:
        self.mem = mem

    def _state_at(self, index: int) -> int:
        return self.mem.rates.at(index) + KEY_END

    def check(self, ip: str, rule: RateRule, now: float) -> float:
        """Count one request from ``ip`` at ``now`` (monotonic): 0.0 when it may proceed,
        else the seconds until it would be allowed."""
        key = address_key(ip)
        hashed = hash(key)
        mem = self.mem.mem
        table = self.mem.rates

        def idle(index: int) -> bool:
            return ratelimit.is_idle(rule, list(_STATE.unpack_from(mem, self._state_at(index))),
                                     now)

        def last_seen(index: int) -> float:
            seen: float = _STATE.unpack_from(mem, self._state_at(index))[ratelimit.ST_REFILLED]
            return seen

        with self.mem.rate_lock:
            index, free = table.lookup(key, hashed, idle)
            if index >= 0:
                state = list(_STATE.unpack_from(mem, self._state_at(index)))
            else:
                index = free if free >= 0 else table.victim(hashed, last_seen)
                state = ratelimit.fresh_state(rule, now)
                table.take(index, key)
            wait = ratelimit.check(rule, state, now)
            _STATE.pack_into(mem, self._state_at(index), *state)
        return wait
