"""``python -m bench.batch_size``: what ``ct_log.batch_size`` changes when a follower catches
up on an RFC 6962 log, measured against the replay log.

A real follower (``Rfc6962Follower``, ``fetch_concurrency`` 4, the default politeness budget
of one data request per 50 ms per operator) reads ``--entries`` entries behind the head of a
replay log that serves at most ``cap`` entries per get-entries (Google's logs serve 32,
others up to 1024 or more), for each ``batch_size``.  Printed per pair: seconds to catch up,
entries per second, get-entries requests made, and the bytes of responses that may be held
at once (``fetch_concurrency`` windows of the batch the log actually serves).  Entries are
decoded and deduplicated as in the ingest; no client listens, so nothing is serialised
(serialising costs the same per entry whatever the batch).  Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import gevent
from conformance.replay import ReplayServer

from bench.common import REPO
from certstream.config import CtLogSettings
from certstream.core.dedup import DedupRing
from certstream.core.logspec import FollowerSettings, LogSpec
from certstream.core.messages import MessageBuilder
from certstream.shell.followers import make_follower
from certstream.shell.httpclient import HTTPClient
from certstream.shell.issuers import IssuerCache
from certstream.shell.pipeline import Pipeline
from certstream.shell.politeness import Politeness

LIVE40 = REPO / "conformance" / "data" / "inputs" / "live40"


class _NoClients:
    """The feed with no client listening: entries are decoded and deduplicated only."""

    def wanted(self) -> int:
        return 0

    def connected(self) -> int:
        return 1

    def publish(self, items: Any, on_delivered: Callable[[], None] | None = None,
                on_lost: Callable[[], None] | None = None) -> None:
        if on_delivered is not None:
            on_delivered()  # nobody to deliver to: at once

    def publish_example(self, lite: bytes) -> None: ...


class _Positions:
    """Nothing saved: a catch-up run measures reading and decoding."""

    def sent(self, key: str) -> None: ...

    def delivered(self, key: str, next_index: int, tree_size: int,
                  now: float | None = None) -> None: ...

    def settle(self, key: str) -> bool:
        return True


def _entries(n: int) -> list[dict[str, str]]:
    base: list[dict[str, str]] = []
    for name in ("argon2026h2.get-entries.json", "nimbus2026.get-entries.json"):
        base += json.loads((LIVE40 / name).read_text())["entries"]
    return [base[i % len(base)] for i in range(n)]


def run(entries: list[dict[str, str]], cap: int, batch: int,
        interval: float) -> tuple[float, int]:
    """Seconds to read every entry, and get-entries requests made."""
    replay = ReplayServer()
    replay.add_rfc6962_log("/l/", entries, 0, max_batch=cap)
    replay.start()
    try:
        url = replay.url + "/l/"
        spec = LogSpec(url, "bench", url, "rfc6962", "bench", 0)
        cfg = FollowerSettings.from_ct_log(CtLogSettings(batch_size=batch, fetch_concurrency=4,
                                                         poll_interval_ms=100))
        # Nobody listens: the builder only stamps each entry with its seen, builds nothing.
        pipeline = Pipeline(_NoClients(), MessageBuilder("go"), DedupRing(100_000, 900.0),
                            _Positions())
        http = HTTPClient("certstream-bench", 30.0, 64 * 1024 * 1024)
        follower = make_follower(spec, cfg, http=http, pipeline=pipeline,
                                 politeness=Politeness(interval, {}), issuers=IssuerCache(http))
        start = time.monotonic()
        follower.start()
        while follower.next_index is None or follower.next_index < len(entries):
            gevent.sleep(0.01)
        took = time.monotonic() - start
        follower.stop()
        http.close()
        requests = sum(1 for _m, t in replay.requests("/l/") if "get-entries" in t)
        return took, requests
    finally:
        replay.stop()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.batch_size", description=__doc__)
    ap.add_argument("--entries", type=int, default=16384)
    ap.add_argument("--caps", default="32,256,1024")
    ap.add_argument("--batches", default="256,1024")
    ap.add_argument("--interval", type=float, default=0.05,
                    help="politeness: seconds between data requests per operator")
    args = ap.parse_args(argv)
    entries = _entries(args.entries)
    per_entry = sum(len(e["leaf_input"]) + len(e["extra_data"]) + 40 for e in entries[:40]) / 40
    print(f"{args.entries} entries behind the head, ~{per_entry / 1024:.1f} KiB each in JSON, "
          f"fetch_concurrency 4, one data request per {args.interval * 1000:.0f} ms")
    print("| log's cap | batch_size | seconds | entries/s | get-entries | held at once |")
    print("|---|---|---|---|---|---|")
    for cap in (int(c) for c in args.caps.split(",")):
        for batch in (int(b) for b in args.batches.split(",")):
            took, requests = run(entries, cap, batch, args.interval)
            held = 4 * min(cap, batch) * per_entry / 1024 / 1024
            print(f"| {cap} | {batch} | {took:.1f} | {args.entries / took:,.0f} | {requests} "
                  f"| {held:.1f} MiB |", flush=True)


if __name__ == "__main__":
    from gevent import monkey

    monkey.patch_all()
    main()
