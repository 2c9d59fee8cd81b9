"""Hot reload without a server: what changed, what is applied, what waits for a restart, and
the watcher's handling of edits, broken files and a missing file."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from certstream.config import AuthSettings, RateLimitSettings, Settings, WebSocketSettings
from certstream.shell.reload import (
    ConfigWatcher,
    ReloadPlan,
    changed_keys,
    is_live,
    load_file,
    plan_reload,
)


@pytest.fixture(autouse=True)
def _no_certstream_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CERTSTREAM_"):
            monkeypatch.delenv(name)


def test_changed_keys_are_leaf_paths() -> None:
    base = Settings()
    assert changed_keys(base, Settings()) == []
    new = dataclasses.replace(
        base, port=9000,
        auth=AuthSettings(True, ("a",)),
        websocket=dataclasses.replace(base.websocket, heartbeat_secs=5.0),
    )
    assert changed_keys(base, new) == ["port", "websocket.heartbeat_secs", "auth.enabled",
                                       "auth.tokens"]


@pytest.mark.parametrize(("key", "live"), [
    ("auth.tokens", True), ("connection_limit.per_ip_limit", True), ("rate_limit.burst", True),
    ("websocket.heartbeat_secs", True), ("websocket.slow_client_drop_budget", True),
    ("websocket.max_message_bytes", False), ("port", False), ("authx", False),
    ("hot_reload.enabled", False), ("ct_log.batch_size", False),
])
def test_is_live(key: str, live: bool) -> None:
    assert is_live(key) is live


def test_plan_applies_live_keys_and_lists_the_rest() -> None:
    started = Settings()
    # The command line put the server on another port than the file says: not a change.
    running = dataclasses.replace(started, port=9999)
    new = dataclasses.replace(
        started,
        workers=4,
        auth=AuthSettings(True, ("tok",), "X-Token"),
        rate_limit=RateLimitSettings(True, max_tokens=7, refill_rate=1.5),
        websocket=WebSocketSettings(heartbeat_secs=3.0, max_message_bytes=1000),
    )
    plan = plan_reload(running, started, new)
    assert set(plan.applied) == {"auth.enabled", "auth.tokens", "auth.header_name",
                                 "rate_limit.enabled", "rate_limit.refill_rate",
                                 "rate_limit.max_tokens", "websocket.heartbeat_secs"}
    assert set(plan.restart) == {"workers", "websocket.max_message_bytes"}
    s = plan.settings
    assert s.auth == new.auth and s.rate_limit == new.rate_limit
    assert s.websocket.heartbeat_secs == 3.0
    # What needs a restart keeps its running value, the command line's port included.
    assert (s.port, s.workers, s.websocket.max_message_bytes) == (9999, 1, 65536)


def test_plan_for_an_unchanged_file_is_empty() -> None:
    running = dataclasses.replace(Settings(), port=9999)
    plan = plan_reload(running, Settings(), Settings())
    assert plan == ReloadPlan(running, (), ())


def _reloads(result: str) -> float:
    value = REGISTRY.get_sample_value("certstream_config_reloads_total", {"result": result})
    return value or 0.0


class _Recorder:
    def __init__(self) -> None:
        self.plans: list[ReloadPlan] = []

    def __call__(self, plan: ReloadPlan) -> None:
        self.plans.append(plan)


def _edit(path: Path, text: str) -> None:
    before = path.stat()
    path.write_text(text)
    # Make the change visible even on a filesystem with coarse timestamps.
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))


def test_watcher_applies_an_edit_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("port: 9100\n")
    running = load_file(str(path))
    seen = _Recorder()
    watcher = ConfigWatcher(str(path), running, seen)
    assert watcher.check() is None  # nothing changed yet
    _edit(path, "port: 9200\nauth: {enabled: true, tokens: [s3cret]}\n")
    with caplog.at_level(logging.INFO, logger="certstream.shell.reload"):
        plan = watcher.check()
    assert plan is not None and seen.plans == [plan]
    assert plan.settings.auth.tokens == ("s3cret",) and plan.settings.port == 9100
    assert plan.restart == ("port",)
    assert "needs a restart: port" in caplog.text
    assert watcher.running is plan.settings
    assert watcher.check() is None  # the same file is not read again
    assert len(seen.plans) == 1


def test_watcher_keeps_the_settings_when_the_file_is_broken(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("auth: {enabled: true, tokens: [old]}\n")
    running = load_file(str(path))
    seen = _Recorder()
    watcher = ConfigWatcher(str(path), running, seen)
    _edit(path, "auth: {enabled: true, tokens: []}\n")  # fails the cross-check
    invalid_before = _reloads("invalid")
    with caplog.at_level(logging.INFO, logger="certstream.shell.reload"):
        assert watcher.check() is None
    assert _reloads("invalid") == invalid_before + 1
    assert seen.plans == [] and watcher.running is running
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "auth.tokens" in errors[0].getMessage()
    assert "\n" not in errors[0].getMessage() and errors[0].exc_info is None
    _edit(path, "auth: {enabled: true, tokens: [new]}\n")  # fixed: applied
    plan = watcher.check()
    assert plan is not None and plan.settings.auth.tokens == ("new",)


def test_watcher_survives_a_missing_file(tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("rate_limit: {enabled: true}\n")
    running = load_file(str(path))
    seen = _Recorder()
    watcher = ConfigWatcher(str(path), running, seen)
    path.unlink()
    assert watcher.check() is None
    assert "is gone" in caplog.text
    path.write_text("rate_limit: {enabled: true, burst: 5}\n")  # back, e.g. after a rename
    plan = watcher.check()
    assert plan is not None and plan.applied == ("rate_limit.burst",)


def test_environment_still_beats_the_reloaded_file(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("rate_limit: {burst: 5}\n")
    monkeypatch.setenv("CERTSTREAM_RATE_LIMIT_BURST", "42")
    # The master's handed-down settings must not win over the file being reloaded.
    monkeypatch.setenv("CERTSTREAM_RESOLVED_SETTINGS", '{"port": 1}')
    s = load_file(str(path))
    assert s.rate_limit.burst == 42 and s.port == 8080
