"""The broker's Redis side in one process against a real redis-server: the lease fencing a
stale leader out, retries that write nothing twice, a takeover where the leader stopped, a
leader taking its lease back after Redis lost its data, and an edge reader's gaps, repeats
and resumption.  The calls are made one after the other (no greenlet runs here: the
processes that run these classes patch the sockets; here the calls simply block)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import redis
from tests.support.redis import RedisServer, needs_redis, redis_server, sentinel_for

from certstream.config import BrokerSettings
from certstream.core.brokergap import UNKNOWN
from certstream.core.brokerrecord import encode_record
from certstream.core.feedcodec import EXAMPLE
from certstream.core.resume import EPOCH_SHIFT, Stamp, parse_event_id
from certstream.core.streams import STREAM_FULL, STREAM_LITE
from certstream.shell.brokerpub import BrokerPositions, BrokerPublisher, load_takeover
from certstream.shell.brokersub import BrokerSubscriber
from certstream.shell.lease import RENEW_LOST, RENEW_TAKEN_BACK, RENEWED, Lease
from certstream.shell.redisconn import PUBLISH, Entry, Keys, connect, entries

pytestmark = needs_redis

LOG = "https://log.example/"


@dataclass(frozen=True)
class P:
    lite: bytes | None
    full: bytes | None = None
    domains: bytes | None = None
    fields: bytes | None = None
    seen: int = 0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(Path(tmp_path_factory.mktemp("redis"))) as srv:
        yield srv


@pytest.fixture
def client(server: RedisServer) -> Iterator[redis.Redis]:
    c = connect(server.url)
    c.flushall()
    yield c
    c.close()


@pytest.fixture
def settings(server: RedisServer) -> BrokerSettings:
    return BrokerSettings(url=server.url, retention=100, lease_ms=500)


KEYS = Keys("certstream")


def leader(client: redis.Redis, settings: BrokerSettings) -> tuple[Lease, BrokerPublisher]:
    lease = Lease(client, KEYS, settings.lease_ms)
    assert lease.try_acquire()
    return lease, BrokerPublisher(client, KEYS, lease, settings, load_takeover(client, KEYS))


def publish(pub: BrokerPublisher, first: int, n: int, key: str = LOG) -> None:
    pub.publish([(key, i, P(b"lite %d" % i)) for i in range(first, first + n)])
    pub.advance(key, first + n, first + n)
    pub._drain_once()


def stream(client: redis.Redis) -> list[Entry]:
    return entries(client.xrange(KEYS.records))


def test_a_leader_publishes_records_and_positions_in_one_step(
        client: redis.Redis, settings: BrokerSettings) -> None:
    _lease, pub = leader(client, settings)
    publish(pub, 100, 3)
    assert len(stream(client)) == 3
    assert client.hget(KEYS.positions, LOG) == b"103:103"
    assert client.hget(KEYS.meta, "seq") == b"3"
    assert (pub.published, pub.confirmed_seq, pub.pending_bytes()) == (3, 3, 0)


def test_a_stale_leader_is_refused_and_a_standby_starts_where_it_stopped(
        client: redis.Redis, settings: BrokerSettings) -> None:
    _lease_a, a = leader(client, settings)
    publish(a, 100, 3)
    time.sleep(0.6)  # A's lease (500 ms) lapses: A was paused
    b_lease = Lease(client, KEYS, settings.lease_ms)
    assert b_lease.try_acquire()
    before = stream(client)
    publish(a, 103, 2)  # A wakes up and publishes: the script refuses it
    assert a.lost.is_set() and a.refused == 1 and "held by" in a.lost_reason
    assert stream(client) == before
    assert client.hget(KEYS.positions, LOG) == b"103:103"
    takeover = load_takeover(client, KEYS)
    assert (takeover.seq, takeover.positions[LOG].next_index) == (3, 103)
    b = BrokerPublisher(client, KEYS, b_lease, settings, takeover)
    publish(b, 103, 2)
    assert [int(f[b"r"][5:13].hex(), 16) for _id, f in stream(client)] == [1, 2, 3, 4, 5]
    assert Lease(client, KEYS, 500).renew(a.epoch, a.confirmed_seq) == RENEW_LOST


def test_a_retried_publish_writes_nothing_twice(client: redis.Redis,
                                                settings: BrokerSettings) -> None:
    lease, pub = leader(client, settings)
    script = client.register_script(PUBLISH)
    blobs = [encode_record(pub.epoch, s, LOG, s, b"x", None, None) for s in (1, 2)]
    args: list[bytes | str | int] = [lease.token, 500, 100, pub.epoch, 1, 2, 1, *blobs, LOG,
                                     "3:3"]
    keys = [KEYS.lease, KEYS.records, KEYS.meta, KEYS.positions]
    assert script(keys=keys, args=args)[0] == 1
    assert script(keys=keys, args=args)[0] == 1  # its answer was lost: sent again
    assert len(stream(client)) == 2


def test_a_leader_takes_its_lease_back_after_redis_lost_everything(
        client: redis.Redis, settings: BrokerSettings) -> None:
    lease, pub = leader(client, settings)
    publish(pub, 100, 3)
    publish(pub, 7, 2, key="https://other.example/")
    client.flushall()  # a restart without persistence
    publish(pub, 103, 1)  # accepted: nobody else published; it writes every position again
    assert not pub.lost.is_set()
    pub._write_all_positions()
    assert client.hget(KEYS.positions, "https://other.example/") == b"9:9"
    assert client.hget(KEYS.meta, "seq") == b"6"  # the numbering goes on
    assert lease.holder() == lease.token
    assert lease.renew(pub.epoch, pub.confirmed_seq) == RENEWED
    client.delete(KEYS.lease)
    assert lease.renew(pub.epoch, pub.confirmed_seq) == RENEW_TAKEN_BACK


def test_a_new_deployment_starts_a_fresh_numbering(client: redis.Redis) -> None:
    takeover = load_takeover(client, KEYS)
    assert takeover.fresh and takeover.seq == 0 and not takeover.positions


def test_positions_come_from_redis_and_only_then_from_the_local_file(
        client: redis.Redis, settings: BrokerSettings, tmp_path: Path) -> None:
    _lease, pub = leader(client, settings)
    publish(pub, 100, 3)
    path = str(tmp_path / "state.json")
    positions = BrokerPositions(path, load_takeover(client, KEYS), pub)
    positions.load()
    assert positions.get(LOG) is not None and positions.get(LOG).next_index == 103  # type: ignore[union-attr]
    positions.sent(LOG)
    # Delivered as soon as the record is queued: the position goes right behind it, and
    # the one script writes both.
    pub.publish([(LOG, 103, P(b"y"))], partial(positions.delivered, LOG, 110, 110))
    assert positions.settle(LOG)
    assert positions.saved()[LOG].next_index == 103  # not in Redis yet
    pub._drain_once()
    assert client.hget(KEYS.positions, LOG) == b"110:110"
    assert positions.saved()[LOG].next_index == 110
    positions.stop()
    positions.flush()
    local = BrokerPositions(path, replace(load_takeover(client, KEYS), positions={}), pub)
    local.load()
    assert local.get(LOG) is not None and local.get(LOG).next_index == 110  # type: ignore[union-attr]


@dataclass
class Edge:
    """What an edge worker's hub would get."""

    records: list[tuple[int, bytes | None, str]] = field(default_factory=list)
    gaps: list[int] = field(default_factory=list)
    states: list[dict[str, Any]] = field(default_factory=list)
    examples: list[bytes] = field(default_factory=list)

    def subscriber(self, settings: BrokerSettings) -> BrokerSubscriber:
        sub = BrokerSubscriber(
            settings,
            lambda m, lite, f, d, stamp: self.records.append(
                (m, lite, stamp.event_id().decode())),
            self.states.append, self.examples.append, self.gaps.append)
        sub.open()
        return sub


