"""The ingest process end to end: a replay CT log with faults, the real ingest subprocess,
and a feed subscriber standing in for a worker.

The acceptance test of the ingest: every index of every log, from its configured start to
its end, arrives exactly once or is reported as skipped (only the replay log's permanent
garbage entries may be); a log that stalls does not stall the others; and a kill -9 in the
middle followed by a restart on the same state file loses nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import gevent
import pytest
import yaml
from conformance.replay import (
    ENTRIES_FAULTS,
    FAULT_KINDS,
    TILE_FAULTS,
    TRANSPORT_FAULTS,
    ReplayServer,
)
from conformance.synth import make_test_signer, unique_entries
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from prometheus_client import REGISTRY
from tests.support.data import ROOT
from tests.support.feed import FakeFeed
from tests.support.wait import wait_until

from certstream.config import settings_from_dict
from certstream.core import loglist
from certstream.core.dedup import DedupRing
from certstream.core.messages import STREAM_LITE, Payloads
from certstream.errors import DecodeError
from certstream.shell.feed import FULL, FeedSubscriber
from certstream.shell.followers import LogFollower, make_follower
from certstream.shell.httpclient import HTTPClient
from certstream.shell.ingest import Ingest, specs_from_settings
from certstream.shell.pipeline import (
    FollowerSettings,
    IssuerCache,
    LogSpec,
    Pipeline,
    Politeness,
)
from certstream.shell.state import StateStore

LIVE40 = ROOT / "conformance" / "data" / "inputs" / "live40"
NAVIGLI = ROOT / "tests" / "fixtures" / "ct" / "static-ct" / "navigli2025h2"

SKIP_RE = re.compile(r"SKIP log=(\S+) index=(\d+)")
START_RE = re.compile(r"log (\S+): starting at index (\d+)")


def base_entries() -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for name in ("argon2026h2.get-entries.json", "nimbus2026.get-entries.json"):
        out += json.loads((LIVE40 / name).read_text())["entries"]
    return out


class Collector:
    """A worker's view of the feed: every full payload, by (source.url, cert_index)."""

    def __init__(self, sock: str) -> None:
        self.got: list[tuple[str, int]] = []
        self.states: list[dict[str, Any]] = []
        self.examples = 0
        self.sub = FeedSubscriber(sock, self.on_entry, self.states.append, self.on_example)
        self.sub.set_wanted(FULL)
        # Asked before the ingest has any entry: the sample follows the first one.
        self.sub.want_example(True)
        self.greenlet = gevent.spawn(self.sub.run)

    def on_entry(
        self, mask: int, lite: bytes | None, full: bytes | None, dom: bytes | None
    ) -> None:
        assert full is not None and mask & FULL
        data = json.loads(full)["data"]
        self.got.append((data["source"]["url"].rstrip("/"), data["cert_index"]))

    def on_example(self, lite: bytes) -> None:
        self.examples += 1

    def count(self, url: str) -> int:
        return sum(1 for u, _ in self.got if u == url)

    def indices(self, url: str) -> list[int]:
        return [i for u, i in self.got if u == url]

    def latest_status(self, name: str) -> str | None:
        for st in reversed(self.states):
            for entry in st.get("logs", []):
                if entry["name"] == name:
                    return str(entry["status"])
        return None

    def close(self) -> None:
        self.sub.close()
        self.greenlet.kill(block=False)


class IngestProc:
    """``python -m certstream.shell.ingest`` with a YAML config; stderr kept in a file."""

    def __init__(self, tmp: Path, cfg: dict[str, Any], tag: str) -> None:
        self.cfg_path = tmp / "config.yaml"
        self.cfg_path.write_text(yaml.safe_dump(cfg))
        self.log_path = tmp / f"ingest-{tag}.log"
        env = dict(os.environ, CERTSTREAM_CONFIG=str(self.cfg_path))
        env.pop("CERTSTREAM_MASTER_PID", None)
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "certstream.shell.ingest"],
            env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=str(tmp),
        )

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int | None:
        wait_until(lambda: self.proc.poll() is not None, timeout)
        return self.proc.poll()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()

    def terminate(self) -> int | None:
        self.proc.send_signal(signal.SIGTERM)
        rc = self.wait(15)
        self.kill()
        return rc


