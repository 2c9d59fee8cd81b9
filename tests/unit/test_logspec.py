"""What to follow and how (core.logspec) and the operators' budgets (core.backoff), with
plain values."""

from __future__ import annotations

import dataclasses

import pytest

from certstream.config import CtLogSettings
from certstream.core.backoff import OperatorBudgets
from certstream.core.logspec import FollowerSettings, LogSpec, log_key, start_position


@pytest.mark.parametrize(("saved", "configured", "head", "overlap", "start"), [
    (500, 10, 9000, 256, 500),   # the state file wins
    (0, 10, 9000, 256, 0),       # even when it says 0
    (None, 10, 9000, 256, 10),   # then the configured start index
    (None, 0, 9000, 256, 0),
    (None, None, 9000, 256, 8744),  # then a little before the head
    (None, None, 100, 256, 0),   # never below 0
    (None, None, 9000, 0, 9000),
])
def test_start_position(saved: int | None, configured: int | None, head: int, overlap: int,
                        start: int) -> None:
    assert start_position(head, saved_next=saved, start_index=configured,
                          overlap=overlap) == start


def test_follower_settings_take_the_config_defaults_and_convert_ms_to_seconds() -> None:
    ct = CtLogSettings()
    fs = FollowerSettings.from_ct_log(ct)
    assert fs.batch_size == ct.batch_size and fs.fetch_concurrency == ct.fetch_concurrency
    assert fs.poll_interval == ct.poll_interval_ms / 1000
    assert (fs.retry_initial, fs.retry_max) == (ct.retry_initial_delay_ms / 1000,
                                                ct.retry_max_delay_ms / 1000)
    assert (fs.healthy_threshold, fs.unhealthy_threshold) == (ct.healthy_threshold,
                                                              ct.unhealthy_threshold)
    assert fs.start_overlap == ct.start_overlap_leaves
    assert fs.checkpoint_signature == ct.static_ct_checkpoint_signature
    assert fs.sth_signature == ct.sth_signature
    assert fs.max_body_bytes == ct.max_body_bytes
    changed = dataclasses.replace(ct, poll_interval_ms=250, sth_signature="enforce",
                                  static_ct_checkpoint_signature="off", batch_size=32)
    fs = FollowerSettings.from_ct_log(changed)
    assert (fs.poll_interval, fs.sth_signature, fs.checkpoint_signature, fs.batch_size) == (
        0.25, "enforce", "off", 32)


def test_every_follower_setting_comes_from_the_config() -> None:
    # A field added to FollowerSettings must be filled from CtLogSettings, not defaulted.
    assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(FollowerSettings))


def test_log_key_has_exactly_one_trailing_slash() -> None:
    assert log_key("https://ct.example/log") == "https://ct.example/log/"
    assert log_key("https://ct.example/log//") == "https://ct.example/log/"


def test_budget_name_is_the_operator_else_the_host() -> None:
    assert LogSpec("k", "A", "https://ct.googleapis.com/a/", operator="Google").budget_name \
        == "Google"
    assert LogSpec("k", "C", "https://ct.example.org:8443/c/").budget_name == "ct.example.org"
    assert LogSpec("k", "D", "not a url").budget_name == "not a url"


def test_log_spec_source() -> None:
    spec = LogSpec("k", "Log", "https://ct.example/", "static", "Op")
    src = spec.source
    assert (src.name, src.url, src.kind, src.operator) == ("Log", "https://ct.example/",
                                                           "static", "Op")


def test_operator_budgets_share_a_bucket_per_name() -> None:
    budgets = OperatorBudgets(0.5, {"Fast": 0.0}, burst=2)
    t = 100.0
    assert [budgets.reserve("Slow", t) for _ in range(4)] == [0.0, 0.0, 0.5, 1.0]
    assert budgets.reserve("Other", t) == 0.0  # another name, its own bucket
    assert [budgets.reserve("Fast", t) for _ in range(10)] == [0.0] * 10
    assert budgets.reserve("Slow", t + 2.0) == 0.0  # the bucket refilled meanwhile
