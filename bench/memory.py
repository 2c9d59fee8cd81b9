"""Memory of whole servers: RSS of every process (master, ingest, workers) summed, side by side.

Each server (ours, once with its ingest process, once with the ingest embedded in its one
worker and once as a single process with no gunicorn master; each ``--server-cmd``) is
started once, following a replay log that holds
40,000 unique entries, none visible yet, with its default settings otherwise (ours: log lists
off, ``buffer_size`` at its default), and goes through these phases:

``idle``
    started, the log empty, nobody connected;
``20k entries``
    the log grew by 20,000 entries and the server fetched them all, nobody connected;
``100 clients``
    100 lite clients connected, then 20,000 more entries, drained to them;
``1,000`` / ``10,000 clients``
    idle lite clients added to the 100 (no more entries).

Ours is also started with the real default config (log lists as shipped: on a machine
without network the ingest follows the packaged Google list and every log is unreachable),
once in each process model: the logs' keys are known, so the process that follows them loads
cryptography to check their tree heads.

Our package's bytecode is compiled first (``compileall``), as an installed copy has it (pip
compiles it at install): a checkout run with ``PYTHONDONTWRITEBYTECODE`` set would compile
every module in every process at each start, ~1 MiB of RSS per process that no installed
server pays.

RSS is read from ``/proc/PID/smaps_rollup`` of every process once it has settled.  Summed RSS
counts a page that two processes share twice; that is what most hosts charge and what the
targets below use.  PSS summed (a shared page split among the processes that map it) is the
honest footprint of forked processes: it has figures of its own (no target), and the private
part is printed in the tables.  Kernel socket buffers are not in RSS and are not counted.
Targets (never asserted): idle <= 80 MiB; 100 clients <= the other server's figure in the
same run; per idle client ((RSS at 10,000 - RSS at 1,000) / 9,000) <= 8 KiB; at 10,000
clients below half of the other server's.

``--breakdown`` adds, at each phase, the per-mapping table and the dumps from inside our
processes, and at the end the cost of each part in fresh interpreters (``bench.memparts``).
"""

from __future__ import annotations

import compileall
import contextlib
import json
import resource
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench import latency, memparts
from bench.clients import Sink
from bench.common import Figure, Report, free_port
from bench.fanout import drain
from bench.procmem import MiB, Rollup
from bench.servers import LOAD_CPUS, Server, launch, server_cmd, write_config

IDLE_TARGET = 80 * MiB
PER_CLIENT_TARGET = 8 * 1024
ENTRIES = 20_000
STEPS = (100, 1000, 10_000)
DEFAULT_BUFFER_SIZE = 1000  # certstream's default, for the frame-ring arithmetic
DEFAULT_DEDUP_CAPACITY = 200_000


@dataclass
class Options:
    entries: int = ENTRIES
    steps: tuple[int, ...] = STEPS
    breakdown: bool = False
    tracemalloc: bool = False
    #: The default-config start contacts the logs of the packaged list when the machine is
    #: online: the benchmark does it, a quick (smoke) run does not.
    default_config: bool = True
    quick: bool = False


@dataclass
class Run:
    """One server's readings: phase -> summed rollup."""

    label: str
    totals: dict[str, Rollup] = field(default_factory=dict)
    phases: dict[str, str] = field(default_factory=dict)  # key -> title, in order
    ours: bool = False  # certstream, in any process model: the targets apply


#: Ours with the ingest inside the one worker (``ingest.mode: embedded``), one process less.
EMBEDDED = ("certstream, embedded ingest", {"CERTSTREAM_INGEST_MODE": "embedded"})
#: Ours as one process (``process_model: single``): the embedded ingest, no gunicorn master.
SINGLE = ("certstream, single process", {"CERTSTREAM_INGEST_MODE": "embedded",
                                         "CERTSTREAM_PROCESS_MODEL": "single"})


