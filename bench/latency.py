"""End to end: a replay CT log → the whole server (ingest + workers) → WebSocket clients.

``latency``
    The replay log grows by R entries/s (made-unique live40 entries); the server follows it
    as it would a real log and N lite clients receive the frames.  The sink takes each
    frame's ``seen`` (stamped by the server when it built the message, right after the log's
    response was decoded) from its arrival time: the latency from log response to client,
    less the decoding of the batch.  Also reported: CPU of the whole server tree per entry.
    ``--server-cmd`` runs the same against any other certstream server.
``idle``
    Nobody connected: the log grows by a few thousand entries, and the server's
    ``certstream_payloads_built_total`` must not move.  Then one lite client connects and
    the log grows again; the counter must now move, which shows the zero above was measured,
    not a counter that does not exist.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from conformance.synth import unique_entries

from bench.clients import Sink
from bench.common import (
    REPO,
    Figure,
    Report,
    Sample,
    free_port,
    http_get,
    metric,
    pin,
    stop,
    wait_port,
)
from bench.ingest import load_base
from bench.servers import LOAD_CPUS, Server, server_cmd, stop_group, write_config

LOG_PATH = "/bench/"
PAYLOADS_BUILT = "certstream_payloads_built_total"


@dataclass
class Replay:
    proc: subprocess.Popen[str]
    url: str

    @property
    def log_url(self) -> str:
        return self.url + LOG_PATH

    def grow(self, n: int) -> None:
        req = urllib.request.Request(
            f"{self.url}/_control/grow?log={LOG_PATH}&n={n}", method="POST", data=b""
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            resp.read()

    def paced(self, rate: float, seconds: float, tick: float = 0.05) -> int:
        """Grow the log at ``rate`` entries/s for ``seconds``, in ticks; returns the count."""
        start, grown = time.monotonic(), 0
        while (elapsed := time.monotonic() - start) < seconds:
            due = int(rate * elapsed) - grown
            if due > 0:
                self.grow(due)
                grown += due
            time.sleep(tick)
        return grown


@contextlib.contextmanager
def replay_log(entries: int, tmp: Path) -> Iterator[Replay]:
    """A replay RFC 6962 log holding ``entries`` unique entries, none visible yet."""
    data = tmp / "entries.json"
    data.write_text(json.dumps({"entries": unique_entries(load_base(), entries, seed=7)}))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "conformance.replay",
            "--rfc6962",
            f"{LOG_PATH}={data}:0",
            "--visible",
            f"{LOG_PATH}=0",
            "--max-batch",
            "256",
            "--control",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the replay log did not start")
        pin(proc.pid, LOAD_CPUS)
        yield Replay(proc, json.loads(line)["url"])
    finally:
        stop(proc)


def our_server_cmd() -> str:
    exe = Path(sys.executable).parent / "certstream"
    return f"{exe} --config {{config}}"


@contextlib.contextmanager
def whole_server(template: str, replay: Replay, tmp: Path, workers: int = 1) -> Iterator[Server]:
    port = free_port()
    cfg = write_config(
        tmp / "config.yaml",
        {
            "host": "127.0.0.1",
            "port": port,
            "workers": workers,
            "log_level": "warning",
            "buffer_size": 10_000,
            "ct_log": {
                "log_list_urls": [],
                "poll_interval_ms": 100,
                "state_file": str(tmp / "state.json"),
                "default_operator_rate_limit_ms": 0,
            },
            "custom_logs": [{"name": "Bench replay", "url": replay.log_url, "start_index": 0}],
            "websocket": {"slow_client_drop_budget": 1_000_000},
        },
    )
    cmd = server_cmd(template, port, cfg, replay.log_url)
    proc: subprocess.Popen[bytes] = subprocess.Popen(
        cmd, cwd=tmp, env=dict(os.environ), start_new_session=True
    )
    try:
        wait_port(port, 30, proc)
        yield Server(port, proc, cmd[0])
    finally:
        stop_group(proc)


def run_latency(
    report: Report,
    clients: int,
    rate: float,
    seconds: float,
    *,
    template: str | None = None,
    workers: int = 1,
) -> None:
    label = "certstream" if template is None else f"server-cmd {template.split()[0]}"
    report.say(
        f"## latency end to end ({label}): replay log at {rate:,.0f} entries/s,"
        f" {clients} lite clients, {seconds:.0f} s"
    )
    total = int(rate * (seconds + 2)) + 100
    with tempfile.TemporaryDirectory(prefix="certstream-bench-") as t:
        tmp = Path(t)
        with (
            replay_log(total, tmp) as replay,
            whole_server(template or our_server_cmd(), replay, tmp, workers) as server,
        ):
            sink = Sink(server.port, "/", clients, ts_key="seen", cpus=LOAD_CPUS)
            with sink:
                st = sink.wait_connected()
                if st.ok < clients:
                    report.say(f"latency: only {st.ok} of {clients} clients connected")
                # Warm-up: the ingest finds the log, the workers subscribe.
                replay.paced(rate, 1.5)
                time.sleep(1.0)
                sink.reset_latency()
                base = sink.stats()
                pids = server.pids()
                c0 = Sample.take(pids)
                grown = replay.paced(rate, seconds)
                time.sleep(1.0)
                end = sink.stats()
                c1 = Sample.take(pids)
            report.say(f"sink: {end}")
            delivered = end.frames - base.frames
            expected = grown * st.ok
            cpu = c1.cpu_since(c0)
            sc = "latency"
            tag = f"{clients} clients @ {rate:,.0f}/s, {label}"
            report.add(
                Figure(
                    sc,
                    f"delivered share, {tag}",
                    delivered / expected * 100 if expected else 0.0,
                    "%",
                    ">=",
                    99.0,
                    f"{delivered:,} of {expected:,}",
                )
            )
            report.add(Figure(sc, f"p50 log->client, {tag}", end.p50 / 1000, "ms"))
            report.add(Figure(sc, f"p99 log->client, {tag}", end.p99 / 1000, "ms", "<=", 100.0))
            report.add(Figure(sc, f"max log->client, {tag}", end.max / 1000, "ms"))
            report.add(
                Figure(
                    sc,
                    f"server CPU (all processes), {tag}",
                    cpu / (c1.at - c0.at) * 100,
                    "% of a core",
                )
            )
            report.add(
                Figure(
                    sc,
                    f"server CPU per entry, {tag}",
                    cpu / grown * 1e6 if grown else 0.0,
                    "us",
                    note="ingest decode+build and fan-out together",
                )
            )


def payloads_built(port: int) -> float | None:
    return metric(http_get(f"http://127.0.0.1:{port}/metrics"), PAYLOADS_BUILT)


def run_idle(report: Report, entries: int = 2000) -> None:
    report.say(f"## idle: {entries:,} entries, nobody connected")
    with tempfile.TemporaryDirectory(prefix="certstream-bench-") as t:
        tmp = Path(t)
        with (
            replay_log(entries + 200, tmp) as replay,
            whole_server(our_server_cmd(), replay, tmp) as server,
        ):
            before = payloads_built(server.port)
            if before is None:
                report.say(f"idle: /metrics has no {PAYLOADS_BUILT}; cannot measure")
                return
            pids = server.pids()
            c0 = Sample.take(pids)
            replay.grow(entries)
            time.sleep(5.0)  # at 256 entries a request, the ingest needs well under this
            c1 = Sample.take(pids)
            idle_built = (payloads_built(server.port) or 0.0) - before
            report.add(
                Figure(
                    "idle",
                    "payloads built, nobody connected",
                    idle_built,
                    "payloads",
                    "<=",
                    0.0,
                    f"{entries:,} entries published",
                )
            )
            report.add(
                Figure(
                    "idle",
                    "server CPU per entry, nobody connected",
                    c1.cpu_since(c0) / entries * 1e6,
                    "us",
                )
            )
            with Sink(server.port, "/", 1, cpus=LOAD_CPUS) as sink:
                sink.wait_connected()
                time.sleep(1.0)
                mid = payloads_built(server.port) or 0.0
                replay.grow(100)
                time.sleep(3.0)
                got = sink.stats().frames
                after = payloads_built(server.port) or 0.0
            report.add(
                Figure(
                    "idle",
                    "payloads built for 100 entries, 1 lite client",
                    after - mid,
                    "payloads",
                    ">=",
                    100.0,
                    f"client received {got} frames; shows the counter counts",
                )
            )
