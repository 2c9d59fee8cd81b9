"""How gunicorn workers share connections: a worker defers to a peer that holds fewer, only
while that peer accepts and runs, and never holds more than its limit; the counts are the
workers' rows of the shared memory (the real two-worker server is tests/e2e/test_server.py)."""

from __future__ import annotations

import os

from certstream.shell.fairserver import AcceptShares
from certstream.shell.sharedmem import SharedMemory


def test_a_worker_defers_to_a_peer_only_while_it_accepts() -> None:
    mem = SharedMemory(rows=4, addresses=64)  # as two forked workers see the master's pages
    row_a, row_b = mem.claim(os.getpid()), mem.claim(os.getppid())
    a, b = AcceptShares(100, mem, row_a), AcceptShares(100, mem, row_b)
    # Claimed but not ready to accept yet (waiting for the feed): not up, not a peer.
    mem.mark_running(row_a)
    assert a.live() == 1
    a.opened()
    a.opened()
    assert a.wait(99.0) == 0  # b is starting: nobody to defer to
    a.closed()
    a.closed()
    mem.mark_running(row_b)
    assert a.live() == b.live() == 2  # what a starting worker waits for
    t = 100.0
    assert a.wait(t) == 0
    a.opened()
    a.opened()
    assert mem.get(row_a, "open") == 2  # what the peers read
    assert a.wait(t) > 0  # two ahead of b
    assert b.wait(t) == 0
    b.opened()
    assert a.wait(t + 0.01) == 0  # 2 <= 1 + SLACK
    a.opened()
    assert a.wait(t + 0.02) == a.RETRY_SECS
    assert a.wait(t + 0.02 + a.STALL_SECS / 2) > 0
    # b stops accepting (busy, stuck or full): a does not wait for it for long.
    assert a.wait(t + 0.02 + a.STALL_SECS * 1.5) == 0
    mem.mark_stopped(row_b)  # b is stopping: a no longer compares itself with it
    assert a.live() == 1
    assert a.wait(t + 0.2) == 0
    a.closed()
    assert a.count == 2 and mem.get(row_a, "open") == 2


def test_a_worker_at_its_limit_waits_for_a_connection_to_end() -> None:
    alone = AcceptShares(2)  # one worker: nothing shared, the limit still holds
    assert alone.live() == 1
    alone.opened()
    assert alone.wait(0.0) == 0
    alone.opened()
    assert alone.wait(0.0) == alone.FULL_RETRY_SECS
    assert alone.wait(0.0, capped=False) == 0  # the metrics' own listener still accepts
    alone.closed()
    assert alone.wait(0.0) == 0


def test_a_row_that_is_not_running_is_not_a_peer() -> None:
    mem = SharedMemory(rows=4, addresses=64)
    row = mem.claim(os.getpid())
    mem.mark_running(row)
    # A row still held by a worker that died (the master has not reclaimed it yet), with
    # none open: were it a peer, a would defer to it.
    assert mem.claim(2**22 + 4321) > row  # above Linux's pid_max default: never a live process
    a = AcceptShares(100, mem, row)
    a.opened()
    a.opened()
    a.opened()
    assert a.live() == 1 and a.wait(1.0) == 0  # a dead worker's row counts for nothing
    assert mem.running() == [row]
