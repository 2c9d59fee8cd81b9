"""A log that once answered a 2-entry window with 1 entry is still read at its real cap.

The replay log caps get-entries at 256 (``max_batch``) and its ``short`` fault answers the
first window with half of it.  The follower runs with the default settings, the default
operator budget (50 ms between data requests) included: at one entry per request, as before
the fix, 3,000 entries took 3,000 requests, ~150 s.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conformance.replay import ReplayServer
from conformance.synth import unique_entries
from tests.support.data import base_entries
from tests.support.feed import FULL, FakeFeed
from tests.support.pipeline import IndexBuilder, log_follower, make_pipeline
from tests.support.wait import wait_until

from certstream.config import CtLogSettings
from certstream.shell.politeness import Politeness

CAP = 256


@pytest.fixture
def tmp_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="cs-cap-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.timeout(120)
def test_one_short_answer_to_a_small_window_does_not_make_the_log_crawl(tmp_dir: Path) -> None:
    total = 3002
    with ReplayServer() as replay:
        replay.add_rfc6962_log("/cap/", unique_entries(base_entries(), total, 61), 0, visible=2,
                               max_batch=CAP)
        replay.inject("/cap/", "short", match="get-entries")
        feed = FakeFeed(wanted=FULL)
        pipeline, _ = make_pipeline(feed, IndexBuilder(), tmp_dir)
        budget = CtLogSettings().default_operator_rate_limit_ms / 1000.0
        f = log_follower(replay.url + "/cap/", "rfc6962", pipeline, start_index=0,
                         politeness=Politeness(budget, {}))
        f.start()
        try:
            wait_until(lambda: f.next_index == 2, 30, "the first two entries")
            first = [t for _m, t in replay.requests("/cap/") if "get-entries" in t]
            assert first[0].endswith("start=0&end=1")  # the window the fault cut to 1 entry
            replay.grow("/cap/", total - 2)
            start = time.monotonic()
            wait_until(lambda: f.next_index == total, 90, "3,000 entries")
            took = time.monotonic() - start
        finally:
            f.stop()
    gets = [t for _m, t in replay.requests("/cap/") if "get-entries" in t]
    print(f"3,000 entries in {took:.1f} s and {len(gets) - len(first)} requests")
    assert feed.indices() == list(range(total))
    # Windows of the log's cap (plus the rests of probes, which cost nothing extra).
    assert len(gets) - len(first) <= math.ceil((total - 2) / CAP) + 4
