"""Subscriptions on the real workers: server-side filters and permessage-deflate, what they
cost the server per delivered frame against the plain stream.

``filtered``
    The real workers on the bench feed (``bench.feeder``: live40's payloads and their filter
    field, as the ingest sends them), 1,000 lite clients at 1,000 entries/s: first
    unfiltered, then each with a filter of its own of 10 patterns (``bench.filters``: globs
    of every shape and RE2 regexes; 10 of the 1,000 filters match a live40 name, as in real
    use most records match nobody).  Each client's path carries its filter; the sink opens
    them all.  Reported: the server's CPU in both phases and their ratio (target: filtered
    within 20 % of unfiltered), what the filtered clients received against what the
    filters select (counted with ``conformance.filterref``, not the server's matcher), and
    the server CPU per entry with 10,000 patterns to match.
``compressed``
    The same workers, 100 lite clients at 500 entries/s, plain then with permessage-deflate
    (the sink offers it and inflates every message on its own before counting it).
    Reported: CPU per delivered frame both ways and their ratio (target <= 1.3), wire bytes.
    Then whole servers following a replay log at the same rate with 100 compressed clients:
    ours, and each ``--server-cmd`` (``--config-style go`` writes certstream-server-go's
    config with ``compression_enabled: true``): CPU per delivered frame side by side.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import yaml
from conformance.filterref import FilterQuery
from conformance.serverconfig import ServedLog
from conformance.serverconfig import write_config as write_peer_config

from bench.clients import Sink, SinkStats
from bench.common import Figure, Report, Sample, free_port, pin, tree, wait_port
from bench.fanout import drain, wait_want
from bench.feeder import templates
from bench.filters import make_filters
from bench.latency import Replay, our_server_cmd, replay_log, whole_server
from bench.servers import (
    LOAD_CPUS,
    SERVER_CPUS,
    Feeder,
    Server,
    feed_server,
    server_cmd,
    stop_group,
)
from certstream.core.filterfields import match_fields_of_message
from certstream.core.streams import FILTER_FIELDS, STREAM_LITE

FILTER_CPU_RATIO = 1.2
DEFLATE_CPU_RATIO = 1.3


class _Published:
    """The feeder's entries are its templates in turn: which ones a window published."""

    def __init__(self, feeder: Feeder) -> None:
        self.feeder = feeder
        self.count = 0

    def steady(self, rate: float, seconds: float) -> tuple[int, int]:
        """Publish at ``rate`` for ``seconds``; (index of the first entry, entries sent)."""
        first = self.count
        sent = self.feeder.steady(rate, seconds)
        self.count += sent
        return first, sent


def _window(
    server: Server, pub: _Published, sink: Sink, rate: float, seconds: float
) -> tuple[int, int, SinkStats, SinkStats, float, float]:
    """A warm-up, then a measured window: (first entry, sent, sink before, sink after, server
    CPU-seconds, wall seconds)."""
    pub.steady(rate, min(1.0, seconds))  # first-frame costs are not the rate
    before = drain(sink, None, quiet=0.3)
    sink.reset_latency()
    pids = server.pids()
    c0 = Sample.take(pids)
    first, sent = pub.steady(rate, seconds)
    after = drain(sink, None, quiet=1.0)
    c1 = Sample.take(pids)
    return first, sent, before, after, c1.cpu_since(c0), c1.at - c0.at


# -- filtered --------------------------------------------------------------------------------