def base_config(tmp: Path, sock: str) -> dict[str, Any]:
    return {
        "log_level": "info",
        "feed_socket": sock,
        "output": {"profile": "go"},
        "ct_log": {
            "log_list_urls": [],
            "state_file": str(tmp / "state.json"),
            "state_flush_secs": 0.3,
            "batch_size": 64,
            "fetch_concurrency": 4,
            "poll_interval_ms": 100,
            "request_timeout_secs": 1,
            "retry_initial_delay_ms": 20,
            "retry_max_delay_ms": 300,
            "healthy_threshold": 2,
            "unhealthy_threshold": 3,
            "default_operator_rate_limit_ms": 0,
            "static_ct_checkpoint_signature": "enforce",
        },
    }


@pytest.fixture
def replay() -> Iterator[ReplayServer]:
    # A "timeout" fault holds its answer 2 s, past the ingest's 1 s request timeout.
    srv = ReplayServer(hold_seconds=2.0)
    yield srv
    srv.stop()


@pytest.fixture
def tmp_short() -> Iterator[Path]:
    # Unix socket paths are limited to ~100 bytes; pytest's tmp paths can be longer.
    path = Path(tempfile.mkdtemp(prefix="cs-ingest-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


RFC_LOGS = {  # path: (first index served, configured start index, seed)
    "/a/": (5000, 5000, 11),
    "/b/": (0, 0, 12),
    "/c/": (123_456, 123_466, 13),
}
PER_LOG = 900
STATIC_START = 5
STATIC_TOTAL = 1024


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_faults_growth_stall_and_kill_9_deliver_every_index_once(
    replay: ReplayServer, tmp_short: Path
) -> None:
    rng = random.Random(20261125)
    base = base_entries()
    for path, (first, _start, seed) in RFC_LOGS.items():
        replay.add_rfc6962_log(path, unique_entries(base, PER_LOG, seed), first, visible=150)
    signer = make_test_signer(3)
    replay.add_static_log("/s/", NAVIGLI, None, signer, None, visible=300)
    replay.start()
    url = replay.url
    names = {"/a/": "A", "/b/": "B", "/c/": "C", "/s/": "S"}

    sock = str(tmp_short / "feed.sock")
    cfg = base_config(tmp_short, sock)
    cfg["custom_logs"] = [
        {"name": names[p], "url": url + p, "start_index": start, "operator": f"op-{p[1]}"}
        for p, (_f, start, _s) in RFC_LOGS.items()
    ]
    cfg["static_logs"] = [
        {"name": "S", "url": url + "/s/", "start_index": STATIC_START, "key": signer.key_b64}
    ]
    # The first partial tile request 404s for sure (the chaos may not hit one in time).
    replay.inject("/s/", "partial_404")
    col = Collector(sock)
    runs = [IngestProc(tmp_short, cfg, "1")]
    logs_text: list[str] = []

    # C keeps its last 100 entries back until it is stalled, so that the stalled C has
    # data to fetch (a caught-up log only polls its tree head, which still answers).
    held_back = {"/c/": 100}

    def grow_some(paths: list[str]) -> None:
        for p in paths:
            total = PER_LOG if p != "/s/" else STATIC_TOTAL
            first = RFC_LOGS[p][0] if p in RFC_LOGS else 0
            room = first + total - held_back.get(p, 0) - replay.tree_size(p)
            if room > 0:
                replay.grow(p, min(room, rng.randint(5, 25)))

    chaos_on = [True]
    injected: Counter[str] = Counter()
    # Every fault kind that applies to each log, in a shuffled cycle, so that all of them
    # are exercised however long the run takes.
    pairs = [
        (p, k)
        for p in names
        for k in sorted(TRANSPORT_FAULTS | (ENTRIES_FAULTS if p != "/s/" else TILE_FAULTS))
    ]

    def chaos() -> None:
        while chaos_on[0]:
            rng.shuffle(pairs)
            for p, kind in pairs:
                if not chaos_on[0]:
                    return
                replay.inject(p, kind)
                injected[kind] += 1
                grow_some(list(names))
                gevent.sleep(0.12)

    def expected(p: str, end: int | None = None) -> set[int]:
        if p == "/s/":
            return set(range(STATIC_START, STATIC_TOTAL if end is None else end))
        first, start, _ = RFC_LOGS[p]
        return set(range(start, first + PER_LOG if end is None else end))

    def read_up_to(p: str, end: int | None = None) -> bool:
        """Every index of the log below ``end`` delivered or permanently garbage."""
        got = set(col.indices(url + p.rstrip("/"))) | set(replay.garbage(p))
        return got >= expected(p, end)

    try:
        wait_until(col.sub.connected.is_set, 60, "the subscriber to connect")
        chaos_g = gevent.spawn(chaos)

        # -- kill -9 in the middle of the run, restart on the same state file ---------
        state_file = tmp_short / "state.json"

        def saved_all() -> bool:
            try:
                saved = json.loads(state_file.read_text())["logs"]
            except (OSError, ValueError):
                return False
            return all(url + p in saved for p in names)

        # Mid-run: every log has a saved position and the trees are still growing.
        wait_until(lambda: len(col.got) >= 600 and saved_all(), 60,
                   "600 entries and a saved position for every log before the kill")
        runs[0].kill()
        run1 = Counter(u for u, _ in col.got)
        run1_last = {u: max(col.indices(u)) for u in run1}
        state_at_kill = json.loads(state_file.read_text())
        logs_text.append(runs[0].text())
        gevent.sleep(0.3)
        runs.append(IngestProc(tmp_short, cfg, "2"))

        # -- one log stalls (its data requests hang); the others keep flowing --------
        wait_until(lambda: len(col.got) > sum(run1.values()) + 100, 60, "progress after restart")
        replay.hold("/c/")
        held_back.clear()
        grow_some(["/a/", "/b/", "/c/"])
        targets = {p: replay.tree_size(p) for p in ("/a/", "/b/")}
        wait_until(
            lambda: all(read_up_to(p, targets[p]) for p in targets),
            60,
            "A and B to catch up while C is stalled",
        )
        wait_until(lambda: col.latest_status("C") in ("degraded", "unhealthy"), 60,
                   "C reported as failing")
        replay.release("/c/")

        # -- stop the faults, let every log reach its end -----------------------------
        wait_until(lambda: set(injected) == FAULT_KINDS, 60, "every fault kind injected")
        chaos_on[0] = False
        chaos_g.join(timeout=5)
        for p in names:
            first = RFC_LOGS[p][0] if p in RFC_LOGS else 0
            total = PER_LOG if p != "/s/" else STATIC_TOTAL
            room = first + total - replay.tree_size(p)
            if room:
                replay.grow(p, room)

        wait_until(lambda: all(read_up_to(p) for p in names), 120, "every log read to its end")
        wait_until(lambda: all(col.latest_status(n) == "healthy" for n in names.values()), 60,
                   "every log healthy again")
        assert runs[1].terminate() == 0
        logs_text.append(runs[1].text())
    finally:
        for r in runs:
            r.kill()
        col.close()

    # -- what arrived ---------------------------------------------------------------------
    skipped: dict[str, set[int]] = {}
    for text in logs_text:
        for name, idx in SKIP_RE.findall(text):
            skipped.setdefault(name, set()).add(int(idx))
    for p, name in names.items():
        u = url + p.rstrip("/")
        got = col.indices(u)
        dups = [i for i, n in Counter(got).items() if n > 1]
        assert not dups, f"{name}: delivered twice: {dups[:10]}"
        assert got == sorted(got), f"{name}: out of order"
        missing = expected(p) - set(got)
        garbage = set(replay.garbage(p))
        # Only permanent garbage may be missing, and each missing one was reported.
        assert missing <= garbage, f"{name}: lost {sorted(missing - garbage)[:10]}"
        assert missing <= skipped.get(name, set()), f"{name}: skipped silently"
        assert set(got) <= expected(p), f"{name}: delivered outside its range"
    assert sum(len(replay.garbage(p)) for p in RFC_LOGS) >= 1, "no garbage fault landed"
    # The faults reached the ingest and were handled as what they are.
    text = "\n".join(logs_text)
    for evidence in ("timeout", "http_429", "http_500", "connection", "bad_response", "empty",
                     "bad_entry", "partial"):
        assert evidence in text, f"no sign of {evidence} faults in the ingest's log"

    # The restart resumed at or before what run 1 had delivered (nothing skipped), from
    # the state file, not from the configured start.
    starts2 = {n: int(i) for n, i in START_RE.findall(logs_text[1])}
    for p, name in names.items():
        u = url + p.rstrip("/")
        if u in run1_last:
            assert starts2[name] <= run1_last[u] + 1, f"{name}: restart skipped ahead"
            saved = state_at_kill["logs"].get(url + p)
            configured = STATIC_START if p == "/s/" else RFC_LOGS[p][1]
            assert starts2[name] == (configured if saved is None else saved["next_index"])
    assert col.examples >= 1

    # A clean stop wrote the final positions.
    final = json.loads((tmp_short / "state.json").read_text())["logs"]
    for p in RFC_LOGS:
        assert final[url + p]["next_index"] == RFC_LOGS[p][0] + PER_LOG
    assert final[url + "/s/"]["next_index"] == STATIC_TOTAL


@pytest.mark.slow
@pytest.mark.timeout(200)
def test_dedup_across_logs_and_unreachable_log(replay: ReplayServer, tmp_short: Path) -> None:
    """The same certificates in two logs are emitted once; a dead log is unhealthy and
    does not keep the others from running."""
    entries = unique_entries(base_entries(), 120, 99)
    replay.add_rfc6962_log("/x/", entries, 0)
    replay.add_rfc6962_log("/y/", entries, 700)
    replay.start()
    sock = str(tmp_short / "feed.sock")
    cfg = base_config(tmp_short, sock)
    cfg["custom_logs"] = [
        {"name": "X", "url": replay.url + "/x/", "start_index": 0},
        {"name": "Y", "url": replay.url + "/y/", "start_index": 700},
        # Nothing listens there: the ingest must keep running and call it unhealthy.
        {"name": "Dead", "url": "http://127.0.0.1:9/", "start_index": 0},
    ]
    col = Collector(sock)
    ing = IngestProc(tmp_short, cfg, "dedup")
    try:
        wait_until(lambda: col.latest_status("Dead") == "unhealthy", 60, "Dead unhealthy")
        wait_until(lambda: len(col.got) >= 120, 60, "120 entries")

        def both_read() -> bool:
            st = col.states[-1] if col.states else {"logs": []}
            nxt = {e["name"]: e["next_index"] for e in st["logs"]}
            return nxt.get("X") == 120 and nxt.get("Y") == 820

        wait_until(both_read, 60, "both logs read to the end")
        gevent.sleep(0.5)
        assert len(col.got) == 120, "a certificate served by two logs was emitted twice"
        assert ing.proc.poll() is None
        assert ing.terminate() == 0
    finally:
        ing.kill()
        col.close()


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_exits_when_parent_dies(tmp_short: Path) -> None:
    cfg = base_config(tmp_short, str(tmp_short / "feed.sock"))
    (tmp_short / "config.yaml").write_text(yaml.safe_dump(cfg))
    parent_code = (
        "import os, subprocess, sys, time\n"
        "env = dict(os.environ, CERTSTREAM_MASTER_PID=str(os.getpid()))\n"
        "p = subprocess.Popen([sys.executable, '-m', 'certstream.shell.ingest'], env=env)\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    env = dict(os.environ, CERTSTREAM_CONFIG=str(tmp_short / "config.yaml"))
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code], env=env, stdout=subprocess.PIPE, text=True,
        cwd=str(tmp_short),
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    try:
        wait_until((tmp_short / "feed.sock").exists, 60, "the ingest to open its feed socket")
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 60
        while True:
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                break
            # A zombie counts as gone: it has exited and waits for init to reap it.
            status = Path(f"/proc/{child}/status")
            if status.exists() and "zombie" in status.read_text():
                break
            assert time.monotonic() < deadline, "ingest outlived its parent"
            time.sleep(0.1)
    finally:
        parent.kill()
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)


def test_bad_config_is_one_line_and_exit_2(tmp_short: Path) -> None:
    (tmp_short / "config.yaml").write_text("ct_log:\n  fetch_concurrency: 99\n")
    env = dict(os.environ, CERTSTREAM_CONFIG=str(tmp_short / "config.yaml"))
    r = subprocess.run(
        [sys.executable, "-m", "certstream.shell.ingest"], env=env, capture_output=True,
        text=True, timeout=60, check=False, cwd=str(tmp_short),
    )
    assert r.returncode == 2
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "fetch_concurrency" in lines[0] and "99" in lines[0]


def test_specs_from_settings() -> None:
    s = settings_from_dict({
        "custom_logs": [{"name": "A", "url": "https://a.example/log", "start_index": 5}],
        "static_logs": [{"name": "S", "url": "https://s.example/mon/", "key": make_test_signer(
            1).key_b64}],
    })
    a, st = specs_from_settings(s)
    assert (a.key, a.url, a.kind, a.start_index) == (
        "https://a.example/log/", "https://a.example/log/", "rfc6962", 5)
    assert st.kind == "static" and st.origin == "s.example/mon"
    assert st.spki == make_test_signer(1).spki_der
    off = settings_from_dict({
        "ct_log": {"rfc6962_enabled": False},
        "custom_logs": [{"name": "A", "url": "https://a.example/log"}],
    })
    assert specs_from_settings(off) == []


class _ListHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    served: dict[str, bytes] = {}

    def do_GET(self) -> None:
        body = self.served.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.timeout(120)
def test_discovery_adds_and_retires_logs_without_restart(
    replay: ReplayServer, tmp_short: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    list_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = list_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    monkeypatch.setattr(loglist, "google_pubkey_pem", lambda: pem)
    entries = unique_entries(base_entries(), 20, 5)
    signers = {"/a/": make_test_signer(21), "/b/": make_test_signer(22)}
    for path in signers:
        replay.add_rfc6962_log(path, entries, 0)
    replay.start()

    usable = {"usable": {"timestamp": "2025-01-01T00:00:00Z"}}
    readonly = {"readonly": {"timestamp": "2025-06-01T00:00:00Z",
                             "final_tree_head": {"tree_size": 10, "sha256_root_hash": ""}}}

    def publish_list(paths: list[str], good_sig: bool = True, ro: bool = False) -> None:
        doc = {"version": "1", "operators": [{"name": "Test Op", "email": [], "logs": [
            {"description": f"Log {p}", "log_id": signers[p].log_id_b64,
             "key": signers[p].key_b64, "url": replay.url + p, "mmd": 86400,
             "state": readonly if ro else usable}
            for p in paths
        ]}]}
        body = json.dumps(doc).encode()
        sig = list_key.sign(body, padding.PKCS1v15(), hashes.SHA256())
        _ListHandler.served = {"/log_list.json": body,
                               "/log_list.sig": sig if good_sig else b"\x00" * len(sig)}

    srv = ThreadingHTTPServer(("127.0.0.1", 0), _ListHandler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    publish_list(["/a/"])
    settings = settings_from_dict({
        "feed_socket": str(tmp_short / "feed.sock"),
        "ct_log": {
            # The second list never answers: the first is used regardless.
            "log_list_urls": [f"http://127.0.0.1:{srv.server_address[1]}/log_list.json",
                              f"http://127.0.0.1:{srv.server_address[1]}/missing.json"],
            "log_list_refresh_secs": 1,
            "state_file": str(tmp_short / "state.json"),
            "poll_interval_ms": 100,
            "default_operator_rate_limit_ms": 0,
        },
    })
    ing = Ingest(settings, str(tmp_short / "feed.sock"))
    ing.start()
    try:
        a_key = replay.url + "/a/"
        wait_until(lambda: set(ing.followers) == {a_key}, 45, "log A discovered")
        wait_until(lambda: ing.followers[a_key].next_index is not None, 45, "A started")
        # A turns readonly: its follower is restarted with the final size as its end.
        publish_list(["/a/"], ro=True)
        wait_until(lambda: ing.followers[a_key].spec.stop_at == 10, 45, "A readonly")
        publish_list(["/b/"])
        wait_until(lambda: set(ing.followers) == {replay.url + "/b/"}, 45,
                   "A retired and B followed")
        assert ing.followers[replay.url + "/b/"].spec.name == "Log /b/"
        # Requests are counted per log and status.
        ok = REGISTRY.get_sample_value(
            "certstream_http_requests_total", {"log": "Log /a/", "code": "200"}
        )
        assert ok is not None and ok >= 1
        # A list whose signature fails is not used: B keeps running.
        publish_list([], good_sig=False)
        gevent.sleep(2.5)
        assert set(ing.followers) == {replay.url + "/b/"}
    finally:
        ing.stop()
        srv.shutdown()
        srv.server_close()


# -- followers in-process, with a fake feed ------------------------------------------------


class PickyBuilder:
    """Payloads naming the index; a bug (RuntimeError) at one index, a DecodeError at another."""

    def __init__(self, bug_at: int, bad_at: int) -> None:
        self.bug_at, self.bad_at = bug_at, bad_at

    def build(self, entry: Any, source: Any, seen: float, streams: int) -> Payloads:
        if entry.index == self.bug_at:
            raise RuntimeError("builder bug")
        if entry.index == self.bad_at:
            raise DecodeError("unparseable certificate", index=entry.index)
        text = str(entry.index).encode()
        return Payloads(
            text if streams & STREAM_LITE else None, text if streams & FULL else None, None
        )


def make_pipeline(feed: FakeFeed, builder: Any, tmp: Path) -> tuple[Pipeline, StateStore]:
    store = StateStore(str(tmp / "state.json"), grace=0.0)
    return Pipeline(feed, builder, DedupRing(1000, 900.0), store,
                    workers_connected=feed.connected), store


def follower_for(
    replay: ReplayServer, path: str, pipeline: Pipeline, **spec_kw: Any
) -> LogFollower:
    url = replay.url + path
    spec = LogSpec(url, path.strip("/").upper(), url, "rfc6962", **spec_kw)
    cfg = FollowerSettings(batch_size=16, fetch_concurrency=3, poll_interval=0.05,
                           retry_initial=0.02, retry_max=0.1)
    return make_follower(
        spec, cfg, http=HTTPClient("certstream-test", 2.0), pipeline=pipeline,
        politeness=Politeness(0.0, {}), issuers=IssuerCache(HTTPClient("t")),
    )


@pytest.mark.timeout(120)
def test_one_bad_certificate_costs_one_entry_even_a_builder_bug(
    replay: ReplayServer, tmp_short: Path
) -> None:
    replay.add_rfc6962_log("/p/", unique_entries(base_entries(), 50, 31), 0)
    replay.start()
    feed = FakeFeed(wanted=FULL)
    pipeline, store = make_pipeline(feed, PickyBuilder(bug_at=7, bad_at=9), tmp_short)
    f = follower_for(replay, "/p/", pipeline, start_index=0)
    f.start()
    try:
        wait_until(lambda: f.next_index == 50, 45, "the log read to its end")
    finally:
        f.stop()
    assert [i for _k, i, _p in feed.items] == [i for i in range(50) if i not in (7, 9)]
    assert f.skipped == 2 and f.health.status == "healthy"
    # Nobody asked for a sample: none was built, and nobody wants lite.
    assert not feed.examples and all(p.lite is None for _k, _i, p in feed.items)
    # Asked, the sample is the lite form of the newest entry that passed dedup.
    pipeline.publish_example()
    assert feed.examples == [b"49"]
    store.flush(time.time(), final=True)
    assert StateStore(str(tmp_short / "state.json")).load()[replay.url + "/p/"].next_index == 50


@pytest.mark.timeout(120)
def test_http_400_never_jumps_ahead(replay: ReplayServer, tmp_short: Path) -> None:
    # The log starts at 100; asking from 90 gets 400 (CTFE), forever.  The peer in Rust
    # jumps to the head here and loses entries; we keep asking and report the log failing.
    replay.add_rfc6962_log("/q/", unique_entries(base_entries(), 30, 32), 100)
    replay.start()
    feed = FakeFeed(wanted=FULL)
    pipeline, _ = make_pipeline(feed, PickyBuilder(-1, -1), tmp_short)
    f = follower_for(replay, "/q/", pipeline, start_index=90)
    f.start()
    try:
        wait_until(lambda: f.health.status == "unhealthy", 45, "the log reported unhealthy")
    finally:
        f.stop()
    retried = [t for _m, t in replay.requests("/q/") if "get-entries?start=90&" in t]
    assert len(retried) >= 5
    assert f.next_index == 90 and feed.items == []
    assert f.health.errors_by_kind.get("http_400", 0) >= 5


@pytest.mark.timeout(120)
def test_readonly_log_stops_at_final_size(replay: ReplayServer, tmp_short: Path) -> None:
    replay.add_rfc6962_log("/r/", unique_entries(base_entries(), 60, 33), 0)
    replay.start()
    feed = FakeFeed(wanted=FULL)
    pipeline, _ = make_pipeline(feed, PickyBuilder(-1, -1), tmp_short)
    f = follower_for(replay, "/r/", pipeline, start_index=0, stop_at=37)
    f.start()
    try:
        wait_until(lambda: f.finished, 45, "the readonly log finished")
    finally:
        f.stop()
    assert [i for _k, i, _p in feed.items] == list(range(37))
    ends = [int(t.rsplit("end=", 1)[1]) for _m, t in replay.requests("/r/") if "end=" in t]
    assert max(ends) == 36


def test_politeness_budget_is_per_operator_else_per_host() -> None:
    pol = Politeness(0.0, {"Google": 0.0})
    g1 = LogSpec("k1", "A", "https://ct.googleapis.com/logs/a/", operator="Google")
    g2 = LogSpec("k2", "B", "https://storage.googleapis.com/b/", operator="Google", kind="static")
    n1 = LogSpec("k3", "C", "https://ct.example.org/c/")
    n2 = LogSpec("k4", "D", "https://ct.example.org/d/")
    other = LogSpec("k5", "E", "https://ct.example.net/e/")
    names = [pol.bucket_name(s) for s in (g1, g2, n1, n2, other)]
    assert names == ["Google", "Google", "ct.example.org", "ct.example.org", "ct.example.net"]
    for s in (g1, g2, n1):
        pol.wait(s)  # zero intervals: never sleeps


def static_follower(
    replay: ReplayServer, path: str, pipeline: Pipeline, issuers: IssuerCache, **spec_kw: Any
) -> LogFollower:
    url = replay.url + path
    origin = url.split("://", 1)[1].rstrip("/")
    spec = LogSpec(url, path.strip("/").upper(), url, "static", origin=origin, **spec_kw)
    cfg = FollowerSettings(fetch_concurrency=2, poll_interval=0.05, retry_initial=0.02,
                           retry_max=0.1, checkpoint_signature="enforce")
    return make_follower(
        spec, cfg, http=HTTPClient("certstream-test", 2.0), pipeline=pipeline,
        politeness=Politeness(0.0, {}), issuers=issuers,
    )


@pytest.mark.timeout(120)
def test_static_logs_share_one_issuer_cache_and_survive_a_partial_404(
    replay: ReplayServer, tmp_short: Path
) -> None:
    signer = make_test_signer(7)
    for path in ("/s1/", "/s2/"):
        replay.add_static_log(path, NAVIGLI, None, signer, None, visible=300)
    replay.add_static_log("/s3/", NAVIGLI, None, make_test_signer(8), None, visible=300)
    replay.start()
    replay.inject("/s1/", "partial_404")
    feed = FakeFeed(wanted=FULL)
    pipeline, _ = make_pipeline(feed, PickyBuilder(-1, -1), tmp_short)
    issuers = IssuerCache(HTTPClient("certstream-test", 2.0))
    f1 = static_follower(replay, "/s1/", pipeline, issuers, start_index=0, spki=signer.spki_der)
    f2 = static_follower(replay, "/s2/", pipeline, issuers, start_index=0, spki=signer.spki_der)
    # s3 signs with another key than the one configured: enforce means it is never read.
    f3 = static_follower(replay, "/s3/", pipeline, issuers, start_index=0, spki=signer.spki_der)
    for f in (f1, f2, f3):
        f.start()
    try:
        wait_until(lambda: f1.next_index == 300 and f2.next_index == 300, 45, "both read")
        replay.grow("/s1/", 500)
        wait_until(lambda: f1.next_index == 800, 45, "s1 read after growth")
        wait_until(lambda: f3.health.status == "unhealthy", 45, "s3 refused")
    finally:
        for f in (f1, f2, f3):
            f.stop()
    # s2 serves the same certificates: each is published once, by whichever log was first.
    s1_got = [i for k, i, _p in feed.items if k.endswith("/s1/")]
    s2_got = [i for k, i, _p in feed.items if k.endswith("/s2/")]
    assert sorted(s1_got + s2_got) == list(range(800))
    assert set(range(300, 800)) <= set(s1_got)
    assert f3.next_index is None and not any(
        "tile/" in t for _m, t in replay.requests("/s3/")
    )
    issuer_gets = [t for p in ("/s1/", "/s2/") for _m, t in replay.requests(p) if "issuer/" in t]
    assert len(issuer_gets) == len(set(issuer_gets)) == len(issuers)
    # The 404 of the partial tile 001.p/44 was answered by re-reading, not by skipping.
    s1 = [t for _m, t in replay.requests("/s1/")]
    assert sum("tile/data/001.p/44" in t for t in s1) >= 2


class _StubFollower:
    """What Pipeline.deliver reads and writes of a follower."""

    def __init__(self) -> None:
        self.spec = LogSpec("k", "Stub", "https://stub.example/")
        self.source = self.spec.source
        self.next_index: int | None = 0
        self.duplicates = 0

    def report_skip(self, index: int, reason: str, kind: str = "decode") -> None:
        raise AssertionError(f"unexpected skip of {index}: {reason}")


def _entry(i: int) -> Any:
    from certstream.core.model import LogEntry  # noqa: PLC0415 - this test only

    return LogEntry(i, 0, 0, b"cert-%d" % i, None, None, (), b"")


def test_examples_are_built_only_on_request(tmp_short: Path) -> None:
    feed = FakeFeed(wanted=0)  # nobody connected to any stream
    calls: list[int] = []

    class Counting(PickyBuilder):
        def build(self, entry: Any, source: Any, seen: float, streams: int) -> Payloads:
            calls.append(streams)
            return super().build(entry, source, seen, streams)

    pipeline, _ = make_pipeline(feed, Counting(-1, -1), tmp_short)
    f: Any = _StubFollower()
    # Asked before any entry: the request waits for the first delivered entry.
    pipeline.publish_example()
    assert not calls and not feed.examples
    pipeline.deliver(f, [_entry(0), _entry(1)], 2, 2)
    assert feed.examples == [b"1"] and calls == [STREAM_LITE]
    # Idle: entries flow, nothing is built, nothing published.
    pipeline.deliver(f, [_entry(i) for i in range(2, 40)], 40, 40)
    assert calls == [STREAM_LITE] and not feed.items and f.next_index == 40
    # A later request samples the newest entry; a duplicate is not "newest".
    pipeline.deliver(f, [_entry(5)], 41, 41)
    pipeline.publish_example()
    assert feed.examples == [b"1", b"39"] and calls == [STREAM_LITE] * 2


def test_a_growing_log_is_polled_more_often(
    monkeypatch: pytest.MonkeyPatch, tmp_short: Path
) -> None:
    from certstream.shell import follow_base  # noqa: PLC0415 - this test only

    slept: list[float] = []
    monkeypatch.setattr(follow_base.gevent, "sleep", slept.append)
    pipeline, _ = make_pipeline(FakeFeed(wanted=FULL), PickyBuilder(-1, -1), tmp_short)
    spec = LogSpec("k", "K", "https://k.example/")
    f = make_follower(
        spec, FollowerSettings(poll_interval=1.0), http=HTTPClient("t"), pipeline=pipeline,
        politeness=Politeness(0.0, {}), issuers=IssuerCache(HTTPClient("t")),
    )
    # Quiet, then growing, then quiet for two rounds: the interval comes back after that.
    for grew in (False, True, False, False, True):
        f.pause(grew)
    assert slept == [1.0, 0.5, 0.5, 1.0, 0.5]
