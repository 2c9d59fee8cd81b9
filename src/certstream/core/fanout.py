"""The fan-out bookkeeping of a worker: rings of pre-built frames, clients as cursors into
them, what each client is owed, what it lost, and when it is past its drop budget.

Sans-IO, like the rest of the core: :class:`Fanout` decides what bytes each client gets and
when a client must be closed; it never touches a socket, a greenlet or a clock.  The shell's
``certstream.shell.hub.Hub`` subclasses it and supplies the I/O: ``_write_now`` (hand bytes
to a client's socket, marking it ``busy`` when the kernel does not take them all),
``close_client`` (send a Close and end the connection) and ``_wake`` (run the flusher soon).
A subclass that records instead of writing makes the whole policy testable with plain
values.

Theory of operation (the measured costs behind it are in ``certstream.shell.hub``):

* **Build once.**  ``publish`` appends each payload to its stream's :class:`Ring`, which
  frames it there, once, for every WebSocket client.  The SSE form of a slot is built
  lazily, once, the first time an SSE client needs it.  A stream with no client is not
  framed at all (only its latest payload is kept, for ``/example.json``).
* **Clients are cursors.**  A :class:`Cursor` holds its ring and ``seq``, the sequence number
  of the next frame it should get.  No per-client queue, no copies.
* **One flush.**  ``publish`` marks the ring dirty and wakes the flusher; ``flush`` walks the
  dirty rings' clients and writes each one everything it is owed, joined into one buffer.
  Clients at the same cursor (the usual case) share the joined bytes.  ``publish`` flushes
  in line when a burst would otherwise overrun the ring.
* **Slow clients.**  The flusher skips ``busy`` clients (a write is pending); whoever drains
  them asks :meth:`Fanout.owed` for everything pending in one piece.  A client whose cursor
  fell off the ring resumes at the oldest retained frame and is told how much it lost: a
  WebSocket text frame ``{"message_type":"notice","dropped":N}`` or, on SSE, a comment line
  ``: dropped N``.  Past ``drop_budget`` lost frames in total it is closed with
  ``close_code`` and a reason naming the count.

``flush_interval`` coalesces writes: the flusher waits ``flush_delay(now)`` after its last
flush, so a client behind by k entries costs one write for all k.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from certstream.core import frames
from certstream.core.streams import STREAM_DOMAINS, STREAM_FULL, STREAM_LITE, STREAM_NAMES, STREAMS

__all__ = ["Cursor", "Fanout", "Ring", "drop_notice"]

#: The client type of a ``Fanout``: ``Cursor`` or the shell's subclass of it.
C = TypeVar("C", bound="Cursor")


def _nothing() -> None:
    return None


def drop_notice(lost: int, *, ws: bool) -> bytes:
    """What a client is told when it lost ``lost`` frames: a WebSocket notice (clients skip
    unknown message types) or an SSE comment."""
    if ws:
        return frames.ws_frame(b'{"message_type":"notice","dropped":%d}' % lost)
    return frames.sse_comment(b"dropped %d" % lost)


class Ring(Generic[C]):
    """Frames of one stream, by sequence number; the last ``size`` are retained."""

    __slots__ = ("frames", "latest", "next_seq", "payloads", "sent", "size", "sse",
                 "sse_clients", "stream", "ws_clients")

    def __init__(self, stream: int, size: int) -> None:
        self.stream = stream
        self.size = size
        self.payloads: list[bytes] = [b""] * size
        self.frames: list[bytes] = [b""] * size
        self.sse: list[bytes | None] = [None] * size
        self.next_seq = 0
        self.latest: bytes | None = None
        self.sent = 0  # frames delivered to this stream's clients (for the metrics)
        self.ws_clients: set[C] = set()
        self.sse_clients: set[C] = set()

    @property
    def oldest(self) -> int:
        return max(0, self.next_seq - self.size)

    def append(self, payload: bytes) -> None:
        slot = self.next_seq % self.size
        self.payloads[slot] = payload
        # A client's cursor starts at the head, so a slot framed for nobody is never needed.
        self.frames[slot] = frames.ws_frame(payload) if self.ws_clients else b""
        self.sse[slot] = None
        self.next_seq += 1

    def ws_range(self, start: int) -> list[bytes]:
        size, ring = self.size, self.frames
        return [ring[seq % size] for seq in range(start, self.next_seq)]

    def sse_range(self, start: int) -> list[bytes]:
        size, built, payloads = self.size, self.sse, self.payloads
        out = []
        for seq in range(start, self.next_seq):
            slot = seq % size
            event = built[slot]
            if event is None:
                event = built[slot] = frames.sse_event(payloads[slot], seq)
            out.append(event)
        return out


class Cursor:
    """One streaming client as the bookkeeping sees it: its ring and position.  Kept tiny
    (``__slots__``) because there may be tens of thousands; the shell's ``Client`` adds the
    socket."""

    __slots__ = ("busy", "closing", "dropped", "is_ws", "ring", "seq")

    def __init__(self, ring: Ring[Any], *, is_ws: bool) -> None:
        self.ring: Ring[Any] = ring
        self.is_ws = is_ws
        self.seq = ring.next_seq  # a new client starts at the head
        self.dropped = 0  # frames lost so far (it fell off the ring)
        self.busy = False  # a write is pending: the flusher leaves it to its drainer
        self.closing = False


class Fanout(Generic[C]):
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
    ) -> None:
        self.rings: dict[int, Ring[C]] = {s: Ring(s, buffer_size) for s in STREAMS}
        self.drop_budget = drop_budget
        self.close_code = close_code
        self.flush_interval = flush_interval
        #: The monotonic time of the flusher's last flush (see ``flush_delay``).
        self.last_flush = 0.0
        self.on_wanted = on_wanted
        self.wanted = 0
        self.state: dict[str, Any] | None = None  # the latest feed STATE
        self.example_count = 0  # lite samples received (the worker waits for the next one)
        # Counters for /metrics and /api/stats.
        self.entries = 0
        self.bytes_sent = 0
        self.drops = 0
        self.slow_closed = 0
        self._dirty: set[Ring[C]] = set()
        self._unflushed = 0
        self._flush_every = max(1, min(256, buffer_size // 2))
        #: Called when there is something to flush (the shell sets its flusher's wake-up).
        self._wake: Callable[[], None] = _nothing
        #: Called after a client came or went and after each flush: the figures of
        #: ``counts`` and the counters above may have changed (the shell publishes them).
        self.on_change: Callable[[], None] = _nothing

    # -- the I/O, supplied by the subclass ---------------------------------------------------

    def _write_now(self, cursor: C, data: bytes | memoryview) -> None:
        """Write ``data`` to ``cursor``'s connection; set ``cursor.busy`` if it is not all
        written yet (whoever finishes it sends ``owed(cursor)`` next)."""
        raise NotImplementedError

    def close_client(self, cursor: C, code: int, reason: str) -> None:
        """End ``cursor``'s connection with ``code`` and ``reason``; ``_detach`` it."""
        raise NotImplementedError

    # -- input from the feed ---------------------------------------------------------------

    def publish(
        self, mask: int, lite: bytes | None, full: bytes | None, domains: bytes | None
    ) -> None:
        """One entry's payloads (the feed's ``on_entry``); absent ones are ``None``."""
        self.entries += 1
        for stream, payload in ((STREAM_LITE, lite), (STREAM_FULL, full),
                                (STREAM_DOMAINS, domains)):
            if payload is None:
                continue
            ring = self.rings[stream]
            ring.latest = payload
            if ring.ws_clients or ring.sse_clients:
                ring.append(payload)
                self._dirty.add(ring)
        if self._dirty:
            self._unflushed += 1
            if self._unflushed >= self._flush_every:
                # The feed reader may not yield for a long burst (a gevent recv with data
                # waiting returns at once): flush in line before the ring could overrun
                # clients that are keeping up.
                self.flush()
            else:
                self._wake()

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

    def subscribe(self, cursor: C) -> None:
        """Start delivering ``cursor``'s ring to it (from the head)."""
        ring = cursor.ring
        (ring.ws_clients if cursor.is_ws else ring.sse_clients).add(cursor)
        self._update_wanted()

    def _detach(self, cursor: C) -> None:
        """No more frames for ``cursor``: it is closing or gone."""
        cursor.closing = True
        ring = cursor.ring
        ring.ws_clients.discard(cursor)
        ring.sse_clients.discard(cursor)
        self._update_wanted()

    @property
    def frames_sent(self) -> int:
        return sum(ring.sent for ring in self.rings.values())

    def counts(self) -> dict[str, dict[str, int]]:
        """Connected clients by transport and stream name."""
        out: dict[str, dict[str, int]] = {"websocket": {}, "sse": {}}
        for stream, ring in self.rings.items():
            out["websocket"][STREAM_NAMES[stream]] = len(ring.ws_clients)
            out["sse"][STREAM_NAMES[stream]] = len(ring.sse_clients)
        return out

    def total(self) -> int:
        """Streaming clients connected to this worker."""
        return sum(len(r.ws_clients) + len(r.sse_clients) for r in self.rings.values())

    def clients(self) -> Iterable[C]:
        for ring in self.rings.values():
            yield from ring.ws_clients
            yield from ring.sse_clients

    def _update_wanted(self) -> None:
        self.on_change()
        mask = 0
        for stream, ring in self.rings.items():
            if ring.ws_clients or ring.sse_clients:
                mask |= stream
        if mask != self.wanted:
            self.wanted = mask
            if self.on_wanted is not None:
                self.on_wanted(mask)

    # -- what each client is owed ----------------------------------------------------------

    def flush_delay(self, now: float) -> float:
        """How long the flusher should still wait at ``now`` (monotonic) before flushing:
        writes are coalesced to one per ``flush_interval`` after ``last_flush``."""
        return self.last_flush + self.flush_interval - now

    def flush(self) -> None:
        """Write every client of every dirty ring what it has pending (see module doc)."""
        dirty, self._dirty = self._dirty, set()
        self._unflushed = 0
        for ring in dirty:
            self._flush_ring(ring, ring.ws_clients, ws=True)
            self._flush_ring(ring, ring.sse_clients, ws=False)
        self.on_change()

    def _flush_ring(self, ring: Ring[C], clients: set[C], *, ws: bool) -> None:
        if not clients:
            return
        shared: dict[int, bytes] = {}
        head = ring.next_seq
        for client in list(clients):
            if client.busy:
                self._check_budget(client)
                continue
            seq = client.seq
            if seq >= head:
                continue
            if seq < ring.oldest:
                # Only after a burst longer than the ring without a flush (publish flushes
                # in line well before that): the same notice as for a slow client.
                behind = self.owed(client)
                if behind:
                    self._write_now(client, behind)
                continue
            data = shared.get(seq)
            if data is None:
                data = shared[seq] = b"".join(ring.ws_range(seq) if ws else ring.sse_range(seq))
            client.seq = head
            ring.sent += head - seq
            self._write_now(client, data)

    def owed(self, cursor: C) -> bytes:
        """Everything pending for ``cursor``, with the drop notice if it fell off the ring,
        and its cursor moved to the head; empty when it is closed for exceeding its budget
        instead."""
        ring = cursor.ring
        lost = ring.oldest - cursor.seq
        parts: list[bytes] = []
        if lost > 0:
            cursor.dropped += lost
            self.drops += lost
            cursor.seq = ring.oldest
            if self._check_budget(cursor):
                return b""
            parts.append(drop_notice(lost, ws=cursor.is_ws))
        start, cursor.seq = cursor.seq, ring.next_seq
        ring.sent += cursor.seq - start
        parts.extend(ring.ws_range(start) if cursor.is_ws else ring.sse_range(start))
        return b"".join(parts)

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
