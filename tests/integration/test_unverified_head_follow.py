"""A bad-signature tree head claiming a larger tree (``sth_signature: warn``) costs one 400.

The replay log serves heads signed by its key; ``set_sth`` makes it serve a head signed by
another key that claims 10,000 entries while the log has 20.  Before the fix the follower
asked for entries 20.. again at every retry (~2.4 HTTP 400/s with the default backoff)
until the real tree caught up; now the log's first 400 ends it, and good heads later are
read on without a "shrinking tree" complaint.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest
from conformance.replay import ReplayServer
from conformance.synth import make_test_signer, unique_entries
from tests.support.data import base_entries
from tests.support.feed import FULL, FakeFeed
from tests.support.pipeline import IndexBuilder, log_follower, make_pipeline
from tests.support.wait import wait_until

from certstream.core.sth import sign_sth
from certstream.shell.follow_rfc6962 import Rfc6962Follower

LOG_KEY = make_test_signer()  # the replay log's default signer
OTHER_KEY = make_test_signer(7)


@pytest.fixture
def tmp_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="cs-unv-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def starts(replay: ReplayServer, path: str) -> list[int]:
    return [int(t.split("start=", 1)[1].split("&", 1)[0])
            for _m, t in replay.requests(path) if "get-entries" in t]


@pytest.mark.timeout(90)
def test_a_bad_head_claiming_more_is_refuted_by_the_first_400(tmp_dir: Path) -> None:
    with ReplayServer() as replay:
        replay.add_rfc6962_log("/u/", unique_entries(base_entries(), 40, 71), 0, visible=16)
        feed = FakeFeed(wanted=FULL)
        pipeline, _ = make_pipeline(feed, IndexBuilder(), tmp_dir)
        f = log_follower(
            replay.url + "/u/", "rfc6962", pipeline, start_index=0, spki=LOG_KEY.spki_der,
            settings={"batch_size": 8, "fetch_concurrency": 2, "poll_interval_ms": 100,
                      "retry_initial_delay_ms": 20, "retry_max_delay_ms": 400},
        )
        assert isinstance(f, Rfc6962Follower)
        f.start()
        try:
            wait_until(lambda: f.next_index == 16, 20, "the verified part read")
            replay.grow("/u/", 4)
            lie = sign_sth(10_000, int(time.time() * 1000), b"\x55" * 32, OTHER_KEY.key)
            replay.set_sth("/u/", lie)
            wait_until(lambda: f.next_index == 20, 20, "what the log serves read")
            gevent.sleep(3.0)  # the bad head is still served at every poll
            beyond = [s for s in starts(replay, "/u/") if s >= 20]
            # The windows in flight when the log first said 400, and nothing after.
            assert len(beyond) <= 3, f"asked past the log's tree {len(beyond)} times"
            assert f.bad_signatures >= 3  # it kept polling, and kept ignoring that head
            # Good heads again: read on from where the log's tree really was.
            replay.set_sth("/u/", None)
            replay.grow("/u/", 20)
            wait_until(lambda: f.next_index == 40, 20, "the rest read under good heads")
            wait_until(lambda: f.health.status == "healthy", 20, "the log healthy again")
        finally:
            f.stop()
    assert feed.indices() == list(range(40))
    assert f.health.errors_by_kind.get("sth_shrank", 0) == 0
