"""The whole server against the peers' goldens: replay log -> ingest -> feed -> worker -> client.

``test_conformance.py`` proves that the message builder reproduces each peer's golden frames;
this test proves that the running server (the ``certstream`` command with its real ingest,
following the recorded ``live40`` set served by the replay CT log) delivers exactly those
frames on every endpoint: the three WebSocket paths and the three SSE variants, each entry
once, in log order per log.  A frame whose golden matches our builder byte for byte must
match the server's frame byte for byte too; the few frames that differ by a documented
deviation (``DEVIATIONS.md``) must equal our builder's frame instead.  ``seen`` is the only
token normalized.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
import yaml
from tests.support import RawWS, SSEClient, _accepts, free_port, run_server, wait_until

from conformance import compare
from conformance.replay import ReplayServer

WS_PATHS = {"/": "lite", "/full-stream": "full", "/domains-only": "domains"}
SSE_TARGETS = {"/sse": "lite", "/sse?stream=full": "full", "/sse?stream=domains": "domains"}
ROOT = Path(__file__).resolve().parent.parent
_SEEN = re.compile(r'"seen":-?[0-9][0-9.eE+-]*')


def _norm(text: str) -> str:
    return _SEEN.sub('"seen":0', text)


def _key(text: str) -> tuple[str, int]:
    data = json.loads(text)["data"]
    return data["source"]["url"], int(data["cert_index"])


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["go", "calidog", "rust"])
def test_server_delivers_the_golden_frames_on_every_endpoint(profile: str) -> None:
    logs = compare.load_set("live40")
    manifest = json.loads((compare.INPUTS / "live40" / "manifest.json").read_text())
    golden = compare.load_golden(profile, "live40")
    # Which golden frames our builder matches exactly (the rest are documented deviations).
    status = {
        (r.stream, f.log_url, f.index): f.status
        for r in compare.compare_set(profile, "live40")
        for f in r.frames
    }
    offline = compare._Ours(profile, "live40", logs).frames

    replay = ReplayServer()
    for log in manifest["logs"]:
        entries = json.loads((compare.INPUTS / "live40" / log["entries"]).read_text())["entries"]
        replay.add_rfc6962_log(log["path"], entries, log["first_index"], visible=0)
    replay.start()
    config = {
        "output": {"profile": profile},
        "ct_log": {"poll_interval_ms": 200},
        "custom_logs": [
            {"name": log["name"], "url": replay.url + log["path"],
             "start_index": log["first_index"], "operator": log["operator"]}
            for log in manifest["logs"]
        ],
    }
    total = sum(len(log.entries) for log in logs)
    try:
        with run_server(config, ingest=True) as srv:
            ws = {path: RawWS(srv.port, path, timeout=30) for path in WS_PATHS}
            sse = {target: SSEClient(srv.port, target, timeout=30) for target in SSE_TARGETS}
            try:
                time.sleep(1.0)  # the worker's WANT reaches the ingest before entries exist
                for log in manifest["logs"]:
                    replay.grow(log["path"], log["count"])
                received: dict[tuple[str, str], list[str]] = {}
                for path, stream in WS_PATHS.items():
                    frames = [ws[path].recv_data().decode() for _ in range(total)]
                    received[("ws", stream)] = frames
                for target, stream in SSE_TARGETS.items():
                    events = [sse[target].next_event() for _ in range(total)]
                    assert all(e is not None for e in events), target
                    received[("sse", stream)] = [e[1].decode() for e in events if e]
            finally:
                for client in (*ws.values(), *sse.values()):
                    client.close()
    finally:
        replay.stop()

    def ours(text: str) -> str:
        # The server read the replay log's URLs; the comparer's frames carry its own base.
        return text.replace(replay.url, compare.OUR_BASE)

    for transport in ("ws", "sse"):
        lite_keys = [_key(ours(t)) for t in received[(transport, "lite")]]
        # Each entry exactly once, in index order within each log.
        assert len(set(lite_keys)) == total == len(lite_keys)
        by_log: dict[str, list[int]] = defaultdict(list)
        for url, index in lite_keys:
            by_log[url].append(index)
        for url, indices in by_log.items():
            assert indices == sorted(indices), (transport, url)
        for stream in ("lite", "full", "domains"):
            texts = [ours(t) for t in received[(transport, stream)]]
            # Domains frames carry no index: one broadcast feeds every stream in order.
            keys = lite_keys if stream == "domains" else [_key(t) for t in texts]
            assert keys == lite_keys, (transport, stream)
            exact = 0
            for key, text in zip(keys, texts, strict=True):
                built = offline[key][stream]
                if transport == "sse":
                    built = built.rstrip("\n")  # SSE data lines cannot end in a newline
                assert _norm(text) == _norm(built), (transport, stream, key)
                if status[(stream, *key)] == "match":
                    gold = golden.frames[stream][_golden_position(golden, stream, key)]
                    if transport == "sse":
                        gold = gold.rstrip("\n")
                    assert _norm(text) == _norm(gold), (transport, stream, key)
                    exact += 1
                else:
                    assert status[(stream, *key)] == "deviation", (stream, key)
            # Guards against a comparison that silently checked nothing.
            assert exact >= total - 5, (transport, stream, exact)


def _golden_position(golden: compare.Golden, stream: str, key: tuple[str, int]) -> int:
    lite_keys = [_key(t) for t in golden.frames["lite"]]
    keys = lite_keys if stream == "domains" else [_key(t) for t in golden.frames[stream]]
    return keys.index(key)


def _sockets_per_process(pids: list[int], port: int) -> dict[int, int]:
    """Established TCP connections on ``port`` held by each process, read from /proc."""
    inodes: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == port and fields[3] == "01":  # 01 = ESTABLISHED
                    inodes[fields[9]] = local_port
    counts = {}
    for pid in pids:
        n = 0
        fd_dir = Path(f"/proc/{pid}/fd")
        for fd in fd_dir.iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                n += 1
        counts[pid] = n
    return counts


@pytest.mark.slow
def test_gunicorn_two_workers_one_ingest_every_entry_everywhere(tmp_path: Path) -> None:
    """``gunicorn -c gunicorn.conf.py`` with 2 workers: clients on both workers get every
    entry, and the CT log sees each get-entries range requested once (one ingest)."""
    manifest = json.loads((compare.INPUTS / "live40" / "manifest.json").read_text())
    replay = ReplayServer()
    for log in manifest["logs"]:
        entries = json.loads((compare.INPUTS / "live40" / log["entries"]).read_text())["entries"]
        replay.add_rfc6962_log(log["path"], entries, log["first_index"], visible=0)
    replay.start()
    port = free_port()
    config = {
        "host": "127.0.0.1",
        "port": port,
        "workers": 2,
        "feed_socket": str(tmp_path / "feed.sock"),
        "ct_log": {"log_list_urls": [], "state_file": str(tmp_path / "state.json"),
                   "poll_interval_ms": 200},
        "custom_logs": [
            {"name": log["name"], "url": replay.url + log["path"],
             "start_index": log["first_index"], "operator": log["operator"]}
            for log in manifest["logs"]
        ],
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CERTSTREAM_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env["CERTSTREAM_CONFIG"] = str(tmp_path / "config.yaml")
    gunicorn = Path(sys.executable).parent / "gunicorn"
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen([str(gunicorn), "-c", str(ROOT / "gunicorn.conf.py")],
                                cwd=tmp_path, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    total = sum(int(log["count"]) for log in manifest["logs"])
    clients: list[RawWS] = []
    try:
        up = wait_until(lambda: bool(_workers(proc.pid, 2)) and _accepts(port), 30)
        assert up, log_path.read_text()
        workers = _workers(proc.pid, 2)
        # Connect until both workers hold clients (the kernel hands each new connection to
        # whichever worker accepts first), at most 64 clients.
        while len(clients) < 64:
            clients.append(RawWS(port, "/", timeout=30))
            counts = _sockets_per_process(workers, port)
            if len(clients) >= 8 and all(counts.values()):
                break
        counts = _sockets_per_process(workers, port)
        assert all(counts.values()), counts
        time.sleep(1.0)  # both workers' WANT masks reach the ingest
        for log in manifest["logs"]:
            replay.grow(log["path"], log["count"])
        expected = None
        for client in clients:
            got = [_key(client.recv_data().decode()) for _ in range(total)]
            assert len(set(got)) == total
            expected = expected or got
            assert got == expected  # every client, on either worker, the same sequence
        for log in manifest["logs"]:
            ranges = [
                t.split("?", 1)[1] for _m, t in replay.requests(log["path"]) if "get-entries" in t
            ]
            assert ranges, log["path"]
            assert len(ranges) == len(set(ranges)), ranges  # no range asked twice
            covered: set[int] = set()
            for r in ranges:
                params = dict(p.split("=") for p in r.split("&"))
                covered.update(range(int(params["start"]), int(params["end"]) + 1))
            first = int(log["first_index"])
            assert covered == set(range(first, first + int(log["count"])))
    finally:
        for client in clients:
            client.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        replay.stop()
    assert "Traceback" not in log_path.read_text(), log_path.read_text()


def _workers(master: int, n: int) -> list[int]:
    """The master's worker pids (its children other than the ingest), once there are ``n``."""
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True,
                         check=False)
    pids = []
    for pid in (int(p) for p in out.stdout.split()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"certstream.shell.ingest" not in cmdline:
            pids.append(pid)
    return pids if len(pids) == n else []
