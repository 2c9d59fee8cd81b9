"""The feed's ingest end: :class:`FeedPublisher` sends ready-made payloads to every gunicorn
worker over a Unix stream socket; and what the feed promises, at both ends.

The records and their bytes are ``certstream.core.feedcodec``'s; this module moves them over
a Unix stream socket: :class:`FeedPublisher` in the ingest, ``certstream.shell.feedsub``'s
:class:`~certstream.shell.feedsub.FeedSubscriber` in each worker.

Samples: the ingest builds a lite EXAMPLE only on demand.  When a worker's WANT gains the
EXAMPLE bit (it was asked for ``/example.json`` and has nothing recent), the ingest builds
the sample from the last entry it decoded and sends it to every worker; with no entry yet,
it sends one after the next entry.  The worker clears the bit once the sample arrived.  So
nothing is built while nobody listens.

Ids: the publisher gives every entry its global id ``<epoch>-<n>`` (its start time in
milliseconds, then 1, 2, 3, ...) and the ``seen`` of its payloads (``core.feedcodec``
STAMP), the SSE ``id:`` and the resume points of the clients (``core.resume``).  It keeps
its last ``replay`` entries and sends them to each worker that connects, before anything
new: a worker started later (a restart, a reload) holds the same recent records as the
others, so a client can resume on any worker.

Exactly-once across an ingest restart: the ingest persists a log's next index only once the
workers acknowledged the batch before it (see "Delivery"), so a restarted ingest may send a
log's last batch again.  The subscriber remembers the highest index delivered per log key and
drops (and counts) anything not above it; within one epoch it also drops a record number it
had (the replay to a worker that reconnects), and a hole in the numbers is a gap its clients
are told of (``on_gap``: entries the publisher dropped for it while it was too far behind).

Slow workers: the publisher never writes from the caller's greenlet.  Each worker has an
outbound buffer drained by its own writer greenlet; past ``max_pending_bytes`` entries for that
worker are dropped and counted, so one stuck worker can neither block the ingest nor grow its
memory, and the other workers are not affected.

Delivery: ``publish(items, on_delivered, on_lost)`` calls ``on_delivered`` once every worker
that was sent the items has acknowledged them (ACK: written to its clients) or has gone, at
least one having acknowledged them; the ingest saves a log's position only then (see
``certstream.shell.state``).  A worker that goes takes its clients' connections with it, and
they reconnect to the others; but if every worker a batch went to is gone before one of them
acknowledged it (the only worker crashed, the master died and took them all), nobody got it:
``on_lost`` is called instead and the ingest publishes the batch again once a worker is back.
A worker that has not acknowledged a batch within ``ACK_TIMEOUT`` stops holding it back, with
a warning.  The subscriber acknowledges what it received once its hub has flushed it
(``after_flush``), as a count of the ENTRY messages of its connection, the recent entries
replayed to it on connecting included (the publisher counts them in ``_Peer.sent`` too).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import gevent
import gevent.event
from gevent import socket

from certstream.core.feedcodec import (
    EXAMPLE,
    FIELDS,
    KIND_ACK,
    KIND_WANT,
    FeedDecoder,
    encode_entry,
    encode_example,
    encode_state,
)
from certstream.core.streams import STREAM_ALL
from certstream.errors import RemoteProtocolError
from certstream.shell.metrics import FEED_DROPPED

__all__ = ["ACK_TIMEOUT", "FeedPublisher", "PayloadsLike"]

log = logging.getLogger(__name__)

#: The longest a batch waits for a worker's acknowledgement before it counts as delivered.
ACK_TIMEOUT = 5.0
#: Queued messages are joined into writes of about this size (one write per wake-up when
#: the worker keeps up, a bounded copy when it is behind).
WRITE_CHUNK = 256 * 1024


class PayloadsLike(Protocol):
    """What the publisher needs of ``certstream.core.messages.Payloads``."""

    @property
    def lite(self) -> bytes | None: ...
    @property
    def full(self) -> bytes | None: ...
    @property
    def domains(self) -> bytes | None: ...
    @property
    def fields(self) -> bytes | None: ...
    @property
    def seen(self) -> int: ...


class _Peer:
    """One connected worker: its WANT mask, a bounded outbound buffer, and how many ENTRY
    messages it was sent and has acknowledged."""

    __slots__ = ("acked", "dropped", "gone", "pending", "pending_bytes", "sent", "sock",
                 "wake", "want")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.want = 0
        self.pending: deque[bytes] = deque()
        self.pending_bytes = 0  # queued + in flight: what this peer costs us in memory
        self.dropped = 0
        self.sent = 0
        self.acked = 0
        self.gone = False
        self.wake = gevent.event.Event()


class _Batch:
    """A published batch waiting for its acknowledgements: (peer, its ``sent`` count once
    the batch was queued) for each peer it went to."""

    __slots__ = ("done", "ends", "lost", "since")

    def __init__(self, ends: list[tuple[_Peer, int]], done: Callable[[], None],
                 lost: Callable[[], None] | None) -> None:
        self.ends = ends
        self.done = done
        self.lost = lost
        self.since = time.monotonic()

    def settled(self) -> bool:
        """Each worker it went to has acknowledged it or gone."""
        return all(peer.gone or peer.acked >= end for peer, end in self.ends)

    def reached_someone(self) -> bool:
        return any(peer.acked >= end for peer, end in self.ends)


class FeedPublisher:
    """Listens on a Unix socket; sends every message to every connected worker."""

    def __init__(self, path: str, max_pending_bytes: int = 32 * 1024 * 1024, *,
                 replay: int = 0, epoch_ms: int | None = None) -> None:
        self.path = path
        self.max_pending_bytes = max_pending_bytes
        #: The ids' epoch: this publisher's start, so that ids grow across a restart.
        self.epoch_ms = int(time.time() * 1000) if epoch_ms is None else epoch_ms
        self.numbered = 0  # entries numbered so far (the n of the last id)
        #: Entries kept for a worker that connects (``buffer_size``: what a worker's rings
        #: hold), as the batches they were sent in.
        self.replay = replay
        self._recent: deque[tuple[bytes, int]] = deque()
        self._recent_entries = 0
        self.dropped = 0  # entries not delivered to some worker because it was too far behind
        self._peers: list[_Peer] = []
        self._listener: socket.socket | None = None
        self._greenlets: list[gevent.Greenlet] = []
        self._last_state: bytes | None = None
        self._last_example: bytes | None = None
        self._unacked: deque[_Batch] = deque()  # in publish order
        self.ack_timeouts = 0  # batches counted as delivered without every acknowledgement
        #: Called (from the feed's reader greenlet) when a worker asks for a sample.
        self.on_example_wanted: Callable[[], None] | None = None
        #: Called when a worker leaves, before what it had not acknowledged is settled.
        self.on_peer_gone: Callable[[], None] | None = None

    def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.stat(self.path).st_mode):
                os.unlink(self.path)  # stale socket of a previous ingest
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        os.chmod(self.path, 0o600)  # only this user's workers may read the firehose
        listener.listen(128)
        self._listener = listener
        self._greenlets.append(gevent.spawn(self._accept_loop, listener))
        self._greenlets.append(gevent.spawn(self._ack_watch))

    def connected(self) -> int:
        """Workers connected right now."""
        return len(self._peers)

    def wanted(self) -> int:
        """The streams some worker wants, and ``FIELDS`` when some worker filters (the
        EXAMPLE bit is not for every entry: see ``example_wanted``)."""
        mask = 0
        for peer in self._peers:
            mask |= peer.want
        return mask & (STREAM_ALL | FIELDS)

    def pending_bytes(self) -> int:
        """Bytes queued for or being written to the workers right now (the ingest's heap
        trimmer waits for a burst to be taken)."""
        return sum(peer.pending_bytes for peer in self._peers)

    def example_wanted(self) -> bool:
        return any(peer.want & EXAMPLE for peer in self._peers)

    def publish(self, items: Sequence[tuple[str, int, PayloadsLike]],
                on_delivered: Callable[[], None] | None = None,
                on_lost: Callable[[], None] | None = None) -> None:
        """Send ``items`` to every worker; ``on_delivered`` is called once each worker they
        went to has acknowledged them or gone (at once if they went to none), ``on_lost``
        instead if they all went before one acknowledged them (see the module docstring)."""
        ends: list[tuple[_Peer, int]] = []
        if items and self._peers:
            first, epoch = self.numbered + 1, self.epoch_ms
            self.numbered += len(items)
            data = b"".join(
                encode_entry(k, i, p.lite, p.full, p.domains, fields=p.fields,
                             stamp=(epoch, first + n, p.seen))
                for n, (k, i, p) in enumerate(items)
            )
            self._remember(data, len(items))
            for peer in self._peers:
                if peer.pending_bytes + len(data) > self.max_pending_bytes:
                    peer.dropped += len(items)
                    self.dropped += len(items)
                    FEED_DROPPED.inc(len(items))
                    if peer.dropped == len(items) or peer.dropped % 1000 < len(items):
                        log.warning("feed: a worker is too far behind; %d entries dropped "
                                    "for it", peer.dropped)
                    continue
                self._enqueue(peer, data)
                peer.sent += len(items)
                ends.append((peer, peer.sent))
        if on_delivered is None:
            return
        if ends:
            self._unacked.append(_Batch(ends, on_delivered, on_lost))
        else:
            self._deliver(on_delivered)

    def _remember(self, data: bytes, entries: int) -> None:
        if not self.replay:
            return
        recent = self._recent
        recent.append((data, entries))
        self._recent_entries += entries
        while self._recent_entries - recent[0][1] >= self.replay:
            self._recent_entries -= recent.popleft()[1]

    def publish_state(self, state: Mapping[str, object]) -> None:
        self._last_state = encode_state(state)
        self._broadcast(self._last_state)

    def publish_example(self, lite: bytes) -> None:
        self._last_example = encode_example(lite)
        self._broadcast(self._last_example)

    def close(self) -> None:
        gevent.killall(self._greenlets, block=False)
        self._greenlets.clear()
        for peer in list(self._peers):
            self._drop_peer(peer)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    def _settle(self) -> None:
        """Report every batch, oldest first, that each of its workers has acknowledged or
        left: delivered, or lost if none of them acknowledged it."""
        unacked = self._unacked
        while unacked and unacked[0].settled():
            batch = unacked.popleft()
            if batch.reached_someone() or batch.lost is None:
                self._deliver(batch.done)
            else:
                self._deliver(batch.lost)

    @staticmethod
    def _deliver(done: Callable[[], None]) -> None:
        try:
            done()
        except Exception:  # a failing callback must not cut a worker off the feed
            log.exception("feed: a delivery callback failed")

    def _ack_watch(self) -> None:
        while True:
            gevent.sleep(ACK_TIMEOUT / 5)
            cutoff = time.monotonic() - ACK_TIMEOUT
            late = 0
            while self._unacked and self._unacked[0].since < cutoff:
                late += 1
                self._deliver(self._unacked.popleft().done)
            if late:
                self.ack_timeouts += late
                log.warning("feed: %d batch(es) not acknowledged by every worker within %.0fs;"
                            " their positions are saved anyway", late, ACK_TIMEOUT)
            self._settle()

    # Small messages (STATE, EXAMPLE) go to every peer under the same memory bound.
    def _broadcast(self, data: bytes) -> None:
        for peer in self._peers:
            if peer.pending_bytes + len(data) <= self.max_pending_bytes:
                self._enqueue(peer, data)

    @staticmethod
    def _enqueue(peer: _Peer, data: bytes) -> None:
        peer.pending.append(data)
        peer.pending_bytes += len(data)
        peer.wake.set()

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return  # closed
            peer = _Peer(sock)
            self._peers.append(peer)
            # A new worker gets the latest state and sample at once, not ~2 s later, and
            # the recent entries, as many as fit its buffer (the newest if not all do).
            for data in (self._last_state, self._last_example):
                if data is not None:
                    self._enqueue(peer, data)
            room = self.max_pending_bytes - peer.pending_bytes
            replay = []
            for data, n in reversed(self._recent):
                room -= len(data)
                if room < 0:
                    break
                replay.append((data, n))
            for data, n in reversed(replay):
                self._enqueue(peer, data)
                # ENTRY messages on this connection: its acknowledgements count them too.
                peer.sent += n
            # Forget the greenlets of workers that went away (workers restart over months).
            self._greenlets = [g for g in self._greenlets if not g.dead]
            self._greenlets += (gevent.spawn(self._writer, peer), gevent.spawn(self._reader, peer))

    def _writer(self, peer: _Peer) -> None:
        try:
            while True:
                peer.wake.wait()
                peer.wake.clear()
                while peer.pending:
                    self._send_some(peer)
        except OSError:
            pass
        finally:
            self._drop_peer(peer)

    @staticmethod
    def _send_some(peer: _Peer) -> None:
        """Send the oldest queued messages, at most about ``WRITE_CHUNK`` bytes at once.

        Joining the whole queue (up to ``max_pending_bytes``) into one write would hold it
        twice during a burst; and what was written is referenced by nothing once this
        returns, so a burst's bytes are freed as soon as the worker has taken them."""
        pending = peer.pending
        if len(pending) == 1 or len(pending[0]) >= WRITE_CHUNK:
            data = pending.popleft()  # a whole batch of entries: sent as it is, no copy
        else:
            parts, size = [], 0
            while pending and size < WRITE_CHUNK:
                part = pending.popleft()
                parts.append(part)
                size += len(part)
            data = b"".join(parts)
        peer.sock.sendall(data)
        peer.pending_bytes -= len(data)

    def _reader(self, peer: _Peer) -> None:
        decoder = FeedDecoder()
        try:
            while True:
                data = peer.sock.recv(4096)
                if not data:
                    break
                decoder.receive_data(data)
                acked = False
                while (msg := decoder.next_message()) is not None:
                    if msg[0] == KIND_ACK:
                        peer.acked = max(peer.acked, msg[1])
                        acked = True
                    elif msg[0] == KIND_WANT:
                        asked = msg[1] & EXAMPLE and not peer.want & EXAMPLE
                        peer.want = msg[1]
                        if asked and self.on_example_wanted is not None:
                            self._example_wanted()
                if acked:
                    self._settle()
        except (OSError, RemoteProtocolError) as exc:
            log.warning("feed: dropping a worker connection: %s", exc)
        finally:
            self._drop_peer(peer)

    def _example_wanted(self) -> None:
        assert self.on_example_wanted is not None
        try:
            self.on_example_wanted()
        except Exception:  # a failed sample must not cut the worker off the feed
            log.exception("feed: building the example failed")

    def _drop_peer(self, peer: _Peer) -> None:
        if peer in self._peers:
            self._peers.remove(peer)
            peer.want = 0
            peer.gone = True
            peer.pending.clear()
            peer.wake.set()  # let its writer wake up and find the socket closed
            with contextlib.suppress(OSError):
                peer.sock.close()
            if self.on_peer_gone is not None:
                try:
                    self.on_peer_gone()
                except Exception:
                    log.exception("feed: on_peer_gone failed")
            self._settle()  # what only it had not acknowledged is delivered to the others
