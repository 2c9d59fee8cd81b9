"""The ingest's resume file: the NEXT index to read for every log.

Format: ``{"version": 1, "logs": {"<log key>": {"next_index": N, "tree_size": T,
"updated": unix_time}}}``.

Written atomically (temp file in the same directory, fsync, rename, fsync the directory),
so a crash at any instant leaves either the old or the new file, never a torn one.

Why positions are persisted with a lag: the follower calls ``advance`` right after handing
a batch to the feed publisher, but the publisher may still hold those bytes in a per-worker
buffer in this process; a kill -9 at that moment would lose them while the file already
says they were sent.  So ``advance`` records (time, index) marks, and a flush writes for
each log the newest index that was published at least ``grace`` seconds ago.  A restart
may then re-publish a few seconds of entries, which the feed subscribers drop by
(log key, index); it never skips one.  ``flush(final=True)`` at a clean shutdown (after
the publisher has been closed) writes the latest positions.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from dataclasses import dataclass

from certstream.shell.atomicfile import atomic_write

__all__ = ["LogPosition", "StateStore"]

log = logging.getLogger(__name__)

STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class LogPosition:
    next_index: int
    tree_size: int = 0
    updated: float = 0.0


class StateStore:
    def __init__(self, path: str, grace: float = 1.0) -> None:
        self.path = path
        self.grace = grace
        self._saved: dict[str, LogPosition] = {}
        # key -> marks (time, next_index, tree_size), oldest first, not yet persisted.
        self._marks: dict[str, deque[tuple[float, int, int]]] = {}
        self._unwritten = False

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
        return out

    def saved(self) -> dict[str, LogPosition]:
        """The positions the file holds now (what a restart would resume from)."""
        return dict(self._saved)

    def get(self, key: str) -> LogPosition | None:
        marks = self._marks.get(key)
        if marks:
            _, nxt, ts = marks[-1]
            return LogPosition(nxt, ts)
        return self._saved.get(key)

    # -- writing -----------------------------------------------------------------------

    def advance(self, key: str, next_index: int, tree_size: int, now: float) -> None:
        """Every entry of ``key`` below ``next_index`` has been published at ``now``."""
        marks = self._marks.setdefault(key, deque())
        if marks and marks[-1][0] == now:
            marks.pop()
        marks.append((now, next_index, tree_size))

    def flush(self, now: float, final: bool = False) -> bool:
        """Persist positions old enough (all of them when ``final``).  True if written."""
        changed = False
        cutoff = now - self.grace
        for key, marks in self._marks.items():
            best: tuple[float, int, int] | None = None
            while marks and (final or marks[0][0] <= cutoff):
                best = marks.popleft()
            if best is not None:
                prev = self._saved.get(key)
                if prev is None or prev.next_index != best[1] or prev.tree_size != best[2]:
                    self._saved[key] = LogPosition(best[1], best[2], now)
                    changed = True
        if not (changed or self._unwritten):
            return False
        try:
            self._write()
        except OSError as exc:
            # Disk full, directory gone...: keep running and try again at the next flush.
            log.error("cannot write state file %s: %s", self.path, exc)
            self._unwritten = True
            return False
        self._unwritten = False
        return True

    def _write(self) -> None:
        doc = {
            "version": STATE_VERSION,
            "logs": {
                k: {"next_index": p.next_index, "tree_size": p.tree_size, "updated": p.updated}
                for k, p in sorted(self._saved.items())
            },
        }
        data = json.dumps(doc, indent=1, sort_keys=True).encode() + b"\n"
        atomic_write(self.path, data, prefix=".state-")
