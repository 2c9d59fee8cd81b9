"""A tree head smaller than one already seen (properly signed) is refused: the follower
neither reads past it nor goes back, and reads on once the log's heads are sane again.
(A second root for one size, a fork, is ``tests/integration/test_sth_follow.py``'s.)"""

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

LOG_KEY = make_test_signer()


@pytest.fixture
def tmp_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="cs-shrink-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["warn", "enforce"])
def test_a_shrinking_tree_is_refused(tmp_dir: Path, mode: str) -> None:
    with ReplayServer() as replay:
        replay.add_rfc6962_log("/t/", unique_entries(base_entries(), 40, 91), 0, visible=30)
        feed = FakeFeed(wanted=FULL)
        pipeline, _ = make_pipeline(feed, IndexBuilder(), tmp_dir)
        f = log_follower(replay.url + "/t/", "rfc6962", pipeline, start_index=0,
                         spki=LOG_KEY.spki_der,
                         settings={"batch_size": 8, "poll_interval_ms": 50,
                                   "retry_initial_delay_ms": 20, "retry_max_delay_ms": 100,
                                   "sth_signature": mode})
        f.start()
        try:
            wait_until(lambda: f.next_index == 30, 20, "the tree read")
            asked = len(replay.requests("/t/"))
            replay.set_sth("/t/", sign_sth(20, int(time.time() * 1000), b"\x66" * 32,
                                           LOG_KEY.key))
            wait_until(lambda: f.health.errors_by_kind.get("sth_shrank", 0) >= 3, 20,
                       "the smaller head refused")
            assert not any("get-entries" in t for _m, t in replay.requests("/t/")[asked:])
            assert f.tree_size == 30 and f.next_index == 30
            replay.set_sth("/t/", None)
            replay.grow("/t/", 10)
            wait_until(lambda: f.next_index == 40, 20, "the log read on")
            gevent.sleep(0.1)
        finally:
            f.stop()
    assert feed.indices() == list(range(40))
