"""The per-worker hub: one ring of pre-built frames per stream, clients as cursors into it.

Theory of operation
-------------------
The measured costs (a ``send()`` is ~5 µs, a gevent greenlet switch per client per message
another ~6-9 µs, while joining k frames into one write costs ~0.4 µs per frame) decide the
shape:

* **Build once.**  ``publish`` appends each payload to its stream's ``Ring`` and frames it
  there, once, for every WebSocket client (``core.frames.ws_frame``).  The SSE form of a slot
  is built lazily, once, the first time an SSE client needs it.  A stream with no client on
  this worker is not framed at all (only its latest payload is kept, for ``/example.json``).
* **Clients are cursors.**  A ``Client`` holds its socket, its stream ring and ``seq``, the
  sequence number of the next frame it should get.  No per-client queue, no copies.
* **One flush, no switches.**  ``publish`` only marks the ring dirty and sets one Event.  The
  flusher greenlet runs once the feed reader has dispatched everything it read, walks the
  dirty rings' clients and writes each one everything it has pending, joined into one buffer,
  with a non-blocking ``os.write``: no greenlet switch per client or per message.  Clients at
  the same cursor (the usual case) share the joined bytes of that flush.
* **Coalesced writes.**  The flusher writes at most once per ``flush_interval`` (20 ms by
  default): entries that arrive sooner wait for the next flush, so a client behind by k
  entries costs one ``write`` for all k.  ``publish`` still flushes in line when a burst
  would otherwise overrun the ring.
* **Slow clients.**  A write the kernel does not take in full marks the client ``busy`` and
  hands the rest to a writer greenlet of its own, which waits for the socket to drain, with
  ``send_timeout`` as the longest it may go without progress.  The flusher skips busy
  clients, so a stuck client never delays the others.  When the writer catches up it sends
  everything pending in one write again and retires.  A client whose cursor fell off the ring
  resumes at the oldest retained frame and is told how much it lost: a WebSocket text frame
  ``{"message_type":"notice","dropped":N}`` (N = frames lost this time; clients skip unknown
  message types) or, on SSE, a comment line ``: dropped N``.  Past ``drop_budget`` lost
  frames in total it is closed with ``close_code`` (1008 by default) and a reason naming the
  count; a client that makes no progress for ``send_timeout`` is cut off.
* **Control frames** (pongs, server pings, heartbeats, closes) go through the same write path,
  so they never land inside a data frame a busy writer has half sent.

The hub keeps counts per stream and transport so the worker can tell the ingest which stream
types it wants (``on_wanted`` whenever a stream's subscriber count goes 0 <-> 1) and serve
``/health/deep`` and the metrics.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

import gevent
import gevent.event
from gevent.socket import wait_write

from certstream.core import frames
from certstream.core.session import Session
from certstream.core.streams import STREAM_DOMAINS, STREAM_FULL, STREAM_LITE, STREAM_NAMES

__all__ = ["Client", "Hub", "Ring"]

log = logging.getLogger(__name__)

_PING = frames.ws_ping_frame()
# How long a closing connection may linger (waiting for the client's Close reply) before
# the socket is shut down for good.
_CLOSE_LINGER_SECS = 5.0
# ``Client.fd`` once its socket is closed: never write to a file descriptor number that the
# kernel may already have given to another connection.
_GONE = -2


class Ring:
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
        self.ws_clients: set[Client] = set()
        self.sse_clients: set[Client] = set()

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


class Client:
    """One streaming client: a socket and a cursor.  Kept tiny (``__slots__``, no buffers
    unless it is behind) because there may be tens of thousands."""

    __slots__ = ("backlog", "busy", "closing", "dropped", "fd", "is_ws", "ring", "seq",
                 "session", "sock", "writer")

    def __init__(self, sock: socket.socket, session: Session, ring: Ring, *, is_ws: bool) -> None:
        self.sock = sock
        # Fast path writes straight to the (non-blocking) fd.  TLS sockets must go through
        # their SSL object, so they always take the writer-greenlet path (fd -1).
        self.fd = sock.fileno() if not hasattr(sock, "do_handshake") else -1
        self.session = session
        self.ring = ring
        self.is_ws = is_ws
        self.seq = ring.next_seq
        self.dropped = 0
        self.busy = False
        self.closing = False
        self.backlog: list[bytes | memoryview] | None = None
        self.writer: gevent.Greenlet | None = None


class Hub:
    """All rings and clients of one worker process (see the module docstring)."""

    def __init__(
        self,
        buffer_size: int = 1000,
        *,
        drop_budget: int = 1000,
        close_code: int = 1008,
        send_timeout: float = 30.0,
        on_wanted: Callable[[int], None] | None = None,
        flush_interval: float = 0.0,
    ) -> None:
        self.rings = {s: Ring(s, buffer_size) for s in (STREAM_LITE, STREAM_FULL, STREAM_DOMAINS)}
        self.drop_budget = drop_budget
        self.close_code = close_code
        self.send_timeout = send_timeout
        self.flush_interval = flush_interval
        self.on_wanted = on_wanted
        self.wanted = 0
        self.state: dict[str, Any] | None = None  # the latest feed STATE
        self.example_count = 0  # lite samples received (the worker waits for the next one)
        # Counters for /metrics and /api/stats.
        self.entries = 0
        self.bytes_sent = 0
        self.drops = 0
        self.slow_closed = 0
        self._dirty: set[Ring] = set()
        self._unflushed = 0
        self._flush_every = max(1, min(256, buffer_size // 2))
        self._wake = gevent.event.Event()
        self._flusher: gevent.Greenlet | None = None
        self._stopping = False

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self._flusher is None:
            self._flusher = gevent.spawn(self._flush_loop)

    def stop(self) -> None:
        self._stopping = True
        if self._flusher is not None:
            self._flusher.kill(block=False)
            self._flusher = None

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
                self._wake.set()

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

    def add(self, sock: socket.socket, session: Session, stream: int, *, is_ws: bool) -> Client:
        ring = self.rings[stream]
        client = Client(sock, session, ring, is_ws=is_ws)
        (ring.ws_clients if is_ws else ring.sse_clients).add(client)
        self._update_wanted()
        return client

    def remove(self, client: Client) -> None:
        """Forget ``client`` (its connection ended); stops its writer greenlet if any."""
        ring = client.ring
        ring.ws_clients.discard(client)
        ring.sse_clients.discard(client)
        client.closing = True
        client.fd = _GONE
        writer, client.writer = client.writer, None
        if writer is not None and writer is not gevent.getcurrent():
            writer.kill(block=False)
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

    def clients(self) -> Iterable[Client]:
        for ring in self.rings.values():
            yield from ring.ws_clients
            yield from ring.sse_clients

    def _update_wanted(self) -> None:
        mask = 0
        for stream, ring in self.rings.items():
            if ring.ws_clients or ring.sse_clients:
                mask |= stream
        if mask != self.wanted:
            self.wanted = mask
            if self.on_wanted is not None:
                self.on_wanted(mask)

    # -- output ----------------------------------------------------------------------------

    def send(self, client: Client, data: bytes) -> None:
        """Write control bytes (pong, ping, heartbeat, close) to ``client`` in order."""
        if data:
            self._write(client, data)

    def broadcast(self, data: bytes, *, ws: bool) -> None:
        """Write the same bytes to every WebSocket (``ws``) or every SSE client."""
        for ring in self.rings.values():
            for client in list(ring.ws_clients if ws else ring.sse_clients):
                self._write(client, data)

    def ping_all(self) -> None:
        self.broadcast(_PING, ws=True)

    def close_client(self, client: Client, code: int, reason: str) -> None:
        """End ``client``: a Close frame (WebSocket) or the end of the response (SSE), then
        the socket is shut down once that is flushed."""
        if client.closing:
            return
        client.closing = True
        ring = client.ring
        ring.ws_clients.discard(client)
        ring.sse_clients.discard(client)
        self._update_wanted()
        data = b""
        if client.is_ws:
            client.session.close_websocket(code, reason)
            data = client.session.data_to_send()
        if client.busy:
            if data:
                self._backlog(client).append(data)
            return
        if data:
            self._write_now(client, data)
        if not client.busy:
            self._finish_close(client)

    def close_all(self, code: int = 1001, reason: str = "server shutting down") -> None:
        for client in list(self.clients()):
            self.close_client(client, code, reason)

    # -- the write path ----------------------------------------------------------------------

    def _flush_loop(self) -> None:
        last = 0.0
        while not self._stopping:
            self._wake.wait()
            # Coalescing: a write costs ~5 us of syscall whatever its size, so entries that
            # arrive within flush_interval of the last flush (logs deliver small batches at
            # random moments) wait and go out together, one write per client.
            delay = last + self.flush_interval - time.monotonic()
            if delay > 0:
                gevent.sleep(delay)
            self._wake.clear()
            last = time.monotonic()
            self.flush()

    def flush(self) -> None:
        """Write every client of every dirty ring what it has pending (see module doc)."""
        dirty, self._dirty = self._dirty, set()
        self._unflushed = 0
        for ring in dirty:
            self._flush_ring(ring, ring.ws_clients, ws=True)
            self._flush_ring(ring, ring.sse_clients, ws=False)

    def _flush_ring(self, ring: Ring, clients: set[Client], *, ws: bool) -> None:
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
                behind = self._pending(client)
                if behind:
                    self._write_now(client, behind)
                continue
            data = shared.get(seq)
            if data is None:
                data = shared[seq] = b"".join(ring.ws_range(seq) if ws else ring.sse_range(seq))
            client.seq = head
            ring.sent += head - seq
            self._write_now(client, data)

    def _write(self, client: Client, data: bytes) -> None:
        if client.busy:
            self._backlog(client).append(data)
        else:
            self._write_now(client, data)

    def _write_now(self, client: Client, data: bytes | memoryview) -> None:
        """Non-blocking write; whatever the kernel does not take goes to a writer greenlet."""
        if client.fd == _GONE:
            return
        sent = 0
        if client.fd >= 0:
            try:
                sent = os.write(client.fd, data)
            except BlockingIOError:
                sent = 0
            except OSError:
                self._abort(client)
                return
        self.bytes_sent += sent
        if sent < len(data):
            client.busy = True
            self._backlog(client).append(memoryview(data)[sent:])
            client.writer = gevent.spawn(self._slow_writer, client)

    @staticmethod
    def _backlog(client: Client) -> list[bytes | memoryview]:
        if client.backlog is None:
            client.backlog = []
        return client.backlog

    def _pending(self, client: Client) -> bytes:
        """Everything pending for a client that was busy, with the drop notice if it fell off
        the ring; empty when it is closed for exceeding its budget instead."""
        ring = client.ring
        lost = ring.oldest - client.seq
        parts: list[bytes] = []
        if lost > 0:
            client.dropped += lost
            self.drops += lost
            client.seq = ring.oldest
            if self._check_budget(client):
                return b""
            parts.append(
                frames.ws_frame(b'{"message_type":"notice","dropped":%d}' % lost)
                if client.is_ws
                else frames.sse_comment(b"dropped %d" % lost)
            )
        start, client.seq = client.seq, ring.next_seq
        ring.sent += client.seq - start
        parts.extend(ring.ws_range(start) if client.is_ws else ring.sse_range(start))
        return b"".join(parts)

    def _check_budget(self, client: Client) -> bool:
        """Close ``client`` if it has lost (or is sure to lose) more than its budget."""
        behind = max(0, client.ring.oldest - client.seq)
        total = client.dropped + behind
        if total <= self.drop_budget or client.closing:
            return client.closing
        self.slow_closed += 1
        log.info("closing a slow client: %d frames dropped", total)
        self.close_client(client, self.close_code, f"too slow: {total} messages dropped")
        return True

    def _slow_writer(self, client: Client) -> None:
        sock = client.sock
        try:
            while True:
                backlog = client.backlog
                if backlog:
                    data: bytes | memoryview = b"".join(backlog) if len(backlog) > 1 else backlog[0]
                    backlog.clear()
                elif not client.closing and client.seq < client.ring.next_seq:
                    data = self._pending(client)
                    if not data:
                        continue  # closed for its budget: the Close frame is in the backlog
                else:
                    break
                self._drain(client, sock, data)
        except (OSError, gevent.Timeout) as exc:
            log.debug("dropping a client that does not read: %s", exc)
            self._abort(client)
            return
        finally:
            client.busy = False
            client.writer = None
        if client.closing:
            self._finish_close(client)

    def _drain(self, client: Client, sock: socket.socket, data: bytes | memoryview) -> None:
        """Write all of ``data``, waiting for the socket; at most ``send_timeout`` without
        progress."""
        if client.fd == _GONE:
            raise OSError("connection closed")
        if client.fd < 0:
            with gevent.Timeout(self.send_timeout):
                sock.sendall(data)
            self.bytes_sent += len(data)
            return
        view = memoryview(data)
        while view:
            try:
                sent = os.write(client.fd, view)
            except BlockingIOError:
                wait_write(client.fd, timeout=self.send_timeout,
                           timeout_exc=gevent.Timeout(self.send_timeout))
                continue
            self.bytes_sent += sent
            view = view[sent:]

    def _finish_close(self, client: Client) -> None:
        if not client.is_ws:
            # An SSE response is delimited by the end of the connection, and the client
            # sends nothing after its request: close at once.
            self._abort(client)
            return
        # Half-close: the client still reads our Close frame and replies; the reader
        # greenlet sees its EOF.  A client that never answers is cut off after a while.
        with contextlib.suppress(OSError):
            client.sock.shutdown(socket.SHUT_WR)
        gevent.spawn_later(_CLOSE_LINGER_SECS, self._abort, client)

    def _abort(self, client: Client) -> None:
        """Cut the connection now; the reader greenlet ends and closes the socket."""
        if not client.closing:
            client.closing = True
            client.ring.ws_clients.discard(client)
            client.ring.sse_clients.discard(client)
            self._update_wanted()
        with contextlib.suppress(OSError):
            client.sock.shutdown(socket.SHUT_RDWR)
