"""The ingest's resume file: the NEXT index to read for every log.

Format: ``{"version": 1, "logs": {"<log key>": {"next_index": N, "tree_size": T,
"updated": unix_time}}}``.

Written atomically (``shell.atomicfile``: temp file in the same directory, fsync, rename,
fsync the directory), so a crash at any instant leaves either the old or the new file,
never a torn one.

When a position is saved, and what a crash costs
------------------------------------------------
A position is saved only once its batch is *delivered*: every connected worker has told
the feed publisher (an ACK record, see ``certstream.core.feedcodec``) that the batch is in
the socket of every client that keeps up (see ``certstream.shell.hub``).  Published is not
enough: until then the entries may still sit in the publisher's buffer, in the kernel
between the processes, or in the worker's memory, and a kill -9 of the whole server would
lose them while the file already said they were sent; saving later than delivery only
costs repeats, saving earlier would skip.

``sent`` marks a batch in flight; ``delivered`` records its position and wakes the writer,
which writes at most every ``WRITE_INTERVAL`` (each write is ~1 ms, most of it fsync, and
blocks the process: at 100 logs one write per delivered batch would cost a tenth of a
core); ``settle`` lets the next batch of that log wait until its predecessor is on disk.
So when the whole server is killed, each log repeats at most the one batch that was in
flight, and skips nothing.  A worker that never acknowledges does not hold positions back
for long (``certstream.shell.feed.ACK_TIMEOUT``), and a disk that refuses writes does not
stall the logs (``SETTLE_TIMEOUT``): both are logged.  When the gunicorn master dies, the
ingest ``freeze``s the store: its workers exit one after the other, and a batch the last of
them acknowledged may be one the first ones' clients never got.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

import gevent
import gevent.event

from certstream.shell.atomicfile import atomic_write

__all__ = ["SETTLE_TIMEOUT", "WRITE_INTERVAL", "LogPosition", "StateStore"]

log = logging.getLogger(__name__)

STATE_VERSION = 1
#: Writes are at least this far apart; the positions delivered meanwhile go in one write.
WRITE_INTERVAL = 0.05
#: The longest a log's next batch waits for its predecessor to be on disk.
SETTLE_TIMEOUT = 10.0
#: After a failed write, the next try.
_RETRY_SECS = 1.0


@dataclass(frozen=True, slots=True)
class LogPosition:
    next_index: int
    tree_size: int = 0
    updated: float = 0.0


class StateStore:
    """Positions by log key: read at start, written after each delivered batch (see the
    module docstring).  The writer greenlet starts with the first delivered batch."""

    def __init__(self, path: str, write_interval: float = WRITE_INTERVAL) -> None:
        self.path = path
        self.write_interval = write_interval
        self.writes = 0  # files written (for the benchmarks and the tests)
        self._saved: dict[str, LogPosition] = {}  # on disk
        self._latest: dict[str, LogPosition] = {}  # delivered, maybe not on disk yet
        self._inflight: dict[str, int] = {}  # batches sent but not delivered yet, by key
        self._dirty = False
        self._wake = gevent.event.Event()
        self._written = gevent.event.Event()  # replaced by a fresh one after each write
        self._changed = gevent.event.Event()  # ...and this one after each delivered batch
        self._writer: gevent.Greenlet | None = None
        self._last_write = 0.0
        self.frozen = False

    # -- reading -----------------------------------------------------------------------

    def load(self) -> dict[str, LogPosition]:
        """Read the file.  A missing file is an empty state; a corrupt one is logged and
        treated as empty (the logs then start from their configured start), because
        refusing to start would be worse than re-reading from a known point."""
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            log.error("cannot read state file %s: %s", self.path, exc)
            return {}
        try:
            doc = json.loads(raw)
            logs = doc["logs"]
            if doc.get("version") != STATE_VERSION or not isinstance(logs, dict):
                raise ValueError(f"unsupported state version {doc.get('version')!r}")
            out: dict[str, LogPosition] = {}
            for key, ent in logs.items():
                nxt = ent["next_index"]
                if not isinstance(nxt, int) or isinstance(nxt, bool) or nxt < 0:
                    raise ValueError(f"bad next_index for {key!r}")
                ts = ent.get("tree_size", 0)
                upd = ent.get("updated", 0.0)
                out[str(key)] = LogPosition(
                    nxt,
                    ts if isinstance(ts, int) else 0,
                    float(upd) if isinstance(upd, int | float) else 0.0,
                )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.error("ignoring unreadable state file %s: %s", self.path, exc)
            return {}
        self._saved = dict(out)
        self._latest = dict(out)
        return out

    def get(self, key: str) -> LogPosition | None:
        """The newest delivered position of ``key`` (on disk or about to be)."""
        return self._latest.get(key)

    def saved(self) -> dict[str, LogPosition]:
        """The positions the file holds now (what a restart would resume from)."""
        return dict(self._saved)

    # -- the life of a batch -------------------------------------------------------------

    def sent(self, key: str) -> None:
        """A batch of ``key`` is published; its position follows with ``delivered``."""
        self._inflight[key] = self._inflight.get(key, 0) + 1

    def delivered(self, key: str, next_index: int, tree_size: int,
                  now: float | None = None) -> None:
        """Every entry of ``key`` below ``next_index`` has reached the workers' clients."""
        left = self._inflight.get(key, 0) - 1
        if left > 0:
            self._inflight[key] = left
        else:
            self._inflight.pop(key, None)
        changed, self._changed = self._changed, gevent.event.Event()
        changed.set()
        prev = self._latest.get(key)
        if prev is not None and prev.next_index > next_index:
            return  # never move back (batches of one log are delivered in order anyway)
        self._latest[key] = LogPosition(next_index, tree_size, time.time() if now is None else now)
        self._dirty = True
        self._wake.set()
        if self._writer is None:
            self._writer = gevent.spawn(self._write_loop)

    def settle(self, key: str, timeout: float = SETTLE_TIMEOUT) -> bool:
        """Wait until no batch of ``key`` is in flight and its position is on disk.

        A batch in flight is waited for as long as it takes: the feed reports each one
        delivered (at the latest after ``ACK_TIMEOUT``) or publishes it again, and reading
        on before would let a later position be saved over it.  The write is waited for at
        most ``timeout``: a disk that refuses writes must not stall the logs (False, logged).
        Once ``frozen``, it never returns: nothing more may be published.
        """
        while self.frozen:
            gevent.sleep(1.0)
        while self._inflight.get(key):
            self._changed.wait(timeout)
        deadline = time.monotonic() + timeout
        while self._latest.get(key) != self._saved.get(key):
            left = deadline - time.monotonic()
            if left <= 0 or not self._written.wait(left):
                log.warning("state: the position of %s is not on disk after %.0fs; "
                            "reading on", key, timeout)
                return False
        return True

    # -- writing -----------------------------------------------------------------------

    def start(self) -> None:
        if self._writer is None:
            self._writer = gevent.spawn(self._write_loop)

    def stop(self) -> None:
        """Stop the writer (then ``flush`` writes what is delivered)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.kill(block=True, timeout=5)

    def _write_loop(self) -> None:
        while True:
            self._wake.wait()
            delay = self._last_write + self.write_interval - time.monotonic()
            if delay > 0:
                gevent.sleep(delay)
            self._wake.clear()
            if not self.flush() and self._dirty:
                gevent.sleep(_RETRY_SECS)
                self._wake.set()

    def freeze(self) -> None:
        """Save nothing from now on (the server is going down and a delivery no longer
        means every client got it; see ``certstream.shell.ingest``)."""
        self.frozen = True

    def flush(self, now: float | None = None) -> bool:
        """Write every delivered position now, if any changed (never one still in flight:
        ``delivered`` has not been called for it).  True if written."""
        if not self._dirty or self.frozen:
            return False
        positions = dict(self._latest)
        try:
            self._write(positions)
        except OSError as exc:
            # Disk full, directory gone...: keep running and try again.
            log.error("cannot write state file %s: %s", self.path, exc)
            return False
        finally:
            self._last_write = time.monotonic()
        self._saved = positions
        self._dirty = positions != self._latest
        self.writes += 1
        done, self._written = self._written, gevent.event.Event()
        done.set()
        return True

    def _write(self, positions: dict[str, LogPosition]) -> None:
        doc = {
            "version": STATE_VERSION,
            "logs": {
                k: {"next_index": p.next_index, "tree_size": p.tree_size, "updated": p.updated}
                for k, p in sorted(positions.items())
            },
        }
        # Compact, so the C encoder writes it (indent= takes the pure-Python one).
        data = json.dumps(doc, separators=(",", ":")).encode() + b"\n"
        atomic_write(self.path, data, prefix=".state-")
