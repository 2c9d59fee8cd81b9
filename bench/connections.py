"""Many connections: ``edges`` (10,000 clients across two edges on Redis) and ``connections``
(50,000 WebSockets on one machine while 1,000 of them get the live stream).

``edges``
    Redis, the bench feeder publishing to it as a leading ingest (``bench.feeder --broker``),
    two ``role: edge`` servers of one worker each (pinned one per core), and one sink per
    edge holding half of the clients on ``/`` (lite).  The feeder publishes at the rates of
    ``EDGE_RATES`` in turn, up to the first the clients do not keep up with
    (``bench.fanout``'s test: every frame, the last within a second, p99 under half a
    second, nobody closed).  Reported: whether they kept up at 1,000 entries/s, the highest
    rate they did, the edge workers' CPU per delivered frame there, and from it the clients
    two edges of one worker keep up at 1,000 entries/s (at 70 % of a core each,
    ``bench.fanout.projected``) and the cores 10,000 clients need at 1,000 entries/s: the
    edges, Redis, the feeder and the sinks share the two cores, so the measured rate is the
    machine's, the projection the edges'.
``connections``
    The real workers on the bench feed (``bench.fanout``'s set-up, every worker on both
    cores).  First 1,000 live clients on ``/`` at ``rate`` (their p99 publish -> client),
    then the idle ones: WebSockets subscribed to ``/?domain=idle.invalid``, a filter that
    matches nothing (so the live stream does not go to them; each record is still matched
    once for all of them), from several loopback source addresses (one address has ~28,000
    ephemeral ports), in sinks of at most ``PER_SINK``.  Reported at the end: connections
    held, RSS per idle connection ((workers' RSS with all - with the 1,000 live) / idle),
    the kernel's TCP memory per connection (``/proc/net/sockstat``; not in any RSS), and the
    live clients' p99 with everything held.  The open-file limit is read first: a process
    cannot hold more connections than it may open files, so with fewer than ``total`` / 2
    files per process (the hard limit can only be raised by root, outside this process),
    the run says so and holds what 2 workers can, then runs as many workers as 50,000 need.
"""

from __future__ import annotations

import contextlib
import math
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.broker import redis_server
from bench.clients import Sink
from bench.common import REPO, Figure, Report, Sample, free_port, pin, rss_bytes, stop
from bench.fanout import Steady, drain, projected, steady, wait_want
from bench.servers import Feeder, Server, base_settings, feed_server, launch, write_config

SC_EDGES = "edges"
SC_CONN = "connections"
LITE = 1
#: Rates tried in turn, up to the first the clients do not keep up with: past that point a
#: worker's backlog only grows, which measures nothing but the overload.
EDGE_RATES = (50.0, 100.0, 200.0, 400.0, 1000.0)
#: Connections per sink process (under the open-file limit, with room for its own files).
PER_SINK = 15_000
#: Files a worker needs besides its clients: listeners, the feed, logs, shared memory.
WORKER_FILES = 200
IDLE_PATH = "/?domain=idle.invalid"


def _kept_up(s: Steady) -> bool:
    return s.kept_up


def _delivered(s: Steady) -> bool:
    """Every frame arrived, the last within a second: not behind (whatever the latency)."""
    return s.delivered >= s.expected > 0 and s.drain_s <= 1.0 and s.stats.closed == 0


