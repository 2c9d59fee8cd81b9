"""The memory the workers share, driven from one process as several workers would: rows,
connections per address and in total, rate states, statistics, and a dead worker's places
coming back.  (The same under real concurrent processes: tests/e2e/test_shared_limits.py.)"""

from __future__ import annotations

import os

from certstream.core.ratelimit import RateRule
from certstream.core.streams import STREAM_FULL, STREAM_LITE
from certstream.shell.hub import Hub
from certstream.shell.sharedlimits import (
    MAX_CONNECTIONS,
    PER_IP_LIMIT,
    TABLE_FULL,
    Place,
    SharedConnections,
    SharedRates,
    address_key,
)
from certstream.shell.sharedmem import STOPPED, SharedMemory
from certstream.shell.sharedstats import SharedStats

GONE_PID = 2**22 + 12345  # above Linux's pid_max default: never a live process


def test_rows_are_claimed_once_and_a_dead_workers_row_is_reused() -> None:
    mem = SharedMemory(rows=3, addresses=64)  # rows 1 and 2 for workers
    a = mem.claim(os.getpid())
    b = mem.claim(GONE_PID)
    assert {a, b} == {1, 2}
    assert mem.claim(os.getpid()) == a  # the same worker again: its own row
    # Full, but the second row's worker is gone: its row is taken over.
    assert mem.claim(os.getppid()) == b


def test_limits_hold_across_workers() -> None:
    mem = SharedMemory(rows=4, addresses=64)
    one = SharedConnections(mem, mem.claim(101))
    two = SharedConnections(mem, mem.claim(102))
    places = [one.admit("10.0.0.1", 5, 3), two.admit("10.0.0.1", 5, 3),
              one.admit("10.0.0.1", 5, 3)]
    assert all(isinstance(p, Place) for p in places)
    assert two.admit("10.0.0.1", 5, 3) == PER_IP_LIMIT  # 3 from this address, on 2 workers
    assert one.count("10.0.0.1") == two.count("::ffff:10.0.0.1") == 3
    assert isinstance(two.admit("10.0.0.2", 5, 3), Place)
    assert isinstance(one.admit("2001:db8::1", 5, 3), Place)
    assert mem.total == 5
    assert two.admit("10.0.0.3", 5, 3) == MAX_CONNECTIONS
    ended = places[1]
    assert isinstance(ended, Place)
    two.release(ended)  # a connection on worker two ends
    assert mem.total == 4 and one.count("10.0.0.1") == 2
    assert isinstance(two.admit("10.0.0.1", 5, 3), Place)


def test_a_dead_workers_places_and_traffic_come_back() -> None:
    mem = SharedMemory(rows=4, addresses=64)
    row_a, row_b = mem.claim(201), mem.claim(202)
    a, b = SharedConnections(mem, row_a), SharedConnections(mem, row_b)
    for _ in range(2):
        assert isinstance(a.admit("10.0.0.9", 4, 2), Place)
    assert isinstance(b.admit("10.0.0.8", 4, 2), Place)
    mem.publish(row_a, (1, 0, 0, 1, 0, 0, 30, 0, 0, 999, 4, 1))
    assert mem.reclaim(201) is False  # it did not mark a clean stop: it died
    assert mem.total == 1 and a.count("10.0.0.9") == 0
    assert isinstance(b.admit("10.0.0.9", 4, 2), Place)
    sums = mem.sums()
    assert (sums["frames_lite"], sums["bytes"], sums["drops"], sums["ws_lite"]) == (30, 999, 4, 0)
    mem.mark_stopped(row_b)
    assert mem.get(row_b, "state") == STOPPED
    assert mem.reclaim(202) is True and mem.total == 0
    assert mem.reclaim(202) is None  # nothing left of it


def test_a_full_address_window_is_refused_only_while_per_ip_is_on() -> None:
    mem = SharedMemory(rows=2, addresses=64)
    conns = SharedConnections(mem, mem.claim(301))
    key = address_key("10.1.1.1")
    # Fill the whole window of that address's home with other addresses' connections.
    for index in mem.addresses.probe(hash(key)):
        mem.addresses.take(index, (index + 1).to_bytes(16, "big"))
        mem.mem[mem.column_at(index, 1):mem.column_at(index, 1) + 4] = (1).to_bytes(4, "little")
    assert conns.admit("10.1.1.1", None, 10) == TABLE_FULL
    place = conns.admit("10.1.1.1", None, None)
    assert isinstance(place, Place) and not place.per_address
    conns.release(place)  # counted in the total only: gives back only that
    assert mem.total == 0


def test_rate_states_are_shared_and_bounded() -> None:
    mem = SharedMemory(rows=2, addresses=64, rates=16)
    rule = RateRule(max_tokens=3, refill_rate=0.001, burst=1)
    one, two = SharedRates(mem), SharedRates(mem)  # two workers' views
    admitted = [w.check("10.0.0.1", rule, 5.0) == 0.0 for w in (one, two, one, two, one)]
    assert admitted == [True, True, True, True, False]  # 3 tokens + 1 burst, in all
    # More addresses than the table holds: each is still limited while it is kept.
    for n in range(40):
        assert one.check(f"10.9.0.{n}", rule, 6.0) == 0.0
    assert sum(1 for _ in mem.rates.used()) <= 16


def test_stats_sum_every_workers_row() -> None:
    mem = SharedMemory(rows=4, addresses=64)
    hubs = [Hub(8), Hub(8)]
    stats = [SharedStats(mem, mem.claim(400 + i), hub) for i, hub in enumerate(hubs)]
    hubs[0].rings[STREAM_LITE].ws_clients.update({object(), object()})  # type: ignore[arg-type]
    hubs[1].rings[STREAM_FULL].sse_clients.add(object())  # type: ignore[arg-type]
    hubs[1].rings[STREAM_LITE].sent = 7
    hubs[1].bytes_sent = 100
    stats[1].publish()
    totals = stats[0].totals()  # publishes its own, reads everyone's
    assert totals.clients == {"websocket": {"lite": 2, "full": 0, "domains": 0},
                              "sse": {"lite": 0, "full": 1, "domains": 0}}
    assert (totals.connections, totals.frames_sent, totals.bytes_sent) == (3, 7, 100)