def raise_nofile(needed: int) -> None:
    """The sink and the server inherit this process's open-file limit: lift it to the hard
    limit when ``needed`` descriptors (plus headroom) would not fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed + 1024
    if soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


def settle(server: Server, seconds: float = 1.5) -> list[int]:
    """Wait until the summed RSS stops moving (or a few tries); returns the process list."""
    from bench.common import rss_bytes  # noqa: PLC0415 - VmRSS is cheaper than smaps here

    pids = server.pids()
    last = sum(rss_bytes(p) for p in pids)
    for _ in range(10):
        time.sleep(seconds / 3)
        pids = server.pids()
        now = sum(rss_bytes(p) for p in pids)
        if abs(now - last) < 64 * 1024:
            break
        last = now
    return pids


class Phases:
    """Reads and prints each phase of one server run."""

    def __init__(self, report: Report, server: Server, run: Run, opts: Options, dumps: Path):
        self.report, self.server, self.run, self.opts, self.dumps = report, server, run, opts, dumps

    def read(self, key: str, phase: str) -> None:
        pids = settle(self.server)
        root = self.server.proc.pid
        title = f"{self.run.label}, {phase}:"
        total = memparts.process_table(self.report, pids, root, title)
        self.run.totals[key] = total
        self.run.phases[key] = phase
        if self.opts.breakdown:
            memparts.mapping_table(self.report, pids, root)
            prom = memparts.prometheus_files(pids)
            if prom is not None:
                self.report.say(
                    f"prometheus multiprocess dir: {prom[0]} .db files, "
                    f"{prom[1] / 1024:,.0f} KiB on disk (mapped: see the table)"
                )
            ours = [p for p in pids if memparts.is_python(p)]
            if ours:
                got = memparts.request_dumps(ours, root, self.dumps)
                memparts.dump_table(self.report, got, ours, root)


def wait_fetched(replay: latency.Replay, upto: int, limit: float = 120.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if latency.fetched_up_to(replay) >= upto:
            return True
        time.sleep(0.2)
    return False


def wait_first_frame(sink: Sink, limit: float) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if sink.stats().frames > 0:
            return True
        time.sleep(0.2)
    return False


def connect(server: Server, n: int, sinks: contextlib.ExitStack) -> tuple[Sink, int]:
    sink = sinks.enter_context(Sink(server.port, "/", n, cpus=LOAD_CPUS))
    return sink, sink.wait_connected(timeout=180).ok


def run_server(report: Report, template: str | None, opts: Options,
               mode: tuple[str, dict[str, str]] | None = None) -> Run:
    """One server through every phase: ``template`` is another server's command (None:
    ours), ``mode`` a label and environment for ours (the embedded ingest)."""
    label = mode[0] if mode is not None else server_label(template)
    n, first = opts.entries, opts.steps[0]
    report.say(f"## memory, whole server ({label}): {n:,} entries, then {n:,} to {first} clients")
    run = Run(label, ours=template is None)
    with tempfile.TemporaryDirectory(prefix="certstream-bench-") as t:
        tmp = Path(t)
        dumps = tmp / "dumps"
        dumps.mkdir()
        env = memparts.hook_env(dumps, opts.tracemalloc) if opts.breakdown else {}
        env.update(mode[1] if mode is not None else {})
        with (
            latency.replay_log(2 * n + 10, tmp) as replay,
            latency.whole_server(
                template or latency.our_server_cmd(), replay, tmp,
                buffer_size=None, env=env, log=tmp / "server.log",
            ) as server,
            contextlib.ExitStack() as sinks,
        ):
            phases = Phases(report, server, run, opts, dumps)
            time.sleep(2.0)  # the ingest finds the empty log, the workers subscribe
            phases.read("idle", "idle")
            replay.grow(n)
            if not wait_fetched(replay, n):
                report.say(f"memory: {label} did not fetch {n:,} entries in time")
            time.sleep(2.0)  # decode and publish what was fetched
            phases.read("entries", f"{n:,} entries, nobody connected")
            sink, ok = connect(server, first, sinks)
            time.sleep(1.0)  # the workers tell the ingest they now want lite
            replay.grow(n)
            # certstream-server-go looks at a log's tree head up to 30 s apart once it is idle:
            # the quiet time counts from the first frame, not from the growth.
            wait_first_frame(sink, limit=60.0)
            st = drain(sink, n * ok, quiet=5.0, limit=180.0)
            report.say(
                f"{label}: {ok} clients got {st.frames:,} of {n * ok:,} frames "
                f"({st.closed} closed by the server)"
            )
            # As after the first 20,000: a server gets a moment after the burst (ours gives
            # the heap the burst used back within ~2 s of its end; settle() cannot see that
            # coming, it only waits while RSS moves).
            time.sleep(2.0)
            phases.read(f"clients:{first}", f"{first:,} clients, {n:,} entries drained")
            have = ok
            for step in opts.steps[1:]:
                _sink, ok = connect(server, step - have, sinks)
                have += ok
                report.say(f"{label}: {have:,} clients connected")
                phases.read(f"clients:{step}", f"{step:,} clients")
    return run


def server_label(template: str | None) -> str:
    """``certstream`` for ours, else the command's program name (``env X=1 prog`` -> prog)."""
    if template is None:
        return "certstream"
    words = [w for w in template.split() if "=" not in w and Path(w).name != "env"]
    return Path(words[0]).name if words else template


