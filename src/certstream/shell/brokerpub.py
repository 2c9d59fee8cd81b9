"""The leading ingest's side of the broker: records and log positions into Redis, fenced by
the lease, never from the caller's greenlet.

The ingest's ``Pipeline`` sees :class:`BrokerPublisher` as its publisher and
:class:`BrokerPositions` as its positions, exactly as it sees the Unix feed and the state
file on one machine.  ``publish`` numbers each entry (``seq``, see ``core.brokerrecord``),
encodes it once and queues it, then reports the batch delivered, and the positions queue the
log's new position right behind it (``advance``; no greenlet switch in between).  A drainer
greenlet writes everything queued in one call of the ``PUBLISH`` script: the lease check,
the ``XADD``s (``MAXLEN ~ broker.retention``) and the positions in one atomic step.  So a
position is in Redis exactly when its records are, the positions in Redis always say
exactly what the stream holds, and an ingest that takes over starts where the leader
stopped: no gap, no repeat.

Failures: while Redis is unreachable the queue waits and the drainer retries the same batch
with backoff (the script skips records it already wrote, by ``seq``, so a retry after a
lost answer repeats nothing).  Past ``broker.buffer_bytes`` queued, ``publish`` blocks the
log followers: they stop reading, nothing is dropped, and the logs themselves keep what
was not read.  A refusal (another ingest holds the lease) ends this publisher's term at once:
``lost`` is set, the queue is dropped (the new leader reads those entries again from the
positions it finds) and the ingest node steps down.

A side greenlet, once a second: reads which streams the edges want (``<p>:want:*``), writes
the leader's STATE for their ``/health/deep`` and a lite sample when an edge asks.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.event
import redis

from certstream.config import BrokerSettings
from certstream.core.backoff import Backoff
from certstream.core.brokerrecord import RECORD_FIELD, decode_record, encode_record
from certstream.core.feedcodec import EXAMPLE, FIELDS
from certstream.core.streams import STREAM_ALL
from certstream.errors import RemoteProtocolError
from certstream.shell import brokermetrics as bm
from certstream.shell.feed import PayloadsLike
from certstream.shell.lease import Lease
from certstream.shell.redisconn import (
    PUBLISH,
    RESTORE,
    WANTS,
    Keys,
    RedisError,
    entries,
    hash_of,
)
from certstream.shell.state import LogPosition, StateStore

__all__ = ["BrokerPositions", "BrokerPublisher", "Takeover", "load_takeover"]

log = logging.getLogger("certstream.broker")

#: How often the side greenlet reads the edges' wants and writes STATE.
SIDE_INTERVAL = 1.0
#: An edge worker's wants count this long after they were last read, even if Redis lost
#: them meanwhile (a restart): the edge writes them again within a second, and entries read
#: in between must not be skipped as wanted by nobody.
WANTS_KEPT_SECS = 10.0
#: A batch closes at the first position after this many records.
BATCH_RECORDS = 512
STATE_TTL_MS = 15000
EXAMPLE_TTL_MS = 60000


@dataclass(slots=True)
class Takeover:
    """Where a new leader starts: the numbering and every log's position in Redis."""

    epoch: int
    seq: int  # the last record published (0: none yet in this epoch)
    positions: dict[str, LogPosition] = field(default_factory=dict)
    fresh: bool = False  # no numbering found: a new epoch begins


def _position(value: bytes) -> LogPosition | None:
    nxt, _, tree = value.decode("ascii", "replace").partition(":")
    try:
        return LogPosition(int(nxt), int(tree or 0))
    except ValueError:
        return None


def load_takeover(client: redis.Redis, keys: Keys) -> Takeover:
    """Read the numbering and the positions after taking the lease."""
    meta = hash_of(client.hgetall(keys.meta))
    positions = {}
    for k, v in hash_of(client.hgetall(keys.positions)).items():
        pos = _position(v)
        if pos is not None:
            positions[k.decode("utf-8", "replace")] = pos
    if meta.get(b"epoch") and meta.get(b"seq"):
        return Takeover(int(meta[b"epoch"]), int(meta[b"seq"]), positions)
    # No numbering: from the newest record if the stream has one, else a new epoch.
    for _id, fields in entries(client.xrevrange(keys.records, count=1)):
        try:
            rec = decode_record(fields[RECORD_FIELD])
        except (KeyError, RemoteProtocolError):
            break
        return Takeover(rec.epoch, rec.seq, positions)
    return Takeover(random.randrange(1, 2**32), 0, positions, fresh=True)


