"""An edge worker's side of the broker: reads the records from Redis and hands each one to
its hub, as ``shell.feedsub.FeedSubscriber`` does from the Unix feed on one machine.

Reading: ``XREAD COUNT 1000 BLOCK 2000`` from the id of the last record read, with its own
connection.  After a read that returned records the reader waits until ``read_interval``
(the hub's ``flush_interval``) has passed since the read before it, so records that arrive
together cost one wake-up, never one per record (a wake-up per record costs ~200 µs, a
batched record 5-12 µs: DESIGN.md).  Each record is judged by ``core.brokergap``: delivered,
dropped as a repeat, or delivered after a gap notice to every client (``on_gap``).

A worker starts at the stream's head (its clients start there too), after handing its hub
the last ``preload`` records the stream holds (``XREVRANGE``), so that a client can resume
on an edge that just started as on any other.  When the connection
fails (Redis restarting, failing over) it reconnects with backoff; its clients stay
connected and merely wait.  Then it resumes from its last id, unless the stream no longer
reaches that far (a Redis that restarted empty, or a replica promoted with an older stream
whose new ids may be lower): then it reads the stream from its start and the sequence
numbers drop what it delivered already, so nothing is skipped unsaid.

A side greenlet, once a second and whenever the hub's wants change: writes this worker's
wanted streams (``<p>:want:<id>``, expiring, so the ingest builds only what some edge
wants), reads the leader's STATE (``/health/deep``, ``/api/logs``) and, when asked, the
lite sample (``/example.json``), and measures how far behind the head this worker is.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import gevent
import gevent.event
import redis

from certstream.config import BrokerSettings
from certstream.core.backoff import Backoff
from certstream.core.brokergap import UNKNOWN, SequenceTracker
from certstream.core.brokerrecord import RECORD_FIELD, Record, decode_record, parse_stream_id
from certstream.core.brokerurl import parse_broker_url
from certstream.core.feedcodec import EXAMPLE
from certstream.core.resume import EPOCH_SHIFT, Stamp, event_id_text, stamp_key
from certstream.errors import RemoteProtocolError
from certstream.shell import brokermetrics as bm
from certstream.shell.redisconn import (
    Entry,
    Keys,
    RedisError,
    connect,
    entries,
    node_name,
    streams_read,
)

__all__ = ["BrokerSubscriber", "OnGap", "OnRecord"]

log = logging.getLogger("certstream.broker")

#: ``on_record(mask, lite, full, domains, stamp)``: one record's payloads (absent ones
#: ``None``) and its stamp: the Redis stream id (the global id, for SSE ``id:`` and resume),
#: its seen, its number (epoch and seq) and its filter field (when some edge filters).
OnRecord = Callable[[int, bytes | None, bytes | None, bytes | None, Stamp], None]
#: ``on_gap(lost)``: records lost before the next one (``core.brokergap.UNKNOWN``: unknown).
OnGap = Callable[[int], None]

READ_COUNT = 1000
BLOCK_MS = 2000
#: The longest a resuming client waits for the broker to say what its record was.
LOCATE_SECS = 2.0
SIDE_INTERVAL = 1.0
WANT_TTL_MS = 10000
_START = "0-0"


class BrokerSubscriber:
    """See the module doc.  The same small interface as ``FeedSubscriber``: ``run`` (until
    ``close``), ``set_wanted``, ``want_example``, ``connected``, ``replayed``."""

    def __init__(self, settings: BrokerSettings, on_record: OnRecord,
                 on_state: Callable[[dict[str, Any]], None], on_example: Callable[[bytes], None],
                 on_gap: OnGap, *, read_interval: float = 0.02, preload: int = 0) -> None:
        self.settings = settings
        self.preload = preload
        self.keys = Keys(settings.key_prefix)
        self.on_record = on_record
        self.on_state = on_state
        self.on_example = on_example
        self.on_gap = on_gap
        self.read_interval = read_interval
        self.edge_id = node_name()
        self.connected = gevent.event.Event()
        self.tracker = SequenceTracker()
        self.last_id: str | None = None  # the id of the last record read
        self.read = 0
        self.bad = 0  # records that did not decode (counted, logged, skipped)
        self.lag = 0
        self.leader = ""
        self._want = 0
        self._example = False
        self._example_seen: bytes | None = None
        self._closed = False
        self._side_wake = gevent.event.Event()
        self._client: redis.Redis | None = None
        self._side: gevent.Greenlet | None = None
        self._synced: dict[str, int] = {}
        self._outage: float | None = None

    @property
    def replayed(self) -> int:
        """Records dropped as repeats (the worker exports it as certstream_feed_replayed)."""
        return self.tracker.repeats

    def set_wanted(self, mask: int) -> None:
        if mask != self._want:
            self._want = mask
            self._side_wake.set()

    def want_example(self, on: bool) -> None:
        if on != self._example:
            self._example = on
            if on:
                self._example_seen = None  # any sample there is news to this worker
            self._side_wake.set()

    def close(self) -> None:
        """Stop :meth:`run` (from another greenlet); forget this worker's wants."""
        self._closed = True
        if self._side is not None:
            self._side.kill(block=False)
        client = self._client
        if client is not None:
            with contextlib.suppress(*RedisError), gevent.Timeout(1.0, False):
                client.delete(self.keys.want(self.edge_id))
            with contextlib.suppress(*RedisError):
                client.close()

    def status(self) -> dict[str, Any]:
        """For ``/health/deep``."""
        return {
            "url": parse_broker_url(self.settings.url).describe(),
            "connected": self.connected.is_set(),
            "last_id": self.last_id,
            "lag_records": self.lag,
            "gaps": self.tracker.gaps,
            "lost": self.tracker.lost,
            "gaps_count_unknown": self.tracker.unknown_gaps,
            "repeats": self.tracker.repeats,
            "leader": self.leader,
        }

    # -- reading ---------------------------------------------------------------------------------

    def open(self) -> None:
        """Connect (once; the client reconnects by itself on each later call)."""
        if self._client is None:
            self._client = connect(self.settings.url, socket_timeout=BLOCK_MS / 1000 + 10)

    def run(self) -> None:
        backoff = Backoff(0.1, 2.0)
        self.open()
        self._side = gevent.spawn(self._side_loop)
        while not self._closed:
            try:
                start = self.resume_from()
                self._mark_connected()
                backoff.success()
                self._read_from(start)
            except RedisError as exc:
                if self._closed:
                    return
                self._lost_connection(exc)
                gevent.sleep(backoff.failure())

    def resume_from(self) -> str:
        """Where to read from, now that the connection is (back) up."""
        assert self._client is not None
        if self.last_id is None:  # first start: the recent records, then the head
            recent = entries(self._client.xrevrange(self.keys.records,
                                                    count=max(1, self.preload)))
            if recent:
                for rid, fields in reversed(recent if self.preload else []):
                    self._handle(rid.decode(), fields)
                hid, fields = recent[0]
                self.last_id = hid.decode()
                with contextlib.suppress(KeyError, RemoteProtocolError):
                    rec = decode_record(fields[RECORD_FIELD])
                    self.tracker.start_at(rec.epoch, rec.seq)
                return self.last_id
            self.last_id = _START
            return _START
        head = entries(self._client.xrevrange(self.keys.records, count=1))
        if head and parse_stream_id(head[0][0]) >= parse_stream_id(self.last_id):
            return self.last_id
        # The stream is gone or went back (restart without persistence, failover to an
        # older replica): read it from its start; the numbers drop what came already.
        log.warning("broker: the stream no longer reaches record %s; reading it from its "
                    "start", self.last_id)
        return _START

    def _read_from(self, start: str) -> None:
        cursor = start
        while not self._closed:
            began = time.monotonic()
            cursor, n = self.read_batch(cursor, BLOCK_MS)
            if n:
                wait = self.read_interval - (time.monotonic() - began)
                if wait > 0:
                    gevent.sleep(wait)

    def read_batch(self, cursor: str, block_ms: int | None) -> tuple[str, int]:
        """One ``XREAD`` after ``cursor`` (waiting up to ``block_ms`` for a record), every
        record handled; the new cursor and how many records came."""
        assert self._client is not None
        resp = streams_read(self._client.xread({self.keys.records: cursor}, count=READ_COUNT,
                                               block=block_ms))
        n = 0
        for _stream, got in resp:
            for rid, fields in got:
                cursor = rid.decode()
                self._handle(cursor, fields)
                n += 1
        return cursor, n

    def _handle(self, rid: str, fields: dict[bytes, bytes]) -> None:
        self.last_id = rid
        self.read += 1
        try:
            rec = decode_record(fields[RECORD_FIELD])
        except (KeyError, RemoteProtocolError) as exc:
            self.bad += 1
            log.warning("broker: skipping record %s that does not decode: %s", rid, exc)
            return
        verdict = self.tracker.judge(rec)
        try:
            if verdict.lost:
                if verdict.lost == UNKNOWN:
                    log.warning("broker: records were lost before %s; how many is unknown "
                                "(the numbering started again)", rid)
                else:
                    log.warning("broker: %d records were lost before %s", verdict.lost, rid)
                self.on_gap(verdict.lost)
            if verdict.deliver:
                self.on_record(rec.mask, rec.lite, rec.full, rec.domains, _stamp(rid, rec))
        except Exception:
            # A bug in a consumer must not cut this worker off the broker for good.
            log.exception("broker: a consumer failed on record %s", rid)

    def locate(self, key: int) -> int | None:
        """The number of the record with id ``key`` while the stream still holds it (a
        client resuming from before every record the hub holds); ``None`` otherwise."""
        if self._client is None:
            return None
        rid = event_id_text(key)
        try:
            with gevent.Timeout(LOCATE_SECS):
                got = entries(self._client.xrange(self.keys.records, rid, rid, count=1))
            rec = decode_record(got[0][1][RECORD_FIELD]) if got else None
        except (gevent.Timeout, KeyError, RemoteProtocolError, *RedisError):
            return None
        return None if rec is None else (rec.epoch << EPOCH_SHIFT) | rec.seq

    def _mark_connected(self) -> None:
        if self._outage is not None:
            log.info("broker: reading again after %.1f s (from %s)",
                     time.monotonic() - self._outage, self.last_id)
            self._outage = None
        self.connected.set()

    def _lost_connection(self, exc: BaseException) -> None:
        self.connected.clear()
        bm.BROKER_ERRORS.labels("edge").inc()
        if self._outage is None:
            self._outage = time.monotonic()
            log.warning("broker: reading failed (%s); clients stay connected, retrying", exc)

    # -- the side greenlet -----------------------------------------------------------------------

    def _side_loop(self) -> None:
        while not self._closed:
            try:
                self.side_once()
            except RedisError as exc:
                log.debug("broker: side task failed: %s", exc)
            self._sync_metrics()
            self._side_wake.wait(SIDE_INTERVAL)
            self._side_wake.clear()

    def side_once(self) -> None:
        client, keys = self._client, self.keys
        assert client is not None
        mask = self._want | (EXAMPLE if self._example else 0)
        with client.pipeline(transaction=False) as pipe:
            pipe.set(keys.want(self.edge_id), mask, px=WANT_TTL_MS)
            pipe.sadd(keys.wants, self.edge_id)
            pipe.get(keys.state)
            pipe.xrevrange(keys.records, count=1)
            if self._example:
                pipe.get(keys.example)
            res = pipe.execute()
        state = res[2]
        if state is not None:
            try:
                doc = json.loads(state)
            except ValueError:
                doc = None
            if isinstance(doc, dict):
                broker = doc.get("broker")
                self.leader = str(broker.get("leader", "")) if isinstance(broker, dict) else ""
                self.on_state(doc)
        self.lag = self._lag(entries(res[3]))
        if self._example and len(res) > 4 and res[4] is not None and res[4] != self._example_seen:
            self._example_seen = res[4]
            self.on_example(res[4])

    def _lag(self, head: list[Entry]) -> int:
        seq = self.tracker.seq
        if not head or seq is None:
            return 0
        try:
            rec = decode_record(head[0][1][RECORD_FIELD])
        except (KeyError, RemoteProtocolError):
            return 0
        return max(0, rec.seq - seq) if rec.epoch == self.tracker.epoch else 0

    def _sync_metrics(self) -> None:
        t = self.tracker
        for name, value, metric in (
            ("read", self.read, bm.BROKER_READ),
            ("lost", t.lost, bm.BROKER_LOST),
        ):
            delta = value - self._synced.get(name, 0)
            if delta:
                metric.inc(delta)
                self._synced[name] = value
        for label, value in (("known", t.gaps - t.unknown_gaps), ("unknown", t.unknown_gaps)):
            delta = value - self._synced.get("gaps_" + label, 0)
            if delta:
                bm.BROKER_GAPS.labels(label).inc(delta)
                self._synced["gaps_" + label] = value
        bm.BROKER_CONNECTED.set(1 if self.connected.is_set() else 0)
        bm.BROKER_LAG.set(self.lag)


def _stamp(rid: str, rec: Record) -> Stamp:
    """A record's stamp: its stream id as the global id, its epoch and seq as its number."""
    ms, _, n = rid.partition("-")
    return Stamp(stamp_key(int(ms), int(n or 0)), rec.seen, (rec.epoch << EPOCH_SHIFT) | rec.seq,
                 rec.fields)
