"""The feed's worker end: :class:`FeedSubscriber` reads the ingest's Unix feed socket and hands
each new entry, state and sample to its worker.

The protocol and what each end promises (ids, the replay to a worker that connects,
exactly-once across an ingest restart, gaps, acknowledgements after the hub's flush) are
described in ``certstream.shell.feed``, the ingest's end; the records and their bytes are
``certstream.core.feedcodec``'s.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import gevent
import gevent.event
import gevent.lock
from gevent import socket

from certstream.core.feedcodec import (
    EXAMPLE,
    KIND_ENTRY,
    KIND_EXAMPLE,
    KIND_STATE,
    STAMP,
    Entry,
    FeedDecoder,
    encode_ack,
    encode_want,
)
from certstream.core.resume import EPOCH_SHIFT, Stamp, feed_number, stamp_key
from certstream.errors import RemoteProtocolError

__all__ = ["FeedSubscriber", "OnEntry"]

# The feed's logger, as before the subscriber had a module of its own: its lines (and any
# per-logger setting) keep their name.
log = logging.getLogger("certstream.shell.feed")

OnEntry = Callable[[int, bytes | None, bytes | None, bytes | None, Stamp], None]


class FeedSubscriber:
    """Connects to the ingest's feed (retrying until it exists, reconnecting when it drops)
    and dispatches messages.

    ``on_entry(mask, lite, full, domains, stamp)`` gets each new entry once: ``mask`` has
    the ``certstream.core.streams`` bits of the payloads present (absent ones are ``None``)
    and ``FIELDS`` when the filter field came along (in ``stamp.fields``, else ``None``);
    ``stamp`` is the entry's id, seen and number (``core.resume``; an ingest that sends no
    ids gets this worker's own, from ``epoch_ms``).  ``on_gap(lost)`` is called before an
    entry when entries of its epoch never came.  ``on_state(state)`` gets each STATE object,
    ``on_example(lite)`` each sample payload.  ``want_example(True)`` asks the ingest for a
    sample (see EXAMPLE in the module doc).  ``after_flush(done)`` (the hub's) calls ``done``
    once what ``on_entry`` was given has been written to the clients; the ENTRY messages
    received are acknowledged then (without it, as soon as they are dispatched).
    """

    def __init__(self, path: str, on_entry: OnEntry,
                 on_state: Callable[[dict[str, Any]], None],
                 on_example: Callable[[bytes], None],
                 on_gap: Callable[[int], None] | None = None, *,
                 epoch_ms: int | None = None,
                 after_flush: Callable[[Callable[[], None]], None] | None = None) -> None:
        self.path = path
        self.on_entry = on_entry
        self.on_state = on_state
        self.on_example = on_example
        self.on_gap = on_gap
        self.after_flush = after_flush
        self._received = 0  # ENTRY messages on this connection
        self._acked = 0  # ...of which acknowledged
        self._ack_due = False  # an acknowledgement waits for the hub's flush
        self._connection = 0  # which connection a pending acknowledgement belongs to
        self.replayed = 0  # entries dropped because their index was already delivered
        self.gaps = 0  # holes in the numbering (entries the ingest dropped for this worker)
        self.lost = 0  # entries in them
        self._epoch = -1  # the last record's epoch and n
        self._n = 0
        self._own_epoch = int(time.time() * 1000) if epoch_ms is None else epoch_ms
        self._own = 0
        self.connected = gevent.event.Event()
        self._want = 0
        self._example = False
        self._last_index: dict[str, int] = {}
        self._sock: socket.socket | None = None
        self._send_lock = gevent.lock.Semaphore()
        self._closed = False

    def set_wanted(self, mask: int) -> None:
        if mask == self._want:
            return
        self._want = mask
        self._send_want()

    @staticmethod
    def locate(key: int) -> int | None:
        """The number of the record with id ``key``: on one machine the id is the number
        (``<epoch>-<n>``, ``core.resume.feed_number``)."""
        return feed_number(key)

    def want_example(self, on: bool) -> None:
        """Set or clear the EXAMPLE bit of this worker's WANT."""
        if on == self._example:
            return
        self._example = on
        self._send_want()

    def close(self) -> None:
        """Stop :meth:`run` (from another greenlet) and close the connection."""
        self._closed = True
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def run(self) -> None:
        delay = 0.05
        while not self._closed:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(self.path)
            except OSError:
                sock.close()
                gevent.sleep(delay)
                delay = min(delay * 2, 1.0)  # the ingest may still be starting or restarting
                continue
            delay = 0.05
            self._sock = sock
            self._connection += 1
            self._received = self._acked = 0
            self._ack_due = False
            self._send_want()
            self.connected.set()
            try:
                self._read(sock)
            except (OSError, RemoteProtocolError) as exc:
                if not self._closed:
                    log.warning("feed: connection lost, reconnecting: %s", exc)
            finally:
                self.connected.clear()
                self._sock = None
                sock.close()

    def _send_want(self) -> None:
        sock = self._sock
        if sock is None:
            return  # sent on (re)connect
        with self._send_lock, contextlib.suppress(OSError):
            # A lost WANT is resent on reconnect.
            sock.sendall(encode_want(self._want | (EXAMPLE if self._example else 0)))

    def _read(self, sock: socket.socket) -> None:
        decoder = FeedDecoder()
        while True:
            data = sock.recv(256 * 1024)
            if not data:
                return
            decoder.receive_data(data)
            del data  # not held (up to 256 KiB) while the next recv waits
            while (msg := decoder.next_message()) is not None:
                if msg[0] == KIND_ENTRY:
                    self._received += 1
                self._dispatch(*msg)
            if self._received > self._acked and not self._ack_due:
                self._ack_soon()

    def _ack_soon(self) -> None:
        """Acknowledge the ENTRY messages received so far once the hub has written them."""
        self._ack_due = True
        done = partial(self._ack, self._connection, self._received)
        if self.after_flush is None:
            done()
        else:
            self.after_flush(done)

    def _ack(self, connection: int, count: int) -> None:
        """The first ``count`` ENTRY messages of ``connection`` are written: say so (see ACK
        in the module doc).  Only those: what arrived after the acknowledgement was asked
        for may not be written yet, and gets an acknowledgement of its own."""
        if connection != self._connection:
            return  # for a connection that is gone
        self._ack_due = False
        sock = self._sock
        if sock is None:
            return
        if count > self._acked:
            self._acked = count
            with self._send_lock, contextlib.suppress(OSError):
                sock.sendall(encode_ack(count))
        if self._received > self._acked:
            self._ack_soon()

    def _dispatch(self, kind: int, value: Any) -> None:
        try:
            self._deliver(kind, value)
        except Exception:
            # A bug in a consumer must not cut this worker off the feed for good.
            log.exception("feed: a consumer failed on a message of kind %d", kind)

    def _deliver(self, kind: int, value: Any) -> None:
        if kind == KIND_ENTRY:
            stamp = self._stamp(value)
            if stamp is None:
                self.replayed += 1  # a record number delivered already (a replay)
                return
            last = self._last_index.get(value.key, -1)
            if value.index <= last:
                self.replayed += 1  # the worker exports it as certstream_feed_replayed_total
                return
            self._last_index[value.key] = value.index
            self.on_entry(value.mask, value.lite, value.full, value.domains, stamp)
        elif kind == KIND_STATE:
            self.on_state(value)
        elif kind == KIND_EXAMPLE:
            self.on_example(value)
        # A WANT from the ingest means nothing to a worker: ignore it.

    def _stamp(self, entry: Entry) -> Stamp | None:
        """The entry's stamp; ``None`` for a number of this epoch delivered already.  Holes
        in the numbering are reported (``on_gap``) first."""
        if not entry.mask & STAMP:
            self._own += 1
            epoch, n = self._own_epoch, self._own
        else:
            epoch, n = entry.epoch, entry.n
            if epoch == self._epoch:
                if n <= self._n:
                    return None
                if n > self._n + 1:
                    lost = n - self._n - 1
                    self.gaps += 1
                    self.lost += lost
                    log.warning("feed: %d entries never reached this worker (it was too far "
                                "behind); its clients are told", lost)
                    if self.on_gap is not None:
                        self.on_gap(lost)
            # A new epoch is a restarted ingest: it resumes every log where the state file
            # says, so nothing is lost (and the index check drops what it repeats).
            self._epoch, self._n = epoch, n
        return Stamp(stamp_key(epoch, n), entry.seen, (epoch << EPOCH_SHIFT) | n, entry.fields)
