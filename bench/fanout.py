"""Fan-out: the real workers delivering the lite stream to many WebSocket clients.

Input comes from ``bench.feeder`` (the real feed publisher, no CT decoding), clients are the C
sink.  Three measurements:

steady
    N clients, R entries/s for a few seconds.  "Kept up" means every client received every
    frame within a second of the end, the p99 latency stayed under 0.5 s (a backlog that
    does not grow), and none was disconnected.  Reported: share of one core
    the server used (all its processes), CPU per delivered frame, and the latency from
    publish to receipt (the sink reads the ``seen`` the feeder stamped into each frame).
burst
    N clients, then B entries published at once: clients are behind, and the server sends
    each one everything pending in one write.  Reported: frames delivered per CPU-second.
capacity
    The most clients kept up at R entries/s, trying growing client counts on one server,
    with 1 worker and with 2 (one feed, as with one ingest).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from bench import profiling
from bench.clients import Sink, SinkStats
from bench.common import Figure, Report, Sample, socket_count
from bench.servers import LOAD_CPUS, Feeder, Server, feed_server, two_cores

LITE = 1
KEPT_UP_DRAIN = 1.0  # seconds
KEPT_UP_P99 = 0.5  # seconds


@dataclass(frozen=True, slots=True)
class Steady:
    clients: int
    rate: float
    sent: int
    delivered: int
    expected: int
    cpu_s: float
    wall_s: float
    stats: SinkStats
    load_cpu_s: float  # the sink's CPU over the same window: is the load generator the limit?

    drain_s: float  # from the end of publishing until the last frame arrived

    @property
    def kept_up(self) -> bool:
        """Every frame arrived, within KEPT_UP_DRAIN of the end, with a p99 latency under
        KEPT_UP_P99, and nobody was disconnected: a backlog that is not growing."""
        return (
            self.expected > 0
            and self.delivered >= self.expected
            and self.drain_s <= KEPT_UP_DRAIN
            and (self.stats.lat_n == 0 or self.stats.p99 <= KEPT_UP_P99 * 1e6)
            and self.stats.closed == 0
        )

    @property
    def core_share(self) -> float:
        return self.cpu_s / self.wall_s if self.wall_s else 0.0

    @property
    def us_per_frame(self) -> float:
        return self.cpu_s / self.delivered * 1e6 if self.delivered else float("inf")


def wait_want(feeder: Feeder, mask: int, timeout: float = 10.0) -> bool:
    """Until the workers told the feed they have subscribers for ``mask``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if feeder.want() & mask == mask:
            return True
        time.sleep(0.05)
    return False


def drain(sink: Sink, target: int | None, quiet: float = 1.0, limit: float = 30.0) -> SinkStats:
    """Poll until ``target`` frames arrived (None: any number), or nothing arrived for
    ``quiet`` seconds."""
    st = sink.stats()
    last, last_change, start = st.frames, time.monotonic(), time.monotonic()
    while (target is None or st.frames < target) and time.monotonic() - start < limit:
        time.sleep(0.02)
        st = sink.stats()
        if st.frames != last:
            last, last_change = st.frames, time.monotonic()
        elif time.monotonic() - last_change > quiet:
            break
    return st


def connect(server: Server, feeder: Feeder, clients: int) -> Sink:
    sink = Sink(server.port, "/", clients, ts_key="seen", cpus=LOAD_CPUS)
    st = sink.wait_connected()
    if st.ok < clients:
        sink.close()
        raise RuntimeError(f"only {st.ok} of {clients} clients connected ({st.failed} failed)")
    if not wait_want(feeder, LITE):
        sink.close()
        raise RuntimeError("the workers never subscribed to the lite stream on the feed")
    return sink


def steady(server: Server, feeder: Feeder, sink: Sink, rate: float, seconds: float) -> Steady:
    feeder.steady(rate, min(1.0, seconds))  # warm-up: first-frame costs are not the rate
    base = drain(sink, None, quiet=0.3)
    sink.reset_latency()
    pids = server.pids()
    c0 = Sample.take(pids)
    s0 = sink.cpu()
    sent = feeder.steady(rate, seconds)
    ended = time.monotonic()
    expected_total = base.frames + sent * sink.clients
    st = drain(sink, expected_total)
    drained = time.monotonic() - ended
    c1 = Sample.take(pids)
    load_cpu = sink.cpu() - s0
    return Steady(
        clients=sink.clients,
        rate=rate,
        sent=sent,
        delivered=st.frames - base.frames,
        expected=sent * sink.clients,
        cpu_s=c1.cpu_since(c0),
        wall_s=c1.at - c0.at,
        stats=st,
        load_cpu_s=load_cpu,
        drain_s=drained,
    )