def test_an_edge_behind_retention_is_told_exactly_how_much_it_lost(
        client: redis.Redis, settings: BrokerSettings) -> None:
    _lease, pub = leader(client, settings)
    publish(pub, 0, 1)
    edge = Edge()
    sub = edge.subscriber(settings)
    cursor = sub.resume_from()  # at the head: record 1
    for first in range(1, 1001, 100):  # records 2 .. 1001
        publish(pub, first, 100)
    while True:
        cursor, n = sub.read_batch(cursor, None)
        if not n:
            break
    kept = len(stream(client))
    assert 100 <= kept < 1000  # MAXLEN ~ 100 trimmed the rest
    assert edge.gaps == [1000 - kept]  # all of 2 .. 1001 that are not kept
    assert len(edge.records) == kept
    assert edge.records[-1][1] == b"lite 1000"
    assert edge.records[-1][2] == stream(client)[-1][0].decode()  # the stream id rides along


def test_a_new_edge_preloads_the_recent_records_with_their_stamps(
        client: redis.Redis, settings: BrokerSettings) -> None:
    _lease, pub = leader(client, settings)
    pub.publish([(LOG, i, P(b"lite %d" % i, seen=1_700_000_000_000_000 + i,
                            fields=b"i\0l\0n%d" % i)) for i in range(10)])
    pub.advance(LOG, 10, 10)
    pub._drain_once()
    stamps: list[Stamp] = []
    sub = BrokerSubscriber(settings, lambda m, lite, f, d, st: stamps.append(st),
                           lambda _s: None, lambda _e: None, lambda _g: None, preload=4)
    sub.open()
    ids = [rid for rid, _f in stream(client)]
    assert sub.resume_from() == ids[-1].decode()  # then on from the head
    # The last 4, oldest first: the Redis stream id as the global id, epoch and seq as the
    # number, the seen and the filter field the ingest put in.
    assert [st.event_id() for st in stamps] == ids[-4:]
    assert [st.number for st in stamps] == [(pub.epoch << EPOCH_SHIFT) | s for s in (7, 8, 9, 10)]
    assert [st.seen for st in stamps] == [1_700_000_000_000_000 + i for i in (6, 7, 8, 9)]
    assert stamps[-1].fields == b"i\0l\0n9"
    # What a client resuming from before them lost takes its record's number: asked of Redis.
    assert sub.locate(parse_event_id(ids[0].decode())) == (pub.epoch << EPOCH_SHIFT) | 1
    assert sub.locate(parse_event_id("1-1")) is None  # Redis no longer has it


