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
import signal
import subprocess
import sys
from collections import Counter
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
from tests.support.data import NAVIGLI, base_entries
from tests.support.procs import alive
from tests.support.wait import wait_until

from certstream.core.resume import Stamp
from certstream.core.streams import STREAM_FULL as FULL
from certstream.shell.feedsub import FeedSubscriber

SKIP_RE = re.compile(r"SKIP log=(\S+) index=(\d+)")
START_RE = re.compile(r"log (\S+): starting at index (\d+)")


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
        self, mask: int, lite: bytes | None, full: bytes | None, dom: bytes | None,
        stamp: Stamp,
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
        # A zombie counts as gone: it has exited and waits for init to reap it.
        wait_until(lambda: not alive(child), 60, "the ingest to exit after its parent")
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