def run_filtered(report: Report, *, clients: int = 1000, rate: float = 1000.0,
                 seconds: float = 5.0, per: int = 10) -> None:
    report.say(f"## filtered: {clients:,} lite clients at {rate:,.0f} entries/s, unfiltered "
               f"then each with its own filter of {per} patterns")
    tpl = templates()
    messages = [json.loads(lite) for lite, _f, _d, _x in tpl]
    names = [n for m in messages for n in match_fields_of_message(m).names.split("\n") if n]
    specs = make_filters(clients, per, names)
    queries = [spec.query() for spec in specs]
    refs = [FilterQuery.parse(q) for q in queries]
    # How many clients each template reaches (the reference reading of the filters).
    reach = [sum(ref.matches(m) for ref in refs) for m in messages]
    with tempfile.TemporaryDirectory(prefix="certstream-bench-") as tmp:
        paths = Path(tmp) / "paths.txt"
        paths.write_text("".join(f"/?{q}\n" for q in queries))
        with feed_server() as (server, feeder):
            pub = _Published(feeder)
            with Sink(server.port, "/", clients, ts_key="seen", cpus=LOAD_CPUS) as sink:
                _connected(sink, feeder, STREAM_LITE)
                _f, sent_u, b_u, a_u, cpu_u, wall_u = _window(server, pub, sink, rate, seconds)
            with Sink(server.port, "@" + str(paths), clients, ts_key="seen",
                      cpus=LOAD_CPUS) as sink:
                _connected(sink, feeder, STREAM_LITE | FILTER_FIELDS)
                first, sent_f, b_f, a_f, cpu_f, wall_f = _window(server, pub, sink, rate, seconds)
    expected = sum(reach[k % len(tpl)] for k in range(first, first + sent_f))
    delivered_f = a_f.frames - b_f.frames
    delivered_u = a_u.frames - b_u.frames
    report.say(f"sink, unfiltered: {a_u}")
    report.say(f"sink, filtered: {a_f}")
    sc = "filtered"
    share_u, share_f = cpu_u / wall_u, cpu_f / wall_f
    report.add(Figure(sc, f"server CPU, {clients} unfiltered clients @ {rate:,.0f}/s",
                      share_u * 100, "% of a core",
                      note=f"{delivered_u:,} frames of {sent_u * clients:,}"))
    report.add(Figure(sc, f"server CPU, {clients} clients with {clients * per:,} patterns",
                      share_f * 100, "% of a core",
                      note=f"{delivered_f:,} frames of {expected:,} the filters select, "
                           f"{sent_f:,} entries"))
    report.add(Figure(sc, "server CPU filtered / unfiltered", share_f / share_u if share_u else 0,
                      "x", "<=", FILTER_CPU_RATIO,
                      note="non-matching records cost the clients nothing"))
    report.add(Figure(sc, "filtered clients got what their filters select",
                      delivered_f / expected * 100 if expected else 0.0, "%", ">=", 100.0,
                      note="counted with conformance.filterref"))
    report.add(Figure(sc, f"server CPU per entry, {clients * per:,} patterns",
                      cpu_f / sent_f * 1e6 if sent_f else 0.0, "us",
                      note="feed, one match for all filters, the few deliveries"))


def _connected(sink: Sink, feeder: Feeder, mask: int) -> None:
    st = sink.wait_connected()
    if st.ok < sink.clients:
        raise RuntimeError(f"only {st.ok} of {sink.clients} clients connected")
    if not wait_want(feeder, mask):
        raise RuntimeError(f"the workers never asked the feed for {mask}")


# -- compressed ------------------------------------------------------------------------------


def run_compressed(report: Report, *, clients: int = 100, rate: float = 500.0,
                   seconds: float = 5.0, server_cmds: tuple[str, ...] = (),
                   config_style: str = "certstream") -> None:
    report.say(f"## compressed: {clients} lite clients at {rate:,.0f} entries/s, plain then "
               "with permessage-deflate (the sink inflates every message)")
    sc = "compressed"
    per_frame: dict[bool, float] = {}
    with feed_server() as (server, feeder):
        pub = _Published(feeder)
        for deflate in (False, True):
            with Sink(server.port, "/", clients, ts_key="seen", cpus=LOAD_CPUS,
                      deflate=deflate) as sink:
                _connected(sink, feeder, STREAM_LITE)
                _first, sent, before, after, cpu, _wall = _window(server, pub, sink, rate, seconds)
            frames = after.frames - before.frames
            label = "compressed" if deflate else "plain"
            report.say(f"sink, {label}: {after}")
            per_frame[deflate] = cpu / frames * 1e6 if frames else float("inf")
            wire = (after.zbytes - before.zbytes) if deflate else (after.bytes - before.bytes)
            report.add(Figure(sc, f"CPU per delivered frame, {label}, {clients} clients",
                              per_frame[deflate], "us",
                              note=f"{frames:,} of {sent * clients:,} frames, "
                                   f"{wire / max(frames, 1):,.0f} payload bytes each"))
            if deflate:
                report.add(Figure(sc, "compressed messages that did not inflate",
                                  after.zerrors - before.zerrors, "messages", "<=", 0.0))
    report.add(Figure(sc, "CPU per frame compressed / plain", per_frame[True] / per_frame[False],
                      "x", "<=", DEFLATE_CPU_RATIO))
    report.say(f"## compressed, whole servers: a replay log at {rate:,.0f} entries/s, "
               f"{clients} compressed clients")
    ours = _whole(report, our_server_cmd(), "certstream", clients=clients, rate=rate,
                  seconds=seconds)
    for cmd in server_cmds:
        theirs = _whole(report, cmd, config_style, clients=clients, rate=rate, seconds=seconds)
        if ours and theirs:
            report.add(Figure(sc, f"CPU per frame ours / {Path(cmd.split()[0]).name}",
                              ours / theirs, "x", "<", 1.0, note="whole servers, same run"))


