"""certstream-server-go's metric series and the deployment's process series, from plain
values: what the ingest counts, what a worker publishes, and what a scrape reads back."""

from __future__ import annotations

import json
import os
from pathlib import Path

from prometheus_client import REGISTRY

from certstream.core.logspec import LogSpec
from certstream.core.model import LogEntry
from certstream.shell.gometrics import IngestCounts, SkippedCollector, WorkerSeries
from certstream.shell.procmetrics import DeploymentProcesses


class _Entry:
    def __init__(self, precert: bool) -> None:
        self.is_precert = precert


class _Client:
    def __init__(self, dropped: int) -> None:
        self.dropped = dropped


class _Hub:
    def counts(self) -> dict[str, dict[str, int]]:
        return {"websocket": {"lite": 2, "full": 1, "domains": 0},
                "sse": {"lite": 1, "full": 0, "domains": 3}}


def _value(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_ingest_counts_every_entry_by_type_and_log() -> None:
    spec = LogSpec("https://ct.example/gm/", "GM", "https://ct.example/gm/", operator="Ex")
    before = (_value("certstreamservergo_certificates_total", type="regular"),
              _value("certstreamservergo_certificates_total", type="precert"))
    count = IngestCounts()
    entries: list[LogEntry] = [_Entry(False), _Entry(True), _Entry(False)]  # type: ignore[list-item]
    count(spec, entries)
    count(spec, [])
    assert _value("certstreamservergo_certificates_total", type="regular") == before[0] + 2
    assert _value("certstreamservergo_certificates_total", type="precert") == before[1] + 1
    assert _value("certstreamservergo_certs_by_log_total", url="ct.example/gm",
                  operator="Ex") == 3


def test_worker_series_and_the_scrape_of_every_live_worker(tmp_path: Path) -> None:
    peers = {_Client(0): "127.0.0.1:1000", _Client(7): "127.0.0.1:1001"}
    series = WorkerSeries(_Hub(), peers, str(tmp_path))
    series()
    assert _value("certstreamservergo_clients_total", type="lite") == 3
    assert _value("certstreamservergo_clients_total", type="domain") == 3
    mine = tmp_path / f"certstreamservergo_skipped_{os.getpid()}.json"
    assert json.loads(mine.read_text()) == {"127.0.0.1:1001": 7}  # only clients that lost
    # Another live worker's file counts; a dead worker's is dropped (and removed).
    # (the test's parent process stands in for a live worker of the same user)
    other = tmp_path / f"certstreamservergo_skipped_{os.getppid()}.json"
    other.write_text('{"10.0.0.1:5": 2}')
    dead = tmp_path / "certstreamservergo_skipped_999999999.json"
    dead.write_text('{"10.0.0.2:5": 9}')
    family = next(iter(SkippedCollector(series, str(tmp_path)).collect()))
    got = {s.labels["client"]: s.value for s in family.samples}
    assert got == {"127.0.0.1:1001": 7, "10.0.0.1:5": 2}
    assert not dead.exists()
    # A client that left is gone from the next scrape.
    peers.clear()
    series()
    family = next(iter(SkippedCollector(series, str(tmp_path)).collect()))
    assert {s.labels["client"] for s in family.samples} == {"10.0.0.1:5"}


def test_process_series_sum_the_deployment(tmp_path: Path) -> None:
    (tmp_path / f"counter_{os.getpid()}.db").write_bytes(b"")
    (tmp_path / "counter_999999999.db").write_bytes(b"")  # a process that is gone
    procs = DeploymentProcesses(str(tmp_path), master_pid=os.getppid())
    assert procs.pids() == sorted({os.getppid(), os.getpid()})
    samples = {m.samples[0].name: m.samples[0].value for m in procs.collect()}
    alone = {m.samples[0].name: m.samples[0].value
             for m in DeploymentProcesses(None, None).collect()}
    assert samples["process_resident_memory_bytes"] > alone["process_resident_memory_bytes"]
    assert samples["process_start_time_seconds"] <= alone["process_start_time_seconds"]
