"""Followers and log discovery in this process, against the replay CT log: one bad
certificate costs one entry, an HTTP 400 never jumps ahead, readonly logs stop at their end,
static logs share one issuer cache, log lists add and retire logs without a restart."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import gevent
import pytest
from conformance.replay import ReplayServer
from conformance.synth import make_test_signer, unique_entries
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from prometheus_client import REGISTRY
from tests.support.data import NAVIGLI, base_entries
from tests.support.feed import FakeFeed
from tests.support.pipeline import IndexBuilder, make_pipeline
from tests.support.wait import wait_until

from certstream.config import CtLogSettings, settings_from_dict
from certstream.core import loglist
from certstream.core.logspec import FollowerSettings, LogSpec
from certstream.core.streams import STREAM_FULL as FULL
from certstream.shell.feed import FeedPublisher
from certstream.shell.followers import LogFollower, make_follower
from certstream.shell.httpclient import HTTPClient
from certstream.shell.ingest import Ingest
from certstream.shell.issuers import IssuerCache
from certstream.shell.pipeline import Pipeline
from certstream.shell.politeness import Politeness
from certstream.shell.state import StateStore


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
    ing = Ingest(settings, FeedPublisher(str(tmp_short / "feed.sock")))
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


def follower_for(
    replay: ReplayServer, path: str, pipeline: Pipeline, **spec_kw: Any
) -> LogFollower:
    url = replay.url + path
    spec = LogSpec(url, path.strip("/").upper(), url, "rfc6962", **spec_kw)
    cfg = FollowerSettings.from_ct_log(CtLogSettings(
        batch_size=16, fetch_concurrency=3, poll_interval_ms=50,
        retry_initial_delay_ms=20, retry_max_delay_ms=100))
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
    pipeline, store = make_pipeline(feed, IndexBuilder(bug_at=7, bad_at=9), tmp_short)
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
    store.flush()
    assert StateStore(str(tmp_short / "state.json")).load()[replay.url + "/p/"].next_index == 50


@pytest.mark.timeout(120)
def test_http_400_never_jumps_ahead(replay: ReplayServer, tmp_short: Path) -> None:
    # The log starts at 100; asking from 90 gets 400 (CTFE), forever.  The peer in Rust
    # jumps to the head here and loses entries; we keep asking and report the log failing.
    replay.add_rfc6962_log("/q/", unique_entries(base_entries(), 30, 32), 100)
    replay.start()
    feed = FakeFeed(wanted=FULL)
    pipeline, _ = make_pipeline(feed, IndexBuilder(), tmp_short)
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
    pipeline, _ = make_pipeline(feed, IndexBuilder(), tmp_short)
    f = follower_for(replay, "/r/", pipeline, start_index=0, stop_at=37)
    f.start()
    try:
        wait_until(lambda: f.finished, 45, "the readonly log finished")
    finally:
        f.stop()
    assert [i for _k, i, _p in feed.items] == list(range(37))
    ends = [int(t.rsplit("end=", 1)[1]) for _m, t in replay.requests("/r/") if "end=" in t]
    assert max(ends) == 36


def static_follower(
    replay: ReplayServer, path: str, pipeline: Pipeline, issuers: IssuerCache, **spec_kw: Any
) -> LogFollower:
    url = replay.url + path
    origin = url.split("://", 1)[1].rstrip("/")
    spec = LogSpec(url, path.strip("/").upper(), url, "static", origin=origin, **spec_kw)
    cfg = FollowerSettings.from_ct_log(CtLogSettings(
        fetch_concurrency=2, poll_interval_ms=50, retry_initial_delay_ms=20,
        retry_max_delay_ms=100, static_ct_checkpoint_signature="enforce"))
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
    pipeline, _ = make_pipeline(feed, IndexBuilder(), tmp_short)
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