class BrokerPublisher:
    """Publishes one leadership term's records (see the module doc)."""

    def __init__(self, client: redis.Redis, keys: Keys, lease: Lease, settings: BrokerSettings,
                 takeover: Takeover) -> None:
        self.client = client
        self.keys = keys
        self.lease = lease
        self.settings = settings
        self.epoch = takeover.epoch
        self.next_seq = takeover.seq + 1
        self.confirmed_seq = takeover.seq
        #: Set when another ingest holds the lease: this term is over.
        self.lost = gevent.event.Event()
        self.lost_reason = ""
        self.published = 0
        self.refused = 0
        self.dropped = 0  # entries queued when the term ended (the next leader reads them again)
        #: Positions Redis confirmed, for the local fallback file (``BrokerPositions``).
        self.on_confirmed: Callable[[str, int, int], None] | None = None
        #: Called when an edge asks for a lite sample (``Pipeline.publish_example``).
        self.on_example_wanted: Callable[[], None] | None = None
        self._queue: deque[tuple[str, Any, Any]] = deque()
        self._queued_bytes = 0
        self._wake = gevent.event.Event()
        self._space = gevent.event.Event()
        self._space.set()
        self._side_wake = gevent.event.Event()
        self._wanted = 0
        self._edges = 0
        self._edge_wants: dict[bytes, tuple[int, float]] = {}  # id -> (mask, last read)
        self._state: bytes | None = None
        self._example: bytes | None = None
        self._example_asked = 0.0
        self._positions: dict[str, tuple[int, int]] = {}  # confirmed, for a restore
        self._restore = False
        self._greenlets: list[gevent.Greenlet] = []
        self._publish = client.register_script(PUBLISH)
        self._restore_script = client.register_script(RESTORE)
        self._wants = client.register_script(WANTS)
        self._outage: float | None = None

    # -- what the pipeline and the ingest call -------------------------------------------------

    def wanted(self) -> int:
        """The streams some edge wants, and ``FIELDS`` while some edge has a filtered
        client (the records then carry what the filters match)."""
        return self._wanted & (STREAM_ALL | FIELDS)

    def connected(self) -> int:
        """Edge workers that said what they want in the last few seconds."""
        return self._edges

    def pending_bytes(self) -> int:
        return self._queued_bytes

    def publish(self, items: Sequence[tuple[str, int, PayloadsLike]],
                on_delivered: Callable[[], None] | None = None,
                on_lost: Callable[[], None] | None = None) -> None:
        """Queue ``items``; then ``on_delivered``, at once: what it queues (the log's
        position, see :class:`BrokerPositions`) goes into Redis in the same step as these
        records.  ``on_lost`` is never called: records dropped when the term ends are read
        again by the next leader, from the positions it finds."""
        del on_lost
        if items:
            while self._queued_bytes >= self.settings.buffer_bytes and not self.lost.is_set():
                self._space.clear()
                self._space.wait(1.0)  # Redis is away: the follower waits, nothing is dropped
            if self.lost.is_set():
                self.dropped += len(items)
                return
            for key, index, p in items:
                blob = encode_record(self.epoch, self.next_seq, key, index, p.lite, p.full,
                                     p.domains, seen=p.seen, fields=p.fields)
                self._queue.append(("r", self.next_seq, blob))
                self._queued_bytes += len(blob)
                self.next_seq += 1
            self._wake.set()
        if on_delivered is not None and not self.lost.is_set():
            on_delivered()

    def advance(self, key: str, next_index: int, tree_size: int) -> None:
        """The log's position after the records queued before it (written with them)."""
        if not self.lost.is_set():
            self._queue.append(("p", key, (next_index, tree_size)))
            self._wake.set()

    def publish_state(self, state: Mapping[str, object]) -> None:
        doc = dict(state)
        doc["broker"] = {"leader": self.lease.name, "epoch": self.epoch,
                         "seq": self.confirmed_seq, "published": self.published}
        self._state = json.dumps(doc, separators=(",", ":")).encode()
        self._side_wake.set()

    def publish_example(self, lite: bytes) -> None:
        self._example = lite
        self._side_wake.set()

    def start(self) -> None:
        bm.BROKER_LEADER.set(1)
        self._greenlets = [gevent.spawn(self._drain_loop), gevent.spawn(self._side_loop)]

    def close(self, drain_secs: float = 2.0) -> None:
        """End the term: the queue gets ``drain_secs`` to reach Redis (unless the lease is
        lost), then whatever is left is dropped: its positions were never written, so the
        next leader reads those entries again."""
        deadline = time.monotonic() + drain_secs
        while self._queue and not self.lost.is_set() and time.monotonic() < deadline:
            gevent.sleep(0.05)
        gevent.killall(self._greenlets, block=True, timeout=1.0)
        self._greenlets.clear()
        self.dropped += sum(1 for kind, _, _ in self._queue if kind == "r")
        self._queue.clear()
        self._queued_bytes = 0
        self._space.set()
        bm.BROKER_LEADER.set(0)
        bm.BROKER_BUFFER_BYTES.set(0)

    def refuse(self, op: str, holder: str) -> None:
        """Another ingest holds the lease: end this term (see the module doc)."""
        if self.lost.is_set():
            return
        self.refused += 1
        bm.BROKER_REFUSED.labels(op).inc()
        self.lost_reason = f"{op} refused: the lease is held by {holder or 'nobody'}"
        log.warning("broker: %s; stepping down", self.lost_reason)
        self.lost.set()
        self._space.set()
        self._wake.set()

    def restore_soon(self) -> None:
        """Redis lost data (the lease came back free): write every position again."""
        self._restore = True
        self._wake.set()

    # -- the drainer ----------------------------------------------------------------------------

    def _batch(self) -> tuple[list[tuple[int, bytes]], dict[str, tuple[int, int]], int]:
        """The records and positions at the head of the queue (how many items they are),
        closed at the first position after ``BATCH_RECORDS`` records.  A log's records and
        its position behind them are queued without a switch in between, so a batch never
        splits them."""
        records: list[tuple[int, bytes]] = []
        positions: dict[str, tuple[int, int]] = {}
        taken = 0
        for kind, a, b in self._queue:
            taken += 1
            if kind == "r":
                records.append((a, b))
            else:
                positions[a] = b
                if len(records) >= BATCH_RECORDS:
                    break
        return records, positions, taken

    def _drain_loop(self) -> None:
        backoff = Backoff(0.1, 5.0)
        while not self.lost.is_set():
            self._wake.wait()
            self._wake.clear()
            while (self._queue or self._restore) and not self.lost.is_set():
                try:
                    if self._restore:
                        self._write_all_positions()
                    if self._queue:
                        self._drain_once()
                except RedisError as exc:
                    self._failed(exc)
                    gevent.sleep(backoff.failure())
                    continue
                backoff.success()
                self._recovered()

    def _drain_once(self) -> None:
        records, positions, taken = self._batch()
        args: list[Any] = [self.lease.token, self.settings.lease_ms, self.settings.retention,
                           self.epoch, records[0][0] if records else self.confirmed_seq + 1,
                           len(records), len(positions)]
        args += [blob for _, blob in records]
        for key, (nxt, tree) in positions.items():
            args += [key, f"{nxt}:{tree}"]
        res = self._publish(keys=[self.keys.lease, self.keys.records, self.keys.meta,
                                  self.keys.positions], args=args)
        if int(res[0]) == 0:
            holder = res[1].decode("utf-8", "replace") if isinstance(res[1], bytes) else ""
            self.refuse("publish", holder)
            return
        for _ in range(taken):
            kind, _a, b = self._queue.popleft()
            if kind == "r":
                self._queued_bytes -= len(b)
        if records:
            self.confirmed_seq = records[-1][0]
            self.published += len(records)
            bm.BROKER_PUBLISHED.inc(len(records))
        for key, (nxt, tree) in positions.items():
            self._positions[key] = (nxt, tree)
            if self.on_confirmed is not None:
                self.on_confirmed(key, nxt, tree)
        if len(res) > 2 and int(res[2]):
            self._restore = True  # Redis had lost records or positions: write ours again
        if self._queued_bytes < self.settings.buffer_bytes:
            self._space.set()

    def _write_all_positions(self) -> None:
        args: list[Any] = [self.lease.token, self.epoch, self.confirmed_seq]
        for key, (nxt, tree) in self._positions.items():
            args += [key, f"{nxt}:{tree}"]
        done = self._restore_script(keys=[self.keys.lease, self.keys.meta, self.keys.positions],
                                    args=args)
        self._restore = False
        if int(done):
            log.warning("broker: Redis had lost data; wrote the positions of %d logs again",
                        len(self._positions))

    def _failed(self, exc: BaseException) -> None:
        bm.BROKER_ERRORS.labels("ingest").inc()
        if self._outage is None:
            self._outage = time.monotonic()
            log.warning("broker: publishing failed (%s); holding %d bytes and retrying",
                        exc, self._queued_bytes)

    def _recovered(self) -> None:
        if self._outage is not None:
            log.info("broker: publishing again after %.1f s", time.monotonic() - self._outage)
            self._outage = None

    # -- the side greenlet -------------------------------------------------------------------

    def _side_loop(self) -> None:
        while not self.lost.is_set():
            try:
                self._side_once()
            except RedisError as exc:
                bm.BROKER_ERRORS.labels("ingest").inc()
                log.debug("broker: side task failed: %s", exc)
            bm.BROKER_BUFFER_BYTES.set(self._queued_bytes)
            self._side_wake.wait(SIDE_INTERVAL)
            self._side_wake.clear()

    def _side_once(self) -> None:
        now = time.monotonic()
        flat = self._wants(keys=[self.keys.wants], args=[self.keys.want("")])
        for i in range(0, len(flat) - 1, 2):
            self._edge_wants[flat[i]] = (int(flat[i + 1]), now)
        mask = 0
        for edge, (want, seen) in list(self._edge_wants.items()):
            if now - seen > WANTS_KEPT_SECS:
                del self._edge_wants[edge]
            else:
                mask |= want
        self._wanted, self._edges = mask, len(self._edge_wants)
        if self._wanted & EXAMPLE and now - self._example_asked >= 2 * SIDE_INTERVAL:
            self._example_asked = now
            if self.on_example_wanted is not None:
                try:
                    self.on_example_wanted()
                except Exception:  # a failed sample must not stop the wants
                    log.exception("broker: building the example failed")
        state, self._state = self._state, None
        example, self._example = self._example, None
        if state is None and example is None:
            return
        with self.client.pipeline(transaction=False) as pipe:
            if state is not None:
                pipe.set(self.keys.state, state, px=STATE_TTL_MS)
            if example is not None:
                pipe.set(self.keys.example, example, px=EXAMPLE_TTL_MS)
            pipe.execute()


