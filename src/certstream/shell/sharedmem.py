"""Memory every worker of one gunicorn master shares, and the lock that guards it: one row
per worker (its pid, whether it stopped cleanly, the streaming connections it admitted, the
connections of every kind it holds open, its clients and traffic), the table of client
addresses (streaming connections per address, one column per worker) and the table of
rate-limit states per address.

The master maps it in ``on_starting`` (:func:`create`), before any worker forks, so that
every worker maps the same pages (``MAP_SHARED``); nothing is mapped at import.  Pages are
only backed once written, so the tables cost memory in proportion to their use.

Why a POSIX record lock (``fcntl``) on one byte of an unlinked temporary file the master
opened: two workers must not both admit the last allowed connection, and the address table
is read, changed and written back, so every operation runs under an exclusive lock between
processes.  A record lock is owned by the process, so a forked worker locks through the fd it
inherited and excludes its peers and the master; and the kernel drops it when its holder
dies, so a worker killed inside an operation (SIGKILL, OOM) cannot leave the others waiting
forever, as a semaphore or a spin lock in the shared pages would.  A lock and an unlock are
two system calls (~1 µs each, see the README); what they guard is a few struct reads and
writes, and never yields to another greenlet (within one process a record lock does not
exclude, so nothing inside may switch greenlets).  Reads and writes of the pages happen only
under the lock, so no process sees a half-written value.

Rows: row 0 holds what workers that are gone had sent (frames, bytes, ...); each live worker
claims a row at start (:meth:`SharedMemory.claim`) and writes only its own.  Workers that
balance their accepts (``shell.fairserver``) read each other's ``open`` count and state.  A
row is ``STARTING`` from its claim until its worker is about to accept
(:meth:`SharedMemory.mark_running`, once it is subscribed to the ingest's feed): a peer
neither balances with it nor counts it as up before, so that at a start the workers begin
accepting together however long each one's feed took.
When a worker exits, the master's ``child_exit`` hook reclaims its row
(:meth:`SharedMemory.reclaim`): its connections leave the totals and its column of the
address table, its traffic moves to row 0, and the hook learns whether it stopped cleanly
(else it died, which the metrics count).
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import struct
import tempfile
from collections.abc import Iterator
from typing import IO

from certstream.core.ratelimit import STATE_LEN
from certstream.core.slottable import KEY_END, SlotTable

__all__ = [
    "FIELDS",
    "RUNNING",
    "STARTING",
    "STATS_FIELDS",
    "STOPPED",
    "ProcessLock",
    "SharedMemory",
    "create",
    "pid_alive",
    "shared",
]

#: A row's fields, each a signed 64-bit integer.
FIELDS = (
    "pid", "state", "admitted", "open",
    "ws_lite", "ws_full", "ws_domains", "sse_lite", "sse_full", "sse_domains",
    "frames_lite", "frames_full", "frames_domains", "bytes", "drops", "slow_closed",
)
_F = {name: i for i, name in enumerate(FIELDS)}
#: The fields a worker publishes (``SharedMemory.publish``): from its clients on.
STATS_FIRST = _F["ws_lite"]
STATS_FIELDS = FIELDS[STATS_FIRST:]
#: The fields that add up over time and survive their worker in row 0.
CUMULATIVE = ("frames_lite", "frames_full", "frames_domains", "bytes", "drops", "slow_closed")
FREE, RUNNING, STOPPED, STARTING = 0, 1, 2, 3

_Q = struct.Struct("=q")
_ROW = struct.Struct("=" + "q" * len(FIELDS))
_STATS = struct.Struct("=" + "q" * (len(FIELDS) - STATS_FIRST))
_U32 = struct.Struct("=I")
_HEADER = 64  # the total of admitted connections, then room to spare
_TOTAL_AT = 0

#: Largest address table (records): 2**17 records of ~64 bytes, ~8 MB when all are used.
MAX_ADDRESSES = 1 << 17
#: Rate-limit states kept: ~200 bytes each, ~13 MB when all are used.
RATE_CAPACITY = 1 << 16

LOCK_CONNECTIONS = 0  # rows and the address table
LOCK_RATES = 1


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: the pid was reused
        return False
    return True


class ProcessLock:
    """An exclusive lock between processes: a record lock on byte ``byte`` of ``file``."""

    __slots__ = ("byte", "fd")

    def __init__(self, file: IO[bytes], byte: int) -> None:
        self.fd = file.fileno()
        self.byte = byte

    def __enter__(self) -> None:
        fcntl.lockf(self.fd, fcntl.LOCK_EX, 1, self.byte)

    def __exit__(self, *exc: object) -> None:
        fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, self.byte)


class SharedMemory:
    """The shared pages and their locks (see the module docstring)."""

    def __init__(self, rows: int, addresses: int, rates: int = RATE_CAPACITY) -> None:
        if rows < 2:
            raise ValueError("at least one worker row besides row 0")
        self.rows = rows
        # An address record: its key, then one connection count per worker row.
        address_record = -(-(KEY_END + 4 * rows) // 8) * 8
        rate_record = KEY_END + 8 * STATE_LEN
        self.rows_at = _HEADER
        addresses_at = self.rows_at + rows * _ROW.size
        rates_at = addresses_at + SlotTable.size(addresses, address_record)
        size = rates_at + SlotTable.size(rates, rate_record)
        self.mem = mmap.mmap(-1, size)  # MAP_SHARED | MAP_ANONYMOUS: survives fork()
        self.addresses = SlotTable(self.mem, addresses_at, addresses, address_record)
        self.rates = SlotTable(self.mem, rates_at, rates, rate_record)
        # Unlinked at once: only the fd the children inherit refers to it.  Kept open for the
        # life of the process (closing any fd of the file would drop our record locks).
        self._file = tempfile.TemporaryFile()  # noqa: SIM115
        self.lock = ProcessLock(self._file, LOCK_CONNECTIONS)
        self.rate_lock = ProcessLock(self._file, LOCK_RATES)

    # -- rows (call under ``lock``) -------------------------------------------------------------

    def row_at(self, row: int) -> int:
        return self.rows_at + row * _ROW.size

    def field_at(self, row: int, name: str) -> int:
        return self.row_at(row) + 8 * _F[name]

    def get(self, row: int, name: str) -> int:
        value: int = _Q.unpack_from(self.mem, self.field_at(row, name))[0]
        return value

    def add(self, row: int, name: str, delta: int) -> None:
        at = self.field_at(row, name)
        _Q.pack_into(self.mem, at, _Q.unpack_from(self.mem, at)[0] + delta)

    def read_rows(self) -> Iterator[tuple[int, ...]]:
        """Every row (row 0 first) as a tuple of ``FIELDS``."""
        for row in range(self.rows):
            yield _ROW.unpack_from(self.mem, self.row_at(row))

    @property
    def total(self) -> int:
        value: int = _Q.unpack_from(self.mem, _TOTAL_AT)[0]
        return value

    @total.setter
    def total(self, value: int) -> None:
        _Q.pack_into(self.mem, _TOTAL_AT, value)

    def column_at(self, index: int, row: int) -> int:
        """Offset of worker ``row``'s connection count in address record ``index``."""
        return self.addresses.at(index) + KEY_END + 4 * row

    def address_counts(self, index: int) -> tuple[int, ...]:
        at = self.addresses.at(index) + KEY_END
        return struct.unpack_from(f"={self.rows}I", self.mem, at)

    # -- worker lifecycle ---------------------------------------------------------------------

    def claim(self, pid: int) -> int:
        """A row for worker ``pid`` (>= 1), or -1 when every row is held by a live worker.
        A row whose worker died without the master reclaiming it is reclaimed here."""
        with self.lock:
            free = -1
            for row in range(1, self.rows):
                owner, state = self.get(row, "pid"), self.get(row, "state")
                if owner == pid or state == FREE:
                    free = row
                    break
                if free < 0 and not pid_alive(owner):
                    free = row
            if free < 0:
                return -1
            if self.get(free, "state") != FREE:
                self._retire(free)
            _ROW.pack_into(self.mem, self.row_at(free), pid, STARTING,
                           *([0] * (len(FIELDS) - 2)))
            return free

    def mark_running(self, row: int) -> None:
        """This worker is about to accept connections: its peers balance with it from now
        on (see "Rows" in the module docstring)."""
        with self.lock:
            if self.get(row, "state") == STARTING:
                _Q.pack_into(self.mem, self.field_at(row, "state"), RUNNING)

    def mark_stopped(self, row: int) -> None:
        """This worker is stopping cleanly (its clients are closed); it accepts no more, so
        its peers stop balancing with it."""
        with self.lock:
            _Q.pack_into(self.mem, self.field_at(row, "state"), STOPPED)

    # -- open connections, for balancing accepts -----------------------------------------------

    def count_open(self, row: int, delta: int) -> None:
        """Worker ``row`` accepted (+1) or ended (-1) a connection of any kind."""
        with self.lock:
            self.add(row, "open", delta)

    def running(self) -> list[int]:
        """The rows of workers that run (not stopping) and are alive."""
        with self.lock:
            rows = [(row, self.get(row, "pid")) for row in range(1, self.rows)
                    if self.get(row, "state") == RUNNING]
        return [row for row, pid in rows if pid_alive(pid)]

    def open_counts(self, rows: list[int]) -> list[int]:
        """The ``open`` count of each of ``rows`` still running (stopped or freed rows left
        out)."""
        with self.lock:
            return [self.get(row, "open") for row in rows
                    if self.get(row, "state") == RUNNING]

    def reclaim(self, pid: int) -> bool | None:
        """The master, after worker ``pid`` exited: free its row (see the module docstring).
        Whether it had stopped cleanly; ``None`` if it held no row."""
        with self.lock:
            for row in range(1, self.rows):
                if self.get(row, "pid") == pid and self.get(row, "state") != FREE:
                    clean = self.get(row, "state") == STOPPED
                    self._retire(row)
                    return clean
        return None

    def _retire(self, row: int) -> None:
        for name in CUMULATIVE:
            self.add(0, name, self.get(row, name))
        self.total = self.total - self.get(row, "admitted")
        for index in self.addresses.used():
            at = self.column_at(index, row)
            if _U32.unpack_from(self.mem, at)[0]:
                _U32.pack_into(self.mem, at, 0)
        _ROW.pack_into(self.mem, self.row_at(row), *([0] * len(FIELDS)))

    # -- statistics ---------------------------------------------------------------------------

    def publish(self, row: int, values: tuple[int, ...]) -> None:
        """Worker ``row``'s clients and traffic (``FIELDS`` from ``ws_lite`` on)."""
        with self.lock:
            _STATS.pack_into(self.mem, self.field_at(row, "ws_lite"), *values)

    def sums(self) -> dict[str, int]:
        """Every statistics field summed over all rows (row 0: the workers that are gone)."""
        with self.lock:
            rows = list(self.read_rows())
        return {name: sum(r[i] for r in rows)
                for i, name in enumerate(FIELDS) if i >= STATS_FIRST}


class _Master:
    """What this master mapped for its workers (None until ``create``)."""

    mem: SharedMemory | None = None


def create(workers: int, max_connections: int) -> SharedMemory:
    """Map the shared memory in the master, before any worker forks (idempotent).

    Rows: a gunicorn reload starts the new workers before the old ones have gone, and a
    crashed worker's row is reclaimed only after it was reaped, so there is room for twice
    the workers and some; addresses: twice the connections the server may hold, so that a
    window of the table is rarely full.
    """
    if _Master.mem is None:
        rows = min(256, max(8, 2 * workers + 4))
        addresses = min(MAX_ADDRESSES, _pow2_at_least(max(1024, 2 * max_connections)))
        _Master.mem = SharedMemory(rows, addresses)
    return _Master.mem


def shared() -> SharedMemory | None:
    """The shared memory a forked worker inherited from its master, if it mapped any."""
    return _Master.mem


@contextlib.contextmanager
def unshared() -> Iterator[None]:
    """Tests: run as if the master had mapped nothing."""
    saved, _Master.mem = _Master.mem, None
    try:
        yield
    finally:
        _Master.mem = saved
