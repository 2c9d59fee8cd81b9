"""Settings: one frozen tree, read from a YAML file and ``CERTSTREAM_*`` variables, validated once.

Every process of a deployment (the gunicorn master, each worker, the ingest) must agree on the
settings, even when the master was given ``--config PATH`` or ``--port`` on its command line.
So the master resolves them once and hands the result down in ``CERTSTREAM_RESOLVED_SETTINGS``
(see :func:`settings_to_env`); :func:`load_settings` honours that variable before anything else.

Theory of operation: the schema *is* the dataclasses of ``certstream.config.schema``.
Attribute paths equal the YAML keys (``ct_log.batch_size``), the environment name is derived
from the path (``CERTSTREAM_CT_LOG_BATCH_SIZE``) plus the certstream-server-rust spellings,
each field's type says how to convert a raw value (``certstream.config.convert``), and its
metadata says what is allowed.  A bad value raises :class:`~certstream.errors.ConfigError`,
whose text is the one line shown to the user.  Unknown keys are logged as a warning naming
them, so that a config written for another certstream server still starts.

This module finds and reads the file and is the import path for everything above; nothing
here does I/O except reading the config file in :func:`load_settings`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from certstream.config.convert import ENV_NAMES, build_settings, overlay_env
from certstream.config.schema import (
    KNOWN_LOG_STATES,
    RETIRED_KEYS,
    ApiSettings,
    AuthSettings,
    ConnectionLimitSettings,
    CtLogSettings,
    CustomLog,
    DedupSettings,
    HotReloadSettings,
    IngestSettings,
    OutputSettings,
    ProtocolsSettings,
    RateLimitSettings,
    Settings,
    SseSettings,
    StaticLog,
    StreamsSettings,
    WebSocketSettings,
)
from certstream.errors import ConfigError

__all__ = [
    "DEFAULT_CONFIG_PATHS",
    "ENV_NAMES",
    "KNOWN_LOG_STATES",
    "RESOLVED_ENV",
    "RETIRED_KEYS",
    "ApiSettings",
    "AuthSettings",
    "ConnectionLimitSettings",
    "CtLogSettings",
    "CustomLog",
    "DedupSettings",
    "HotReloadSettings",
    "IngestSettings",
    "OutputSettings",
    "ProtocolsSettings",
    "RateLimitSettings",
    "Settings",
    "SseSettings",
    "StaticLog",
    "StreamsSettings",
    "WebSocketSettings",
    "load_settings",
    "settings_from_dict",
    "settings_to_dict",
    "settings_to_env",
]

log = logging.getLogger(__name__)

#: Where a config file is looked for when no path is given ($CERTSTREAM_CONFIG comes first).
DEFAULT_CONFIG_PATHS = ("config.yaml", "config.yml", "/etc/certstream/config.yaml")
#: The environment variable that carries the master's resolved settings to its children.
RESOLVED_ENV = "CERTSTREAM_RESOLVED_SETTINGS"


def _find_file(env: Mapping[str, str], path: str | None) -> Path | None:
    if path is not None:
        return Path(path)
    explicit = env.get("CERTSTREAM_CONFIG")
    if explicit:
        return Path(explicit)
    return next((p for p in map(Path, DEFAULT_CONFIG_PATHS) if p.is_file()), None)


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("config", str(path), f"a readable UTF-8 YAML file ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ConfigError("config", str(path), f"valid YAML ({problem}{where})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("config", str(path), "a YAML mapping of keys at the top level")
    return data


def load_settings(env: Mapping[str, str] | None = None, path: str | None = None) -> Settings:
    """Resolve the settings: the master's resolved settings if handed down, else file + env.

    File search order when ``path`` is None: ``$CERTSTREAM_CONFIG``, ``./config.yaml``,
    ``./config.yml``, ``/etc/certstream/config.yaml``.  Environment variables override the
    file.  Raises :class:`ConfigError` (one line) for the first invalid value.
    """
    env = os.environ if env is None else env
    resolved = env.get(RESOLVED_ENV)
    if resolved and path is None:
        try:
            tree = json.loads(resolved)
        except ValueError:
            raise ConfigError(
                RESOLVED_ENV, resolved[:40] + "...", "JSON from settings_to_env"
            ) from None
        return settings_from_dict(tree)
    found = _find_file(env, path)
    tree = _read_yaml(found) if found is not None else {}
    overlay_env(tree, env)
    unknown: list[str] = []
    settings = build_settings(tree, unknown)
    for key in [k for k in unknown if k in RETIRED_KEYS]:
        log.warning("config key %s is ignored: %s", key, RETIRED_KEYS[key])
        unknown.remove(key)
    if unknown:
        where = f" in {found}" if found is not None else ""
        log.warning("unknown config keys ignored%s: %s", where, ", ".join(unknown))
    hot = settings.hot_reload
    if hot.enabled and not hot.watch_path and found is not None:
        # Children get the resolved settings, not the path: hand the file down in the tree.
        # Absolute, because a worker or a later reload may run from another directory.
        settings = dataclasses.replace(settings, hot_reload=dataclasses.replace(
            hot, watch_path=str(found.resolve())))
    return settings


def settings_from_dict(tree: Mapping[str, Any]) -> Settings:
    """Build and validate settings from a nested mapping (as :func:`settings_to_dict` makes)."""
    return build_settings(tree, [])


def settings_to_dict(settings: Settings) -> dict[str, Any]:
    """The settings as plain nested dicts and lists, ready for JSON."""
    return typing.cast(dict[str, Any], json.loads(json.dumps(dataclasses.asdict(settings))))


def settings_to_env(settings: Settings) -> dict[str, str]:
    """Environment entries that make :func:`load_settings` return exactly ``settings``."""
    return {RESOLVED_ENV: json.dumps(settings_to_dict(settings), separators=(",", ":"))}
