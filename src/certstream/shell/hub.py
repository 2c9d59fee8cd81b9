"""The per-worker hub: the I/O around ``certstream.core.fanout``: client sockets, the
flusher greenlet and the writers of slow clients.

Theory of operation
-------------------
What each client gets, and when one is dropped or closed, is ``Fanout``'s (see
``certstream.core.fanout``); this subclass writes it.  The measured costs (a ``send()`` is
~5 µs, a gevent greenlet switch per client per message another ~6-9 µs, while joining k
frames into one write costs ~0.4 µs per frame) decide the shape:

* **One flush, no switches.**  ``publish`` only marks the ring dirty and sets one Event.  The
  flusher greenlet runs once the feed reader has dispatched everything it read and writes
  each client of the dirty rings everything it has pending, joined into one buffer, with a
  non-blocking ``os.write``: no greenlet switch per client or per message.
* **Coalesced writes.**  The flusher writes at most once per ``flush_interval`` (20 ms by
  default): entries that arrive sooner wait for the next flush, so a client behind by k
  entries costs one ``write`` for all k.
* **Slow clients.**  A write the kernel does not take in full marks the client ``busy`` and
  hands the rest to a writer greenlet of its own, which waits for the socket to drain, with
  ``send_timeout`` as the longest it may go without progress.  The flusher skips busy
  clients, so a stuck client never delays the others.  When a write is taken the writer
  sends what the client is still owed, a piece of at most ``write_cap`` bytes at a time
  (``owed``), and retires once the client is current.  A client that makes no progress for
  ``send_timeout`` is cut off.
* **Control frames** (pongs, server pings, heartbeats, closes) go through the same write path,
  so they never land inside a data frame a busy writer has half sent.
* **Acknowledgements wait for the kernel.**  ``after_flush`` (the feed's ACK) fires once
  what was published is in every client's socket: a client whose write was left half done
  (busy) is waited for until its writer caught up, unless it has been busy for
  ``SLOW_GRACE`` (then it is a slow client, which may lose what is pending for it anyway,
  and must not hold the ingest back).  Otherwise a kill -9 right after the ACK would lose
  the unsent part while the ingest had already saved the position past it.
* **Closing is bounded.**  A client closed for being slow loses what is pending for it: its
  writer finishes only the frame already on the wire (``frames.ws_frame_end``), then sends
  the Close frame (an SSE stream just ends).  Any close completes, Close frame sent and the
  client's reply awaited, within ``_CLOSE_LINGER_SECS``; past that the connection is reset,
  so a client that stopped reading frees its socket and kernel buffers at once.

The hub keeps counts per stream and transport so the worker can tell the ingest which stream
types it wants (``on_wanted`` whenever a stream's subscriber count goes 0 <-> 1) and serve
``/health/deep`` and the metrics.
"""

from __future__ import annotations

import _socket
import contextlib
import logging
import os
import socket
import struct
import time
from collections import deque
from collections.abc import Callable

import gevent
import gevent.event
from gevent.socket import wait_write

from certstream.core import frames
from certstream.core.fanout import WRITE_CAP, Cursor, Fanout, Group, Ring
from certstream.core.filterfields import FilterSpec
from certstream.core.resume import Resume
from certstream.core.rings import DEFAULT_MAX_BYTES
from certstream.core.session import Session

__all__ = ["Client", "Hub", "Ring"]

log = logging.getLogger(__name__)

# How long a closing connection may take (its last frame and Close out, the client's Close
# reply in) before the socket is reset.
_CLOSE_LINGER_SECS = 5.0
_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() resets, dropping unsent data
#: A client busy this long is slow: acknowledgements no longer wait for it.
SLOW_GRACE = 2.0
_ACK_CHECK = 0.02
# ``Client.fd`` once its socket is closed: never write to a file descriptor number that the
# kernel may already have given to another connection.
_GONE = -2


class _Drain:
    """What a busy client's writer is sending: ``buf`` (whole frames from its start) up to
    ``stop``, ``pos`` bytes of it sent."""

    __slots__ = ("buf", "pos", "stop")

    def __init__(self, buf: bytes, pos: int = 0) -> None:
        self.buf = buf
        self.pos = pos
        self.stop = len(buf)


class Client(Cursor):
    """One streaming client: a cursor with its socket.  Buffers only while it is behind."""

    __slots__ = ("backlog", "deadline", "drain", "fd", "session", "sock", "writer")

    # ``sock``: gevent's socket (TLS), or a bare ``_socket.socket`` once a reader owns the
    # connection (``shell.reader``); the hub only writes, shuts down and closes it.
    def __init__(self, sock: _socket.socket, session: Session, ring: Group, *,
                 is_ws: bool, wbits: int = 0) -> None:
        super().__init__(ring, is_ws=is_ws, wbits=wbits)
        self.sock = sock
        # Fast path writes straight to the (non-blocking) fd.  TLS sockets must go through
        # their SSL object, so they always take the writer-greenlet path (fd -1).
        self.fd = sock.fileno() if not hasattr(sock, "do_handshake") else -1
        self.session = session
        self.backlog: list[bytes] | None = None  # whole frames, after ``drain``
        self.drain: _Drain | None = None
        self.deadline = 0.0  # monotonic time by which a closing client must be gone
        self.writer: gevent.Greenlet | None = None