def compile_bytecode(report: Report) -> None:
    """Our modules' bytecode, written beside them as an install writes it (see above)."""
    import certstream  # noqa: PLC0415 - where the package under test lives

    package = Path(certstream.__file__).parent
    if not compileall.compile_dir(package, quiet=1):
        report.say(f"memory: some bytecode under {package} could not be written: those "
                   "modules are compiled at every start, as in a checkout")


def run(report: Report, server_cmds: list[str], opts: Options) -> None:
    raise_nofile(max(opts.steps) + 100)
    compile_bytecode(report)
    runs = [run_server(report, None, opts), run_server(report, None, opts, EMBEDDED),
            run_server(report, None, opts, SINGLE)]
    runs.extend(run_server(report, cmd, opts) for cmd in server_cmds)
    if opts.default_config:
        for mode in (None, EMBEDDED, SINGLE):
            run_default(report, opts, mode)
    figures(report, runs, opts)
    if opts.breakdown:
        memparts.parts(report, DEFAULT_BUFFER_SIZE, DEFAULT_DEDUP_CAPACITY, opts.quick)


def run_default(report: Report, opts: Options,
                mode: tuple[str, dict[str, str]] | None = None) -> None:
    """Ours with the real default config: nothing set but the address and a state file
    (and, with ``mode``, the process model's keys, through the environment)."""
    label = mode[0] if mode is not None else "certstream"
    report.say(f"## memory, {label} with the default config (log lists as shipped)")
    with tempfile.TemporaryDirectory(prefix="certstream-bench-") as t:
        tmp = Path(t)
        port = free_port()
        cfg = write_config(
            tmp / "config.yaml",
            {"host": "127.0.0.1", "port": port, "log_level": "error",
             "ct_log": {"state_file": str(tmp / "state.json")}},
        )
        dumps = tmp / "dumps"
        dumps.mkdir()
        env = memparts.hook_env(dumps, opts.tracemalloc) if opts.breakdown else {}
        env.update(mode[1] if mode is not None else {})
        cmd = server_cmd(latency.our_server_cmd(), port, cfg, "")
        with launch(cmd, port, tmp, env=env or None, log=tmp / "server.log") as server:
            time.sleep(8.0)  # the list is fetched (or not), followers start and fail
            logs = logs_total(port)
            run = Run(label)
            Phases(report, server, run, opts, dumps).read(
                "idle", f"idle, default config, {logs} logs followed"
            )
            total = next(iter(run.totals.values()))
            report.add(
                Figure("memory", f"whole server idle, default config, {label}",
                       total.rss / MiB, "MiB", "<=", IDLE_TARGET / MiB,
                       f"{logs} logs followed; PSS {total.pss / MiB:.1f} MiB")
            )


