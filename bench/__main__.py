"""``python -m bench [SCENARIO ...] [options]``: run the benchmarks, print figures with targets.

Scenarios (default: all, in this order): ingest, fanout, burst, capacity, memory, latency,
idle, filters, deflate, filtered, compressed, broker, edges, connections.  Every figure is
printed as a ``FIGURE`` line with its target and MET/MISSED; the run ends with a Markdown
table, and everything printed is also written to ``bench/results/last.txt``.  Nothing here
asserts: a missed target is a finding, not a crash.
A scenario that cannot run (a piece of the server missing, a port that never opened) is
reported as ``NOT RUN`` with the reason, and the others still run.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import (
    broker,
    connections,
    deflate,
    fanout,
    filters,
    ingest,
    latency,
    memory,
    subscriptions,
)
from bench.common import REPO, Report

SCENARIOS = (
    "ingest", "fanout", "burst", "capacity", "memory", "latency", "idle", "filters", "deflate",
    "filtered", "compressed", "broker", "edges", "connections",
)


def machine() -> str:
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    rev = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    # Other work on the machine skews every figure: the load average says if there was any.
    load = os.getloadavg()[0]
    return (
        f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, commit {rev or '?'}, "
        f"{len(os.sched_getaffinity(0))} cores ({model or platform.machine()}), "
        f"Python {platform.python_version()}, load average {load:.2f} at start"
    )


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "scenarios",
        nargs="*",
        metavar="SCENARIO",
        help=f"any of {', '.join(SCENARIOS)} (default: all)",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="small sizes: a smoke run in well under a minute, figures not meaningful",
    )
    ap.add_argument("--entries", type=int, help="ingest: unique entries, compiled run")
    ap.add_argument("--pure-entries", type=int, help="ingest: unique entries, pure run")
    ap.add_argument("--profile", action="store_true", help="ingest: add a cProfile listing")
    ap.add_argument(
        "--py-spy",
        action="store_true",
        help="fanout: sample the worker with py-spy (if on PATH) in an extra phase",
    )
    ap.add_argument(
        "--clients",
        type=int,
        action="append",
        help="fanout/latency: client count (repeat for several)",
    )
    ap.add_argument("--rate", type=float, help="entries/s published (default 1000)")
    ap.add_argument("--workers", type=int, default=1, help="gunicorn workers (default 1)")
    ap.add_argument("--seconds", type=float, help="length of each steady phase")
    ap.add_argument("--burst", type=int, help="burst: entries published at once")
    ap.add_argument(
        "--idle-clients", type=int, help="memory: clients in the last phase (default 10000)"
    )
    ap.add_argument(
        "--breakdown",
        action="store_true",
        help="memory: per-mapping tables, dumps from inside our processes, the cost of each part",
    )
    ap.add_argument(
        "--tracemalloc",
        action="store_true",
        help="memory --breakdown: also trace our processes' Python heap (inflates their RSS)",
    )
    ap.add_argument("--steps", help="capacity: comma-separated client counts to try")
    ap.add_argument(
        "--connections", type=int,
        help="connections: WebSockets held on one machine (default 50000; edges: 10000 "
        "clients unless --clients)",
    )
    ap.add_argument(
        "--server-cmd",
        action="append",
        default=[],
        help="also run 'latency', 'memory' and 'compressed' against this server command; "
        "{port}, {config} and {replay_url} are substituted; it must serve "
        "ws://127.0.0.1:{port}/",
    )
    ap.add_argument(
        "--config-style",
        choices=("certstream", "go"),
        default="certstream",
        help="compressed: the config format --server-cmd reads ('go': certstream-server-go's, "
        "with compression_enabled: true)",
    )
    ap.add_argument("--results", help="write the report here (default bench/results/last.txt)")
    args = ap.parse_args(argv)
    unknown = [s for s in args.scenarios if s not in (*SCENARIOS, "all")]
    if unknown:
        ap.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    return args


def plan(args: argparse.Namespace) -> list[tuple[str, Callable[[Report], None]]]:
    q = args.quick
    wanted = [
        s for s in SCENARIOS if not args.scenarios or "all" in args.scenarios or s in args.scenarios
    ]
    rate = args.rate or (200.0 if q else 1000.0)
    seconds = args.seconds or (1.0 if q else 5.0)
    clients = args.clients or ([20] if q else [100, 1000])
    steps = (
        [int(x) for x in args.steps.split(",")]
        if args.steps
        else ([20, 40] if q else [500, 1000, 1250, 1500, 2000, 2500, 3000, 4000])
    )
    n_idle = args.idle_clients or (200 if q else 10_000)

    def run_ingest(r: Report) -> None:
        ingest.run(
            r,
            args.entries or (600 if q else 20_000),
            args.pure_entries or (300 if q else 4_000),
            args.profile,
        )

    def run_fanout(r: Report) -> None:
        fanout.run_steady(r, clients, rate, seconds, args.workers, spy=args.py_spy)

    def run_burst(r: Report) -> None:
        fanout.run_burst(r, max(clients), args.burst or (200 if q else 3000), args.workers)

    def run_capacity(r: Report) -> None:
        fanout.run_capacity(r, rate, seconds, steps)

    def run_memory(r: Report) -> None:
        # Whole servers side by side: ours, then each command.
        opts = memory.Options(
            entries=300 if q else memory.ENTRIES,
            steps=(10, 20, 40) if q else tuple(sorted({100, min(1000, n_idle), n_idle})),
            breakdown=args.breakdown,
            tracemalloc=args.tracemalloc,
            default_config=not q,
            quick=q,
        )
        memory.run(r, args.server_cmd, opts)

    def run_latency(r: Report) -> None:
        n = max(clients)
        latency.run_latency(r, n, rate, seconds * 2, workers=args.workers)
        for cmd in args.server_cmd:
            latency.run_latency(r, n, rate, seconds * 2, template=cmd)

    def run_idle(r: Report) -> None:
        latency.run_idle(r, 300 if q else 2000)

    def run_filters(r: Report) -> None:
        filters.run(r, rounds=20 if q else 500)

    def run_deflate(r: Report) -> None:
        deflate.run(r, rounds=2 if q else 50)

    def run_filtered(r: Report) -> None:
        n = max(clients) if args.clients else (40 if q else 1000)
        subscriptions.run_filtered(r, clients=n, rate=args.rate or (200.0 if q else 1000.0),
                                   seconds=seconds)

    def run_compressed(r: Report) -> None:
        n = min(clients) if args.clients else (20 if q else 100)
        subscriptions.run_compressed(r, clients=n, rate=args.rate or (200.0 if q else 500.0),
                                     seconds=seconds, server_cmds=tuple(args.server_cmd),
                                     config_style=args.config_style)
    def run_broker(r: Report) -> None:
        broker.run(r, records=1000 if q else 10_000, clients=max(clients), rate=rate,
                   seconds=seconds)

    def run_edges(r: Report) -> None:
        n = max(clients) if args.clients else (200 if q else 10_000)
        connections.run_edges(r, n, seconds=args.seconds or (1.0 if q else 3.0))

    def run_connections(r: Report) -> None:
        total = args.connections or (600 if q else 50_000)
        connections.run_connections(r, total=total, live=100 if q else 1000, rate=rate,
                                    seconds=seconds)

    table: dict[str, Callable[[Report], None]] = {
        "ingest": run_ingest,
        "fanout": run_fanout,
        "burst": run_burst,
        "capacity": run_capacity,
        "memory": run_memory,
        "latency": run_latency,
        "idle": run_idle,
        "filters": run_filters,
        "deflate": run_deflate,
        "filtered": run_filtered,
        "compressed": run_compressed,
        "broker": run_broker,
        "edges": run_edges,
        "connections": run_connections,
    }
    out = [(s, table[s]) for s in wanted]
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    report = Report()
    header = f"certstream benchmarks: {machine()}"
    report.say(header)
    started = time.monotonic()
    for name, fn in plan(args):
        t0 = time.monotonic()
        try:
            fn(report)
        except Exception as exc:  # one broken scenario must not hide the others' figures
            report.say(f"NOT RUN: {name}: {type(exc).__name__}: {exc}")
            report.lines.append(traceback.format_exc())
        report.say(f"({name}: {time.monotonic() - t0:.1f} s)")
    report.say(f"total {time.monotonic() - started:.1f} s")
    print()
    print(report.markdown())
    out = report.write(header, Path(args.results) if args.results else None)
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
