"""certstream-server-go's metric series, beside ours (``metrics.go_series``, on whenever
Go's config format is in use), so that a dashboard built for Go keeps working.

=============================================  ==============================================
``certstreamservergo_certificates_total``      entries read from the logs, ``type`` regular
                                               or precert (counted before dedup, as Go counts
                                               every entry it processes)
``certstreamservergo_certs_by_log_total``      the same per log: ``url`` (Go's normalized
                                               URL) and ``operator``
``certstreamservergo_clients_total``           connected clients by ``type`` full, lite,
                                               domain (WebSocket and SSE)
``certstreamservergo_skipped_certs``           messages each connected client lost, by
                                               ``client`` (``ip:port``); only clients that
                                               lost any (Go lists every client, with 0)
=============================================  ==============================================

The first three are prometheus_client metrics in multiprocess mode like ours (the ingest
counts, each worker sets its share of the clients).  The last one has a label per client,
which the multiprocess files could never forget; so each worker writes its connected
clients' counts to a small file of its own once a second (only when they changed), and the
worker that renders a scrape reads them all (:class:`SkippedCollector`): a client that
left is gone from the next scrape.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Gauge
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from certstream.core.ctindex import index_key
from certstream.core.logspec import LogSpec
from certstream.core.model import LogEntry
from certstream.core.streams import STREAM_NAMES
from certstream.shell.atomicfile import atomic_write
from certstream.shell.sharedmem import pid_alive

__all__ = [
    "CERTIFICATES",
    "CERTS_BY_LOG",
    "CLIENTS",
    "IngestCounts",
    "SkippedCollector",
    "WorkerSeries",
]

CERTIFICATES = Counter(
    "certstreamservergo_certificates", "certstream-server-go's series: certificates read from "
    "the logs, by type (regular, precert).", ["type"])
CERTS_BY_LOG = Counter(
    "certstreamservergo_certs_by_log", "certstream-server-go's series: certificates read, by "
    "log URL (without scheme) and operator.", ["url", "operator"])
CLIENTS = Gauge(
    "certstreamservergo_clients_total", "certstream-server-go's series: connected clients by "
    "type (full, lite, domain).", ["type"], multiprocess_mode="livesum")

#: Our stream names -> Go's client types.
_GO_TYPES = {"lite": "lite", "full": "full", "domains": "domain"}
_SKIPPED = "certstreamservergo_skipped_certs"
_FILE_PREFIX = "certstreamservergo_skipped_"


class IngestCounts:
    """The ingest's part: called by the pipeline with each batch a log delivered."""

    def __init__(self) -> None:
        self._regular = CERTIFICATES.labels("regular")
        self._precert = CERTIFICATES.labels("precert")
        self._by_log: dict[str, Any] = {}

    def __call__(self, spec: LogSpec, entries: Sequence[LogEntry]) -> None:
        if not entries:
            return
        precerts = sum(1 for entry in entries if entry.is_precert)
        if precerts:
            self._precert.inc(precerts)
        if len(entries) > precerts:
            self._regular.inc(len(entries) - precerts)
        child = self._by_log.get(spec.key)
        if child is None:
            child = self._by_log[spec.key] = CERTS_BY_LOG.labels(index_key(spec.url),
                                                                 spec.operator)
        child.inc(len(entries))


def _skipped_file(directory: str, pid: int) -> Path:
    return Path(directory) / f"{_FILE_PREFIX}{pid}.json"


class WorkerSeries:
    """A worker's part, called once a second and before each scrape it renders: its clients
    by type, and the lost messages of its connected clients (``peers``: client -> address,
    kept by the connection handler)."""

    def __init__(self, hub: Any, peers: Mapping[Any, str], directory: str | None) -> None:
        self.hub = hub
        self.peers = peers
        self.directory = directory
        self.skipped: dict[str, int] = {}
        self._written: bytes | None = None

    def __call__(self) -> None:
        totals: dict[str, int] = {}
        for by_stream in self.hub.counts().values():
            for stream, n in by_stream.items():
                totals[stream] = totals.get(stream, 0) + n
        for stream in STREAM_NAMES.values():
            CLIENTS.labels(_GO_TYPES.get(stream, stream)).set(totals.get(stream, 0))
        self.skipped = {addr: client.dropped for client, addr in list(self.peers.items())
                        if client.dropped}
        if self.directory:
            data = json.dumps(self.skipped, sort_keys=True).encode()
            if data != self._written:
                # A scrape that reads the file mid-write sees the old one, never half of it.
                atomic_write(str(_skipped_file(self.directory, os.getpid())), data)
                self._written = data


class SkippedCollector:
    """``certstreamservergo_skipped_certs`` of every live worker, at scrape time."""

    def __init__(self, local: WorkerSeries, directory: str | None) -> None:
        self.local = local
        self.directory = directory

    def _per_worker(self) -> Iterator[dict[str, int]]:
        if not self.directory:
            yield self.local.skipped
            return
        for path in Path(self.directory).glob(f"{_FILE_PREFIX}*.json"):
            pid = path.stem[len(_FILE_PREFIX):]
            if not pid.isdigit() or not pid_alive(int(pid)):
                with contextlib.suppress(OSError):
                    path.unlink()  # a worker that died: its clients are gone too
                continue
            try:
                doc = json.loads(path.read_bytes())
            except (OSError, ValueError):
                continue
            if isinstance(doc, dict):
                yield {str(k): v for k, v in doc.items() if isinstance(v, int)}

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            _SKIPPED, "certstream-server-go's series: messages a connected client lost, by "
            "client address (only clients that lost any).", labels=["client"])
        for skipped in self._per_worker():
            for client, count in sorted(skipped.items()):
                family.add_metric([client], count)
        yield family

