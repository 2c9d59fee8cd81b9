"""How gunicorn workers share connections: a worker defers to a peer that holds fewer, only
while that peer accepts (the real two-worker server is tests/e2e/test_server.py)."""

from __future__ import annotations

import os

from certstream.shell.shares import ConnectionShares


def test_connection_shares_defer_to_a_peer_only_while_it_accepts() -> None:
    a, b = ConnectionShares(4), ConnectionShares(4)
    b.mem = a.mem  # as two forked workers see the master's pages
    a.claim(0, os.getpid())
    b.claim(0, os.getppid())  # slot 0 is taken by a live process: b gets the next one
    assert (a.slot, b.slot) == (0, 1)
    assert a.live() == b.live() == 2  # what a starting worker waits for
    t = 100.0
    assert a.may_accept(t)
    a.opened()
    a.opened()
    assert not a.may_accept(t)  # two ahead of b
    assert b.may_accept(t)
    b.opened()
    assert a.may_accept(t + 0.01)  # 2 <= 1 + SLACK
    a.opened()
    assert not a.may_accept(t + 0.02)
    assert not a.may_accept(t + 0.02 + a.STALL_SECS / 2)
    # b stops accepting (busy, stuck or full): a does not wait for it for long.
    assert a.may_accept(t + 0.02 + a.STALL_SECS * 1.5)
    b.release()  # b leaves: a no longer compares itself with it
    assert a.live() == 1
    assert a.may_accept(t + 0.2)
    a.closed()
    assert a.count == 2