def report_steady(report: Report, s: Steady, label: str) -> None:
    sc = "fanout"
    tag = f"{s.clients} clients @ {s.rate:,.0f}/s{label}"
    report.add(
        Figure(
            sc,
            f"delivered share, {tag}",
            s.delivered / s.expected * 100 if s.expected else 0,
            "%",
            ">=",
            100.0,
            f"{s.delivered:,} of {s.expected:,} frames",
        )
    )
    target_share = 70.0 if s.clients >= 1000 else None
    report.add(
        Figure(
            sc,
            f"server CPU, {tag}",
            s.core_share * 100,
            "% of a core",
            "<=" if target_share else "",
            target_share,
            f"{s.cpu_s:.2f} CPU-s over {s.wall_s:.2f} s",
        )
    )
    report.add(Figure(sc, f"CPU per frame, {tag}", s.us_per_frame, "us", "<=", 1.0))
    report.add(
        Figure(
            sc,
            f"load generator (sink) CPU, {tag}",
            s.load_cpu_s / s.wall_s * 100,
            "% of a core",
            note="near 100 would mean the clients, not the server, limit",
        )
    )
    if s.stats.lat_n:
        report.add(Figure(sc, f"latency p50 publish->client, {tag}", s.stats.p50 / 1000, "ms"))
        report.add(
            Figure(sc, f"latency p99 publish->client, {tag}", s.stats.p99 / 1000, "ms", "<=", 100.0)
        )


def run_steady(
    report: Report,
    clients: list[int],
    rate: float,
    seconds: float,
    workers: int = 1,
    *,
    spy: bool = False,
) -> None:
    report.say(
        f"## fanout steady: {clients} lite clients at {rate:,.0f} entries/s, "
        f"{workers} worker(s), {seconds:.0f} s each"
    )
    with feed_server(workers=workers) as (server, feeder):
        for n in clients:
            with connect(server, feeder, n) as sink:
                s = steady(server, feeder, sink, rate, seconds)
                report.say(f"sink: {s.stats}")
                report.say(f"sink CPU: {sink.cpu():.2f} s in total")
                report_steady(report, s, f", {workers}w")
        if spy:
            # A separate phase: the sampler's own cost must not leak into the figures.
            with connect(server, feeder, max(clients)):
                feeder.steady(rate, 1.0)
                handle = profiling.start(server.pids()[-1], seconds)
                feeder.steady(rate, seconds + 0.5)
                report.say(profiling.finish(handle))


def run_burst(report: Report, clients: int, entries: int, workers: int = 1) -> None:
    report.say(f"## fanout burst: {entries:,} entries at once to {clients} lite clients")
    with feed_server(workers=workers, buffer_size=max(10_000, entries * 2)) as (server, feeder):
        sink = connect(server, feeder, clients)
        with sink:
            feeder.steady(200, 0.5)
            base = drain(sink, None, quiet=0.3)
            pids = server.pids()
            c0 = Sample.take(pids)
            sent = feeder.burst(entries)
            st = drain(sink, base.frames + sent * clients)
            c1 = Sample.take(pids)
            delivered = st.frames - base.frames
            cpu = c1.cpu_since(c0)
            report.say(f"sink: {st}")
            report.add(
                Figure(
                    "fanout",
                    f"burst delivered share, {clients} clients",
                    delivered / (sent * clients) * 100,
                    "%",
                    ">=",
                    100.0,
                )
            )
            report.add(
                Figure(
                    "fanout",
                    f"frames/s per core, clients behind, {clients} clients",
                    delivered / cpu if cpu else 0.0,
                    "frames/s",
                    ">=",
                    1_000_000.0,
                    f"{delivered:,} frames, {cpu:.2f} CPU-s, {c1.at - c0.at:.2f} s wall",
                )
            )


