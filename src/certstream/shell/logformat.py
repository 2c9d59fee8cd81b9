"""Log output of every process: text for people (the default) or one JSON object per line.

``log_format: json`` (``CERTSTREAM_LOG_FORMAT=json``) is for log shippers: each line is one
object with ``time`` (UTC, ISO 8601, milliseconds), ``level``, ``logger``, ``message`` and
``pid``, plus ``ct_log`` and ``ct_index`` when the line is about one CT log (and entry), and
``exception`` with the traceback text when there is one.  The master and the workers it
forks are set up through gunicorn's ``logconfig_dict`` (so gunicorn's own lines are JSON
too); the ingest, a separate interpreter, calls :func:`configure` itself.

A line about a log passes its name (and index) with ``extra=ct_context(name, index)``; the
text format shows them in the message already, so it ignores them.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

__all__ = [
    "FORMATS",
    "TEXT_FORMAT",
    "JsonFormatter",
    "configure",
    "ct_context",
    "gunicorn_logconfig",
    "python_level",
]

FORMATS = ("text", "json")
TEXT_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"

# certstream-server-rust's level names -> Python's.
_LEVELS = {"trace": "DEBUG", "warn": "WARNING"}


def python_level(level: str) -> str:
    """The ``logging`` level name for a ``log_level`` setting."""
    return _LEVELS.get(level, level.upper())


def ct_context(name: str, index: int | None = None) -> dict[str, Any]:
    """``extra=`` for a log line about CT log ``name`` (and its entry ``index``)."""
    return {"ct_log": name} if index is None else {"ct_log": name, "ct_index": index}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in the message are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        secs = time.gmtime(record.created)
        obj: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", secs) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for key in ("ct_log", "ct_index"):
            value = getattr(record, key, None)
            if value is not None:
                obj[key] = value
        if record.exc_info:
            obj["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            obj["exception"] = record.exc_text
        if record.stack_info:
            obj["stack"] = self.formatStack(record.stack_info)
        return json.dumps(obj, ensure_ascii=False, default=str)


def _formatter(fmt: str) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)


def configure(level: str, fmt: str) -> None:
    """This process's root logger: one handler on stderr in the chosen format."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_formatter(fmt))
    root.addHandler(handler)
    root.setLevel(python_level(level))


def gunicorn_logconfig(level: str, fmt: str) -> dict[str, Any]:
    """gunicorn's ``logconfig_dict``: empty for text (gunicorn's own format), else JSON
    lines for gunicorn's loggers and the root logger alike."""
    if fmt != "json":
        return {}
    lvl = python_level(level)
    stream = {"class": "logging.StreamHandler", "formatter": "json"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {
            "error_console": {**stream, "stream": "ext://sys.stderr"},
            "console": {**stream, "stream": "ext://sys.stdout"},
        },
        "root": {"level": lvl, "handlers": ["error_console"]},
        "loggers": {
            "gunicorn.error": {"level": lvl, "handlers": ["error_console"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
        },
    }