def logs_total(port: int) -> int | str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/deep", timeout=5) as r:
            return int(json.loads(r.read())["logs_total"])
    except (OSError, ValueError, KeyError):
        return "?"


def pss_figure(name: str, total: Rollup) -> Figure:
    """PSS summed: each shared page counted once, split among the processes that map it, so
    forked processes are not charged twice for what they share (the targets use RSS)."""
    return Figure("memory", name, total.pss / MiB, "MiB",
                  note=f"RSS {total.rss / MiB:.1f} MiB; shared pages counted once")


def figures(report: Report, runs: list[Run], opts: Options) -> None:
    """Each run's figures, the comparisons of ours (either ingest mode) with the others, and
    one summary table."""
    ours = [r for r in runs if r.ours]
    others = [r for r in runs if not r.ours]
    first, last = opts.steps[0], opts.steps[-1]
    for r in runs:
        is_ours = r.ours
        t = r.totals
        if "idle" in t:
            report.add(Figure(
                "memory", f"whole server idle, empty log, {r.label}", t["idle"].rss / MiB, "MiB",
                "<=" if is_ours else "", IDLE_TARGET / MiB if is_ours else None,
                f"PSS {t['idle'].pss / MiB:.1f} MiB",
            ))
            report.add(pss_figure(f"whole server PSS idle, empty log, {r.label}", t["idle"]))
        for step in opts.steps:
            key = f"clients:{step}"
            if key in t:
                note = f"{opts.entries:,} entries drained" if step == first else "idle clients"
                report.add(Figure(
                    "memory", f"whole server, {step:,} lite clients, {r.label}",
                    t[key].rss / MiB, "MiB", note=f"{note}; PSS {t[key].pss / MiB:.1f} MiB",
                ))
                report.add(pss_figure(f"whole server PSS, {step:,} lite clients, {r.label}",
                                      t[key]))
        if len(opts.steps) >= 2 and f"clients:{last}" in t and f"clients:{opts.steps[-2]}" in t:
            prev = opts.steps[-2]
            grew = t[f"clients:{last}"].rss - t[f"clients:{prev}"].rss
            report.add(Figure(
                "memory", f"RSS per idle client, {prev:,} -> {last:,} clients, {r.label}",
                grew / (last - prev) / 1024, "KiB",
                "<=" if is_ours else "", PER_CLIENT_TARGET / 1024 if is_ours else None,
                f"{grew / MiB:.1f} MiB for {last - prev:,} clients",
            ))
    for mine, other in ((m, o) for m in ours for o in others):
        for step, limit in ((first, 1.0), (last, 0.5)):
            key = f"clients:{step}"
            if key in mine.totals and key in other.totals and other.totals[key].rss:
                report.add(Figure(
                    "memory", f"{mine.label} / {other.label} RSS, {step:,} clients",
                    mine.totals[key].rss / other.totals[key].rss, "x", "<=", limit,
                    f"{mine.totals[key].rss / MiB:.0f} vs {other.totals[key].rss / MiB:.0f} MiB",
                ))
                a, b = mine.totals[key].pss, other.totals[key].pss
                if b:
                    report.add(Figure(
                        "memory", f"{mine.label} / {other.label} PSS, {step:,} clients",
                        a / b, "x", note=f"{a / MiB:.0f} vs {b / MiB:.0f} MiB",
                    ))
    keys = list(runs[0].phases)
    report.say("\nWhole server RSS, all processes summed, MiB (PSS in brackets):\n")
    report.say("| phase | " + " | ".join(r.label for r in runs) + " |")
    report.say("|---|" + "---|" * len(runs))
    for key in keys:
        cells = [
            f"{r.totals[key].rss / MiB:.1f} ({r.totals[key].pss / MiB:.1f})" if key in r.totals
            else "-"
            for r in runs
        ]
        report.say(f"| {runs[0].phases[key]} | " + " | ".join(cells) + " |")
