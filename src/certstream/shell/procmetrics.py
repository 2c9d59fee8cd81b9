"""The ``process_*`` series of a whole deployment (``metrics.process_metrics``; Go's
``prometheus.expose_system_metrics``): the gunicorn master, the ingest and every worker,
read from ``/proc`` at scrape time and summed, so that they describe the server as one
process would (CPU seconds, resident and virtual memory and open files add up; the start
time is the oldest process's, the file limit the smallest).

The processes are found without any registry of their own: the master's pid is in
``CERTSTREAM_MASTER_PID``, and every other process of the deployment writes its metrics to
files named for its pid in ``PROMETHEUS_MULTIPROC_DIR``.  prometheus_client's
``ProcessCollector`` reads each one; a process that died meanwhile is skipped.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import ProcessCollector
from prometheus_client.metrics_core import Metric

from certstream.shell.sharedmem import pid_alive

__all__ = ["DeploymentProcesses"]

_PID_IN_NAME = re.compile(r"_(\d+)\.db$")


class DeploymentProcesses:
    def __init__(self, directory: str | None, master_pid: int | None) -> None:
        self.directory = directory
        self.master_pid = master_pid

    def pids(self) -> list[int]:
        found = {os.getpid()}
        if self.master_pid:
            found.add(self.master_pid)
        if self.directory:
            for path in Path(self.directory).glob("*.db"):
                match = _PID_IN_NAME.search(path.name)
                if match:
                    found.add(int(match.group(1)))
        return sorted(pid for pid in found if pid_alive(pid))

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        values: dict[str, float] = {}
        for pid in self.pids():
            collector = ProcessCollector(pid=functools.partial(int, pid), registry=None)
            for family in collector.collect():
                for sample in family.samples:
                    families.setdefault(sample.name, family)
                    values[sample.name] = _combine(sample.name, values.get(sample.name),
                                                   sample.value)
        for name, family in families.items():
            out = Metric(family.name, family.documentation, family.type)
            out.add_sample(name, {}, values[name])
            yield out


def _combine(name: str, old: float | None, new: float) -> float:
    if old is None:
        return new
    if name.endswith("start_time_seconds"):
        return min(old, new)
    if name.endswith("max_fds"):
        return min(old, new)
    return old + new
