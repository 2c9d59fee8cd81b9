"""/metrics carries the spec's series under their exact names, with the values a replay run
sent, summed over the ingest and both gunicorn workers: RFC 6962 logs (one of them a copy of
another, one serving a bad entry) and a static-ct log (whose first checkpoints fail); then a
worker and the ingest killed, restarted and counted, and nothing counted twice."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conformance import compare
from conformance.replay import ReplayServer, load_tiles_dir
from tests.support import RawWS, Server, http_get, run_server, sockets_on_port, wait_until

pytestmark = pytest.mark.slow

LIVE40 = compare.INPUTS / "live40"
TILED = compare.INPUTS / "synth11-tiled" / "tiles"
COPY, TILED_NAME = "Argon copy", "Fake tiled log"
SAMPLE = re.compile(r"^(certstream_[a-z_]+)(\{[^}]*\})? (\S+)$")


def _scrape(port: int) -> tuple[dict[str, float], str]:
    status, _, body = http_get(port, "/metrics")
    assert status == 200
    text = body.decode()
    samples = {}
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if m:
            samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return samples, text


def _replay() -> tuple[ReplayServer, dict[str, Any]]:
    """live40's two logs, a copy of the first, and synth11 as a static log: all empty until
    they grow."""
    manifest = json.loads((LIVE40 / "manifest.json").read_text())
    replay = ReplayServer()
    logs = []
    for log in manifest["logs"]:
        entries = json.loads((LIVE40 / log["entries"]).read_text())["entries"]
        replay.add_rfc6962_log(log["path"], entries, log["first_index"], visible=0)
        logs.append((log["name"], log["path"], log["first_index"], log["count"]))
        if log["path"] == "/argon2026h2/":
            replay.add_rfc6962_log("/copy/", entries, log["first_index"], visible=0)
            logs.append((COPY, "/copy/", log["first_index"], log["count"]))
    leaves, issuers = load_tiles_dir(TILED)
    replay.add_static_log("/tiled/", leaves, None, None, issuers, visible=0)
    replay.start()
    config: dict[str, Any] = {
        "protocols": {"api": True},
        "ct_log": {"poll_interval_ms": 200, "retry_initial_delay_ms": 100,
                   "retry_max_delay_ms": 500,
                   "static_ct_checkpoint_signature": "enforce"},
        "custom_logs": [{"name": name, "url": replay.url + path, "start_index": first,
                         "operator": name} for name, path, first, _count in logs],
        "static_logs": [{"name": TILED_NAME, "url": replay.url + "/tiled/", "start_index": 0,
                         "key": replay.log_info()["/tiled/"]["key"]}],
    }
    growth = {path: count for _n, path, _f, count in logs} | {"/tiled/": len(leaves)}
    return replay, {"config": config, "growth": growth}


def _frames(client: RawWS, n: int, srv: Server, timeout: float = 30.0) -> list[Any]:
    """The next ``n`` data frames of ``client``, within ``timeout`` in all."""
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        client.sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            got.append(json.loads(client.recv_data()))
        except TimeoutError:
            raise AssertionError(f"{len(got)} of {n} frames; server log:\n"
                                 f"{srv.log()[-6000:]}") from None
    return got


def _ingest_pid(srv: Server) -> int | None:
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"certstream.shell.ingest" in cmd and \
                    int(stat[stat.rindex(")") + 2:].split()[1]) == srv.proc.pid:
                return int(pid)
    return None


def test_spec_series_match_what_a_replay_run_sent() -> None:
    replay, setup = _replay()
    clients: list[RawWS] = []
    try:
        # Nimbus serves its first entry as garbage (a leaf no decoder accepts), forever;
        # the static log's first two checkpoints fail.
        replay.inject("/nimbus2026/", "garbage_entry")
        replay.inject("/tiled/", "500", count=2, match="checkpoint")
        with run_server(setup["config"], workers=2, ingest=True, gunicorn=True) as srv:
            assert wait_until(lambda: len(srv.worker_pids()) == 2, 30), srv.log()
            while len(clients) < 4 or not all(
                    sockets_on_port(pid, srv.port) for pid in srv.worker_pids()):
                clients.append(RawWS(srv.port, "/", timeout=30))
                assert len(clients) < 32
            time.sleep(1.5)  # both workers' WANT reach the ingest
            for path, count in setup["growth"].items():
                replay.grow(path, count)

            expected = 20 + 19 + 11  # argon (or its copy), nimbus but its bad entry, tiled
            frames = [_frames(c, expected, srv) for c in clients]
            sent = Counter(f["data"]["source"]["name"] for f in frames[0])
            assert len(replay.garbage("/nimbus2026/")) == 1 and sum(sent.values()) == expected

            tiles = [t for _m, t in replay.requests("/tiled/") if "/tile/data/" in t]
            issuers = {t for _m, t in replay.requests("/tiled/") if "/issuer/" in t}
            want = {
                f'certstream_messages_sent{{log="{name}"}}': float(sent[name])
                for name in ("Google 'Argon2026h2'", COPY, "Cloudflare 'Nimbus2026'",
                             TILED_NAME)
            } | {
                'certstream_parse_failures{log="Cloudflare \'Nimbus2026\'"}': 1.0,
                'certstream_parse_failures{log="Google \'Argon2026h2\'"}': 0.0,
                "certstream_duplicates_filtered": 20.0,  # the copy's entries, or argon's
                "certstream_dedup_cache_size": float(expected),
                "certstream_ct_logs_count": 3.0,
                "certstream_static_ct_logs_count": 1.0,
                f'certstream_static_ct_tiles_fetched{{log="{TILED_NAME}"}}': float(len(tiles)),
                f'certstream_static_ct_entries_parsed{{log="{TILED_NAME}"}}': 11.0,
                f'certstream_static_ct_checkpoint_errors{{log="{TILED_NAME}"}}': 2.0,
                f'certstream_static_ct_parse_failures{{log="{TILED_NAME}"}}': 0.0,
                "certstream_issuer_cache_size": float(len(issuers)),
                "certstream_worker_panics": 0.0,
                # Ours, summed over both workers' clients.
                'certstream_frames_sent_total{stream="lite"}': float(expected * len(clients)),
            }
            assert sent[TILED_NAME] == 11 and sent[COPY] + sent["Google 'Argon2026h2'"] == 20
            assert tiles and issuers

            def matches() -> bool:
                got = _scrape(srv.port)[0]
                return all(got.get(k) == v for k, v in want.items())

            wait_until(matches, 15)  # the ingest publishes its gauges every 2 s
            got, text = _scrape(srv.port)
            assert {k: got.get(k) for k in want} == want
            for name in ("messages_sent", "parse_failures", "worker_panics",
                         "static_ct_tiles_fetched", "duplicates_filtered"):
                assert f"# TYPE certstream_{name} counter" in text
                assert f"certstream_{name}_total" not in text

            # A worker and the ingest die: both are restarted and counted, and what the
            # dead ingest counted stays in the sums (not counted twice by its successor).
            time.sleep(1.0)  # positions saved (after each delivered batch)
            worker, ingest = srv.worker_pids()[0], _ingest_pid(srv)
            assert ingest is not None
            os.kill(worker, signal.SIGKILL)
            os.kill(ingest, signal.SIGKILL)
            assert wait_until(lambda: _ingest_pid(srv) not in (None, ingest), 30), srv.log()
            assert wait_until(lambda: len(srv.worker_pids()) == 2
                              and worker not in srv.worker_pids(), 30), srv.log()

            def restarted() -> bool:
                got = _scrape(srv.port)[0]
                return (got.get("certstream_worker_panics") == 2.0
                        and got.get("certstream_ct_logs_count") == 3.0)

            assert wait_until(restarted, 20), _scrape(srv.port)[1]
            got, _ = _scrape(srv.port)
            assert got['certstream_restarts_total{process="worker"}'] == 1.0
            assert got['certstream_restarts_total{process="ingest"}'] == 1.0
            for key in ("certstream_duplicates_filtered",
                        'certstream_messages_sent{log="Fake tiled log"}'):
                assert got[key] == want[key]
    finally:
        for client in clients:
            client.close()
        replay.stop()
