"""kill -9 of each process of the real server while it streams: nothing is skipped, and
what is repeated stays within one batch per log.

The whole server (``certstream``, 2 workers, the ingest) follows a replay CT log growing at
300 entries/s, whose get-entries batches are capped at 256 entries; 6 WebSocket and 4 SSE
clients (``soak/tally.c``) check every index they receive and reconnect when their
connection ends.  One batch is at most one get-entries answer, so the bound on repeats is
the largest window the log served.

* the ingest: the master starts a new one, which resumes from the state file; the workers
  drop what it repeats, so no client notices anything.
* one worker: gunicorn starts a new one; its clients reconnect (they miss what was sent
  while they were away, as any client that reconnects does) and the other worker's clients
  are untouched.
* the master: the workers and the ingest notice and exit (the ingest saves what was
  delivered); the server is started again on the same state file.
* all of it at once: nothing gets to save anything; started again on the same state file.

When the server is started again, the log holds its data requests until every client has
reconnected, so that what the new ingest sends first reaches them: a client then sees no
gap, and at most one batch again.  Before positions were saved after each delivered batch,
the whole-server case repeated ~6 s of entries (state_flush_secs 5 s + 1 s of grace:
~1,800 at this rate), beyond the bound.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from soak.clients import ClientFigures, Tally
from soak.harness import Grower, GrowingLog, ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

RATE = 300.0
WS, SSE = 6, 4


class Run:
    """A server, its log growing, and the clients, for one crash."""

    def __init__(self, tmp: Path) -> None:
        self.log = GrowingLog(40_000)
        self.server = ServerProcess(tmp, self.log.url, workers=2)
        self.server.start()
        self.roles = self.server.wait_roles(2)
        self.tally = Tally(self.server.port, WS, SSE)
        assert self.tally.wait_open().open == WS + SSE
        time.sleep(1.0)  # the workers tell the ingest what they want
        self.grower = Grower(self.log, RATE)

    def wait_saved(self, timeout: float = 30.0) -> None:
        """Until the state file holds a position and the clients are mid-stream."""
        deadline = time.monotonic() + timeout
        while (self.server.saved_position() or 0) < 600 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (self.server.saved_position() or 0) >= 600, "no position saved"

    def restart(self) -> None:
        """Start the server again; the clients reconnect before the new ingest sends."""
        self.log.hold()
        self.server.start()
        self.roles = self.server.wait_roles(2)
        assert self.tally.wait_open().open == WS + SSE
        self.log.release()

    def finish(self, seconds: float = 4.0) -> list[ClientFigures]:
        """Run on a little, stop the log, and wait until every client has its last entry."""
        time.sleep(seconds)
        grown = self.grower.stop()
        totals = self.tally.wait_index(grown - 1, timeout=90)
        assert totals.min_last == grown - 1, f"clients stopped at {totals.min_last} of {grown}"
        return self.tally.per_client()

    def batch_bound(self) -> int:
        """The largest get-entries answer the log could give: one batch of the log."""
        windows = self.log.entries_served()
        return max(min(end - start + 1, 256) for start, end in windows)

    def close(self) -> None:
        self.grower.stop()
        self.tally.close()
        self.server.stop()
        self.log.close()


@pytest.fixture
def run() -> Iterator[Run]:
    tmp = Path(tempfile.mkdtemp(prefix="cs-crash-"))
    r = Run(tmp)
    yield r
    r.close()
    shutil.rmtree(tmp, ignore_errors=True)


def describe(clients: list[ClientFigures]) -> str:
    return "; ".join(f"{c.kind}{c.index}: {c.first}..{c.last} frames={c.frames} "
                     f"repeats={c.repeats} gaps={c.gaps} missed={c.missed} "
                     f"connects={c.connects}" for c in clients)


def test_kill_9_of_the_ingest(run: Run) -> None:
    run.wait_saved()
    (old,) = run.roles.ingest
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while run.server.roles().ingest in ((), (old,)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert run.server.roles().ingest not in ((), (old,)), "no new ingest"
    clients = run.finish()
    # The workers drop what the new ingest repeats: no client sees a gap or a repeat, and
    # none had to reconnect.
    assert all(c.complete and c.connects == 1 for c in clients), describe(clients)


def test_kill_9_of_one_worker(run: Run) -> None:
    run.wait_saved()
    victim, other = run.roles.workers
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while len(run.server.roles().workers) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert run.tally.wait_open().open == WS + SSE
    clients = run.finish()
    assert other in run.server.roles().workers
    moved = [c for c in clients if c.connects > 1]
    stayed = [c for c in clients if c.connects == 1]
    assert moved and stayed, describe(clients)
    # The other worker's clients never noticed.
    assert all(c.complete for c in stayed), describe(stayed)
    # The victim's clients reconnected and read on: no gap or repeat within a connection.
    assert all(c.gaps == 0 and c.repeats == 0 for c in moved), describe(moved)


def test_kill_9_of_the_master(run: Run) -> None:
    run.wait_saved()
    run.server.kill_master()
    run.restart()
    clients = run.finish()
    bound = run.batch_bound()
    assert all(c.gaps == 0 and c.missed == 0 for c in clients), describe(clients)
    # A client may reconnect twice: the orphaned workers accept for the moment it takes
    # them to notice their master is gone.
    assert all(c.repeats <= bound and c.connects >= 2 for c in clients), (bound,
                                                                           describe(clients))


def test_kill_9_of_the_whole_server(run: Run) -> None:
    run.wait_saved()
    run.server.kill_all()
    run.restart()
    clients = run.finish()
    bound = run.batch_bound()
    print(f"repeats per client after kill -9 of everything: "
          f"{sorted(c.repeats for c in clients)} (bound {bound})")
    assert all(c.gaps == 0 and c.missed == 0 for c in clients), describe(clients)
    assert all(c.repeats <= bound and c.connects == 2 for c in clients), (bound,
                                                                           describe(clients))