@dataclass
class Capacity:
    clients: int = 0  # the largest step kept up (0 if none)
    load_share: float = 0.0  # the sink's share of a core at that step
    #: server CPU per frame (us) at each step that was kept up
    us_per_frame: dict[int, float] = field(default_factory=dict)


PROJECTED_SHARE = 0.7  # the steady target: a worker keeps up using <= 70 % of its core


def projected(workers: int, us_per_frame: float, rate: float) -> float:
    """Clients that ``workers`` cores at PROJECTED_SHARE each would carry at ``rate`` at this
    CPU per frame: capacity as the server's cost sets it, whatever limits the load generator
    has on the same machine."""
    if not us_per_frame or us_per_frame == float("inf"):
        return 0.0
    return workers * PROJECTED_SHARE / (us_per_frame * 1e-6 * rate)


def capacity(
    workers: int, rate: float, seconds: float, steps: list[int], report: Report
) -> Capacity:
    """The largest client count in ``steps`` kept up at ``rate``; see ``Steady.kept_up``."""
    best = Capacity()
    with feed_server(workers=workers) as (server, feeder):
        for n in steps:
            try:
                with connect(server, feeder, n) as sink:
                    # Sockets per process: the clients should be spread over the workers.
                    spread = "/".join(str(socket_count(p)) for p in server.pids()[1:])
                    s = steady(server, feeder, sink, rate, seconds)
            except RuntimeError as exc:
                report.say(f"capacity {workers}w, {n} clients: {exc}")
                break
            load = s.load_cpu_s / s.wall_s * 100 if s.wall_s else 0.0
            report.say(
                f"capacity {workers}w: {n} clients -> {'kept up' if s.kept_up else 'BEHIND'}"
                f" ({s.delivered:,}/{s.expected:,} frames, last {s.drain_s:.2f} s after the end,"
                f" server {s.core_share * 100:.0f}% CPU, {s.us_per_frame:.3f} us/frame,"
                f" sink {load:.0f}% CPU, p99 {s.stats.p99 / 1000:.1f} ms,"
                f" sockets per worker {spread})"
            )
            if not s.kept_up:
                break
            best.clients, best.load_share = n, load
            best.us_per_frame[n] = s.us_per_frame
    return best


def run_capacity(report: Report, rate: float, seconds: float, steps: list[int]) -> None:
    report.say(f"## fanout capacity: most lite clients kept up at {rate:,.0f} entries/s")
    if not two_cores():
        report.say("capacity: one core only, the 2-worker comparison means nothing here")
    one = capacity(1, rate, seconds, steps, report)
    two = capacity(2, rate, seconds, steps, report)
    sc = "capacity"
    report.add(
        Figure(
            sc,
            "clients kept up, 1 worker",
            one.clients,
            "clients",
            note=f"sink at {one.load_share:.0f}% of its core",
        )
    )
    report.add(
        Figure(
            sc,
            "clients kept up, 2 workers",
            two.clients,
            "clients",
            note="sink and feeder share the 2 cores with the workers",
        )
    )
    report.add(
        Figure(
            sc,
            "measured 2 workers / 1 worker",
            two.clients / one.clients if one.clients else 0.0,
            "x",
            ">=",
            1.8,
        )
    )
    # CPU per frame falls as clients grow (fixed costs spread thinner), so the projection
    # compares both at the same load: the largest step both kept up.
    common = max(set(one.us_per_frame) & set(two.us_per_frame), default=0)
    if not common:
        report.say("capacity: no client count was kept up by both; no projection")
        return
    u1, u2 = one.us_per_frame[common], two.us_per_frame[common]
    p1, p2 = projected(1, u1, rate), projected(2, u2, rate)
    report.add(
        Figure(
            sc,
            "projected clients, 1 worker at 70% of a core",
            p1,
            "clients",
            note=f"{u1:.3f} us/frame at {common} clients",
        )
    )
    report.add(
        Figure(
            sc,
            "projected clients, 2 workers at 70% of a core each",
            p2,
            "clients",
            note=f"{u2:.3f} us/frame at {common} clients",
        )
    )
    report.add(
        Figure(
            sc,
            "projected 2 workers / 1 worker",
            p2 / p1 if p1 else 0.0,
            "x",
            ">=",
            1.8,
            "from CPU per frame at equal load",
        )
    )