def test_an_edge_reads_a_stream_that_went_back_from_its_start(
        client: redis.Redis, settings: BrokerSettings) -> None:
    """A promoted replica may hold an older stream whose new ids are lower than the last id
    an edge read: it reads the stream from its start; the numbers drop what it had."""
    _lease, pub = leader(client, settings)
    publish(pub, 0, 3)
    edge = Edge()
    sub = edge.subscriber(settings)
    cursor = sub.resume_from()
    publish(pub, 3, 2)
    cursor, n = sub.read_batch(cursor, None)
    assert n == 2 and len(edge.records) == 2
    client.delete(KEYS.records)
    for seq in (4, 5, 6):  # the replica had up to 4; then the ingest went on with 5 and 6
        blob = encode_record(pub.epoch, seq, LOG, 100 + seq, b"r%d" % seq, None, None)
        client.xadd(KEYS.records, {"r": blob}, id=f"1-{seq}")
    start = sub.resume_from()
    assert start == "0-0"
    sub.read_batch(start, None)
    assert [r[1] for r in edge.records] == [b"lite 3", b"lite 4", b"r6"]
    assert edge.gaps == [] and sub.replayed == 2  # records 4 and 5 came again: dropped


def test_a_new_numbering_is_a_gap_of_unknown_size(client: redis.Redis,
                                                  settings: BrokerSettings) -> None:
    _lease, pub = leader(client, settings)
    publish(pub, 0, 2)
    edge = Edge()
    sub = edge.subscriber(settings)
    cursor = sub.resume_from()
    client.xadd(KEYS.records, {"r": encode_record(pub.epoch + 1, 1, LOG, 50, b"n", None, None)})
    sub.read_batch(cursor, None)
    assert edge.gaps == [UNKNOWN] and edge.records[-1][1] == b"n"


def test_wants_state_and_samples_travel_between_edges_and_the_leader(
        client: redis.Redis, settings: BrokerSettings) -> None:
    _lease, pub = leader(client, settings)
    edge = Edge()
    sub = edge.subscriber(settings)
    sub.set_wanted(STREAM_LITE)
    sub.side_once()
    other = Edge().subscriber(settings)
    other.edge_id = "other:1"
    other.set_wanted(STREAM_FULL)
    other.side_once()
    pub._side_once()
    assert (pub.wanted(), pub.connected()) == (STREAM_LITE | STREAM_FULL, 2)
    asked: list[int] = []

    def build_sample() -> None:  # what Pipeline.publish_example does
        asked.append(1)
        pub.publish_example(b"sample")

    pub.on_example_wanted = build_sample
    pub.publish_state({"logs": [], "counters": {}})
    sub.want_example(True)
    sub.side_once()
    pub._side_once()
    sub.side_once()
    assert asked and edge.examples == [b"sample"]
    assert edge.states[-1]["broker"]["leader"] == pub.lease.name
    assert sub.status()["leader"] == pub.lease.name
    assert int(client.get(KEYS.want(sub.edge_id)) or 0) == STREAM_LITE | EXAMPLE
    sub.close()
    assert client.get(KEYS.want(sub.edge_id)) is None


def test_a_sentinel_url_reaches_the_master_it_names(server: RedisServer,
                                                    client: redis.Redis) -> None:
    """``redis+sentinel://``: the leader publishes and an edge reads through the master a
    real Sentinel names."""
    with sentinel_for(server) as sentinel:
        settings = BrokerSettings(url=sentinel.url, retention=100, lease_ms=500)
        via = connect(sentinel.url)
        assert via.ping()
        _lease, pub = leader(via, settings)
        publish(pub, 0, 1)
        edge = Edge()
        sub = edge.subscriber(settings)
        cursor = sub.resume_from()
        publish(pub, 1, 2)
        sub.read_batch(cursor, None)
        assert [r[1] for r in edge.records] == [b"lite 1", b"lite 2"]
        assert len(stream(client)) == 3  # the same Redis, reached directly
        assert sub.status()["url"] == f"redis+sentinel://127.0.0.1:{sentinel.port}/" \
                                      f"{sentinel.service}/0"
        via.close()
