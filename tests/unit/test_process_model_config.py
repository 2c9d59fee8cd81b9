"""``process_model``: its values, and the combinations ``single`` refuses, each one line
naming the key (by file, by ``CERTSTREAM_PROCESS_MODEL`` and by ``--process-model``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from certstream import cli, config
from certstream.config import load_settings
from certstream.errors import ConfigError

SINGLE = "process_model: single\ningest: {mode: embedded}\n"


@pytest.fixture(autouse=True)
def _empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(config, "DEFAULT_CONFIG_PATHS", ("config.yaml",))


def _load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> config.Settings:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return load_settings(env or {}, path=str(path))


def test_default_is_gunicorn_and_single_loads_with_embedded_and_one_worker(
    tmp_path: Path,
) -> None:
    assert config.Settings().process_model == "gunicorn"
    s = _load(tmp_path, SINGLE)
    assert (s.process_model, s.workers, s.ingest.mode, s.role) == (
        "single", 1, "embedded", "all")
    env = {"CERTSTREAM_PROCESS_MODEL": "single", "CERTSTREAM_INGEST_MODE": "embedded"}
    assert _load(tmp_path, "", env).process_model == "single"


BAD = [
    # (config text, what the line must also name)
    ("process_model: one\n", "gunicorn"),
    ("process_model: single\n", "ingest.mode: process"),
    (SINGLE + "workers: 2\n", "workers: 2"),
    ("process_model: single\nrole: edge\nbroker: {url: 'redis://127.0.0.1:6379/0'}\n",
     "role: edge"),
    ("process_model: single\nrole: ingest\nbroker: {url: 'redis://127.0.0.1:6379/0'}\n",
     "role: ingest"),
]


@pytest.mark.parametrize(("text", "named"), BAD, ids=[b[1] for b in BAD])
def test_a_bad_combination_is_one_line_naming_process_model(
    tmp_path: Path, text: str, named: str,
) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    line = str(info.value)
    assert info.value.key == "process_model"
    assert "\n" not in line and "process_model" in line and named in line


def test_the_command_line_flag_is_validated_like_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "c.yaml").write_text("ingest: {mode: embedded}\n")
    assert cli.main(["-c", "c.yaml", "--process-model", "single", "--validate-config"]) == 0
    assert capsys.readouterr().out.strip() == "OK"
    assert cli.main(["-c", "c.yaml", "--process-model", "single", "--workers", "3",
                     "--validate-config"]) == cli.EXIT_CONFIG
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "process_model" in err and "workers: 3" in err
