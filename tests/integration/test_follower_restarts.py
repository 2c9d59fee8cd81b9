"""A log follower that crashes is restarted by its own greenlet, and the restart is counted
(``certstream_restarts_total{process="follower"}``, the spec's ``certstream_worker_panics``);
a follower's per-log spec series exist from its start, at zero."""

from __future__ import annotations

import time
from typing import Any

import gevent
from prometheus_client import REGISTRY

from certstream.config import CtLogSettings
from certstream.core.dedup import DedupRing
from certstream.core.logspec import FollowerSettings, LogSpec
from certstream.shell import metrics, specmetrics
from certstream.shell.follow_base import LogFollower
from certstream.shell.follow_static import StaticFollower
from certstream.shell.httpclient import HTTPClient
from certstream.shell.issuers import IssuerCache
from certstream.shell.pipeline import Pipeline
from certstream.shell.politeness import Politeness


class _Feed:
    def wanted(self) -> int:
        return 0

    def publish(self, items: Any) -> None: ...

    def publish_example(self, lite: bytes) -> None: ...


class _Positions:
    def advance(self, key: str, next_index: int, tree_size: int, now: float) -> None: ...


class _CrashOnce(LogFollower):
    runs = 0

    def run(self) -> None:
        self.runs += 1
        if self.runs == 1:
            raise RuntimeError("a bug in the follower")
        self.finished = True


def _restarts() -> float:
    return REGISTRY.get_sample_value("certstream_restarts_total", {"process": "follower"}) or 0.0


def _pipeline() -> Pipeline:
    return Pipeline(_Feed(), object(), DedupRing(10, 1.0), _Positions(),  # type: ignore[arg-type]
                    metrics=specmetrics.IngestMetrics(metrics, specmetrics))


def test_a_crashed_follower_is_restarted_and_counted() -> None:
    pipeline = _pipeline()
    spec = LogSpec("https://crash.example/", "Crashy", "https://crash.example/", "rfc6962")
    cfg = FollowerSettings.from_ct_log(CtLogSettings())
    follower = _CrashOnce(spec, cfg, http=HTTPClient("t"), pipeline=pipeline,
                          politeness=Politeness(0.0, {}))
    before = _restarts()
    follower.start()
    deadline = time.monotonic() + 10
    while not follower.finished and time.monotonic() < deadline:
        gevent.sleep(0.01)
    assert follower.runs == 2 and follower.finished
    assert _restarts() == before + 1
    # Its failure was recorded too, so it is not reported healthy.
    assert follower.health.status == "degraded"
    assert REGISTRY.get_sample_value("certstream_spec_parse_failures_total",
                                     {"log": "Crashy"}) == 0.0


def test_a_static_followers_series_exist_from_the_start() -> None:
    pipeline = _pipeline()
    spec = LogSpec("https://tiles.example/", "Tiles", "https://tiles.example/", "static")
    cfg = FollowerSettings.from_ct_log(CtLogSettings())
    http = HTTPClient("t")
    follower = StaticFollower(spec, cfg, http=http, pipeline=pipeline,
                              politeness=Politeness(0.0, {}), issuers=IssuerCache(http))
    follower.finished = True  # start() must register the series; nothing needs to run
    follower.start()
    follower.stop()
    for name in ("static_ct_tiles_fetched", "static_ct_entries_parsed",
                 "static_ct_checkpoint_errors", "static_ct_parse_failures"):
        assert REGISTRY.get_sample_value(f"certstream_spec_{name}_total", {"log": "Tiles"}) == 0
