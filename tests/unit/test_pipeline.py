"""The ingest's pieces without I/O: log specs from settings, the politeness budget, examples
built only on request, the poll interval of a growing log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gevent
import pytest
from conformance.synth import make_test_signer
from tests.support.feed import FakeFeed
from tests.support.pipeline import IndexBuilder, make_pipeline

from certstream.config import CtLogSettings, settings_from_dict
from certstream.core.logspec import FollowerSettings, LogSpec
from certstream.core.messages import STREAM_LITE, Payloads
from certstream.core.streams import STREAM_FULL as FULL
from certstream.shell.followers import make_follower
from certstream.shell.httpclient import HTTPClient
from certstream.shell.issuers import IssuerCache
from certstream.shell.logselect import specs_from_settings
from certstream.shell.politeness import Politeness


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


def test_examples_are_built_only_on_request(tmp_path: Path) -> None:
    feed = FakeFeed(wanted=0)  # nobody connected to any stream
    calls: list[int] = []

    class Counting(IndexBuilder):
        def build(self, entry: Any, source: Any, seen: float, streams: int) -> Payloads:
            calls.append(streams)
            return super().build(entry, source, seen, streams)

    pipeline, _ = make_pipeline(feed, Counting(), tmp_path)
    f: Any = _StubFollower()
    # Asked before any entry: the request waits for the first delivered entry.
    pipeline.publish_example()
    assert not calls and not feed.examples
    pipeline.deliver(f, [_entry(0), _entry(1)], 2, 2)
    assert feed.examples == [b"1"] and calls == [STREAM_LITE]
    # Idle: entries flow, nothing is built; each is published without payloads, to be
    # numbered (a client that resumes later is told what it missed).
    pipeline.deliver(f, [_entry(i) for i in range(2, 40)], 40, 40)
    assert calls == [STREAM_LITE] and f.next_index == 40
    assert [i for _k, i, _p in feed.items] == list(range(40))
    assert all((p.lite, p.full, p.domains, p.fields) == (None,) * 4 and p.seen
               for _k, _i, p in feed.items)
    # A later request samples the newest entry; a duplicate is not "newest".
    pipeline.deliver(f, [_entry(5)], 41, 41)
    pipeline.publish_example()
    assert feed.examples == [b"1", b"39"] and calls == [STREAM_LITE] * 2


def test_a_growing_log_is_polled_more_often(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(gevent, "sleep", slept.append)  # what follow_base sleeps with
    pipeline, _ = make_pipeline(FakeFeed(wanted=FULL), IndexBuilder(), tmp_path)
    spec = LogSpec("k", "K", "https://k.example/")
    f = make_follower(
        spec, FollowerSettings.from_ct_log(CtLogSettings(poll_interval_ms=1000)),
        http=HTTPClient("t"), pipeline=pipeline,
        politeness=Politeness(0.0, {}), issuers=IssuerCache(HTTPClient("t")),
    )
    # Quiet, then growing, then quiet for two rounds: the interval comes back after that.
    for grew in (False, True, False, False, True):
        f.pause(grew)
    assert slept == [1.0, 0.5, 0.5, 1.0, 0.5]
