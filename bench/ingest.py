"""Ingest throughput: decode + dedup + build the lite, full and domains payloads, one core.

The input is the live40 recording (26 x509, 14 precert entries from two real logs) made
unique by ``conformance.synth.unique_entries``, so the dedup ring lets every entry through and
each one is decoded and serialised in full, as a live log's new entries are.  The entries are
packed into get-entries response bodies of ``BATCH`` entries, so JSON and base64 decoding are
measured too.

Each implementation runs in a fresh interpreter (``CERTSTREAM_NO_EXTENSIONS`` is read at
import), which reports CPU-seconds from ``time.process_time``: one process, one thread, so
that is one core.  Stages are timed as separate passes over the same bodies (decode only;
decode + dedup; the whole pipeline), so the table shows where the time goes without a
profiler's overhead; ``--profile`` adds a cProfile of the whole pipeline.

Static-ct logs: the same entries as data tiles of 256 (``tile_leaves_from_entries``), read
leaf by leaf (``read_data_tile``), with and without the hash check a follower makes of each
full tile (every leaf hashed, the tile's tree hash compared with its node on level 1), and
through the whole pipeline with and without it: the difference is what checking tiles
against the checkpoint costs per entry.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import json
import os
import pstats
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from conformance.synth import tile_leaves_from_entries, unique_entries

from bench.common import REPO, Figure, Report
from certstream import _fast
from certstream.core import messages
from certstream.core.dedup import DedupRing
from certstream.core.leaves import decode_get_entries
from certstream.core.merkle import tree_hash
from certstream.core.model import LogSource
from certstream.core.tiles import read_data_tile

LIVE40 = REPO / "conformance" / "data" / "inputs" / "live40"
BATCH = 256
REPEAT = 2
TARGET_COMPILED = 25_000.0
TARGET_RATIO = 5.0


def load_base() -> list[dict[str, str]]:
    manifest = json.loads((LIVE40 / "manifest.json").read_text())
    base: list[dict[str, str]] = []
    for log in manifest["logs"]:
        base.extend(json.loads((LIVE40 / log["entries"]).read_text())["entries"])
    return base


def make_bodies(n: int, seed: int) -> list[tuple[int, bytes]]:
    """``n`` unique entries as get-entries bodies: (first index, JSON bytes)."""
    entries = unique_entries(load_base(), n, seed)
    return [
        (i, json.dumps({"entries": entries[i : i + BATCH]}).encode())
        for i in range(0, len(entries), BATCH)
    ]


def make_tiles(n: int, seed: int) -> tuple[list[tuple[int, bytes]], dict[bytes, bytes]]:
    """The same ``n`` unique entries as full data tiles (first index, body), and the issuers
    their fingerprints name.  A last partial tile is dropped: every tile is checked whole."""
    leaves, issuers = tile_leaves_from_entries(unique_entries(load_base(), n, seed))
    return [(i, b"".join(leaves[i : i + 256])) for i in range(0, len(leaves) - 255, 256)], issuers


def check_tile(first: int, read: Any, want: bytes) -> bool:
    """What the static follower does with a full tile it read (``_mismatched``): every leaf
    hashed, their tree hash compared with the tile's node on level 1."""
    hashes = {leaf.index: leaf.leaf_hash() for leaf in read.leaves}
    return tree_hash([hashes[first + i] for i in range(256)]) == want


def dedup_key(cert_der: bytes) -> bytes:
    # The certificate's SHA-256: what the peers dedup on, and what a precert and its final
    # certificate do not share, so both are delivered as they are by the peers.
    return hashlib.sha256(cert_der).digest()


