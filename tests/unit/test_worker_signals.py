"""A signal that reaches a worker while it boots is not lost (see ``shell.app.post_fork``)."""

from __future__ import annotations

import queue
import signal
from types import SimpleNamespace

from certstream.shell.app import post_fork
from certstream.shell.worker import _drain


def test_post_fork_hands_the_inherited_queue_to_the_worker() -> None:
    sigs: queue.SimpleQueue[int] = queue.SimpleQueue()
    server, worker = SimpleNamespace(SIG_QUEUE=sigs), SimpleNamespace()
    post_fork(server, worker)
    assert worker.inherited_signals is sigs
    post_fork(SimpleNamespace(), worker)  # an arbiter without one: nothing to look at
    assert worker.inherited_signals is None


def test_drain_empties_either_kind_of_queue() -> None:
    sigs: queue.SimpleQueue[int] = queue.SimpleQueue()
    for sig in (signal.SIGCHLD, signal.SIGTERM):
        sigs.put(sig)
    assert _drain(sigs) == [signal.SIGCHLD, signal.SIGTERM]
    assert _drain(sigs) == []
    listed = [signal.SIGINT]  # gunicorn before 25 queued signals in a list
    assert _drain(listed) == [signal.SIGINT] and listed == []
    assert _drain(None) == []