@contextlib.contextmanager
def _broker_feeder(url: str) -> Iterator[Feeder]:
    """The bench feeder publishing to ``url`` as a leading ingest (``bench.broker``'s)."""
    proc = subprocess.Popen([sys.executable, "-m", "bench.feeder", "--broker", url], cwd=REPO,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    try:
        assert proc.stdout is not None
        if not proc.stdout.readline().startswith("ready"):
            raise RuntimeError("the bench feeder did not start")
        yield Feeder(proc)
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            Feeder(proc).ask("Q")
        stop(proc)


@contextlib.contextmanager
def _edge(tmp: Path, name: str, url: str, cpus: set[int]) -> Iterator[Server]:
    """One ``role: edge`` server of one worker, pinned to ``cpus``."""
    port = free_port()
    settings = base_settings(port, 1, 10_000)
    settings.update(role="edge", broker={"url": url})
    cfg = write_config(tmp / f"{name}.yaml", settings)
    with launch([str(Path(sys.executable).parent / "certstream"), "--config", str(cfg)],
                port, tmp, pin_server=False) as server:
        time.sleep(0.5)
        for pid in server.pids():
            pin(pid, cpus)
        yield server


def run_edges(report: Report, clients: int, seconds: float) -> None:
    """See the module doc (``edges``)."""
    report.say(f"## edges: {clients:,} lite clients across two role: edge servers on Redis")
    half = clients // 2
    with tempfile.TemporaryDirectory(prefix="certstream-bench-") as t, \
            redis_server(Path(t)) as url, _broker_feeder(url) as feeder, \
            _edge(Path(t), "edge1", url, {0}) as one, \
            _edge(Path(t), "edge2", url, {1}) as two, \
            Sink(one.port, "/", half, ts_key="seen") as s1, \
            Sink(two.port, "/", clients - half, ts_key="seen") as s2:
        for sink in (s1, s2):
            st = sink.wait_connected(120)
            if st.ok < sink.clients:
                raise RuntimeError(f"only {st.ok} of {sink.clients} clients connected")
        if not wait_want(feeder, LITE, 15):
            raise RuntimeError("the edges never asked for the lite stream")
        kept: tuple[float, list[Steady]] | None = None
        full: tuple[float, list[Steady]] | None = None
        for rate in EDGE_RATES:
            runs = _steady_pair((one, two), feeder, (s1, s2), rate, seconds)
            for run, label in zip(runs, ("edge 1", "edge 2"), strict=True):
                report.say(f"edges {rate:,.0f}/s {label}: {run.delivered:,}/{run.expected:,} "
                           f"frames, last {run.drain_s:.2f} s after the end, server "
                           f"{run.core_share * 100:.0f}% CPU, {run.us_per_frame:.3f} us/"
                           f"frame, sink {run.load_cpu_s / run.wall_s * 100:.0f}% CPU, "
                           f"p99 {run.stats.p99 / 1000:.1f} ms")
            if all(map(_kept_up, runs)):
                kept = (rate, runs)
            if not all(map(_delivered, runs)):
                break
            full = (rate, runs)
    report.add(Figure(SC_EDGES, f"{clients:,} clients across two edges kept up at 1,000/s",
                      1.0 if kept is not None and kept[0] >= 1000.0 else 0.0, "yes", ">=", 1.0,
                      "measured: both edges, Redis, the feeder and both sinks share 2 cores"))
    if kept is not None:
        p99 = max(r.stats.p99 for r in kept[1]) / 1000
        report.add(Figure(SC_EDGES, f"highest rate {clients:,} clients kept up, two edges",
                          kept[0], "entries/s", note=f"p99 {p99:.1f} ms"))
    if full is None:
        report.say("edges: the clients did not get every frame at any rate tried")
        return
    rate, runs = full
    us = sum(r.cpu_s for r in runs) / max(1, sum(r.delivered for r in runs)) * 1e6
    share = sum(r.load_cpu_s for r in runs) / max(r.wall_s for r in runs) * 100
    report.add(Figure(SC_EDGES, f"CPU per frame, edge workers, {clients:,} clients @ "
                      f"{rate:,.0f}/s", us, "us", "<=", 1.0,
                      "the highest rate at which every frame arrived within a second"))
    report.add(Figure(SC_EDGES, f"load generator (2 sinks) CPU @ {rate:,.0f}/s", share,
                      "% of a core", note="the sinks share the edges' 2 cores"))
    report.add(Figure(SC_EDGES, "projected clients kept up at 1,000/s, two edges of 1 worker",
                      projected(2, us, 1000.0), "clients", ">=", float(clients),
                      "from that CPU per frame, 70 % of a core per edge worker"))
    report.add(Figure(SC_EDGES, f"cores for {clients:,} clients at 1,000/s",
                      clients * 1000.0 * us * 1e-6 / 0.7, "cores",
                      note="edge workers at 70 % of a core each, from that CPU per frame"))

def _steady_pair(edges: tuple[Server, Server], feeder: Feeder, sinks: tuple[Sink, Sink],
                 rate: float, seconds: float) -> list[Steady]:
    """``bench.fanout.steady`` over two edges at once: one feeder, two sinks."""
    one, two = edges
    feeder.steady(rate, min(1.0, seconds))
    bases = [drain(s, None, quiet=0.5) for s in sinks]
    for s in sinks:
        s.reset_latency()
    pids = [one.pids(), two.pids()]
    c0 = [Sample.take(p) for p in pids]
    l0 = [s.cpu() for s in sinks]
    sent = feeder.steady(rate, seconds)
    ended = time.monotonic()
    ends = [drain(s, b.frames + sent * s.clients, quiet=1.5) for s, b in zip(sinks, bases,
                                                                              strict=True)]
    drained = time.monotonic() - ended
    c1 = [Sample.take(p) for p in pids]
    return [Steady(clients=s.clients, rate=rate, sent=sent, delivered=e.frames - b.frames,
                   expected=sent * s.clients, cpu_s=c1[i].cpu_since(c0[i]),
                   wall_s=c1[i].at - c0[i].at, stats=e, load_cpu_s=s.cpu() - l0[i],
                   drain_s=drained)
            for i, (s, b, e) in enumerate(zip(sinks, bases, ends, strict=True))]


# -- 50,000 connections ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Held:
    workers: int
    live: int
    idle: int
    idle_ok: int
    rss_live: int  # the workers' RSS with the live clients only
    rss_all: int  # with every connection held
    tcp_pages: int  # kernel TCP memory for the idle connections (pages)
    steady: Steady

    @property
    def per_idle(self) -> float:
        return (self.rss_all - self.rss_live) / self.idle_ok if self.idle_ok else 0.0


def open_files() -> int:
    """This process's open-file limit (its children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the most it may have
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0] if hard >= soft else soft


def _tcp_pages() -> int:
    for line in Path("/proc/net/sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            parts = line.split()
            return int(parts[parts.index("mem") + 1])
    return 0


def _workers_rss(server: Server) -> int:
    return sum(rss_bytes(p) for p in server.pids()[1:])


def _kernel(name: str) -> str:
    with contextlib.suppress(OSError):
        return Path("/proc/sys/" + name.replace(".", "/")).read_text().split("\n")[0].strip()
    return "?"


def hold(report: Report, workers: int, live: int, idle: int, *, rate: float,
         seconds: float) -> Held:
    with feed_server(workers=workers, buffer_size=10_000) as (server, feeder):
        for pid in server.pids():
            pin(pid, {0, 1})  # every worker on both cores (as the fanout 2-worker runs)
        with contextlib.ExitStack() as stack:
            live_sink = stack.enter_context(Sink(server.port, "/", live, ts_key="seen"))
            st = live_sink.wait_connected(60)
            if st.ok < live or not wait_want(feeder, LITE, 15):
                raise RuntimeError(f"only {st.ok} of {live} live clients connected")
            feeder.steady(rate, 1.0)
            drain(live_sink, None, quiet=0.3)
            time.sleep(1.0)
            rss_live, tcp0 = _workers_rss(server), _tcp_pages()
            sinks = []
            started = time.monotonic()
            for k, first in enumerate(range(0, idle, PER_SINK)):
                n = min(PER_SINK, idle - first)
                sinks.append(stack.enter_context(Sink(
                    server.port, "@" + str(_idle_paths()), n,
                    sources=[f"127.0.{k + 1}.{i + 2}" for i in range(4)])))
                sinks[-1].wait_connected(300)
            idle_ok = sum(s.stats().ok for s in sinks)
            report.say(f"connections {workers}w: {idle_ok:,} of {idle:,} idle connected in "
                       f"{time.monotonic() - started:.1f} s "
                       f"({sum(s.stats().failed for s in sinks):,} failed)")
            time.sleep(2.0)
            rss_all, tcp1 = _workers_rss(server), _tcp_pages()
            run = steady(server, feeder, live_sink, rate, seconds)
            report.say(f"connections {workers}w live sink: {run.stats}")
            still = sum(s.stats().ok - s.stats().closed for s in sinks)
            report.say(f"connections {workers}w: {still:,} idle still open after the steady "
                       "phase")
            return Held(workers, live, idle, idle_ok, rss_live, rss_all, tcp1 - tcp0, run)


_PATHS: list[Path] = []


def _idle_paths() -> Path:
    """A file with the idle clients' one path (the sink's @FILE: each line a path)."""
    if not _PATHS:
        path = Path(tempfile.mkstemp(prefix="certstream-idle-", suffix=".txt")[1])
        path.write_text(IDLE_PATH + "\n")
        _PATHS.append(path)
    return _PATHS[0]


def run_connections(report: Report, total: int, live: int, rate: float,
                    seconds: float) -> None:
    """See the module doc (``connections``)."""
    files = open_files()
    report.say(f"## connections: {total:,} WebSockets on one machine, {live:,} of them live "
               f"at {rate:,.0f} entries/s")
    report.say(f"kernel: open files per process {files:,} (hard limit), net.core.somaxconn "
               f"{_kernel('net.core.somaxconn')}, net.ipv4.tcp_max_syn_backlog "
               f"{_kernel('net.ipv4.tcp_max_syn_backlog')}, ephemeral ports "
               f"{_kernel('net.ipv4.ip_local_port_range')}, fs.file-max "
               f"{_kernel('fs.file-max')}")
    per_worker = files - WORKER_FILES
    runs: list[Held] = []
    two_hold = min(total, 2 * per_worker)
    if two_hold < total:
        report.say(f"connections: 2 workers can hold {two_hold:,} here ({files:,} open files "
                   f"per process); {total:,} need {math.ceil(total / 2) + WORKER_FILES:,} "
                   "per worker")
    try:
        runs.append(hold(report, 2, live, two_hold - live, rate=rate, seconds=seconds))
        if two_hold < total:
            workers = math.ceil(total / per_worker)
            runs.append(hold(report, workers, live, total - live, rate=rate,
                             seconds=seconds))
    finally:
        for path in _PATHS:
            path.unlink(missing_ok=True)
        _PATHS.clear()
    for h in runs:
        tag = f"{h.workers} workers"
        held = h.live + h.idle_ok
        report.add(Figure(SC_CONN, f"connections held, {tag}", held, "connections", ">=",
                          float(total), f"{h.idle_ok:,} idle + {h.live:,} live"))
        report.add(Figure(SC_CONN, f"RSS per idle connection, {tag}", h.per_idle / 1024, "KiB",
                          "<=", 10.0, f"workers' RSS {h.rss_live / 2**20:.0f} -> "
                          f"{h.rss_all / 2**20:.0f} MiB"))
        report.add(Figure(SC_CONN, f"kernel TCP memory per idle connection, {tag}",
                          h.tcp_pages * 4096 / max(1, h.idle_ok) / 1024, "KiB",
                          note="/proc/net/sockstat, both ends on loopback; not in RSS"))
        s = h.steady
        report.add(Figure(SC_CONN, f"live delivered share, {tag}",
                          s.delivered / s.expected * 100 if s.expected else 0.0, "%", ">=",
                          100.0))
        report.add(Figure(SC_CONN, f"live p99 publish->client, {h.live:,} of {held:,}, {tag}",
                          s.stats.p99 / 1000, "ms", "<=", 100.0))
