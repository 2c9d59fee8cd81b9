"""permessage-deflate compressed once: wire bytes and CPU per compressed frame, on live40.

In one process, no server: every live40 payload (the Go server's lite, full and domains
frames) framed plain (``ws_frame``) and compressed (``compressed_frame``: deflate without
context takeover, RSV1 frame), as the hub does once per record and stream.  Wire/plain is
total frame bytes (headers included) compressed over plain; the targets are what
certstream-server-go v1.9.0 with ``compression_enabled`` put on the wire for the same set
(0.54 lite, 0.60 full, measured the same way).  CPU is ``time.process_time`` per frame, best
of 3 passes; with N clients a compressed frame costs this once, not N times.
"""

from __future__ import annotations

import json
import time

from bench.common import REPO, Figure, Report
from certstream.core.deflate import DEFLATE_LEVEL, compressed_frame
from certstream.core.frames import ws_frame

GOLDEN = REPO / "conformance" / "data" / "golden" / "go" / "live40"
GO_RATIO = {"lite": 0.54, "full": 0.60}


def _payloads(stream: str) -> list[bytes]:
    lines = (GOLDEN / f"{stream}.jsonl").read_text().splitlines()
    return [json.loads(line).encode() for line in lines if line]


def _cpu_us(fn: object, payloads: list[bytes], rounds: int) -> float:
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        for _ in range(rounds):
            for p in payloads:
                fn(p)  # type: ignore[operator]
        best = min(best, time.process_time() - t0)
    return best / (rounds * len(payloads)) * 1e6


def run(report: Report, rounds: int = 50) -> None:
    report.say(f"## deflate: live40 payloads, zlib level {DEFLATE_LEVEL}, no context takeover")
    for stream in ("lite", "full", "domains"):
        payloads = _payloads(stream)
        plain = sum(len(ws_frame(p)) for p in payloads)
        wire = sum(len(compressed_frame(p)) for p in payloads)
        target = GO_RATIO.get(stream)
        report.add(Figure("deflate", f"wire/plain, {stream}", wire / plain, "",
                          "<=" if target else "", target,
                          note=f"{plain / len(payloads):,.0f} -> {wire / len(payloads):,.0f} "
                               "bytes per frame"))
        report.add(Figure("deflate", f"CPU per compressed frame, {stream}",
                          _cpu_us(compressed_frame, payloads, rounds), "us",
                          note="once per record and stream, whatever the clients"))
        report.add(Figure("deflate", f"CPU per plain frame, {stream}",
                          _cpu_us(ws_frame, payloads, rounds * 10), "us"))
