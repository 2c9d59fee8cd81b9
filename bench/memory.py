"""Memory per idle client: RSS growth of the server's processes per connected WebSocket.

The server (the real workers on the bench feed, nothing published) is measured before any
client connects and again after K clients have connected and it has settled.  RSS is VmRSS
summed over every process of the server (master and workers), since that is what the host
pays; kernel socket buffers are not in RSS and are not counted.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench import latency
from bench.clients import Sink
from bench.common import Figure, Report, rss_bytes
from bench.servers import LOAD_CPUS, Server, feed_server

TARGET_BYTES = 16 * 1024


def settle(pids: list[int], seconds: float = 1.5) -> int:
    """RSS once it stops moving (or after a few tries): the last of a few readings."""
    last = sum(rss_bytes(p) for p in pids)
    for _ in range(10):
        time.sleep(seconds / 3)
        now = sum(rss_bytes(p) for p in pids)
        if abs(now - last) < 64 * 1024:
            return now
        last = now
    return last


def measure(report: Report, server: Server, clients: int, label: str) -> None:
    pids = server.pids()
    before = settle(pids)
    with Sink(server.port, "/", clients, cpus=LOAD_CPUS) as sink:
        st = sink.wait_connected(timeout=120)
        pids = server.pids()
        after = settle(pids)
    report.say(
        f"sink: {st}; server RSS {before / 2**20:.1f} -> {after / 2**20:.1f} MiB"
        f" over {len(pids)} processes"
    )
    if st.ok == 0:
        report.say("memory: no client connected; nothing to divide by")
        return
    report.add(
        Figure(
            "memory",
            f"RSS growth per idle client, {st.ok:,} clients, {label}",
            (after - before) / st.ok / 1024,
            "KiB",
            "<=",
            TARGET_BYTES / 1024,
            f"{(after - before) / 2**20:.1f} MiB for {st.ok:,} clients",
        )
    )
    report.add(
        Figure("memory", f"server RSS with {st.ok:,} clients, {label}", after / 2**20, "MiB")
    )


def run(report: Report, clients: int, workers: int = 1) -> None:
    report.say(f"## memory: {clients:,} idle lite clients, {workers} worker(s)")
    with feed_server(workers=workers) as (server, _feeder):
        measure(report, server, clients, f"{workers}w on the bench feed")


def run_whole(report: Report, clients: int, template: str | None) -> None:
    """The same against a whole server following an empty replay log (``--server-cmd``)."""
    label = "certstream" if template is None else Path(template.split()[0]).name
    report.say(f"## memory, whole server ({label}): {clients:,} idle lite clients")
    with (
        tempfile.TemporaryDirectory(prefix="certstream-bench-") as t,
        latency.replay_log(10, Path(t)) as replay,
        latency.whole_server(template or latency.our_server_cmd(), replay, Path(t)) as server,
    ):
        time.sleep(1.0)
        measure(report, server, clients, label)