def _whole(report: Report, template: str, style: str, *, clients: int, rate: float,
           seconds: float) -> float:
    """A whole server (ingest included) following a replay log with compressed clients;
    returns its CPU per delivered frame (us)."""
    name = Path(template.split(maxsplit=1)[0]).name
    total = int(rate * (seconds + 3)) + 100
    with tempfile.TemporaryDirectory(prefix="certstream-bench-") as t:
        tmp = Path(t)
        with (
            replay_log(total, tmp) as replay,
            _server(template, style, replay, tmp) as server,
            Sink(server.port, "/", clients, ts_key="seen", cpus=LOAD_CPUS, deflate=True) as sink,
        ):
            st = sink.wait_connected()
            if st.ok < clients:
                report.say(f"compressed: {name}: only {st.ok} of {clients} clients "
                           f"connected with permessage-deflate ({st.failed} failed)")
                return 0.0
            replay.paced(rate, 1.5)  # the server finds the log; its clients warm up
            base = drain(sink, None, quiet=0.5)
            pids = server.pids()
            c0 = Sample.take(pids)
            grown = replay.paced(rate, seconds)
            end = drain(sink, base.frames + grown * clients, quiet=2.0)
            c1 = Sample.take(pids)
    frames = end.frames - base.frames
    zframes = end.zframes - base.zframes
    cpu = c1.cpu_since(c0)
    us = cpu / frames * 1e6 if frames else 0.0
    report.say(f"sink, {name}: {end}")
    report.add(Figure("compressed", f"whole-server CPU per compressed frame, {name}", us, "us",
                      note=f"{frames:,} of {grown * clients:,} frames ({zframes:,} compressed), "
                           f"{cpu / (c1.at - c0.at) * 100:.0f}% of a core"))
    return us if frames and zframes == frames else 0.0


@contextlib.contextmanager
def _server(template: str, style: str, replay: Replay, tmp: Path) -> Iterator[Server]:
    if style != "go":
        with whole_server(template, replay, tmp) as server:
            yield server
        return
    # certstream-server-go: its own config format, compression on, the log from index 0.
    port = free_port()
    log = ServedLog("Bench replay", replay.log_url, "rfc6962", 0, "Bench", "", "")
    cfg = write_peer_config("go", tmp / "config.yaml", port, [log], peer="go")
    doc = yaml.safe_load(cfg.read_text())
    doc["webserver"]["compression_enabled"] = True
    cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
    cmd = server_cmd(template, port, cfg, replay.log_url)
    proc: subprocess.Popen[bytes] = subprocess.Popen(cmd, cwd=tmp, start_new_session=True,
                                                     stdout=subprocess.DEVNULL,
                                                     stderr=subprocess.DEVNULL)
    try:
        wait_port(port, 30, proc)
        time.sleep(0.5)
        for pid in tree(proc.pid):
            pin(pid, SERVER_CPUS)
        yield Server(port, proc, cmd[0])
    finally:
        stop_group(proc)
