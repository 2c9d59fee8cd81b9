"""``broker``: several machines on Redis Streams (``role: ingest`` / ``role: edge``).

``publish``
    In this process, against a real ``redis-server`` (on the load core): the leading
    ingest's ``BrokerPublisher`` publishes live40 records with all three payloads (lite,
    full, domains) in batches of 32 with their log positions (the ``PUBLISH`` script: lease
    check, ``XADD MAXLEN ~``, positions), called in line.  Ingest CPU per record
    (``time.process_time``: encoding, queueing, redis-py's packing and the round trip's
    CPU), Redis CPU per record (``INFO cpu``), Redis memory per record against the payload
    bytes.  Beside it the layout not chosen, one stream per stream type (three ``XADD``s
    per record, the same id), and what an edge worker pays to read and decode a record in
    each layout (``XREAD COUNT 1000``), everything or lite only.
``edge``
    Fan-out CPU per delivered frame of one edge worker reading Redis (the bench feeder
    publishing through ``BrokerPublisher``) against one worker on this machine's Unix feed
    (the ``fanout`` scenario's set-up): 1,000 lite clients at 1,000 entries/s.
``e2e``
    Log -> client through Redis: the replay log grows at 1,000 entries/s, a ``role: ingest``
    node follows it and publishes, a ``role: edge`` node serves 1,000 lite clients; both
    nodes on the server core (as the whole server in ``latency``), Redis, the replay log and
    the clients on the other; latency is arrival - ``seen``, as in ``latency``.
"""

from __future__ import annotations

import contextlib
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.clients import Sink
from bench.common import REPO, Figure, Report, Sample, free_port, pin, stop
from bench.fanout import connect, drain, steady
from bench.feeder import templates
from bench.latency import our_server_cmd, replay_log
from bench.servers import (
    LOAD_CPUS,
    SERVER_CPUS,
    Feeder,
    Server,
    base_settings,
    feed_server,
    launch,
    whole_settings,
    write_config,
)

SC = "broker"
BATCH = 32


@contextlib.contextmanager
def redis_server(tmp: Path) -> Iterator[str]:
    """A redis-server on a free loopback port (no persistence), on the load core."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed (make test installs it as root)")
    port = free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        pin(proc.pid, LOAD_CPUS)
        import redis  # noqa: PLC0415 - only this scenario needs it

        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(proc)


def _redis_cpu(client: Any) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


@dataclass(frozen=True, slots=True)
class _P:
    lite: bytes | None
    full: bytes | None
    domains: bytes | None
    fields: bytes | None = None
    seen: int = 0


# The layout not chosen: a stream per type, the same id on all three.
_THREE = """
local n = tonumber(ARGV[1])
local j = 3
for i = 1, n do
  local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'r', ARGV[j])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], id, 'r', ARGV[j + 1])
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], id, 'r', ARGV[j + 2])
  j = j + 3
