"""Sans-IO planning for following one CT log: which window to fetch next, in what order
results are released, and which tiles cover a checkpoint.

Theory of operation (RFC 6962)
------------------------------
``WindowPlanner`` owns the index bookkeeping of one log.  The shell asks it for the next
get-entries window (``next_window``), performs the request however it likes (several in
flight at once), and reports each outcome with ``complete`` (the entries it got, possibly
fewer than asked, possibly none) or ``fail`` (the whole response was unusable).  ``ready``
releases completed results strictly in index order, so the caller publishes entry N only
after every entry before N.

Rules the planner enforces, because the peers break them (peer-rust: "HTTP 400 => jump to
head"; peer-go: tiled off-by-one):

* A window never reaches past the tree size of the STH we fetched:
  ``end = min(start + batch - 1, tree_size - 1)`` (both bounds inclusive).
* A short batch is accepted; the rest of its window is asked for again, first.
* New windows are sized to the log's cap as the planner learns it (``window_size``, at
  most ``batch_size``; logs cap at 32, 256, 1,000 or 1,024 entries): a window sized to the
  cap comes back whole, and windows that overlap the cap would only be answered in pieces.
  A short answer teaches the cap only when its window ends before the tree head's last
  entry, and never below the largest answer among the last ``RECENT`` such windows: a
  window cut by the tree's end, a backend one entry behind its head, or one busy answer
  must not make the log crawl at one entry per request for the life of the follower.
  After ``PROBE_AFTER`` whole answers in a row, one window asks for twice as many (a log
  that raised its cap, a cap learned from an aligned answer); a probe answered short costs
  no request (its rest is the next window anyway) and the next probe waits twice as long.
* An empty batch or a failure (400 included) re-queues the same window; nothing is ever
  skipped.  The caller backs off (see ``certstream.core.backoff``).
* A tree head whose signature did not verify (``sth_signature: warn`` uses it anyway) is
  trusted only as far as the log serves: when the log answers 400 for a window past the
  last verified size (``refuse``), the tree size drops to that window's start, the window
  waits until a head covers it, and that same unverified size is not used again.  So a
  bad head claiming a larger tree costs at most the windows in flight, not a 400 per
  retry until the real tree catches up; a verified head is never refused for being
  smaller than an unverified one.
* The number of windows in flight or waiting to be released is bounded by ``concurrency``,
  so one stuck window cannot make the others pile up results without limit.

The planner never reads a clock and never does I/O; the shell drives it.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

from certstream.errors import LocalProtocolError

__all__ = [
    "PROBE_AFTER",
    "RECENT",
    "TILE_WIDTH",
    "TileRequest",
    "Window",
    "WindowPlanner",
    "plan_tiles",
]

T = TypeVar("T")

TILE_WIDTH = 256
#: Whole answers in a row before a window asks for twice the learned cap.
PROBE_AFTER = 8
#: ...and at most this many after probes that came back short.
PROBE_MAX = 256
#: Whole windows whose answers bound how far one short answer may shrink the cap.
RECENT = 16


@dataclass(frozen=True, slots=True, order=True)
class Window:
    """A get-entries request: ``start`` and ``end`` are both inclusive."""

    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start + 1


class WindowPlanner(Generic[T]):
    """Index bookkeeping of one RFC 6962 log; ``T`` is whatever the caller keeps per result."""

    def __init__(
        self,
        next_index: int,
        batch_size: int,
        concurrency: int = 1,
        tree_size: int = 0,
        stop_at: int | None = None,
    ) -> None:
        if next_index < 0 or batch_size < 1 or concurrency < 1:
            raise LocalProtocolError("next_index >= 0, batch_size >= 1, concurrency >= 1")
        #: Every index below this has been released by ``ready``.
        self.next_index = next_index
        #: The tree size windows are planned against: the newest head's, or less when the
        #: log refused entries an unverified head claimed (see ``refuse``).
        self.tree_size = tree_size
        #: The largest verified tree size; never shrinks.
        self.verified_size = tree_size
        # The unverified tree size in use, and one the log refused to serve (not used again).
        self._claim: int | None = None
        self._refuted: int | None = None
        #: Readonly logs: stop here (their final tree size) even if an STH says more.
        self.stop_at = stop_at
        #: The configured batch: no window is ever wider.
        self.batch_size = batch_size
        #: The width of new windows: the log's cap as learned so far (see the module doc).
        self.window_size = batch_size
        self.concurrency = concurrency
        # Answers to the last RECENT whole windows, and the probing schedule.
        self._recent: deque[int] = deque(maxlen=RECENT)
        self._streak = 0
        self._probe_every = PROBE_AFTER
        self._probe: Window | None = None
        # First index not covered by any window handed out so far.
        self._planned = next_index
        # Windows that must be (re)issued before new ones, lowest start first.
        self._retry: list[Window] = []
        self._inflight: set[Window] = set()
        # start -> (count, result) for completed windows waiting for their predecessors.
        self._done: dict[int, tuple[int, T]] = {}

    # -- inputs ------------------------------------------------------------------------

    def set_tree_size(self, size: int, verified: bool = True) -> bool:
        """Record a new STH tree size.  Returns False (and keeps the old one) if it is
        smaller than a verified one.  An unverified size is used (see ``refuse``) unless
        the log already refused it."""
        if size < self.verified_size:
            return False
        if verified:
            self.verified_size = self.tree_size = size
            self._claim = None
        elif size != self._refuted and size > self.tree_size:
            self.tree_size = self._claim = size
        return True

    def refuse(self, window: Window) -> bool:
        """The log answered that it has no entry ``window.start`` (HTTP 400).

        The window is asked for again later, as after ``fail``.  Returns True when the
        window lies past the last verified tree size: then only an unverified head claimed
        it, the tree size drops to ``window.start`` and the window waits until a head
        covers it again.  False (an ordinary failure) when a verified head promised it.
        """
        self._take(window)
        heapq.heappush(self._retry, window)
        if window.start < self.verified_size:
            return False
        if self.tree_size > window.start:
            if self._claim is not None:
                self._refuted = self._claim
            self.tree_size = window.start
        return True

    def complete(self, window: Window, count: int, result: T) -> None:
        """``window`` was answered with ``count`` entries (the first ``count`` of it)."""
        self._take(window)
        if count > window.size:
            raise LocalProtocolError(f"{count} entries for a window of {window.size}")
        if count == 0:
            heapq.heappush(self._retry, window)
            return
        if count < window.size:
            # Ask for the rest first: the log caps its batches, or its backend is behind.
            heapq.heappush(self._retry, Window(window.start + count, window.end))
        self._learn(window, count)
        self._done[window.start] = (count, result)

    def _learn(self, window: Window, count: int) -> None:
        """Size later windows to the log's cap (see the module docstring)."""
        probe = window == self._probe
        if probe:
            self._probe = None
        elif window.end >= self.tree_size - 1:
            # It reaches the head: cut by the tree's end, or answered short by a backend
            # that is behind the head we were shown.  Either way it says nothing of the cap.
            return
        self._recent.append(count)
        if count < window.size:
            self._streak = 0
            if probe:
                self._probe_every = min(self._probe_every * 2, PROBE_MAX)
            # Never below what the log served whole windows lately: one short answer is
            # not a cap, a run of them is.
            self.window_size = max(count, *self._recent, 1)
            return
        self._streak += 1
        if probe:
            self.window_size = window.size
            self._probe_every = PROBE_AFTER

    def fail(self, window: Window) -> None:
        """The request for ``window`` failed as a whole; it will be handed out again."""
        self._take(window)
        heapq.heappush(self._retry, window)

    # -- outputs -----------------------------------------------------------------------

    @property
    def limit(self) -> int:
        """One past the last index we may read now."""
        if self.stop_at is None:
            return self.tree_size
        return min(self.tree_size, self.stop_at)

    @property
    def outstanding(self) -> int:
        """Windows in flight, waiting for a retry, or completed but not yet released."""
        return len(self._inflight) + len(self._retry) + len(self._done)

    def next_window(self) -> Window | None:
        """The next request to issue, or None (enough in flight, or nothing to read)."""
        if len(self._inflight) >= self.concurrency:
            return None
        limit = self.limit
        if self._retry and self._retry[0].start < limit:
            window = heapq.heappop(self._retry)
        else:
            # Windows still in _retry start past the tree size (see ``refuse``), and so
            # does every window not planned yet.
            if self._planned >= limit or self.outstanding >= self.concurrency:
                return None
            width = self.window_size
            probing = self._streak >= self._probe_every and width < self.batch_size
            if probing:
                width = min(self.batch_size, width * 2)
            end = min(self._planned + width - 1, limit - 1)
            window = Window(self._planned, end)
            self._planned = end + 1
            if probing and window.size == width:
                self._streak = 0
                self._probe = window
        self._inflight.add(window)
        return window

    def ready(self) -> list[tuple[int, T]]:
        """Completed results that are next in index order, as ``(start, result)``.

        ``next_index`` advances past each one returned.
        """
        out: list[tuple[int, T]] = []
        while self.next_index in self._done:
            count, result = self._done.pop(self.next_index)
            out.append((self.next_index, result))
            self.next_index += count
        return out

    @property
    def caught_up(self) -> bool:
        """Nothing in flight or pending and every index below the limit released."""
        return self.outstanding == 0 and self.next_index >= self.limit

    @property
    def finished(self) -> bool:
        """A readonly log has been read up to its final tree size."""
        return self.stop_at is not None and self.next_index >= self.stop_at

    def _take(self, window: Window) -> None:
        try:
            self._inflight.remove(window)
        except KeyError:
            raise LocalProtocolError(f"window {window} is not in flight") from None


# -- static-ct-api tiles ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TileRequest:
    """One data tile to fetch: tile number ``n`` and ``width`` entries (256 = full).

    ``skip`` leading entries are already delivered (index < next) and must be dropped.
    """

    n: int
    width: int
    skip: int = 0

    @property
    def first_index(self) -> int:
        return self.n * TILE_WIDTH

    @property
    def partial(self) -> bool:
        return self.width < TILE_WIDTH


def plan_tiles(next_index: int, size: int, stop_at: int | None = None) -> list[TileRequest]:
    """Data tiles covering indices ``next_index .. size-1`` (ct-protocols.md §B "Tailing").

    Full tiles for every complete group of 256, the partial tile of the checkpoint's size
    for the rest.  Empty when there is nothing new.
    """
    if stop_at is not None:
        size = min(size, stop_at)
    out: list[TileRequest] = []
    if size <= next_index:
        return out
    for n in range(next_index // TILE_WIDTH, (size - 1) // TILE_WIDTH + 1):
        first = n * TILE_WIDTH
        width = min(TILE_WIDTH, size - first)
        out.append(TileRequest(n, width, max(0, next_index - first)))
    return out
