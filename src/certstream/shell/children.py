"""Starting helper processes (the ingest, the demo log) that Ctrl-C must not kill mid-import.

A terminal sends SIGINT to every process of its group.  A fresh interpreter that gets it
while still importing dies with a ``KeyboardInterrupt`` traceback, before it could install
the handler that would stop it gracefully.  So such a child starts with SIGINT *blocked*
(the signal mask survives ``fork`` and ``exec``): a Ctrl-C stays pending until the child
unblocks it (:func:`unblock_sigint`, once its handler is in place), or for ever if the child
leaves its stop to its parent.  The parent blocks SIGINT only for the ``Popen`` call; one
arriving meanwhile is delivered to it right after, not lost.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Sequence
from typing import Any

__all__ = ["spawn_sigint_blocked", "unblock_sigint"]


def spawn_sigint_blocked(argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """``subprocess.Popen(argv, **kwargs)``, the child starting with SIGINT blocked."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        return subprocess.Popen(argv, **kwargs)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def unblock_sigint() -> None:
    """Let a pending or future SIGINT reach this process's handler."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
