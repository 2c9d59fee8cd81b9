"""The fan-out bookkeeping of a worker: rings of messages, clients as cursors into them,
what each client is owed, what it lost, and when it is past its drop budget.

Sans-IO, like the rest of the core: :class:`Fanout` decides what bytes each client gets and
when a client must be closed; it never touches a socket, a greenlet or a clock.  The shell's
``certstream.shell.hub.Hub`` subclasses it and supplies the I/O: ``_write_now`` (hand bytes
to a client's socket, marking it ``busy`` when the kernel does not take them all),
``close_client`` (send a Close and end the connection) and ``_wake`` (run the flusher soon).
A subclass that records instead of writing makes the whole policy testable with plain
values.  What one write takes (a piece of at most ``write_cap`` bytes) and where a resuming
client starts are pure functions of a ring, in ``core.catchup``.

Theory of operation (the measured costs behind it are in ``certstream.shell.hub``):

* **Build once.**  ``publish`` appends each payload to its stream's :class:`Ring`
  (``core.rings``), one bytes object per slot, bounded in entries and in bytes.  The
  WebSocket frames of the slots a write takes are built while they are joined into that
  write's buffer, once per position for every client there (``frames.join_ws_frames``: the
  copy the join makes anyway, with a header in front of each payload).  The SSE form and
  the compressed forms of a slot are built lazily, once, the first time a client needs
  them.  A stream with no client here costs one reference per record (its records are kept
  for clients that come to resume, and its latest payload for ``/example.json``).
* **Clients are cursors.**  A :class:`Cursor` holds its ring and ``seq``, the sequence number
  of the next frame it should get.  No per-client queue, no copies.
* **One flush.**  ``publish`` marks the ring dirty and wakes the flusher; ``flush`` walks the
  dirty rings' clients and writes each one everything it is owed, joined into one buffer
  of at most ``write_cap`` bytes (more is written in further writes of that size once one
  is taken).  Clients at the same cursor (the usual case) share the joined bytes.
  ``publish`` flushes in line when a burst would otherwise overrun the ring.
* **Slow clients.**  The flusher skips ``busy`` clients (a write is pending); whoever drains
  them asks :meth:`Fanout.owed` for what is pending, a piece of at most ``write_cap`` bytes
  at a time (a crowd of slow clients, each holding one write, holds no more than that
  each, and clients at the same position share the piece).  A client whose cursor
  fell off the ring resumes at the oldest retained frame and is told how much it lost: a
  WebSocket text frame ``{"message_type":"notice","dropped":N}`` or, on SSE, a comment line
  ``: dropped N``.  Past ``drop_budget`` lost frames in total it is closed with
  ``close_code`` and a reason naming the count.

``flush_interval`` coalesces writes: the flusher waits ``flush_delay(now)`` after its last
flush, so a client behind by k entries costs one write for all k.  ``after_flush`` runs a
callback once what was published so far has been written (the worker acknowledges the
feed's entries with it).

Subscriptions keep all of that (see "Subscriptions" in the design notes):

* **Resume.**  Each ring slot keeps its record's :class:`~certstream.core.resume.Stamp`
  (global id, ``seen``, number), and every record is kept, whether or not a client of this
  worker reads the stream then, so that a client can come back to any worker and resume:
  ``subscribe`` with a ``Resume`` starts its cursor after the id it names (SSE
  ``Last-Event-ID``) or at the first record seen at or after its ``since`` (WebSocket), and
  the flusher sends it the ring's frames from there, the same bytes as live, in pieces of
  at most ``write_cap`` bytes (``Cursor.resume_at`` remembers where it is).  Resuming
  from before the oldest record held, it is first told how many it lost (the numbers of
  the records say it; ``"dropped":null`` when nobody can).  A gap (records the source lost)
  is a slot of its own in every ring (:meth:`Fanout.gap`), so whoever reads across it is
  told in order.
* **Filters.**  A filtered client reads a ``core.views.View`` of its stream's ring: the
  ring's sequence numbers of the records its filter matched.  Every distinct filter of the
  worker is one slot of one ``core.filters.FilterIndex``; ``publish`` matches each entry
  once, for all of them (only while there is a filtered client), and appends the entry's
  sequence number to the views of the slots that matched.  The frames are the ring's,
  clients of a view at the same position share the joined buffer, a record nobody matched
  costs no client anything, and unfiltered clients keep the path above untouched.
* **permessage-deflate.**  A client that negotiated it (``wbits``, its window) gets each
  ring slot's frame compressed once per window size (``core.deflate``), built by the first
  client that needs it and shared by every other; drop notices stay plain frames.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from certstream.core.catchup import Group, needs_number, resume_point
from certstream.core.delivery import WRITE_CAP, Cursor, Delivery
from certstream.core.filterfields import FilterSpec, entry_fields
from certstream.core.resume import (
    EPOCH_SHIFT,
    UNKNOWN,
    Resume,
    SeenIndex,
    Stamp,
    stamp_key,
)
from certstream.core.rings import DEFAULT_MAX_BYTES, Ring, drop_notice, notice_payload
from certstream.core.streams import (
    FILTER_FIELDS,
    STREAM_DOMAINS,
    STREAM_FULL,
    STREAM_LITE,
    STREAM_NAMES,
    STREAMS,
)
from certstream.core.views import View

if TYPE_CHECKING:
    from certstream.core.filters import FilterIndex

__all__ = ["WRITE_CAP", "Cursor", "Fanout", "Group", "Ring", "View", "drop_notice",
           "notice_payload"]

#: The client type of a ``Fanout``: ``Cursor`` or the shell's subclass of it.
C = TypeVar("C", bound="Cursor")

#: ``Fanout.seen_index`` keeps this many runs of records (a run: records seen at the same
#: time) per ring slot: 24 bytes each, so 192 KiB at the default 1,000 slots.
HISTORY_RUNS_PER_SLOT = 8


def _idle() -> None:
    return None


class Fanout(Delivery[C]):
    """All rings and client cursors of one worker (see the module docstring).

    The I/O is the subclass's: ``_write_now(cursor, data)``, ``close_client(cursor, code,
    reason)`` and the ``_wake`` callable (set it to wake the flusher).
    """

    def __init__(
        self,
        buffer_size: int,
        *,
        drop_budget: int = 1000,
        close_code: int = 1008,
        on_wanted: Callable[[int], None] | None = None,
        flush_interval: float = 0.0,
        epoch_ms: int = 0,
        buffer_bytes: int = DEFAULT_MAX_BYTES,
        write_cap: int = WRITE_CAP,
    ) -> None:
        super().__init__(drop_budget=drop_budget, close_code=close_code,
                         flush_interval=flush_interval, write_cap=write_cap)
        self.rings: dict[int, Ring[C]] = {s: Ring(s, buffer_size, buffer_bytes)
                                          for s in STREAMS}
        # Records published without a stamp are numbered in ``epoch_ms`` (the worker's
        # start time) by this worker alone.
        self._epoch_ms = epoch_ms
        self._own = 0
        self._gap_lost = 0  # records lost in gaps since the last record (-1: unknown)
        #: When each run of records was seen, reaching back well past the rings: how many
        #: records a WebSocket client resuming from an old ``seen`` lost.
        self.seen_index = SeenIndex(HISTORY_RUNS_PER_SLOT * buffer_size)
        self.on_wanted = on_wanted
        self.wanted = 0
        self.state: dict[str, Any] | None = None  # the latest feed STATE
        self.example_count = 0  # lite samples received (the worker waits for the next one)
        #: Every distinct filter of this worker's clients; made with the first one (the
        #: gunicorn master imports this module and needs no matcher).
        self.filters: FilterIndex | None = None
        # Counters for /metrics and /api/stats.
        self.entries = 0
        self.bytes_sent = 0
        #: Entries matched without the feed's filter field (read from a payload instead).
        self.unfielded = 0
        self._views = 0  # live views: entries are matched only while there is one
        self._flush_every = max(1, min(256, buffer_size // 2))
        self._flush_bytes = max(1, buffer_bytes // 2)
        #: Called when there is something to flush (the shell sets its flusher's wake-up).
        self._wake: Callable[[], None] = _idle

    # -- input from the feed ---------------------------------------------------------------

    def publish(
        self,
        mask: int,
        lite: bytes | None,
        full: bytes | None,
        domains: bytes | None,
        fields: bytes | None = None,
        *,
        stamp: Stamp | None = None,
    ) -> None:
        """One entry's payloads (the record source's ``on_record``); absent ones are
        ``None``.  ``stamp`` is the record's global id, seen and number, with its filter
        field (``fields`` is read only without a stamp: the worker then numbers it)."""
        self.entries += 1
        size = 0
        stamp = self._stamp(stamp, fields)
        hit = self._match(stamp.fields, lite, full, domains) if self._views else 0
        for stream, payload in ((STREAM_LITE, lite), (STREAM_FULL, full),
                                (STREAM_DOMAINS, domains)):
            if payload is None:
                continue
            ring = self.rings[stream]
            ring.latest = payload
            # Kept even while no client of this worker reads the stream: one may come here
            # to resume (the payload came because some client somewhere wants it).
            views = hit & ring.view_mask
            ring.append(payload, stamp)
            size = max(size, len(payload))
            if ring.ws_clients or ring.sse_clients or ring.wsz_clients:
                self._dirty.add(ring)
            if views:
                self._push_views(ring, views)
        self._unflushed_bytes += size
        self._dirtied()

    def _stamp(self, stamp: Stamp | None, fields: bytes | None) -> Stamp:
        """The stamp kept for the next record: ``seen`` never goes back along the rings
        (they are searched by it), even if a clock did."""
        last = self.last
        if stamp is None:
            self._own += 1
            stamp = Stamp(stamp_key(self._epoch_ms, self._own),
                          last.seen if last is not None else 0,
                          (self._epoch_ms << EPOCH_SHIFT) | self._own, fields)
        elif last is not None and stamp.seen < last.seen:
            stamp = Stamp(stamp.key, last.seen, stamp.number, stamp.fields)
        self.last = stamp
        self._gap_lost = 0
        self.seen_index.add(stamp.seen, stamp.number)
        return stamp

    def _dirtied(self) -> None:
        if self._dirty:
            self._unflushed += 1
            if (self._unflushed >= self._flush_every
                    or self._unflushed_bytes >= self._flush_bytes):
                # The feed reader may not yield for a long burst (a gevent recv with data
                # waiting returns at once): flush in line before the ring could overrun
                # clients that are keeping up, in entries or in bytes.
                self.flush()
            else:
                self._wake()

    def gap(self, lost: int) -> None:
        """``lost`` records (``UNKNOWN``: nobody knows how many) will never come: every
        ring gets a notice slot, after what came before (see the module doc)."""
        last = self.last
        # After the last record's id (ids are even, a gap's odd), numbered as the first
        # record it stands for.
        first = self._next_expected()
        stamp = Stamp((last.key if last is not None else 0) | 1,
                      last.seen if last is not None else 0, first, None, lost)
        self._gap_lost = -1 if lost == UNKNOWN or self._gap_lost < 0 else self._gap_lost + lost
        for ring in self.rings.values():
            ring.append_gap(lost, stamp)
            if ring.ws_clients or ring.sse_clients or ring.wsz_clients:
                self._dirty.add(ring)
            if ring.view_mask:
                self._push_views(ring, ring.view_mask)  # every filter's clients are told
        self._dirtied()

    def _next_expected(self) -> int:
        """The number the next record should have: after the last one and the gaps since."""
        last = self.last
        base = last.number + 1 if last is not None else 1
        return base + max(0, self._gap_lost)

    def _push_views(self, ring: Ring[C], bits: int) -> None:
        seq = ring.next_seq - 1
        views, dirty = ring.views, self._dirty
        while bits:
            low = bits & -bits
            view = views[low.bit_length() - 1]
            view.push(seq)
            dirty.add(view)
            bits ^= low

    def _match(
        self, fields: bytes | None, lite: bytes | None, full: bytes | None,
        domains: bytes | None,
    ) -> int:
        """The filter slots that match this entry: one scan for every filter."""
        assert self.filters is not None
        if fields is None:
            self.unfielded += 1
        record = entry_fields(fields, lite, full, domains)
        return 0 if record is None else self.filters.match(record)

    def set_example(self, lite: bytes) -> None:
        """A lite sample from the feed: whichever lite payload came last is served."""
        self.rings[STREAM_LITE].latest = lite
        self.example_count += 1

    def set_state(self, state: dict[str, Any]) -> None:
        self.state = state

    def latest(self, stream: int) -> bytes | None:
        """The newest payload of ``stream`` (for ``/example.json``)."""
        return self.rings[stream].latest

    # -- clients ---------------------------------------------------------------------------

    def subscribe(self, cursor: C, spec: FilterSpec | None = None,
                  resume: Resume | None = None) -> None:
        """Start delivering ``cursor``'s ring to it, from the head or, with ``resume``, from
        where the client left off (see :meth:`_resume`); with ``spec``, only the records
        that filter matches (``cursor`` then reads the ring's view for it)."""
        ring = cursor.ring
        assert isinstance(ring, Ring), "a cursor starts on its stream's ring"
        if spec is not None:
            view = self._view(ring, spec)
            cursor.ring = view
            cursor.seq = view.next_seq
        group = cursor.ring
        if not cursor.is_ws:
            group.sse_clients.add(cursor)
        elif cursor.wbits:
            group.wsz_clients.add(cursor)
        else:
            group.ws_clients.add(cursor)
        self._update_wanted()
        if resume is not None:
            self._resume(cursor, ring, resume)

    def _resume(self, cursor: C, ring: Ring[C], resume: Resume) -> None:
        """Write ``cursor`` what it missed since ``resume``, in order: what it lost before
        the oldest record held, the ring's frames from there (the same bytes as live, the
        gaps' notices among them), a notice wherever records came that this stream has no
        payload of (nobody wanted it then).  The first piece (``write_cap``) goes now, the
        rest as each write is taken (``_pump``, or the shell's writer through ``owed``)."""
        start, lost = self.resume_point(ring, resume)
        group = cursor.ring
        position = self._view_position(group, start) if isinstance(group, View) else start
        cursor.seq, cursor.resume_at = position, start
        data = self._take(cursor, lost)
        if data:
            self._write_now(cursor, data)
        self._pump(cursor)

    # -- resuming ----------------------------------------------------------------------------

    def needs_number(self, stream: int, key: int) -> bool:
        """Whether how many records a client resuming after record ``key`` of ``stream``
        lost takes that record's number, and the hub does not hold it (it is older than
        every record held, or not of this stream): the shell looks it up (the broker still
        has it) and passes it in ``Resume.number``."""
        return needs_number(self.rings[stream], key, self.last)

    def resume_point(self, ring: Ring[C], resume: Resume) -> tuple[int, int]:
        """Where in ``ring`` a client resuming at ``resume`` starts, and how many records
        it lost before that (``core.catchup.resume_point``)."""
        return resume_point(ring, resume, self.last, self.seen_index)

    def _view_position(self, view: View[C], start: int) -> int:
        """The position in ``view`` of the first record at or after ring position
        ``start``: records older than the view are matched against its filter first (a
        filter first seen with a resuming client)."""
        ring = self._ring_of(view)
        if start < view.covered:
            lo = max(start, ring.oldest)
            matched = [seq for seq in range(lo, view.covered)
                       if self._held_matches(ring, seq, view.slot)]
            view.backfill(matched, lo)
        return view.position_of(start)

    def _held_matches(self, ring: Ring[C], seq: int, slot: int) -> bool:
        stamp = ring.stamp(seq)
        if stamp.gap:
            return True  # every filter's clients are told of a gap
        assert self.filters is not None
        payload = ring.payload(seq)
        stream = ring.stream
        record = entry_fields(stamp.fields,
                              payload if stream == STREAM_LITE else None,
                              payload if stream == STREAM_FULL else None,
                              payload if stream == STREAM_DOMAINS else None)
        return record is not None and bool(self.filters.match(record) >> slot & 1)

    def _view(self, ring: Ring[C], spec: FilterSpec) -> View[C]:
        """The view of ``ring`` for ``spec``, with one more client reference to the filter."""
        filters = self.filters
        if filters is None:
            # Loaded with the first filtered client: the matcher's extensions (Aho-Corasick,
            # RE2) stay out of processes that never filter, the gunicorn master included.
            from certstream.core.filters import FilterIndex  # noqa: PLC0415

            filters = self.filters = FilterIndex()
        slot = filters.add(spec)
        view = ring.views.get(slot)
        if view is None:
            view = ring.views[slot] = View(ring, slot)
            ring.view_mask |= 1 << slot
            self._views += 1
        return view

    def _detach(self, cursor: C) -> None:
        """No more frames for ``cursor``: it is closing or gone."""
        cursor.closing = True
        group = cursor.ring
        if cursor in group.ws_clients:
            group.ws_clients.remove(cursor)
        elif cursor in group.wsz_clients:
            group.wsz_clients.remove(cursor)
        elif cursor in group.sse_clients:
            group.sse_clients.remove(cursor)
        else:
            return  # detached already
        if isinstance(group, View):
            self._release(group)
        self._update_wanted()

    def _release(self, view: View[C]) -> None:
        """One client of ``view`` left: its filter reference goes, and the view with its
        last client."""
        assert self.filters is not None
        self.filters.remove(view.slot)
        if len(view):
            return
        ring = self._ring_of(view)
        del ring.views[view.slot]
        ring.view_mask &= ~(1 << view.slot)
        self._views -= 1
        self._dirty.discard(view)
        # Kept pieces are found by the view's id(), which a new view may reuse.
        self._chunks.clear()
        self._chunk_bytes = 0

    def groups(self) -> Iterator[Group]:
        """Every ring and every view."""
        for ring in self.rings.values():
            yield ring
            yield from ring.views.values()

    @property
    def frames_sent(self) -> int:
        return sum(ring.sent for ring in self.rings.values())

    def counts(self) -> dict[str, dict[str, int]]:
        """Connected clients by transport and stream name."""
        out: dict[str, dict[str, int]] = {
            "websocket": dict.fromkeys(STREAM_NAMES.values(), 0),
            "sse": dict.fromkeys(STREAM_NAMES.values(), 0),
        }
        for group in self.groups():
            name = STREAM_NAMES[group.stream]
            out["websocket"][name] += len(group.ws_clients) + len(group.wsz_clients)
            out["sse"][name] += len(group.sse_clients)
        return out

    def total(self) -> int:
        """Streaming clients connected to this worker."""
        return sum(len(g.ws_clients) + len(g.wsz_clients) + len(g.sse_clients)
                   for g in self.groups())

    def clients(self, *, ws: bool | None = None) -> Iterator[C]:
        """Every streaming client; only the WebSocket (``ws``) or only the SSE ones."""
        for group in self.groups():
            if ws is not False:
                yield from group.ws_clients
                yield from group.wsz_clients
            if ws is not True:
                yield from group.sse_clients

    def _update_wanted(self) -> None:
        self.on_change()
        mask = 0
        for stream, ring in self.rings.items():
            if ring.ws_clients or ring.wsz_clients or ring.sse_clients or ring.views:
                mask |= stream
        if self._views:
            mask |= FILTER_FIELDS  # the ingest sends what the filters match with each entry
        if mask != self.wanted:
            self.wanted = mask
            if self.on_wanted is not None:
                self.on_wanted(mask)
