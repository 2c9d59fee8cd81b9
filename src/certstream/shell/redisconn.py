"""The Redis of a multi-machine deployment: connecting to it, the names of its keys, and the
Lua scripts that make the leading ingest's writes atomic and fenced.

Every process connects for itself (the ingest, each gunicorn worker of an edge): redis-py
with its hiredis parser, over the standard ``socket`` module that gevent has patched in
these processes, so a blocked ``XREAD`` only parks its greenlet.

Keys, under ``broker.key_prefix`` (default ``certstream``), so several deployments can share
one Redis:

``<p>:records``   the stream of records (``core.brokerrecord``), ``MAXLEN ~ broker.retention``
``<p>:lease``     the token of the ingest that leads (``SET NX PX``, renewed)
``<p>:meta``      hash: ``epoch`` and ``seq`` of the last record published
``<p>:positions`` hash: log key -> ``next_index:tree_size``, written with the records
``<p>:wants``     set of edge worker ids; ``<p>:want:<id>`` the streams it wants (expires)
``<p>:state``     the leader's STATE (logs, counters) as JSON, for ``/health/deep``
``<p>:example``   a lite payload for ``/example.json``, built when an edge asks
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any, cast

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from certstream.core.brokerurl import BrokerAddress, parse_broker_url

__all__ = [
    "ACQUIRE_AFTER_FREE",
    "PUBLISH",
    "RENEW",
    "RESTORE",
    "WANTS",
    "Entry",
    "Keys",
    "RedisError",
    "connect",
    "entries",
    "hash_of",
    "node_name",
    "streams_read",
]

#: What a broker call raises when Redis is unreachable, restarting or failing over.
RedisError = (redis.RedisError, OSError)

#: A standby takes a free lease only after finding it free at two polls in a row, so that
#: a leader whose Redis lost the lease (a restart) gets it back first.
ACQUIRE_AFTER_FREE = 2


#: One stream entry as redis-py returns it (the client does not decode responses).
Entry = tuple[bytes, dict[bytes, bytes]]


def entries(value: Any) -> list[Entry]:
    """An ``XRANGE``/``XREVRANGE`` answer, typed (redis-py's hints cover every mode)."""
    return cast("list[Entry]", value or [])


def streams_read(value: Any) -> list[tuple[bytes, list[Entry]]]:
    """An ``XREAD`` answer, typed."""
    return cast("list[tuple[bytes, list[Entry]]]", value or [])


def hash_of(value: Any) -> dict[bytes, bytes]:
    """An ``HGETALL`` answer, typed."""
    return cast("dict[bytes, bytes]", value or {})


def node_name() -> str:
    """``host:pid``: who holds the lease, or whose wants these are, in logs and metrics."""
    import os  # noqa: PLC0415 - keeps the module's top import list to what connects

    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str

    @property
    def records(self) -> str:
        return f"{self.prefix}:records"

    @property
    def lease(self) -> str:
        return f"{self.prefix}:lease"

    @property
    def meta(self) -> str:
        return f"{self.prefix}:meta"

    @property
    def positions(self) -> str:
        return f"{self.prefix}:positions"

    @property
    def wants(self) -> str:
        return f"{self.prefix}:wants"

    def want(self, edge: str) -> str:
        return f"{self.prefix}:want:{edge}"

    @property
    def state(self) -> str:
        return f"{self.prefix}:state"

    @property
    def example(self) -> str:
        return f"{self.prefix}:example"


def connect(url: str, *, socket_timeout: float | None = 10.0) -> redis.Redis:
    """A client for ``broker.url`` (one Redis, or the master that the Sentinels name)."""
    address: BrokerAddress = parse_broker_url(url)
    opts: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": 5.0,
        "health_check_interval": 30,
        # No silent retries inside redis-py: after a failure the callers decide (an edge
        # must look where the stream is before it reads on; the ingest backs off).
        "retry": Retry(NoBackoff(), 0),
    }
    if not address.sentinels:
        return redis.Redis.from_url(address.url, **opts)
    sentinel = Sentinel(list(address.sentinels), socket_timeout=5.0,
                        socket_connect_timeout=5.0)
    return cast("redis.Redis", sentinel.master_for(
        address.service, db=address.db, username=address.username, password=address.password,
        **opts))


# -- Lua ---------------------------------------------------------------------------------------
# Each runs atomically in Redis: nothing else happens between its GET of the lease and its
# writes, which is what fences a paused old leader out.

#: KEYS lease, records, meta, positions.  ARGV token, lease ms, maxlen, epoch, first seq,
#: records n, positions n, then n record blobs, then positions n (field, value) pairs.
#: Returns {1, last id, restore} when written (restore: Redis had lost something: the
#: caller writes all its positions again), {0, holder} when refused.
PUBLISH = """
local token, ttl, maxlen, epoch = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local first, nrec, npos = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local holder = redis.call('GET', KEYS[1])
local seq = tonumber(redis.call('HGET', KEYS[3], 'seq') or '-1')
local same = redis.call('HGET', KEYS[3], 'epoch') == epoch
local restore = 0
if holder ~= token then
  if holder then return {0, holder} end
  -- Nobody holds the lease: ours lapsed while nobody took over, or Redis lost its data.
  -- Take it back only if nobody published since our last record.
  if seq >= 0 and not (same and seq == first - 1) then return {0, ''} end
  redis.call('SET', KEYS[1], token, 'PX', ttl)
  restore = 1
end
local done = -1
if same then done = seq end
-- Records before ours are missing (not a new numbering): Redis lost some.
if done < first - 1 and first > 1 then restore = 1 end
local last = ''
for i = 1, nrec do
  if first + i - 1 > done then
    last = redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', 'r', ARGV[7 + i])
  end
end
local top = first + nrec - 1
if top > done then
  redis.call('HSET', KEYS[3], 'seq', top, 'epoch', epoch)
end
for i = 1, npos do
  local j = 7 + nrec + 2 * i
  redis.call('HSET', KEYS[4], ARGV[j - 1], ARGV[j])
end
return {1, last, restore}
"""

#: KEYS lease, meta.  ARGV token, lease ms, epoch, the last seq this leader published.
#: 1 renewed, 2 taken back (it was free and nobody published since), 0 lost.
RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder then return 0 end
local seq = redis.call('HGET', KEYS[2], 'seq')
local ours = redis.call('HGET', KEYS[2], 'epoch') == ARGV[3]
if seq and not (ours and tonumber(seq) == tonumber(ARGV[4])) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 2
"""

#: KEYS lease, meta, positions.  ARGV token, epoch, seq, then (field, value) pairs: a leader
#: writes everything it knows again after Redis lost data.  1 done, 0 not the leader.
RESTORE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local seq = tonumber(redis.call('HGET', KEYS[2], 'seq') or '-1')
if redis.call('HGET', KEYS[2], 'epoch') ~= ARGV[2] or seq < tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[2], 'seq', ARGV[3], 'epoch', ARGV[2])
end
for i = 4, #ARGV, 2 do
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
end
return 1
"""

#: KEYS wants.  ARGV the want key prefix.  Returns {id, mask, id, mask, ...} of the edge
#: workers whose want key is alive; forgets the others.
WANTS = """
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local v = redis.call('GET', ARGV[1] .. id)
  if v then
    out[#out + 1] = id
    out[#out + 1] = v
  else
    redis.call('SREM', KEYS[1], id)
  end
end
return out
"""
