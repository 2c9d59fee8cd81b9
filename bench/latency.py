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
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

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
)
from bench.fanout import drain
from bench.ingest import load_base
from bench.servers import (
    LOAD_CPUS,
    Server,
    launch,
    peer_settings,
    server_cmd,
    whole_settings,
    write_config,
)

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
def whole_server(
    template: str,
    replay: Replay,
    tmp: Path,
    workers: int = 1,
    *,
    buffer_size: int | None = 10_000,
    env: dict[str, str] | None = None,
    log: Path | None = None,
) -> Iterator[Server]:
    """A whole server following the replay log (see ``bench.servers.launch`` for ``env`` and
    ``log``); a peer gets certstream-server-go's keys in the same config file."""
    port = free_port()
    settings = whole_settings(port, replay.log_url, tmp, workers=workers, buffer_size=buffer_size)
    if template != our_server_cmd():
        settings.update(peer_settings(port, replay.log_url))
    cfg = write_config(tmp / "config.yaml", settings)
    cmd = server_cmd(template, port, cfg, replay.log_url)
    with launch(cmd, port, tmp, pin_server=workers == 1, env=env, log=log) as server:
        yield server


def run_latency(
    report: Report,
    clients: int,
    rate: float,
    seconds: float,
    *,
    template: str | None = None,
    workers: int = 1,
) -> None:
    label = "certstream" if template is None else f"server-cmd {Path(template.split()[0]).name}"
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
                # Warm-up: the ingest finds the log, the workers subscribe; then wait until
                # its frames stop arriving, so the window counts only its own entries.
                replay.paced(rate, 1.5)
                base = drain(sink, None, quiet=0.5)
                sink.reset_latency()
                pids = server.pids()
                c0 = Sample.take(pids)
                grown = replay.paced(rate, seconds)
                end = drain(sink, base.frames + grown * st.ok, quiet=2.0)
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
            if end.lat_n:
                report.add(Figure(sc, f"p50 log->client, {tag}", end.p50 / 1000, "ms"))
                report.add(Figure(sc, f"p99 log->client, {tag}", end.p99 / 1000, "ms", "<=", 100.0))
                report.add(Figure(sc, f"max log->client, {tag}", end.max / 1000, "ms"))
            else:  # a latency of nothing must not pass its target
                report.say(f'latency: no frame carried a readable "seen" ({tag})')
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


def ingest_pids(pids: list[int]) -> list[int]:
    """The server's ingest process(es): the ones whose command line names the ingest module."""
    out = []
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"ingest" in cmdline:
            out.append(pid)
    return out


def fetched_up_to(replay: Replay) -> int:
    """One past the highest index the server has requested from the replay log."""
    with urllib.request.urlopen(
        f"{replay.url}/_control/requests?log={LOG_PATH}", timeout=5
    ) as resp:
        served = json.loads(resp.read())
    top = 0
    for _method, target in served:
        q = parse_qs(urlsplit(target).query)
        if "end" in q:
            top = max(top, int(q["end"][0]) + 1)
    return top


def grow_and_wait(replay: Replay, visible: int, n: int, limit: float = 30.0) -> int:
    """Grow the log by ``n`` and wait until the server fetched all of it (plus a moment for
    it to decode and publish); returns the new tree size."""
    replay.grow(n)
    visible += n
    deadline = time.monotonic() + limit
    while fetched_up_to(replay) < visible and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    return visible


def run_idle(report: Report, entries: int = 2000) -> None:
    report.say(f"## idle: {entries:,} entries with nobody connected, then {entries:,} with one")
    with tempfile.TemporaryDirectory(prefix="certstream-bench-") as t:
        tmp = Path(t)
        with (
            replay_log(2 * entries + 10, tmp) as replay,
            whole_server(our_server_cmd(), replay, tmp) as server,
        ):
            time.sleep(1.5)  # the ingest starts, finds the empty log, workers connect
            ingest = ingest_pids(server.pids())
            if not ingest:
                report.say("idle: no ingest process found in the server's process tree")
            visible = 0
            # None: the counter has no sample yet (multiprocess counters appear on first inc).
            before = payloads_built(server.port)
            c0 = Sample.take(ingest)
            visible = grow_and_wait(replay, visible, entries)
            c1 = Sample.take(ingest)
            idle_built = (payloads_built(server.port) or 0.0) - (before or 0.0)
            with Sink(server.port, "/", 1, cpus=LOAD_CPUS) as sink:
                sink.wait_connected()
                time.sleep(1.0)  # the worker tells the ingest it now wants lite
                mid = payloads_built(server.port) or 0.0
                c2 = Sample.take(ingest)
                visible = grow_and_wait(replay, visible, entries)
                c3 = Sample.take(ingest)
                got = sink.stats().frames
                after = payloads_built(server.port) or 0.0
        report.say(
            f"idle: metric {PAYLOADS_BUILT} before={before} after idle="
            f"{(before or 0) + idle_built} with a client={after}; client got {got} frames"
        )
        report.add(
            Figure(
                "idle",
                "payloads built, nobody connected (from /metrics)",
                idle_built,
                "payloads",
                "<=",
                0.0,
                "/example.json samples are built only when asked for",
            )
        )
        report.add(
            Figure(
                "idle",
                "payloads built, 1 lite client (from /metrics)",
                after - mid,
                "payloads",
                ">=",
                float(entries),
                "checks the counter counts: 0 here means the zero above proves nothing",
            )
        )
        report.add(
            Figure(
                "idle", "frames received by the 1 lite client", got, "frames", ">=", float(entries)
            )
        )
        idle_us = c1.cpu_since(c0) / entries * 1e6
        busy_us = c3.cpu_since(c2) / entries * 1e6
        report.add(Figure("idle", "ingest CPU per entry, nobody connected", idle_us, "us"))
        report.add(
            Figure(
                "idle",
                "ingest CPU per entry, 1 lite client",
                busy_us,
                "us",
                note="the difference is what building the lite payload costs",
            )
        )
