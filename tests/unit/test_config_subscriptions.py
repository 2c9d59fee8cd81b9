"""The subscription settings: ``filters.max_patterns`` and ``websocket.compression``, from the
file and the environment, with a one-line error for a bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from certstream import config
from certstream.config import load_settings
from certstream.errors import ConfigError


@pytest.fixture(autouse=True)
def _empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(config, "DEFAULT_CONFIG_PATHS", ("config.yaml",))


def test_defaults_compress_and_allow_a_hundred_patterns() -> None:
    s = load_settings({})
    assert s.websocket.compression is True
    assert s.filters.max_patterns == 100


def test_file_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("websocket:\n  compression: false\nfilters:\n  max_patterns: 7\n")
    s = load_settings({}, path=str(path))
    assert (s.websocket.compression, s.filters.max_patterns) == (False, 7)
    s = load_settings({"CERTSTREAM_WEBSOCKET_COMPRESSION": "true",
                       "CERTSTREAM_FILTERS_MAX_PATTERNS": "3"}, path=str(path))
    assert (s.websocket.compression, s.filters.max_patterns) == (True, 3)


def test_a_bad_value_names_its_key() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings({"CERTSTREAM_FILTERS_MAX_PATTERNS": "0"})
    assert str(err.value).startswith("config error: filters.max_patterns=0")