end
return n
"""


def _read_all(client: Any, keys: list[str], decode: Any) -> tuple[float, float, int]:
    """CPU (here, Redis) to read every record of ``keys`` with XREAD COUNT 1000."""
    c0, r0 = time.process_time(), _redis_cpu(client)
    ids = dict.fromkeys(keys, "0-0")
    n = 0
    while resp := client.xread(ids, count=1000):
        for key, entries in resp:
            for _id, fields in entries:
                decode(fields[b"r"])
                n += 1
            ids[key.decode()] = entries[-1][0]
    return time.process_time() - c0, _redis_cpu(client) - r0, n


def run_publish(report: Report, records: int) -> None:
    from certstream.config import BrokerSettings  # noqa: PLC0415
    from certstream.core.brokerrecord import decode_record  # noqa: PLC0415
    from certstream.shell.brokerpub import BrokerPublisher, load_takeover  # noqa: PLC0415
    from certstream.shell.lease import Lease  # noqa: PLC0415
    from certstream.shell.redisconn import Keys, connect  # noqa: PLC0415

    report.say(f"## broker publish: {records:,} live40 records, all three payloads, batches of "
               f"{BATCH}, retention {records:,}")
    tpl = templates()
    payload = sum(len(a) + len(b) + len(c) for a, b, c, _fields in tpl) / len(tpl)
    with tempfile.TemporaryDirectory(prefix="certstream-bench-") as t, \
            redis_server(Path(t)) as url:
        client = connect(url)
        settings = BrokerSettings(url=url, retention=records, lease_ms=600_000)
        keys = Keys(settings.key_prefix)
        lease = Lease(client, keys, settings.lease_ms)
        lease.try_acquire()
        pub = BrokerPublisher(client, keys, lease, settings, load_takeover(client, keys))
        batches = [[("bench", i, _P(*tpl[i % len(tpl)][:3]))
                    for i in range(k, min(k + BATCH, records))]
                   for k in range(0, records, BATCH)]
        mem0 = int(client.info("memory")["used_memory"])
        c0, r0 = time.process_time(), _redis_cpu(client)
        for batch in batches:
            pub.publish(batch)
            pub.advance("bench", batch[-1][1] + 1, records)
            pub._drain_once()
        ingest_us = (time.process_time() - c0) / records * 1e6
        redis_us = (_redis_cpu(client) - r0) / records * 1e6
        mem = (int(client.info("memory")["used_memory"]) - mem0) / records
        report.add(Figure(SC, "publish, ingest CPU per record (lite+full+domains, one stream)",
                          ingest_us, "us", "<=", 30.0, "encode, queue, PUBLISH script call"))
        report.add(Figure(SC, "publish, Redis CPU per record (one stream)", redis_us, "us"))
        report.add(Figure(SC, "Redis memory per record / payload bytes (one stream)",
                          mem / payload, "x", note=f"{mem:,.0f} B per record of "
                          f"{payload:,.0f} B payload"))
        cpu, rcpu, n = _read_all(client, [keys.records], decode_record)
        report.add(Figure(SC, "edge read+decode per record (one stream, all payloads)",
                          cpu / max(n, 1) * 1e6, "us", note=f"Redis {rcpu / max(n, 1) * 1e6:.1f} "
                          "us per record"))

        client.flushall()
        three = client.register_script(_THREE)
        u32 = struct.Struct(">I")
        names = ["bench:lite", "bench:full", "bench:domains"]
        mem0 = int(client.info("memory")["used_memory"])
        c0, r0 = time.process_time(), _redis_cpu(client)
        for k in range(0, records, BATCH):
            args: list[Any] = [min(BATCH, records - k), records]
            for i in range(k, min(k + BATCH, records)):
                args += [u32.pack(len(p)) + p for p in tpl[i % len(tpl)]]
            three(keys=names, args=args)
        ingest3 = (time.process_time() - c0) / records * 1e6
        redis3 = (_redis_cpu(client) - r0) / records * 1e6
        mem3 = (int(client.info("memory")["used_memory"]) - mem0) / records
        report.add(Figure(SC, "publish, ingest CPU per record (a stream per type)", ingest3, "us",
                          note=f"Redis {redis3:.1f} us per record; not chosen"))
        report.add(Figure(SC, "Redis memory per record / payload bytes (a stream per type)",
                          mem3 / payload, "x"))
        cpu, rcpu, n = _read_all(client, names, bytes)
        report.add(Figure(SC, "edge read per record (a stream per type, all three)",
                          cpu / max(n // 3, 1) * 1e6, "us"))
        cpu, rcpu, n = _read_all(client, names[:1], bytes)
        report.add(Figure(SC, "edge read per record (a stream per type, lite only)",
                          cpu / max(n, 1) * 1e6, "us",
                          note="what one stream costs an edge whose clients want lite only"))
        client.close()


@contextlib.contextmanager
def broker_feed_server(tmp: Path, url: str) -> Iterator[tuple[Server, Feeder]]:
    """One ``role: edge`` server (one worker, on the server core) and the bench feeder
    publishing to ``url`` as a leading ingest."""
    proc = subprocess.Popen([sys.executable, "-m", "bench.feeder", "--broker", url], cwd=REPO,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    try:
        assert proc.stdout is not None
        if not proc.stdout.readline().startswith("ready"):
            raise RuntimeError("the bench feeder did not start")
        pin(proc.pid, LOAD_CPUS)
        port = free_port()
        settings = base_settings(port, 1, 10_000)
        settings.update(role="edge", broker={"url": url})
        cfg = write_config(tmp / "edge.yaml", settings)
        with launch([str(Path(sys.executable).parent / "certstream"), "--config", str(cfg)],
                    port, tmp) as server:
            time.sleep(1.0)  # the worker has read the stream's head
            yield server, Feeder(proc)
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            Feeder(proc).ask("Q")
        stop(proc)


def run_edge(report: Report, clients: int, rate: float, seconds: float) -> None:
    report.say(f"## broker edge fan-out: {clients} lite clients at {rate:,.0f} entries/s, one "
               "worker on Redis vs on the Unix feed")
    with feed_server(workers=1) as (server, feeder), connect(server, feeder, clients) as sink:
        local = steady(server, feeder, sink, rate, seconds)
    report.say(f"unix feed sink: {local.stats}")
    with tempfile.TemporaryDirectory(prefix="certstream-bench-") as t, \
            redis_server(Path(t)) as url, broker_feed_server(Path(t), url) as (server, feeder), \
            connect(server, feeder, clients) as sink:
        edge = steady(server, feeder, sink, rate, seconds)
    report.say(f"edge sink: {edge.stats}")
    tag = f"{clients} clients @ {rate:,.0f}/s"
    report.add(Figure(SC, f"edge delivered share, {tag}",
                      edge.delivered / edge.expected * 100 if edge.expected else 0.0, "%", ">=",
                      100.0))
    report.add(Figure(SC, f"CPU per frame, one machine, {tag}", local.us_per_frame, "us"))
    report.add(Figure(SC, f"CPU per frame, edge on Redis, {tag}", edge.us_per_frame, "us"))
    report.add(Figure(SC, f"edge / one machine CPU per frame, {tag}",
                      edge.us_per_frame / local.us_per_frame if local.us_per_frame else 0.0,
                      "x", "<=", 1.10))
    if edge.stats.lat_n:
        report.add(Figure(SC, f"edge latency p99 publish->client, {tag}", edge.stats.p99 / 1000,
                          "ms"))


def run_e2e(report: Report, clients: int, rate: float, seconds: float) -> None:
    report.say(f"## broker end to end: replay log at {rate:,.0f} entries/s -> ingest node -> "
               f"Redis -> edge node -> {clients} lite clients, {seconds:.0f} s")
    total = int(rate * (seconds + 2)) + 100
    exe = our_server_cmd().split()[0]
    with tempfile.TemporaryDirectory(prefix="certstream-bench-") as t:
        tmp = Path(t)
        with contextlib.ExitStack() as stack:
            url = stack.enter_context(redis_server(tmp))
            replay = stack.enter_context(replay_log(total, tmp))
            iport, eport = free_port(), free_port()
            ingest_cfg = whole_settings(iport, replay.log_url, tmp)
            ingest_cfg.update(role="ingest", broker={"url": url, "lease_ms": 2000})
            edge_cfg = base_settings(eport, 1, 10_000)
            edge_cfg.update(role="edge", broker={"url": url})
            ingest = stack.enter_context(launch(
                [exe, "--config", str(write_config(tmp / "ingest.yaml", ingest_cfg))], iport, tmp,
                pin_server=False))
            edge = stack.enter_context(launch(
                [exe, "--config", str(write_config(tmp / "edge.yaml", edge_cfg))], eport, tmp))
            time.sleep(0.5)  # the ingest process starts once the listeners are bound
            for pid in ingest.pids():
                pin(pid, SERVER_CPUS)  # both nodes on one core, as the whole server in latency
            sink = stack.enter_context(Sink(eport, "/", clients, ts_key="seen", cpus=LOAD_CPUS))
            st = sink.wait_connected()
            time.sleep(3.0)  # the ingest takes the lease and reads the edge's wants
            replay.paced(rate, 1.5)
            base = drain(sink, None, quiet=0.5)
            sink.reset_latency()
            c0 = Sample.take(edge.pids() + ingest.pids())
            grown = replay.paced(rate, seconds)
            end = drain(sink, base.frames + grown * st.ok, quiet=2.0)
            c1 = Sample.take(edge.pids() + ingest.pids())
        report.say(f"sink: {end}")
        delivered, expected = end.frames - base.frames, grown * st.ok
        tag = f"{clients} clients @ {rate:,.0f}/s through Redis"
        report.add(Figure(SC, f"delivered share, {tag}",
                          delivered / expected * 100 if expected else 0.0, "%", ">=", 99.0,
                          f"{delivered:,} of {expected:,}"))
        if end.lat_n:
            report.add(Figure(SC, f"p50 log->client, {tag}", end.p50 / 1000, "ms"))
            report.add(Figure(SC, f"p99 log->client, {tag}", end.p99 / 1000, "ms", "<=", 100.0))
        else:
            report.say(f'broker: no frame carried a readable "seen" ({tag})')
        report.add(Figure(SC, f"CPU per entry, ingest node + edge node, {tag}",
                          c1.cpu_since(c0) / grown * 1e6 if grown else 0.0, "us",
                          note="Redis and the load generator not included"))


def run(report: Report, *, records: int, clients: int, rate: float, seconds: float) -> None:
    parts: list[tuple[str, Callable[[], None]]] = [
        ("publish", lambda: run_publish(report, records)),
        ("edge", lambda: run_edge(report, clients, rate, seconds)),
        ("e2e", lambda: run_e2e(report, clients, rate, seconds * 2)),
    ]
    for name, part in parts:
        try:
            part()
        except Exception as exc:  # one part that cannot run must not hide the others
            report.say(f"NOT RUN: broker {name}: {exc!r}")