def _stages() -> dict[str, Callable[[list[tuple[int, bytes]]], int]]:
    """The timed passes, each a prefix of the ingest pipeline, by name."""
    stages: dict[str, Callable[[list[tuple[int, bytes]]], int]] = {}

    def decode_only(bodies: list[tuple[int, bytes]]) -> int:
        n = 0
        for start, body in bodies:
            entries, _errors = decode_get_entries(body, start)
            n += len(entries)
        return n

    stages["decode"] = decode_only

    def decode_dedup(bodies: list[tuple[int, bytes]]) -> int:
        ring = DedupRing(1 << 20, 3600)
        now = 1_700_000_000.0
        n = 0
        for start, body in bodies:
            entries, _errors = decode_get_entries(body, start)
            for e in entries:
                if ring.add(dedup_key(e.cert_der), now):
                    n += 1
        return n

    stages["decode+dedup"] = decode_dedup
    source = LogSource(
        name="Google 'Argon2026h2'", url="https://ct.googleapis.com/logs/us1/argon2026h2/"
    )
    every = messages.STREAM_LITE | messages.STREAM_FULL | messages.STREAM_DOMAINS

    def pipeline(bodies: list[tuple[int, bytes]], streams: int = every) -> int:
        builder = messages.MessageBuilder("go")
        ring = DedupRing(1 << 20, 3600)
        now = 1_700_000_000.0
        n = 0
        for start, body in bodies:
            entries, _errors = decode_get_entries(body, start)
            for e in entries:
                if ring.add(dedup_key(e.cert_der), now):
                    p = builder.build(e, source, now, streams)
                    n += (p.lite is not None) + (p.full is not None) + (p.domains is not None)
        return n

    stages["pipeline"] = pipeline
    stages["pipeline, no stream wanted"] = lambda bodies: pipeline(bodies, 0)
    return stages


def _tile_stages(
    tiles: list[tuple[int, bytes]], issuers: dict[bytes, bytes]
) -> dict[str, Callable[[list[tuple[int, bytes]]], int]]:
    """The static-ct passes over data tiles, by name (each returns the entries it read)."""
    # The level-1 nodes the check compares with, computed once here as a follower has
    # them from the hash tiles it already checked.
    nodes = {  # by the body's identity: the warm-up tiles have the same first indices
        id(body): tree_hash([leaf.leaf_hash() for leaf in read_data_tile(body, first, 256).leaves])
        for first, body in tiles
    }
    source = LogSource(name="Sycamore", url="https://log.sycamore.ct.letsencrypt.org/2026h2/")
    every = messages.STREAM_LITE | messages.STREAM_FULL | messages.STREAM_DOMAINS

    def read(tiles: list[tuple[int, bytes]], check: bool = False) -> int:
        n = 0
        for first, body in tiles:
            got = read_data_tile(body, first, 256)
            if check and not check_tile(first, got, nodes[id(body)]):
                raise AssertionError(f"tile {first // 256} does not match")
            n += len(got.leaves)
        return n

    def pipeline(tiles: list[tuple[int, bytes]], check: bool = False) -> int:
        builder = messages.MessageBuilder("go")
        ring = DedupRing(1 << 20, 3600)
        now = 1_700_000_000.0
        n = 0
        for first, body in tiles:
            got = read_data_tile(body, first, 256)
            if check and not check_tile(first, got, nodes[id(body)]):
                raise AssertionError(f"tile {first // 256} does not match")
            for leaf in got.leaves:
                e = leaf.to_entry(issuers)
                if ring.add(dedup_key(e.cert_der), now):
                    p = builder.build(e, source, now, every)
                    n += (p.lite is not None) + (p.full is not None) + (p.domains is not None)
        return n

    return {
        "tiles: read": read,
        "tiles: read + hash check": lambda t: read(t, True),
        "tiles: pipeline": pipeline,
        "tiles: pipeline + hash check": lambda t: pipeline(t, True),
    }


def child(n: int, profile: bool) -> dict[str, Any]:
    """Run in a fresh interpreter: time each stage over n unique entries."""
    t0 = time.perf_counter()
    warm = make_bodies(min(n, 400), seed=1)
    bodies = make_bodies(n, seed=2)
    prep = time.perf_counter() - t0
    tiles, issuers = make_tiles(n, seed=2)
    warm_tiles, warm_issuers = make_tiles(min(n, 512), seed=1)
    issuers.update(warm_issuers)
    stages = _stages()
    out: dict[str, Any] = {"entries": n, "tile_entries": len(tiles) * 256, "prep_s": prep,
                           "stages": {}}
    plans = [(name, fn, warm, bodies) for name, fn in stages.items()]
    tile_stages = _tile_stages(tiles + warm_tiles, issuers)
    plans += [(name, fn, warm_tiles, tiles) for name, fn in tile_stages.items()]
    for name, fn, warm_input, timed_input in plans:
        fn(warm_input)  # first-call costs (imports, caches) are not throughput
        best = float("inf")
        for _ in range(REPEAT):  # the best of a few: noise only ever adds time
            c0 = time.process_time()
            count = fn(timed_input)
            best = min(best, time.process_time() - c0)
        out["stages"][name] = {"cpu_s": best, "count": count}
    out["compiled"] = dict(_fast.COMPILED)
    if profile and "pipeline" in stages:
        prof = cProfile.Profile()
        prof.enable()
        stages["pipeline"](bodies)
        prof.disable()
        buf = io.StringIO()
        st = pstats.Stats(prof, stream=buf)
        st.sort_stats("tottime").print_stats(18)
        st.sort_stats("cumulative").print_stats(14)
        # Paths relative to the checkout: the listing is meant to be quoted.
        out["profile"] = buf.getvalue().replace(str(REPO) + "/", "")
    return out


