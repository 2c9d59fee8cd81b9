"""``python -m soak [--minutes 10]``: the real server under a steady load, watched.

The whole server (``certstream``: gunicorn master, 2 workers, the ingest), with the default
settings but for its port, log lists off and one custom log, follows a replay CT log that
grows by ``--rate`` unique entries/s (750 by default).  ``--ws`` WebSocket and ``--sse``
SSE clients (50 + 50) of the lite stream, in one C process (``tally.c``) that checks every
index it receives, stay connected throughout.  Every ``--interval`` seconds (5) it samples
into a CSV: RSS and CPU of every server process (by role), the clients connected and the
sockets the workers hold, the log's size and how far behind the slowest client is, and the
frames received; at the end it draws RSS and CPU over time (PNG, matplotlib) and prints:

* PASS/FAIL ``every entry``: every client received every index from 0 to the last, once
  (no gap, no repeat, no drop notice), and never had to reconnect;
* PASS/FAIL ``no restarts``: the workers and the ingest kept their process ids;
* PASS/FAIL ``RSS flat``: the server's resident memory grew by at most 5 % over the second
  half of the run (the mean of its first 3 samples against the mean of its last 3).  Judged
  on the anonymous part (``RssAnon``: the heap, what a leak grows); VmRSS is recorded and
  plotted too, but it also counts the pages of the program's files, which the kernel
  evicts when another process on the machine needs memory (a shared machine's RSS can fall
  by a fifth in a minute that way).  Judged only for runs of 5 minutes or more, reported as
  ``info`` below: the ingest's memory swings by 2-4 MiB (~2 % of the server's) from one
  sample to the next, as each get-entries answer (~1.3 MB of JSON for 256 entries) and its
  decoded objects come and go, and the dedup ring's pages are touched as it fills (200,000
  entries: ~4.5 minutes at 750/s).  Over a 30-second half a 5 % threshold would judge one
  or two samples of that noise; a leak of consequence shows over minutes.

Exit status 0 when everything judged passed.  The CSV, PNG, a JSON summary and the server's
log go to ``--out`` (default: a temporary directory, named at the end).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import socket_count

from soak.clients import Tally
from soak.harness import Grower, GrowingLog, ServerProcess, anon_of, cpu_of, rss_of

RSS_LIMIT_PCT = 5.0
JUDGE_RSS_FROM = 300.0  # seconds of run
FIELDS = ["t", "rss_total_mib", "rss_master_mib", "rss_workers_mib", "rss_ingest_mib",
          "anon_total_mib", "anon_master_mib", "anon_workers_mib", "anon_ingest_mib",
          "cpu_total_pct", "cpu_workers_pct", "cpu_ingest_pct", "cpu_clients_pct",
          "clients_open", "worker_sockets", "log_size", "lag", "frames", "frames_per_s",
          "restarts"]


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m soak", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--seconds", type=float, help="overrides --minutes")
    ap.add_argument("--rate", type=float, default=750.0, help="entries/s the log grows by")
    ap.add_argument("--ws", type=int, default=50)
    ap.add_argument("--sse", type=int, default=50)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--out", type=Path, help="directory for the CSV, PNG and summary")
    return ap.parse_args(argv)


def mib(n: int) -> float:
    return n / (1 << 20)


def run(args: argparse.Namespace) -> dict[str, Any]:
    duration = args.seconds if args.seconds is not None else args.minutes * 60
    out = args.out or Path(tempfile.mkdtemp(prefix="certstream-soak-"))
    out.mkdir(parents=True, exist_ok=True)
    total = int(args.rate * (duration + 30)) + 1000
    log = GrowingLog(total)
    server = ServerProcess(out, log.url, workers=args.workers)
    rows: list[dict[str, Any]] = []
    summary: dict[str, Any] = {"duration_s": duration, "rate": args.rate,
                               "clients": args.ws + args.sse, "ws": args.ws, "sse": args.sse,
                               "workers": args.workers}
    try:
        server.start()
        roles = server.wait_roles(args.workers)
        first_roles = roles
        with Tally(server.port, args.ws, args.sse) as tally:
            opened = tally.wait_open()
            if opened.open < tally.clients:
                raise RuntimeError(f"only {opened.open} of {tally.clients} clients connected")
            time.sleep(2.0)  # the workers tell the ingest what they want
            restarts = 0
            grower = Grower(log, args.rate)
            start = time.monotonic()
            prev = (start, cpu_of(roles.all), cpu_of(roles.workers), cpu_of(roles.ingest),
                    cpu_of([tally.pid()]), 0)
            print(f"soak: {tally.clients} clients, log growing at {args.rate:.0f} entries/s, "
                  f"{duration:.0f} s; sampling every {args.interval:.0f} s into {out}",
                  flush=True)
            while (elapsed := time.monotonic() - start) < duration:
                time.sleep(min(args.interval, max(0.0, duration - elapsed)))
                now_roles = server.roles()
                if set(now_roles.workers) != set(roles.workers) or \
                        set(now_roles.ingest) != set(roles.ingest):
                    restarts += len(set(roles.workers) ^ set(now_roles.workers)) // 2 or 1
                    roles = now_roles
                t = tally.totals()
                now = time.monotonic()
                cpu = (cpu_of(roles.all), cpu_of(roles.workers), cpu_of(roles.ingest),
                       cpu_of([tally.pid()]))
                span = now - prev[0]
                size = log.size
                row = {
                    "t": round(now - start, 1),
                    "rss_total_mib": round(mib(rss_of(roles.all)), 2),
                    "rss_master_mib": round(mib(rss_of([roles.master])), 2),
                    "rss_workers_mib": round(mib(rss_of(roles.workers)), 2),
                    "rss_ingest_mib": round(mib(rss_of(roles.ingest)), 2),
                    "anon_total_mib": round(mib(anon_of(roles.all)), 2),
                    "anon_master_mib": round(mib(anon_of([roles.master])), 2),
                    "anon_workers_mib": round(mib(anon_of(roles.workers)), 2),
                    "anon_ingest_mib": round(mib(anon_of(roles.ingest)), 2),
                    "cpu_total_pct": round((cpu[0] - prev[1]) / span * 100, 1),
                    "cpu_workers_pct": round((cpu[1] - prev[2]) / span * 100, 1),
                    "cpu_ingest_pct": round((cpu[2] - prev[3]) / span * 100, 1),
                    "cpu_clients_pct": round((cpu[3] - prev[4]) / span * 100, 1),
                    "clients_open": t.open,
                    "worker_sockets": sum(socket_count(p) for p in roles.workers),
                    "log_size": size,
                    "lag": max(0, size - 1 - t.min_last),
                    "frames": t.frames,
                    "frames_per_s": round((t.frames - prev[5]) / span),
                    "restarts": restarts,
                }
                rows.append(row)
                prev = (now, *cpu, t.frames)
                print("  " + "  ".join(f"{k}={row[k]}" for k in
                                       ("t", "rss_total_mib", "anon_total_mib",
                                        "cpu_total_pct", "clients_open",
                                        "lag", "frames_per_s", "restarts")), flush=True)
            grown = grower.stop()
            final = tally.wait_index(grown - 1, timeout=60)
            clients = tally.per_client()
        summary.update(_judge(rows, clients, final, grown=grown, restarts=restarts,
                              duration=duration))
        summary["pids"] = {"first": first_roles.all, "last": server.roles().all}
    finally:
        server.stop()
        log.close()
    _write(out, rows, summary)
    summary["out"] = str(out)
    return summary


def _judge(rows: list[dict[str, Any]], clients: list[Any], final: Any, *, grown: int,
           restarts: int, duration: float) -> dict[str, Any]:
    complete = [c for c in clients if c.complete and c.first == 0 and c.last == grown - 1
                and c.connects == 1]
    expected = grown * len(clients)
    received = sum(c.frames - c.repeats for c in clients)
    second = [r for r in rows if r["t"] >= duration / 2]
    if len(second) >= 2:
        k = max(1, min(3, len(second) // 4))
        rss_mid = statistics.mean(r["rss_total_mib"] for r in second[:k])
        rss_end = statistics.mean(r["rss_total_mib"] for r in second[-k:])
        anon_mid = statistics.mean(r["anon_total_mib"] for r in second[:k])
        anon_end = statistics.mean(r["anon_total_mib"] for r in second[-k:])
        growth = (anon_end - anon_mid) / anon_mid * 100
        rss_growth = (rss_end - rss_mid) / rss_mid * 100
    else:
        rss_mid = rss_end = anon_mid = anon_end = growth = rss_growth = float("nan")
    judged = duration >= JUDGE_RSS_FROM
    cpu = statistics.mean(r["cpu_total_pct"] for r in rows) if rows else float("nan")
    clients_cpu = statistics.mean(r["cpu_clients_pct"] for r in rows) if rows else float("nan")
    return {
        "entries": grown,
        "frames": final.frames,
        "lost": expected - received,
        "repeated": sum(c.repeats for c in clients),
        "notices": final.notices,
        "closes": final.closes,
        "reconnects": final.connects - len(clients),
        "clients_complete": len(complete),
        "rss_start_mib": rows[0]["rss_total_mib"] if rows else None,
        "rss_mid_mib": round(rss_mid, 2),
        "rss_end_mib": round(rss_end, 2),
        "rss_growth_second_half_pct": round(rss_growth, 2),
        "anon_start_mib": rows[0]["anon_total_mib"] if rows else None,
        "anon_mid_mib": round(anon_mid, 2),
        "anon_end_mib": round(anon_end, 2),
        "anon_growth_second_half_pct": round(growth, 2),
        "lag_max": max((r["lag"] for r in rows), default=None),
        "cpu_mean_pct": round(cpu, 1),
        "clients_cpu_mean_pct": round(clients_cpu, 1),
        "restarts": restarts,
        "checks": {
            "every entry": "PASS" if len(complete) == len(clients) and expected == received
            else "FAIL",
            "no restarts": "PASS" if restarts == 0 else "FAIL",
            "RSS flat": ("PASS" if growth <= RSS_LIMIT_PCT else "FAIL") if judged else "info",
        },
    }


def _write(out: Path, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    with (out / "soak.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    if rows:
        try:
            plot(rows, summary, out / "soak.png")
        except ImportError as exc:  # matplotlib is a test extra, not a runtime dependency
            print(f"soak: no plot ({exc}); pip install matplotlib", file=sys.stderr)


def plot(rows: list[dict[str, Any]], summary: dict[str, Any], path: Path) -> None:
    """RSS and CPU of the server over time, one small PNG."""
    import matplotlib  # noqa: PLC0415 - a test extra, only needed here

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    t = [r["t"] / 60 for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True)
    for key, label, style in (
        ("rss_total_mib", "RSS, all processes", "-"),
        ("anon_total_mib", "anonymous (heap), all processes", "-"),
        ("anon_workers_mib", "anonymous, 2 workers", "--"),
        ("anon_ingest_mib", "anonymous, ingest", "--"),
        ("anon_master_mib", "anonymous, master", "--"),
    ):
        top.plot(t, [r[key] for r in rows], style, label=label)
    top.set_ylabel("memory (MiB)")
    top.set_ylim(bottom=0)
    top.legend(loc="center right", fontsize=8)
    top.grid(alpha=0.3)
    top.set_title(f"soak: {summary['clients']} clients ({summary['ws']} WebSocket, "
                  f"{summary['sse']} SSE), {summary['rate']:.0f} entries/s, "
                  f"{summary['duration_s'] / 60:g} min", fontsize=10)
    for key, label in (("cpu_total_pct", "server, all processes"),
                       ("cpu_workers_pct", "workers"), ("cpu_ingest_pct", "ingest"),
                       ("cpu_clients_pct", f"the {summary['clients']} clients (C)")):
        bottom.plot(t, [r[key] for r in rows], label=label)
    bottom.set_ylabel("CPU (% of a core)")
    bottom.set_xlabel("minutes")
    bottom.set_ylim(bottom=0)
    bottom.legend(loc="center right", fontsize=8)
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    from PIL import Image  # noqa: PLC0415 - matplotlib's own dependency

    # A palette of 64 colours is plenty for a few lines: a third of the bytes to commit.
    with Image.open(path) as img:
        small = img.convert("RGB").quantize(colors=64)
    small.save(path, optimize=True)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    summary = run(args)
    print(f"soak: {summary['clients']} clients for {summary['duration_s']:.0f} s, "
          f"{summary['entries']:,} entries; lost {summary['lost']}, repeated "
          f"{summary['repeated']}, reconnects {summary['reconnects']}, restarts "
          f"{summary['restarts']}; RSS {summary['rss_start_mib']} MiB at the start, "
          f"{summary['rss_mid_mib']} at half time, {summary['rss_end_mib']} at the end "
          f"({summary['rss_growth_second_half_pct']:+.2f} % over the second half), of which "
          f"anonymous {summary['anon_start_mib']}, {summary['anon_mid_mib']}, "
          f"{summary['anon_end_mib']} ({summary['anon_growth_second_half_pct']:+.2f} %); server "
          f"CPU {summary['cpu_mean_pct']} % of a core on average, clients "
          f"{summary['clients_cpu_mean_pct']} %; slowest client at most {summary['lag_max']} "
          "entries behind")
    for name, verdict in summary["checks"].items():
        print(f"{verdict} {name}")
    print(f"soak: results in {summary['out']}")
    return 0 if all(v != "FAIL" for v in summary["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
