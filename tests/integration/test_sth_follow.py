"""RFC 6962 followers check signed tree heads when the log's key is known.

A replay log serves real entries with heads signed by the test key; ``set_sth`` makes it
serve a head signed by another key, or a second root for a size it already served.  Under
``enforce`` such a head must never be acted on (no get-entries past the last good size);
under ``warn`` it is used and counted; a second root for one size is refused in every mode.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from conformance.replay import ReplayServer
from conformance.synth import make_test_signer, unique_entries
from tests.support.data import base_entries
from tests.support.feed import FULL, FakeFeed
from tests.support.pipeline import IndexBuilder, make_pipeline
from tests.support.wait import wait_until

from certstream.config import CtLogSettings, settings_from_dict
from certstream.core.logspec import FollowerSettings, LogSpec
from certstream.core.sth import sign_sth
from certstream.shell.followers import Rfc6962Follower, make_follower
from certstream.shell.httpclient import HTTPClient
from certstream.shell.issuers import IssuerCache
from certstream.shell.logselect import specs_from_settings
from certstream.shell.pipeline import Pipeline
from certstream.shell.politeness import Politeness

LOG_KEY = make_test_signer()  # the replay log's default signer
OTHER_KEY = make_test_signer(7)


def follower(replay: ReplayServer, path: str, pipeline: Pipeline, mode: str) -> Rfc6962Follower:
    url = replay.url + path
    spec = LogSpec(url, path.strip("/").upper(), url, "rfc6962", start_index=0,
                   spki=LOG_KEY.spki_der)
    cfg = FollowerSettings.from_ct_log(CtLogSettings(
        batch_size=8, fetch_concurrency=2, poll_interval_ms=50, retry_initial_delay_ms=20,
        retry_max_delay_ms=100, unhealthy_threshold=3, sth_signature=mode))
    f = make_follower(
        spec, cfg, http=HTTPClient("certstream-test", 2.0), pipeline=pipeline,
        politeness=Politeness(0.0, {}), issuers=IssuerCache(HTTPClient("t")),
    )
    assert isinstance(f, Rfc6962Follower)
    return f


def entry_ends(replay: ReplayServer, path: str) -> list[int]:
    return [int(t.rsplit("end=", 1)[1]) for _m, t in replay.requests(path) if "end=" in t]


def forged_head(size: int, root: bytes, key: Any) -> dict[str, object]:
    return sign_sth(size, int(time.time() * 1000), root, key)


def add_log(replay: ReplayServer, path: str, total: int, visible: int, seed: int) -> None:
    replay.add_rfc6962_log(path, unique_entries(base_entries(), total, seed), 0, visible)


@pytest.mark.timeout(60)
def test_enforce_never_reads_past_an_unverified_head_and_recovers(
    replay: ReplayServer, tmp_short: Path
) -> None:
    add_log(replay, "/e/", 40, 16, 41)
    replay.start()
    feed = FakeFeed(wanted=FULL)
    pipeline, _ = make_pipeline(feed, IndexBuilder(), tmp_short)
    f = follower(replay, "/e/", pipeline, "enforce")
    f.start()
    try:
        # Heads signed by the log's key are accepted.
        wait_until(lambda: f.next_index == 16, 20, "the verified part read")
        assert f.health.errors_by_kind.get("sth_signature", 0) == 0
        # The log grows, but the heads that say so are signed by someone else.
        replay.set_sth("/e/", forged_head(40, b"\x11" * 32, OTHER_KEY.key))
        replay.grow("/e/", 24)
        wait_until(lambda: f.health.status == "unhealthy", 20, "the log reported unhealthy")
        assert f.health.errors_by_kind["sth_signature"] >= 3
        assert max(entry_ends(replay, "/e/")) < 16 and f.tree_size == 16
        assert [i for _k, i, _p in feed.items] == list(range(16))
        # Good heads again: the follower reads on and recovers.
        replay.set_sth("/e/", None)
        wait_until(lambda: f.next_index == 40, 20, "the rest read after good heads")
        wait_until(lambda: f.health.status == "healthy", 20, "the log healthy again")
    finally:
        f.stop()
    assert [i for _k, i, _p in feed.items] == list(range(40))
    assert f.bad_signatures == 0  # enforce never uses one


@pytest.mark.timeout(60)
def test_warn_uses_an_unverified_head_and_counts_it(
    replay: ReplayServer, tmp_short: Path
) -> None:
    add_log(replay, "/w/", 24, 24, 42)
    replay.start()
    replay.set_sth("/w/", forged_head(24, b"\x22" * 32, OTHER_KEY.key))
    feed = FakeFeed(wanted=FULL)
    pipeline, _ = make_pipeline(feed, IndexBuilder(), tmp_short)
    f = follower(replay, "/w/", pipeline, "warn")
    f.start()
    try:
        wait_until(lambda: f.next_index == 24, 20, "the log read on a warned head")
    finally:
        f.stop()
    assert f.bad_signatures >= 1
    assert f.health.status == "healthy"
    assert [i for _k, i, _p in feed.items] == list(range(24))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["warn", "enforce"])
def test_a_second_root_for_a_size_is_refused(
    replay: ReplayServer, tmp_short: Path, mode: str
) -> None:
    add_log(replay, "/f/", 30, 20, 43)
    replay.start()
    feed = FakeFeed(wanted=FULL)
    pipeline, _ = make_pipeline(feed, IndexBuilder(), tmp_short)
    f = follower(replay, "/f/", pipeline, mode)
    f.start()
    try:
        wait_until(lambda: f.next_index == 20, 20, "the first view read")
        # Properly signed, same size, another tree: refused at every poll.
        replay.set_sth("/f/", forged_head(20, b"\x33" * 32, LOG_KEY.key))
        wait_until(lambda: f.health.errors_by_kind.get("sth_fork", 0) >= 3, 20,
                   "the fork refused repeatedly")
        assert f.tree_size == 20 and max(entry_ends(replay, "/f/")) < 20
        replay.set_sth("/f/", None)
        replay.grow("/f/", 10)
        wait_until(lambda: f.next_index == 30, 20, "the log read on after the fork")
    finally:
        f.stop()
    assert [i for _k, i, _p in feed.items] == list(range(30))


@pytest.mark.timeout(60)
def test_with_off_heads_are_not_checked(
    replay: ReplayServer, tmp_short: Path
) -> None:
    add_log(replay, "/o/", 12, 12, 44)
    replay.start()
    replay.set_sth("/o/", forged_head(12, b"\x44" * 32, OTHER_KEY.key))
    feed = FakeFeed(wanted=FULL)
    pipeline, _ = make_pipeline(feed, IndexBuilder(), tmp_short)
    f = follower(replay, "/o/", pipeline, "off")
    f.start()
    try:
        wait_until(lambda: f.next_index == 12, 20, "the log read with checks off")
    finally:
        f.stop()
    assert f.bad_signatures == 0
    assert f.health.errors_by_kind == {}


def test_custom_log_key_and_setting_reach_the_follower() -> None:
    s = settings_from_dict({
        "ct_log": {"sth_signature": "enforce"},
        "custom_logs": [
            {"name": "A", "url": "https://a.example/log", "key": OTHER_KEY.key_b64},
            {"name": "B", "url": "https://b.example/log"},
        ],
    })
    a, b = specs_from_settings(s)
    assert a.kind == "rfc6962" and a.spki == OTHER_KEY.spki_der
    assert b.spki is None
    assert FollowerSettings.from_ct_log(s.ct_log).sth_signature == "enforce"
    assert FollowerSettings.from_ct_log(settings_from_dict({}).ct_log).sth_signature == "warn"
