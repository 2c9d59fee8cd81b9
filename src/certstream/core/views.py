"""Filtered views into a stream's ring: the records one filter matched, as sequence numbers.

A filtered client (``?domain=...`` and friends, see ``core.filters``) reads a :class:`View`
instead of its stream's ring.  The view holds no payloads and no frames, only the ring's
sequence numbers of the records its filter matched, in order, in a bounded ring of its own;
the frames its clients get are the ring's, byte for byte, so a filtered client gets exactly
the frames of the unfiltered stream, only fewer, and nothing is built per client:

* one view per (stream ring, filter slot): every client of that stream with an equal filter
  reads it, and clients at the same position share one joined buffer (``core.fanout``);
* a record no filter matched is not appended to any view: it costs the clients nothing;
* a position is a view's own counter (``next_seq`` counts what was pushed), so a client
  that falls behind is told how many of *its* records it lost, not how many of the stream's.

The view keeps what is still in the ring: a record the ring overwrote is gone for the view
too (``oldest`` moves past it), and the view's buffer starts small and doubles up to the
ring's size only while that many of its records are live, so a filter that rarely matches
costs a few slots, not ``buffer_size``.

A view matches the records from its creation on (``covered``, a ring position).  A client
that resumes from further back (``core.fanout``) has the ring's older records matched
against the view's filter once, and the matches put in front (``backfill``): the view then
covers them for every later client too, and clients resuming from the same point share
one joined buffer as live clients do.
"""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

__all__ = ["BaseRing", "View"]

#: A new view's buffer: enough for a filter that matches now and then.
_MIN_SLOTS = 8

C = TypeVar("C")


class BaseRing(Protocol):
    """What a view needs of its stream's ring (``core.fanout.Ring``)."""

    size: int
    stream: int
    sent: int
    next_seq: int
    oldest: int


class View(Generic[C]):
    """The records of ``base`` that filter ``slot`` matched (see the module docstring).

    It offers what ``core.fanout`` needs of anything a cursor reads: ``next_seq``,
    ``oldest``, ``ring_seqs`` from a position (the ring's records it reads), the client
    sets, ``stream`` and ``base`` (the ring that holds the records and whose ``sent``
    counts delivered frames).
    """

    __slots__ = ("_first", "base", "covered", "next_seq", "seqs", "slot", "sse_clients",
                 "stream", "ws_clients", "wsz_clients")

    def __init__(self, base: BaseRing, slot: int) -> None:
        self.base = base
        self.slot = slot
        self.stream = base.stream
        self.seqs: list[int] = [0] * min(_MIN_SLOTS, base.size)
        self._first = 0  # the oldest position whose record the ring may still hold
        self.next_seq = 0
        #: The ring position from which every record was matched against this filter.
        self.covered = base.next_seq
        self.ws_clients: set[C] = set()
        self.wsz_clients: set[C] = set()  # WebSocket clients that get compressed frames
        self.sse_clients: set[C] = set()

    def __len__(self) -> int:
        """Clients reading this view."""
        return len(self.ws_clients) + len(self.wsz_clients) + len(self.sse_clients)

    @property
    def oldest(self) -> int:
        """The oldest position whose record the ring still holds."""
        first, end = self._first, self.next_seq
        if first < end:
            seqs, oldest = self.seqs, self.base.oldest
            cap = len(seqs)
            while first < end and seqs[first % cap] < oldest:
                first += 1
            self._first = first
        return first

    def push(self, seq: int) -> None:
        """Append the ring's record ``seq`` (matched by this view's filter).  The ring has
        appended it already, so a record the ring no longer holds is dropped here first."""
        seqs = self.seqs
        cap = len(seqs)
        if self.next_seq - self._first >= cap and self.next_seq - self.oldest >= cap:
            if cap < self.base.size:
                seqs = self._grow(min(cap * 2, self.base.size))
                cap = len(seqs)
            else:  # cannot happen (each held record is a distinct live ring record)
                self._first += 1
        seqs[self.next_seq % cap] = seq
        self.next_seq += 1

    def backfill(self, seqs: list[int], start: int) -> None:
        """Put ``seqs`` (ring positions before ``covered``, ascending, still held, matched
        by this view's filter) in front of what the view holds; it covers ``start`` on.
        Positions of the clients already here do not change (the new ones are below)."""
        if seqs:
            first = self.oldest  # forget what the ring no longer holds first
            need = self.next_seq - first + len(seqs)
            cap = len(self.seqs)
            if need > cap:
                while cap < need:
                    cap *= 2
                # Each held record is a distinct live ring record: need <= the ring's size.
                self._grow(max(need, min(cap, self.base.size)))
            store, cap = self.seqs, len(self.seqs)
            first -= len(seqs)
            for i, seq in enumerate(seqs):
                store[(first + i) % cap] = seq
            self._first = first
        self.covered = min(self.covered, start)

    def position_of(self, seq: int) -> int:
        """The position of the first record held at or after ring position ``seq``."""
        seqs = self.seqs
        cap = len(seqs)
        lo, hi = self.oldest, self.next_seq
        while lo < hi:
            mid = (lo + hi) // 2
            if seqs[mid % cap] >= seq:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def _grow(self, cap: int) -> list[int]:
        old = self.seqs
        before = len(old)
        seqs = [0] * cap
        for pos in range(self._first, self.next_seq):
            seqs[pos % cap] = old[pos % before]
        self.seqs = seqs
        return seqs

    def ring_seqs(self, start: int) -> list[int]:
        """The ring's sequence numbers of positions ``start`` to the head."""
        seqs = self.seqs
        cap = len(seqs)
        return [seqs[pos % cap] for pos in range(start, self.next_seq)]
