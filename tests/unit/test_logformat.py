"""``log_format``: the setting, and the JSON lines every process writes with it."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import sys

import pytest

from certstream.config import load_settings
from certstream.errors import ConfigError
from certstream.shell.logformat import (
    TEXT_FORMAT,
    JsonFormatter,
    ct_context,
    gunicorn_logconfig,
    python_level,
)


def _record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    logger = logging.getLogger("certstream.test")
    return logger.makeRecord(logger.name, logging.WARNING, __file__, 1, msg, args, None,
                             extra=extra or None)


def test_the_setting_defaults_to_text_and_takes_json_from_the_env() -> None:
    assert load_settings({}).log_format == "text"
    assert load_settings({"CERTSTREAM_LOG_FORMAT": "json"}).log_format == "json"
    with pytest.raises(ConfigError) as err:
        load_settings({"CERTSTREAM_LOG_FORMAT": "xml"})
    assert "log_format" in str(err.value) and "text, json" in str(err.value)


def test_a_json_line_has_the_fields_a_shipper_needs() -> None:
    line = JsonFormatter().format(_record("log %s: %s", "Argon", "timeout\nagain",
                                          **ct_context("Argon", 1234)))
    assert "\n" not in line
    obj = json.loads(line)
    assert obj["message"] == "log Argon: timeout\nagain"
    assert obj["level"] == "warning"
    assert obj["logger"] == "certstream.test"
    assert obj["ct_log"] == "Argon" and obj["ct_index"] == 1234
    assert isinstance(obj["pid"], int)
    assert obj["time"].endswith("Z") and obj["time"][10] == "T" and len(obj["time"]) == 24


def test_lines_without_a_log_have_no_log_fields_and_exceptions_are_kept() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        rec = logging.getLogger("x").makeRecord("x", logging.ERROR, __file__, 1, "failed %d",
                                                (3,), sys.exc_info())
    obj = json.loads(JsonFormatter().format(rec))
    assert "ct_log" not in obj and "ct_index" not in obj
    assert obj["message"] == "failed 3"
    assert "ValueError: bad" in obj["exception"]
    assert ct_context("A") == {"ct_log": "A"}


def test_gunicorn_logconfig_is_empty_for_text_and_valid_for_json() -> None:
    assert gunicorn_logconfig("info", "text") == {}
    config = gunicorn_logconfig("warn", "json")
    assert config["loggers"]["gunicorn.error"]["level"] == "WARNING"
    # It is a valid dictConfig: apply its formatter and handler to a scratch logger (the
    # root logger and gunicorn's are left alone) and log through it.
    stream = io.StringIO()
    scratch = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": config["formatters"],
        "handlers": {"h": {**config["handlers"]["error_console"], "stream": stream}},
        "loggers": {"scratch.gunicorn": {**config["loggers"]["gunicorn.error"],
                                         "handlers": ["h"]}},
    }
    logging.config.dictConfig(scratch)
    logging.getLogger("scratch.gunicorn").warning("hello %s", "there")
    assert json.loads(stream.getvalue())["message"] == "hello there"
    assert config["root"]["handlers"] == ["error_console"]


def test_level_names_of_the_rust_server_are_understood() -> None:
    assert python_level("trace") == "DEBUG"
    assert python_level("warn") == "WARNING"
    assert python_level("error") == "ERROR"
    assert "%(levelname)s" in TEXT_FORMAT
