"""Keys that are read by nothing any more: accepted and ignored, each with a warning that
says why (a config written for an older version or another server must still start)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from certstream.config import RETIRED_KEYS, CtLogSettings, Settings, load_settings


def test_retired_keys_are_not_settings() -> None:
    assert set(RETIRED_KEYS) == {"ct_log.health_check_interval_secs",
                                 "ct_log.retry_max_attempts", "ct_log.state_flush_secs"}
    for path in RETIRED_KEYS:
        assert not hasattr(CtLogSettings(), path.split(".", 1)[1])


def test_a_file_that_sets_them_starts_and_says_they_are_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("ct_log:\n  health_check_interval_secs: 60\n  retry_max_attempts: 3\n"
                    "  batch_size: 32\n")
    with caplog.at_level(logging.WARNING, "certstream.config"):
        s = load_settings({}, path=str(path))
    assert s.ct_log.batch_size == 32
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "config key ct_log.health_check_interval_secs is ignored: log health is judged" in text
    assert "config key ct_log.retry_max_attempts is ignored: a failing log is retried" in text
    assert "unknown config keys" not in text  # retired, not unknown


def test_so_does_the_environment(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("{}\n")
    env = {"CERTSTREAM_CT_LOG_HEALTH_CHECK_INTERVAL_SECS": "not even a number"}
    with caplog.at_level(logging.WARNING, "certstream.config"):
        assert load_settings(env, path=str(path)) == Settings()
    assert "ct_log.health_check_interval_secs is ignored" in caplog.text
