"""What each client of a worker is owed, and when it is written: the writing half of the
fan-out bookkeeping (``core.fanout`` holds the other: what comes in, who reads what).

A :class:`Cursor` is one streaming client: its ring (or view) and the sequence number of the
next frame it should get.  :class:`Delivery` walks the cursors of the dirty rings at each
``flush`` and hands each one what it is owed, joined once per position for every client
there, in pieces of at most ``write_cap`` bytes; a client whose write is pending (``busy``)
is left to whoever drains it, who asks :meth:`Delivery.owed` for the next piece; a client
that fell off its ring is told what it lost, and past ``drop_budget`` closed.  The I/O is a
subclass's (``_write_now``, ``close_client``, ``_flushed``); see ``core.fanout`` for the
whole theory of operation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from certstream.core.catchup import Group, form, piece, resumed_piece
from certstream.core.rings import Ring

if TYPE_CHECKING:
    from certstream.core.resume import Stamp

__all__ = ["CHUNKS_KEPT_BYTES", "WRITE_CAP", "Cursor", "Delivery"]

#: The client type of a ``Delivery``: ``Cursor`` or the shell's subclass of it.
C = TypeVar("C", bound="Cursor")

#: The most bytes of frames one write to a client takes (``owed``, the flusher, a resumed
#: backlog): a client that is behind gets the rest in further writes of this size as each
#: is taken.  What a slow client holds while the kernel drains it is then one such piece,
#: not up to a whole ring (a full ring is ~8 MiB: thousands of clients catching up at once
#: would hold gigabytes), while a piece is still ~30 full or ~150 lite frames, so a client
#: catching up costs one syscall per ~256 KiB, as much as the socket buffer takes at once.
WRITE_CAP = 256 << 10
#: The pieces kept for other clients at the same position, between two flushes (slow
#: clients draining, a crowd resuming from the same place) and within one flush: at most
#: this many bytes each time.
CHUNKS_KEPT_BYTES = 4 << 20


def _nothing() -> None:
    return None


class Cursor:
    """One streaming client as the bookkeeping sees it: its ring and position.  Kept tiny
    (``__slots__``) because there may be tens of thousands; the shell's ``Client`` adds the
    socket."""

    __slots__ = ("busy", "closing", "dropped", "is_ws", "resume_at", "ring", "seq", "wbits")

    def __init__(self, ring: Group, *, is_ws: bool, wbits: int = 0) -> None:
        #: What it reads: its stream's ring, or (a filtered client) a view of it.
        self.ring: Group = ring
        self.is_ws = is_ws
        #: permessage-deflate: the client's window bits (its frames are compressed), or 0.
        self.wbits = wbits if is_ws else 0
        self.seq = ring.next_seq  # a new client starts at the head
        self.dropped = 0  # frames lost so far (it fell off the ring)
        self.busy = False  # a write is pending: the flusher leaves it to its drainer
        self.closing = False
        #: While it resumes: the ring position of the last record it was sent (holes in
        #: the records' numbers after it are told in order); -1 once it is live.
        self.resume_at = -1


class Delivery(Generic[C]):
    """What each client is owed and its writing (see the module docstring); subclassed by
    ``core.fanout.Fanout``, whose ``publish`` and ``gap`` fill the rings and mark them
    dirty."""

    def __init__(self, *, drop_budget: int, close_code: int, flush_interval: float,
                 write_cap: int) -> None:
        #: The most bytes of frames one write to a client takes (``WRITE_CAP``).
        self.write_cap = write_cap
        self.drop_budget = drop_budget
        self.close_code = close_code
        self.flush_interval = flush_interval
        #: The monotonic time of the flusher's last flush (see ``flush_delay``).
        self.last_flush = 0.0
        #: The newest record's stamp (``Fanout.publish`` sets it): a resumed piece tells the
        #: holes in the numbers up to it.
        self.last: Stamp | None = None
        # Pieces written to clients outside the flush (slow clients, resumed backlogs),
        # joined once for others at the same place: by (group, position, resume_at,
        # transport, lost) -> (head, bytes, next position, next resume_at); emptied at
        # each flush and past ``CHUNKS_KEPT_BYTES``.
        self._chunks: dict[tuple[int, int, int, int, int], tuple[int, bytes, int, int]] = {}
        self._chunk_bytes = 0
        self._dirty: set[Group] = set()
        self._unflushed = 0
        self._unflushed_bytes = 0
        self._after: list[Callable[[], None]] = []
        # Counters for /metrics and /api/stats.
        self.drops = 0
        self.slow_closed = 0
        #: Called after a client came or went and after each flush: the figures of
        #: ``counts`` and the counters above may have changed (the shell publishes them).
        self.on_change: Callable[[], None] = _nothing

    # -- the I/O, supplied by the subclass ---------------------------------------------------

    def _write_now(self, cursor: C, data: bytes) -> None:
        """Write ``data`` to ``cursor``'s connection; set ``cursor.busy`` if it is not all
        written yet (whoever finishes it sends ``owed(cursor)`` next)."""
        raise NotImplementedError

    def close_client(self, cursor: C, code: int, reason: str) -> None:
        """End ``cursor``'s connection with ``code`` and ``reason``; ``_detach`` it."""
        raise NotImplementedError

    # -- what each client is owed ----------------------------------------------------------

    def _pump(self, cursor: C) -> None:
        """Write ``cursor`` its next pieces while its writes are taken at once."""
        while not cursor.busy and not cursor.closing and cursor.seq < cursor.ring.next_seq:
            data = self.owed(cursor)
            if not data:
                return
            self._write_now(cursor, data)

    def _take(self, cursor: C, lost: int = 0) -> bytes:
        """``cursor``'s next piece (at most ``write_cap`` bytes, after a notice of ``lost``
        if not 0), its cursor moved past it: shared with every client at the same place
        until the next flush."""
        group = cursor.ring
        start, lo, code = cursor.seq, cursor.resume_at, form(cursor.is_ws, cursor.wbits)
        head = group.next_seq
        key = (id(group), start, lo, code, lost)
        got = self._chunks.get(key)
        if got is not None and got[0] == head:
            data, stop, lo = got[1:]
        else:
            ring = self._ring_of(group)
            if lo < 0:
                data, stop = piece(ring, group, start, code=code, lost=lost,
                                   cap=self.write_cap)
            else:
                data, stop, lo = resumed_piece(ring, group, start, lo=lo, code=code, lost=lost,
                                               cap=self.write_cap, last=self.last)
            if self._chunk_bytes + len(data) > CHUNKS_KEPT_BYTES:
                self._chunks.clear()
                self._chunk_bytes = 0
            self._chunks[key] = (head, data, stop, lo)
            self._chunk_bytes += len(data)
        group.base.sent += stop - start
        cursor.seq, cursor.resume_at = stop, lo
        return data

    @staticmethod
    def _ring_of(group: Group) -> Ring[Any]:
        base = group.base
        assert isinstance(base, Ring)
        return base

    def flush_delay(self, now: float) -> float:
        """How long the flusher should still wait at ``now`` (monotonic) before flushing:
        writes are coalesced to one per ``flush_interval`` after ``last_flush``."""
        return self.last_flush + self.flush_interval - now

    def after_flush(self, done: Callable[[], None]) -> None:
        """Call ``done`` once everything published so far has been written: at the end of
        the next ``flush``, or now if nothing is pending; through ``_flushed``, which the
        shell overrides to wait for the clients whose writes it had to leave half done."""
        if self._dirty:
            self._after.append(done)
        else:
            self._flushed([done])

    def _flushed(self, callbacks: list[Callable[[], None]]) -> None:
        for done in callbacks:
            done()

    def flush(self) -> None:
        """Write every client of every dirty ring and view what it has pending (see the
        module docstring)."""
        dirty, self._dirty = self._dirty, set()
        self._unflushed = self._unflushed_bytes = 0
        # Pieces are shared by clients that take one between two flushes (a crowd
        # reconnecting, slow clients at the same place): not kept longer.
        self._chunks.clear()
        self._chunk_bytes = 0
        for group in dirty:
            if group.ws_clients:
                self._flush_clients(group, group.ws_clients, 0)
            if group.sse_clients:
                self._flush_clients(group, group.sse_clients, 1)
            if group.wsz_clients:
                # Compressed frames depend on the client's window: one pass per window size
                # (nearly always one: clients rarely limit the server's window).
                by_bits: dict[int, list[C]] = {}
                for client in group.wsz_clients:
                    by_bits.setdefault(client.wbits, []).append(client)
                for wbits, clients in by_bits.items():
                    self._flush_clients(group, clients, wbits << 2 | 2)
        if self._after:
            after, self._after = self._after, []
            self._flushed(after)
        self.on_change()

    def _flush_clients(self, group: Group, clients: Iterable[C], code: int) -> None:
        """Write each of ``clients`` of ``group`` (not busy) its frames from its position
        on, in form ``code`` (``_code``), joined once per position for every client there,
        in pieces of at most ``write_cap`` bytes while its writes are taken."""
        shared: dict[int, tuple[bytes, int]] = {}
        kept = 0  # bytes in ``shared``: clients catching up must not pile up every piece
        head, oldest, base = group.next_seq, group.oldest, group.base
        ring = self._ring_of(group)
        for client in list(clients):
            if client.busy:
                self._check_budget(client)
                continue
            seq = client.seq
            if seq >= head:
                continue
            if seq < oldest or client.resume_at >= 0:
                # Behind the ring only after a burst longer than it without a flush
                # (publish flushes in line well before that): the same notice as for a
                # slow client.  A resuming client gets its holes told.
                self._pump(client)
                continue
            while True:
                got = shared.get(seq)
                if got is None:
                    got = piece(ring, group, seq, code=code, lost=0, cap=self.write_cap)
                    if kept < CHUNKS_KEPT_BYTES:
                        shared[seq] = got
                        kept += len(got[0])
                data, stop = got
                client.seq = stop
                base.sent += stop - seq
                self._write_now(client, data)
                if stop >= head or client.busy or client.closing:
                    break
                seq = stop

    def owed(self, cursor: C) -> bytes:
        """The next piece pending for ``cursor`` (at most ``write_cap`` bytes), with the
        drop notice if it fell off the ring, its cursor moved past it (the caller asks
        again while ``cursor.seq < cursor.ring.next_seq``); empty when it is closed for
        exceeding its budget instead, or has nothing pending."""
        ring = cursor.ring
        lost = ring.oldest - cursor.seq
        if lost > 0:
            cursor.dropped += lost
            self.drops += lost
            cursor.seq = ring.oldest
            if self._check_budget(cursor):
                return b""
        elif cursor.seq >= ring.next_seq:
            return b""
        return self._take(cursor, max(0, lost))

    def _check_budget(self, cursor: C) -> bool:
        """Close ``cursor`` if it has lost (or is sure to lose) more than its budget; True
        when it is closing."""
        behind = max(0, cursor.ring.oldest - cursor.seq)
        total = cursor.dropped + behind
        if total <= self.drop_budget or cursor.closing:
            return cursor.closing
        self.slow_closed += 1
        self._close_slow(cursor, total)
        return True

    def _close_slow(self, cursor: C, dropped: int) -> None:
        self.close_client(cursor, self.close_code, f"too slow: {dropped} messages dropped")
