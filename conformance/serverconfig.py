"""The config file the harness writes for the server under test, in that server's format.

Every style points the server at the replay CT log's logs, each starting at the manifest's
``first_index``, with log-list discovery off so nothing goes to the network:

* ``certstream``: ours (``custom_logs``/``static_logs``, ``ct_log.log_list_urls: []``, the
  output profile named after the peer when we have one);
* ``go``: certstream-server-go's (``webserver``, ``prometheus`` on the same port,
  ``general.additional_logs``/``additional_tiled_logs``, ``disable_default_logs``, and
  ``recovery`` with a ``ct_index.json`` beside the config that holds each log's first index);
* a template file for any other server: ``{port}``, ``{config}`` and ``{logs_json}`` (a JSON
  list of ``{name, url, kind, first_index, operator, key, origin}``) are replaced.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["PROFILES", "STYLES", "ServedLog", "write_config"]

STYLES = ("certstream", "go")
#: The peers our server has an output profile for.
PROFILES = ("go", "calidog", "rust")


@dataclass(frozen=True, slots=True)
class ServedLog:
    """One log as the replay CT log serves it."""

    name: str
    url: str  # the replay's base URL + the manifest's path (trailing slash as there)
    kind: str  # "rfc6962" or "static"
    first_index: int
    operator: str
    key: str  # base64 SPKI DER of the replay's test key
    origin: str  # static logs: the checkpoint origin; "" otherwise

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url,
            "kind": self.kind,
            "first_index": self.first_index,
            "operator": self.operator,
            "key": self.key,
            "origin": self.origin,
        }


def write_config(
    style: str,
    path: Path,
    port: int,
    logs: list[ServedLog],
    *,
    peer: str,
    template: Path | None = None,
) -> Path:
    """Write the config file for ``style`` (or the template) at ``path``; return it."""
    if template is not None:
        text = template.read_text()
        values = {
            "{port}": str(port),
            "{config}": str(path),
            "{logs_json}": json.dumps([log.as_json() for log in logs]),
        }
        for placeholder, value in values.items():
            text = text.replace(placeholder, value)
        path.write_text(text)
    elif style == "certstream":
        path.write_text(yaml.safe_dump(_certstream(path.parent, port, logs, peer), sort_keys=False))
    elif style == "go":
        path.write_text(yaml.safe_dump(_go(path.parent, port, logs), sort_keys=False))
        index = {_go_index_key(log.url): log.first_index for log in logs}
        # The layout Go itself writes: pretty-printed with a one-space indent.
        (path.parent / "ct_index.json").write_text(json.dumps(index, indent=1))
    else:
        raise ValueError(f"unknown config style {style!r} (one of {', '.join(STYLES)})")
    return path


def _certstream(workdir: Path, port: int, logs: list[ServedLog], peer: str) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "workers": 1,
        "ct_log": {
            "log_list_urls": [],
            "state_file": str(workdir / "certstream_state.json"),
            "poll_interval_ms": 200,
            "default_operator_rate_limit_ms": 0,
        },
        "custom_logs": [
            {
                "name": log.name,
                "url": log.url,
                "start_index": log.first_index,
                "operator": log.operator,
                "key": log.key,
            }
            for log in logs
            if log.kind == "rfc6962"
        ],
        "static_logs": [
            {
                "name": log.name,
                "url": log.url,
                "key": log.key,
                "log_origin": log.origin,
                "start_index": log.first_index,
            }
            for log in logs
            if log.kind == "static"
        ],
    }
    if peer in PROFILES:
        settings["output"] = {"profile": peer}
    return settings


def _go(workdir: Path, port: int, logs: list[ServedLog]) -> dict[str, Any]:
    def entries(kind: str) -> list[dict[str, str]]:
        return [
            {"url": log.url.rstrip("/"), "operator": log.operator, "description": log.name}
            for log in logs
            if log.kind == kind
        ]

    server = {"listen_addr": "127.0.0.1", "listen_port": port}
    general: dict[str, Any] = {"disable_default_logs": True}
    if rfc6962 := entries("rfc6962"):
        general["additional_logs"] = rfc6962
    if tiled := entries("static"):
        general["additional_tiled_logs"] = tiled
    general["drop_old_logs"] = True
    # Go resumes an RFC 6962 log AT the saved index and a tiled log one after it (its
    # "last processed" bug, which its own goldens record).
    general["recovery"] = {"enabled": True, "ct_index_file": str(workdir / "ct_index.json")}
    return {
        "webserver": {
            **server,
            "full_url": "/full-stream",
            "lite_url": "/",
            "domains_only_url": "/domains-only",
        },
        "prometheus": {**server, "enabled": True, "metrics_url": "/metrics"},
        "general": general,
    }


def _go_index_key(url: str) -> str:
    """Go's ct_index.json key: the log URL without scheme and trailing slash."""
    return url.split("://", 1)[-1].rstrip("/")
