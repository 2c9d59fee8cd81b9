"""Prometheus metrics of the ingest and the workers, correct across processes.

A deployment is several processes (one ingest, N gunicorn workers), and a scrape hits one
worker.  So metrics use prometheus_client's multiprocess mode: each process writes its values
to files under ``PROMETHEUS_MULTIPROC_DIR`` and :func:`render_metrics` aggregates every
process's files at scrape time.  The gunicorn master sets that directory (fresh, private) before
any worker or the ingest starts, and marks dead workers in ``child_exit``.

That variable must be set before ``prometheus_client`` is first imported in a process: the
library picks its value storage once, at import.  Without it (unit tests, a bare ingest) the
metrics live in the default in-process registry and :func:`render_metrics` renders that.

Gauges need a multiprocess mode: ``livesum`` for values each worker holds a share of
(connected clients), ``livemostrecent`` for values one process owns (the ingest's per-log
state), so a dead process's values disappear with it.

Callers should cache label children (``ENTRIES.labels(log, "x509")``) once per log or stream
rather than calling ``labels()`` per event: ``labels()`` takes a lock and a dict lookup, the
child's ``inc()`` is the cheap part.  Labels must stay bounded: a log name, a stream type, a
status code, a reason from a fixed list; never a client address.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.registry import Collector

from certstream.shell.specmetrics import exposition

__all__ = [
    "BYTES_SENT",
    "CLIENTS",
    "CLIENTS_RATE_LIMITED",
    "CONFIG_RELOADS",
    "DEDUP_SIZE",
    "DUPLICATES",
    "ENTRIES",
    "ENTRIES_SKIPPED",
    "FEED_DROPPED",
    "FEED_REPLAYED",
    "FILTERED_CLIENTS",
    "FILTERS",
    "FILTER_RECORDS_MATCHED",
    "FRAMES_SENT",
    "HTTP_REQUESTS",
    "LOG_ERRORS",
    "LOG_LAG",
    "LOG_STATUS",
    "LOG_STATUS_CODES",
    "LOG_TREE_SIZE",
    "PARSE_PROBLEMS",
    "PAYLOADS_BUILT",
    "RATE_LIMITED",
    "SERVER_RESPONSES",
    "SLOW_CLIENT_CLOSED",
    "SLOW_CLIENT_DROPS",
    "render_metrics",
]

# The *_created series double the scrape for no use here (every process starts with the server).
disable_created_metrics()  # type: ignore[no-untyped-call]

# -- ingest ----------------------------------------------------------------------------------

ENTRIES = Counter(
    "certstream_entries", "Log entries decoded and published, by log and entry type "
    "(x509 or precert).", ["log", "type"])
ENTRIES_SKIPPED = Counter(
    "certstream_entries_skipped", "Log entries skipped, by log and reason (decode, leaf_index, "
    "...).", ["log", "reason"])
DUPLICATES = Counter(
    "certstream_duplicates", "Certificates not published again because the dedup ring had "
    "seen them.")
DEDUP_SIZE = Gauge(
    "certstream_dedup_size", "Fingerprints held in the dedup ring.",
    multiprocess_mode="livemostrecent")
#: Values of certstream_log_status.
LOG_STATUS_CODES = {"healthy": 0, "degraded": 1, "unhealthy": 2, "starting": 3}
LOG_STATUS = Gauge(
    "certstream_log_status", "Health of each followed log: 0 healthy, 1 degraded, 2 unhealthy, "
    "3 starting (no request to it has completed yet).",
    ["log"], multiprocess_mode="livemostrecent")
LOG_LAG = Gauge(
    "certstream_log_lag", "Entries in the log's tree not yet read (tree size - next index).",
    ["log"], multiprocess_mode="livemostrecent")
LOG_TREE_SIZE = Gauge(
    "certstream_log_tree_size", "Latest tree size (STH or checkpoint) of each followed log.",
    ["log"], multiprocess_mode="livemostrecent")
LOG_ERRORS = Counter(
    "certstream_log_errors", "Failed requests or responses per log, by kind (timeout, http_5xx, "
    "bad_json, ...).", ["log", "kind"])
HTTP_REQUESTS = Counter(
    "certstream_http_requests", "HTTP requests made to CT logs, by log and status code "
    "(0 when no response arrived).", ["log", "code"])
RATE_LIMITED = Counter(
    "certstream_rate_limited", "Responses 429 (too many requests) from each log.", ["log"])
PAYLOADS_BUILT = Counter(
    "certstream_payloads_built", "Message payloads serialized, by stream (lite, full, domains); "
    "once per entry per stream that some client wants.", ["stream"])
PARSE_PROBLEMS = Counter(
    "certstream_parse_problems", "Certificates formatted with fields that could not be read, "
    "leaf or chain (the entry was still published with those fields empty).")
FEED_DROPPED = Counter(
    "certstream_feed_dropped", "Entries not sent to a worker that was too far behind on the feed.")

# -- workers ---------------------------------------------------------------------------------

CLIENTS = Gauge(
    "certstream_clients", "Connected clients, by stream (lite, full, domains) and transport "
    "(websocket, sse).", ["stream", "transport"], multiprocess_mode="livesum")
FRAMES_SENT = Counter(
    "certstream_frames_sent", "Messages delivered to clients, by stream.", ["stream"])
BYTES_SENT = Counter("certstream_bytes_sent", "Bytes written to client sockets.")
SLOW_CLIENT_DROPS = Counter(
    "certstream_slow_client_drops", "Messages a slow client lost because it fell off the ring.")
SLOW_CLIENT_CLOSED = Counter(
    "certstream_slow_client_closed", "Clients closed after losing more than their drop budget.")
FEED_REPLAYED = Counter(
    "certstream_feed_replayed", "Entries a worker ignored because it had delivered that log "
    "index already (a restarted ingest repeats a few).")
CLIENTS_RATE_LIMITED = Counter(
    "certstream_clients_rate_limited", "Client requests refused with 429 by rate_limit (a "
    "token bucket per address and worker).")
CONFIG_RELOADS = Counter(
    "certstream_config_reloads", "Config file changes a worker read (hot_reload), by result: "
    "valid (its live keys applied, if any changed) or invalid (ignored).", ["result"])
FILTERED_CLIENTS = Gauge(
    "certstream_filtered_clients", "Connected clients with a server-side filter (?domain=, "
    "domain_re=, issuer=, log=).", multiprocess_mode="livesum")
FILTERS = Gauge(
    "certstream_filters", "Distinct filters of the connected clients (clients with equal "
    "filters share one), summed over workers.", multiprocess_mode="livesum")
FILTER_RECORDS_MATCHED = Counter(
    "certstream_filter_records_matched", "Entries that matched at least one client's filter "
    "(each entry is matched once per worker, for all its filters together).")
SERVER_RESPONSES = Counter(
    "certstream_server_responses", "Responses to clients, by endpoint (a fixed route name, "
    "never the raw path) and status code.", ["endpoint", "code"])


def render_metrics(extra: Iterable[Collector] = ()) -> tuple[bytes, str]:
    """The Prometheus text exposition of all processes (or of this one outside a deployment)
    and its content type: ours, then the spec's series (``shell.specmetrics``); ``extra``
    collectors are read at this scrape too (series that are not prometheus_client metrics of
    one process, such as ``shell.gometrics``'s)."""
    more = CollectorRegistry(auto_describe=False)
    for collector in extra:
        more.register(collector)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess  # noqa: PLC0415 - only this path needs it

        multiprocess.MultiProcessCollector(more)  # type: ignore[no-untyped-call]
        return exposition(more), CONTENT_TYPE_LATEST
    return exposition(REGISTRY) + generate_latest(more), CONTENT_TYPE_LATEST
