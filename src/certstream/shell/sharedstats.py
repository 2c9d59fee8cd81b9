"""The clients and traffic of the whole server, for ``/health/deep`` and ``/api/stats``:
each worker publishes its own into its row of the shared memory (``shell.sharedmem``)
whenever a client comes or goes and after each flush, and any worker that answers sums the
rows, so every answer counts every worker.  The traffic of workers that are gone stays in
the sums (the master moves it to row 0).

``LocalStats`` reads the hub of this process alone (no shared memory: a worker started
without the master's hooks, tests).
"""

from __future__ import annotations

from dataclasses import dataclass

from certstream.core.streams import STREAM_DOMAINS, STREAM_FULL, STREAM_LITE, STREAM_NAMES
from certstream.shell.hub import Hub
from certstream.shell.sharedmem import STATS_FIELDS, SharedMemory

__all__ = ["LocalStats", "SharedStats", "Totals"]

_ORDER = (STREAM_LITE, STREAM_FULL, STREAM_DOMAINS)
_NAMES = tuple(STREAM_NAMES[s] for s in _ORDER)


@dataclass(frozen=True, slots=True)
class Totals:
    """Streaming clients by transport and stream name, and what was sent to them."""

    clients: dict[str, dict[str, int]]
    frames_sent: int
    bytes_sent: int
    drops: int
    slow_closed: int

    @property
    def connections(self) -> int:
        return sum(sum(by_stream.values()) for by_stream in self.clients.values())

    def transport(self, name: str) -> int:
        return sum(self.clients[name].values())


def _values(hub: Hub) -> tuple[int, ...]:
    """The hub's figures in the order of ``sharedmem.STATS_FIELDS``."""
    rings = [hub.rings[s] for s in _ORDER]
    return (
        *(len(r.ws_clients) for r in rings), *(len(r.sse_clients) for r in rings),
        *(r.sent for r in rings), hub.bytes_sent, hub.drops, hub.slow_closed,
    )


def _totals(values: dict[str, int]) -> Totals:
    return Totals(
        clients={
            "websocket": {n: values[f"ws_{n}"] for n in _NAMES},
            "sse": {n: values[f"sse_{n}"] for n in _NAMES},
        },
        frames_sent=sum(values[f"frames_{n}"] for n in _NAMES),
        bytes_sent=values["bytes"],
        drops=values["drops"],
        slow_closed=values["slow_closed"],
    )


class LocalStats:
    __slots__ = ("hub",)

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def publish(self) -> None:
        """Nothing to share."""

    def totals(self) -> Totals:
        return _totals(dict(zip(STATS_FIELDS, _values(self.hub), strict=True)))


class SharedStats:
    """This worker's figures published in row ``row``; the totals of all rows."""

    __slots__ = ("hub", "mem", "row")

    def __init__(self, mem: SharedMemory, row: int, hub: Hub) -> None:
        self.mem = mem
        self.row = row
        self.hub = hub

    def publish(self) -> None:
        self.mem.publish(self.row, _values(self.hub))

    def totals(self) -> Totals:
        self.publish()
        return _totals(self.mem.sums())