class BrokerPositions:
    """The ``positions`` of the ingest's pipeline in ``role: ingest``: the protocol of
    ``shell.state.StateStore`` (``sent``, ``delivered``, ``settle``, ``saved``...), where
    delivered means in Redis.

    ``delivered`` queues the log's position right behind the batch's records (the
    publisher reports a batch delivered as soon as its records are queued), and the one
    ``PUBLISH`` script writes records and positions together: a position is in Redis
    exactly when its records are, never before (no gap) and never after (no repeat).  So
    ``settle`` need not wait for a batch as the state file must: the order of the queue is
    the guarantee, and ``broker.buffer_bytes`` bounds what it holds.  No worker
    acknowledges anything here: the edges read Redis at their own pace.

    ``get`` answers from Redis (read when the lease was taken), else from the local state
    file (``ct_log.state_file``), which is only a fallback: it holds the positions Redis
    confirmed while this node led (as delivered positions of a ``StateStore``), and is read
    only for logs Redis has no position for (a Redis that lost its data).
    """

    def __init__(self, path: str, takeover: Takeover, publisher: BrokerPublisher) -> None:
        self.store = StateStore(path)
        self.redis = dict(takeover.positions)
        self.publisher = publisher
        publisher.on_confirmed = self._confirmed

    def load(self) -> dict[str, LogPosition]:
        local = self.store.load()
        return {**local, **self.redis}

    def get(self, key: str) -> LogPosition | None:
        pos = self.redis.get(key)
        return pos if pos is not None else self.store.get(key)

    def saved(self) -> dict[str, LogPosition]:
        """The positions Redis holds (what a new leader would resume from)."""
        return {**self.store.saved(), **self.redis}

    def sent(self, key: str) -> None:
        del key  # nothing to wait for: see the class docstring

    def delivered(self, key: str, next_index: int, tree_size: int,
                  now: float | None = None) -> None:
        """Queue ``key``'s position behind the records queued before it."""
        del now
        self.publisher.advance(key, next_index, tree_size)

    def settle(self, key: str) -> bool:
        del key
        return True

    def _confirmed(self, key: str, next_index: int, tree_size: int) -> None:
        self.redis[key] = LogPosition(next_index, tree_size)
        self.store.delivered(key, next_index, tree_size)

    def start(self) -> None:
        self.store.start()

    def stop(self) -> None:
        self.store.stop()

    def flush(self) -> bool:
        """Write the local fallback file now (every position in it is in Redis already)."""
        return self.store.flush()

    def freeze(self) -> None:
        """Nothing to freeze: no acknowledgement from a dying worker vouches for a position
        here (the positions go into Redis with their records)."""

    def keys(self) -> Iterable[str]:
        return self.redis.keys()