def run_child(n: int, pure: bool, profile: bool = False) -> dict[str, Any]:
    env = dict(os.environ)
    env.pop("CERTSTREAM_NO_EXTENSIONS", None)
    if pure:
        env["CERTSTREAM_NO_EXTENSIONS"] = "1"
    cmd = [sys.executable, "-m", "bench.ingest", "--child", "--entries", str(n)]
    if profile:
        cmd.append("--profile")
    res = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"ingest child failed ({res.returncode}):\n{res.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    return result


def run(report: Report, entries: int, pure_entries: int, profile: bool = False) -> None:
    report.say(f"## ingest: {entries} unique live40 entries (compiled), {pure_entries} (pure)")
    comp = run_child(entries, pure=False, profile=profile)
    pure = run_child(pure_entries, pure=True)
    loaded = ", ".join(f"{k}={'C' if v else 'py'}" for k, v in sorted(comp["compiled"].items()))
    report.say(f"compiled run loaded: {loaded or 'nothing'}")
    rates: dict[str, dict[str, float]] = {"compiled": {}, "pure": {}}
    for label, res in (("compiled", comp), ("pure", pure)):
        for stage, st in res["stages"].items():
            count = res["tile_entries"] if stage.startswith("tiles") else res["entries"]
            rates[label][stage] = count / st["cpu_s"] if st["cpu_s"] > 0 else 0.0
    for stage in comp["stages"]:
        final = stage == "pipeline"
        report.add(
            Figure(
                "ingest",
                f"{stage} (compiled)",
                rates["compiled"][stage],
                "entries/s/core",
                ">=" if final else "",
                TARGET_COMPILED if final else None,
            )
        )
        report.add(
            Figure("ingest", f"{stage} (pure)", rates["pure"].get(stage, 0.0), "entries/s/core")
        )
    # The acceptance ratio is about the whole pipeline; before it exists, the decode ratio
    # is still worth seeing, but judging it against the target would mislead.
    stage = "pipeline" if "pipeline" in rates["compiled"] else "decode"
    if rates["pure"].get(stage):
        final = stage == "pipeline"
        report.add(
            Figure(
                "ingest",
                f"{stage} compiled/pure ratio",
                rates["compiled"][stage] / rates["pure"][stage],
                "x",
                ">=" if final else "",
                TARGET_RATIO if final else None,
                "" if any(comp["compiled"].values()) else "no compiled module loaded",
            )
        )
    for label in ("compiled", "pure"):
        r = rates[label]
        if r.get("tiles: pipeline") and r.get("tiles: pipeline + hash check"):
            cost = 1e6 / r["tiles: pipeline + hash check"] - 1e6 / r["tiles: pipeline"]
            share = cost / (1e6 / r["tiles: pipeline"]) * 100
            report.add(Figure("ingest", f"tiles: hash check per entry ({label})", cost, "us",
                              note=f"{share:.1f} % of the tile pipeline"))
    if "pipeline, no stream wanted" in comp["stages"]:
        built = comp["stages"]["pipeline, no stream wanted"]["count"]
        report.add(Figure("ingest", "payloads built, no stream wanted", built, "payloads", "<=", 0))
    if profile and "profile" in comp:
        report.say("cProfile of the compiled pipeline (top functions):\n" + comp["profile"])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.ingest")
    ap.add_argument("--child", action="store_true", help="internal: measure and print JSON")
    ap.add_argument("--entries", type=int, default=20_000)
    ap.add_argument("--pure-entries", type=int, default=4_000)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.entries, args.profile)))
        return
    report = Report()
    run(report, args.entries, args.pure_entries, args.profile)
    print(report.markdown())


if __name__ == "__main__":
    main()