class Hub(Fanout[Client]):
    """All rings and clients of one worker process (see the module docstring)."""

    def __init__(
        self,
        buffer_size: int,
        *,
        drop_budget: int = 1000,
        close_code: int = 1008,
        send_timeout: float = 30.0,
        on_wanted: Callable[[int], None] | None = None,
        flush_interval: float = 0.0,
        epoch_ms: int | None = None,
        buffer_bytes: int = DEFAULT_MAX_BYTES,
        write_cap: int = WRITE_CAP,
    ) -> None:
        super().__init__(buffer_size, drop_budget=drop_budget, close_code=close_code,
                         on_wanted=on_wanted, flush_interval=flush_interval,
                         epoch_ms=int(time.time() * 1000) if epoch_ms is None else epoch_ms,
                         buffer_bytes=buffer_bytes, write_cap=write_cap)
        self.send_timeout = send_timeout
        self._wakeup = gevent.event.Event()
        self._wake = self._wakeup.set
        self._flusher: gevent.Greenlet | None = None
        self._stopping = False
        # Busy clients (since when), and acknowledgements waiting for some of them.
        self._busy: dict[Client, float] = {}
        self._deferred: deque[tuple[float, list[Callable[[], None]]]] = deque()
        self._deferred_waiter: gevent.Greenlet | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self._flusher is None:
            self._flusher = gevent.spawn(self._flush_loop)

    def stop(self) -> None:
        self._stopping = True
        if self._flusher is not None:
            self._flusher.kill(block=False)
            self._flusher = None

    # -- clients ---------------------------------------------------------------------------

    def add(self, sock: _socket.socket, session: Session, stream: int, *, is_ws: bool,
            spec: FilterSpec | None = None, resume: Resume | None = None) -> Client:
        """A streaming client of ``stream``, filtered by ``spec`` if given, from where
        ``resume`` says if given (else from now on); it gets compressed frames if its
        session negotiated permessage-deflate."""
        deflate = session.deflate
        client = Client(sock, session, self.rings[stream], is_ws=is_ws,
                        wbits=deflate.window_bits if deflate is not None else 0)
        self.subscribe(client, spec, resume)
        return client

    def remove(self, client: Client) -> None:
        """Forget ``client`` (its connection ended); stops its writer greenlet if any."""
        client.fd = _GONE
        self._busy.pop(client, None)
        writer, client.writer = client.writer, None
        if writer is not None and writer is not gevent.getcurrent():
            writer.kill(block=False)
        self._detach(client)

    # -- output ----------------------------------------------------------------------------

    def send(self, client: Client, data: bytes) -> None:
        """Write control bytes (pong, ping, heartbeat, close) to ``client`` in order."""
        if data:
            self._write(client, data)

    def broadcast(self, data: bytes, *, ws: bool) -> None:
        """Write the same bytes to every WebSocket (``ws``) or every SSE client."""
        for client in list(self.clients(ws=ws)):
            self._write(client, data)

    def ping_all(self) -> None:
        # Built per ping (every 30 s), not at import: the gunicorn master imports this
        # module and must not load the frames twin (see core.frames).
        self.broadcast(frames.ws_ping_frame(), ws=True)

    def ping_part(self, part: int, parts: int) -> None:
        """Ping the WebSocket clients of slice ``part`` of ``parts`` (by identity): a round
        of pings spread over the interval, so that the pongs of tens of thousands of
        clients do not all come at once (each wakes its reader greenlet; 50,000 at once
        held live frames back by a second, measured by ``bench connections``)."""
        frame = frames.ws_ping_frame()
        for client in list(self.clients(ws=True)):
            # Scrambled: objects of one size sit at a fixed stride, which a plain modulo of
            # the address could map to one slice.
            if ((id(client) >> 4) * 2654435761 >> 16) % parts == part:
                self._write(client, frame)

    def close_client(self, client: Client, code: int, reason: str, *,
                     drop_pending: bool = False) -> None:
        """End ``client``: a Close frame (WebSocket) or the end of the response (SSE), then
        the socket is shut down once that is flushed, within ``_CLOSE_LINGER_SECS`` in any
        case.  ``drop_pending``: what is still queued for it is dropped first (all but the
        rest of the frame on the wire)."""
        if client.closing:
            return
        self._detach(client)
        client.deadline = time.monotonic() + _CLOSE_LINGER_SECS
        if drop_pending and client.busy:
            client.backlog = None
            drain = client.drain
            if drain is not None:
                drain.stop = frames.ws_frame_end(drain.buf, drain.pos) if client.is_ws else 0
            if not client.is_ws:
                self._abort(client)  # an SSE stream ends with the connection, at once
                return
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

    def _close_slow(self, client: Client, dropped: int) -> None:
        log.info("closing a slow client: %d frames dropped", dropped)
        self.close_client(client, self.close_code, f"too slow: {dropped} messages dropped",
                          drop_pending=True)

    # -- the write path ----------------------------------------------------------------------

    # -- acknowledgements -------------------------------------------------------------------

    def _flushed(self, callbacks: list[Callable[[], None]]) -> None:
        """Run ``callbacks`` once no client that was busy now (and not yet slow) still is."""
        if not self._busy and not self._deferred:
            super()._flushed(callbacks)
            return
        self._deferred.append((time.monotonic(), callbacks))
        if self._deferred_waiter is None or self._deferred_waiter.dead:
            self._deferred_waiter = gevent.spawn(self._release_deferred)

    def _release_deferred(self) -> None:
        deferred = self._deferred
        while deferred:
            at, callbacks = deferred[0]
            now = time.monotonic()
            if any(since <= at and now - since < SLOW_GRACE for since in self._busy.values()):
                gevent.sleep(_ACK_CHECK)
                continue
            deferred.popleft()
            super()._flushed(callbacks)

    def _flush_loop(self) -> None:
        while not self._stopping:
            self._wakeup.wait()
            # Coalescing: a write costs ~5 us of syscall whatever its size, so entries that
            # arrive within flush_interval of the last flush (logs deliver small batches at
            # random moments) wait and go out together, one write per client.
            delay = self.flush_delay(time.monotonic())
            if delay > 0:
                gevent.sleep(delay)
            self._wakeup.clear()
            self.last_flush = time.monotonic()
            self.flush()

    def _write(self, client: Client, data: bytes) -> None:
        if client.busy:
            self._backlog(client).append(data)
        else:
            self._write_now(client, data)

    def _write_now(self, client: Client, data: bytes) -> None:
        """Non-blocking write of whole frames; whatever the kernel does not take goes to a
        writer greenlet."""
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
            self._busy[client] = time.monotonic()
            client.drain = _Drain(data, sent)
            client.writer = gevent.spawn(self._slow_writer, client)

    @staticmethod
    def _backlog(client: Client) -> list[bytes]:
        if client.backlog is None:
            client.backlog = []
        return client.backlog

    def _slow_writer(self, client: Client) -> None:
        try:
            while True:
                if client.drain is None:
                    backlog = client.backlog
                    if backlog:
                        data = b"".join(backlog) if len(backlog) > 1 else backlog[0]
                        backlog.clear()
                    elif not client.closing and client.seq < client.ring.next_seq:
                        data = self.owed(client)
                        if not data:
                            continue  # closed for its budget: the Close frame is in the backlog
                    else:
                        break
                    client.drain = _Drain(data)
                self._drain(client, client.drain)
                client.drain = None
        except (OSError, gevent.Timeout) as exc:
            log.debug("dropping a client that does not read: %s", exc)
            self._abort(client, reset=True)
            return
        finally:
            client.busy = False
            client.writer = None
            client.drain = None
            self._busy.pop(client, None)
        if client.closing:
            self._finish_close(client)

    def _drain(self, client: Client, drain: _Drain) -> None:
        """Write ``drain.buf`` up to ``drain.stop`` (which a close may lower meanwhile),
        waiting for the socket: at most ``send_timeout`` without progress, and a closing
        client no longer than its deadline."""
        while drain.pos < drain.stop:
            if client.fd == _GONE:
                raise OSError("connection closed")
            timeout = self.send_timeout
            if client.closing:
                timeout = min(timeout, max(0.0, client.deadline - time.monotonic()))
            view = memoryview(drain.buf)[drain.pos : drain.stop]
            if client.fd < 0:  # TLS: through the SSL object
                with gevent.Timeout(timeout):
                    sent = client.sock.send(view)
            else:
                try:
                    sent = os.write(client.fd, view)
                except BlockingIOError:
                    wait_write(client.fd, timeout=timeout, timeout_exc=gevent.Timeout(timeout))
                    continue
            self.bytes_sent += sent
            drain.pos += sent

    def _finish_close(self, client: Client) -> None:
        if not client.is_ws:
            # An SSE response is delimited by the end of the connection, and the client
            # sends nothing after its request: close at once.
            self._abort(client)
            return
        # Half-close: the client still reads our Close frame and replies; its reader sees
        # its EOF.  A client that never answers is cut off at its deadline.
        with contextlib.suppress(OSError):
            client.sock.shutdown(socket.SHUT_WR)
        gevent.spawn_later(max(0.0, client.deadline - time.monotonic()), self._abort, client,
                           reset=True)

    def _abort(self, client: Client, *, reset: bool = False) -> None:
        """Cut the connection now; its reader ends and closes the socket.
        ``reset``: the client stopped reading, so its unsent data is dropped (RST), not
        left in the kernel for a peer that may never take it."""
        if not client.closing:
            self._detach(client)
        with contextlib.suppress(OSError):
            if reset:
                client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
            client.sock.shutdown(socket.SHUT_RDWR)
