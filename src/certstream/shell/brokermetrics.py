"""Prometheus metrics of the broker (``role: ingest`` and ``role: edge``), in the same
multiprocess registry as ``certstream.shell.metrics``: ``/metrics`` on any node shows its
own processes' values.

Ingest side: records published, publishes refused by the lease (a paused old leader), the
lease (1 on the ingest that leads), what waits for Redis.  Edge side (each worker): records
read, gaps and the records lost in them, how far behind the stream's head the worker is,
connection failures (records dropped as repeats are ``certstream_feed_replayed``, as on one
machine).  Updated off the hot path (once per published batch, once a second on an edge).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

__all__ = [
    "BROKER_BUFFER_BYTES",
    "BROKER_CONNECTED",
    "BROKER_ERRORS",
    "BROKER_GAPS",
    "BROKER_LAG",
    "BROKER_LEADER",
    "BROKER_LOST",
    "BROKER_PUBLISHED",
    "BROKER_READ",
    "BROKER_REFUSED",
]

BROKER_PUBLISHED = Counter(
    "certstream_broker_published", "Records this ingest wrote to the broker's stream.")
BROKER_REFUSED = Counter(
    "certstream_broker_refused", "Publishes (op=publish) and lease renewals (op=renew) the "
    "broker refused because another ingest holds the lease; this ingest stepped down.",
    ["op"])
BROKER_LEADER = Gauge(
    "certstream_broker_leader", "1 while this node's ingest holds the lease and publishes, 0 "
    "while it stands by.", multiprocess_mode="livemax")
BROKER_BUFFER_BYTES = Gauge(
    "certstream_broker_buffer_bytes", "Record bytes the ingest holds that the broker has not "
    "taken yet (past broker.buffer_bytes the log followers wait).",
    multiprocess_mode="livesum")
BROKER_ERRORS = Counter(
    "certstream_broker_errors", "Broker calls that failed (Redis unreachable, restarting, "
    "failing over), by side (ingest, edge); each is retried with backoff.", ["side"])
BROKER_CONNECTED = Gauge(
    "certstream_broker_connected", "Edge workers reading the broker now.",
    multiprocess_mode="livesum")
BROKER_READ = Counter(
    "certstream_broker_read", "Records edge workers read from the broker (each worker reads "
    "every record).")
BROKER_GAPS = Counter(
    "certstream_broker_gaps", "Gaps an edge worker found in the records (trimmed before it "
    "read them, or lost by the broker), by whether the count lost is known.", ["count"])
BROKER_LOST = Counter(
    "certstream_broker_lost", "Records an edge worker's clients lost in gaps of known size "
    "(each was told with a notice).")
BROKER_LAG = Gauge(
    "certstream_broker_edge_lag", "Records between the stream's head and what the most "
    "behind edge worker of this node delivered.", multiprocess_mode="livemax")
