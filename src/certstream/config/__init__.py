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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from certstream.config.convert import (
    ENV_NAMES,
    build_settings,
    key_warnings,
    overlay_env,
    unknown_env_names,
)
from certstream.config.crosschecks import metrics_listener
from certstream.config.goformat import GoMapping, translate
from certstream.config.gokeys import go_env_in, is_go_format
from certstream.config.schema import (
    KNOWN_LOG_STATES,
    RETIRED_KEYS,
    ApiSettings,
    AuthSettings,
    BrokerSettings,
    ConnectionLimitSettings,
    CtLogSettings,
    CustomLog,
    DedupSettings,
    FiltersSettings,
    HotReloadSettings,
    IngestSettings,
    MetricsSettings,
    OutputSettings,
    PathsSettings,
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
    "BrokerSettings",
    "ConnectionLimitSettings",
    "CtLogSettings",
    "CustomLog",
    "DedupSettings",
    "FiltersSettings",
    "GoMapping",
    "HotReloadSettings",
    "IngestSettings",
    "LoadReport",
    "MetricsSettings",
    "OutputSettings",
    "PathsSettings",
    "ProtocolsSettings",
    "RateLimitSettings",
    "Settings",
    "SseSettings",
    "StaticLog",
    "StreamsSettings",
    "WebSocketSettings",
    "load_settings",
    "load_settings_report",
    "metrics_listener",
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


@dataclass(slots=True)
class LoadReport:
    """How the settings were read: the file (if any), its format, and for
    certstream-server-go's format the mapping of each of its keys (``certstream validate``
    prints it).  ``warnings`` are the lines :func:`load_settings` logs."""

    path: Path | None
    format: str  # "certstream" | "certstream-server-go"
    mapping: GoMapping | None = None
    warnings: list[str] = field(default_factory=list)


def load_settings(env: Mapping[str, str] | None = None, path: str | None = None) -> Settings:
    """Resolve the settings: the master's resolved settings if handed down, else file + env.

    File search order when ``path`` is None: ``$CERTSTREAM_CONFIG``, ``./config.yaml``,
    ``./config.yml``, ``/etc/certstream/config.yaml``.  Environment variables override the
    file.  A file in certstream-server-go's format is mapped onto our settings (see
    ``certstream.config.goformat``).  Raises :class:`ConfigError` (one line) for the first
    invalid value.
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
    settings, report = load_settings_report(env, path)
    for line in report.warnings:
        log.warning("%s", line)
    return settings


def load_settings_report(env: Mapping[str, str],
                         path: str | None = None) -> tuple[Settings, LoadReport]:
    """:func:`load_settings` from the file and ``env`` alone, with what it found to say."""
    found = _find_file(env, path)
    tree = _read_yaml(found) if found is not None else {}
    go_env = go_env_in(env)
    report = LoadReport(found, "certstream")
    if is_go_format(tree) or (found is None and go_env):
        report.format = "certstream-server-go"
        mapping = report.mapping = translate(tree, env)
        tree = mapping.tree
        report.warnings.extend(mapping.warnings)
        for name, dotted in ENV_NAMES.items():
            if name in env and dotted in mapping.origin:
                report.warnings.append(f"{name} overrides {mapping.origin[dotted]} "
                                       "(certstream's own name wins)")
    elif go_env:
        report.warnings.append(
            "ignored: " + ", ".join(go_env) + ": certstream-server-go names, but the config "
            "file is in certstream's own format (use the names of config.example.yaml)")
    overlay_env(tree, env)
    unknown: list[str] = []
    try:
        settings = build_settings(tree, unknown)
    except ConfigError as exc:
        if report.mapping is None:
            raise
        raise _in_go_terms(exc, report.mapping) from None
    report.warnings.extend(f"config: {text}" for text in key_warnings(tree))
    stray = unknown_env_names(env)
    if stray:
        report.warnings.append("unknown CERTSTREAM_* environment variables ignored (no such "
                               "setting): " + ", ".join(stray))
    for key in [k for k in unknown if k in RETIRED_KEYS]:
        report.warnings.append(f"config key {key} is ignored: {RETIRED_KEYS[key]}")
        unknown.remove(key)
    if unknown:
        where = f" in {found}" if found is not None else ""
        report.warnings.append(f"unknown config keys ignored{where}: {', '.join(unknown)}")
    hot = settings.hot_reload
    if hot.enabled and not hot.watch_path and found is not None:
        # Children get the resolved settings, not the path: hand the file down in the tree.
        # Absolute, because a worker or a later reload may run from another directory.
        settings = dataclasses.replace(settings, hot_reload=dataclasses.replace(
            hot, watch_path=str(found.resolve())))
    return settings, report


def _in_go_terms(exc: ConfigError, mapping: GoMapping) -> ConfigError:
    """The error of a value that came from a Go key, naming that key instead of ours."""
    def go_name(key: str) -> str:
        for ours in sorted(mapping.origin, key=len, reverse=True):
            if key == ours or key.startswith((ours + ".", ours + "[")):
                return mapping.origin[ours] + key[len(ours):]
        return key

    allowed = exc.allowed
    for ours in sorted(mapping.origin, key=len, reverse=True):
        allowed = allowed.replace(ours + " ", mapping.origin[ours] + " ")
        allowed = allowed.replace(ours + ")", mapping.origin[ours] + ")")
    return ConfigError(go_name(exc.key), exc.value, allowed)


def settings_from_dict(tree: Mapping[str, Any]) -> Settings:
    """Build and validate settings from a nested mapping (as :func:`settings_to_dict` makes)."""
    return build_settings(tree, [])


def settings_to_dict(settings: Settings) -> dict[str, Any]:
    """The settings as plain nested dicts and lists, ready for JSON."""
    return typing.cast(dict[str, Any], json.loads(json.dumps(dataclasses.asdict(settings))))


def settings_to_env(settings: Settings) -> dict[str, str]:
    """Environment entries that make :func:`load_settings` return exactly ``settings``."""
    return {RESOLVED_ENV: json.dumps(settings_to_dict(settings), separators=(",", ":"))}
