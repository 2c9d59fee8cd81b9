"""Raw values to settings: the environment names, the conversion of YAML nodes and
``CERTSTREAM_*`` strings by the schema's field types, and the checks of each field's rule.

A bad value raises :class:`~certstream.errors.ConfigError`, whose text is the one line shown
to the user; a value from the environment also names its variable.  Keys the schema does not
know are collected (the loader warns about them), never fatal.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from certstream.config.crosschecks import cross_checks
from certstream.config.gokeys import GO_ENV_NAMES
from certstream.config.schema import (
    KEY_ALIASES,
    LOG_ENTRY_TYPES,
    RETIRED_KEYS,
    SECTIONS,
    Settings,
)
from certstream.errors import ConfigError

__all__ = [
    "ENV_NAMES",
    "NON_SETTING_ENV",
    "RETIRED_ENV_NAMES",
    "build_settings",
    "key_warnings",
    "overlay_env",
    "unknown_env_names",
]


# -- environment names ---------------------------------------------------------------------

# certstream-server-rust's names where they differ from the derived ones.
_ENV_ALIASES = {
    "CERTSTREAM_WS_ENABLED": "protocols.websocket",
    "CERTSTREAM_SSE_ENABLED": "protocols.sse",
    "CERTSTREAM_METRICS_ENABLED": "protocols.metrics",
    "CERTSTREAM_HEALTH_ENABLED": "protocols.health",
    "CERTSTREAM_EXAMPLE_JSON_ENABLED": "protocols.example_json",
    "CERTSTREAM_API_ENABLED": "protocols.api",
    "CERTSTREAM_STREAM_FULL_ENABLED": "streams.full",
    "CERTSTREAM_STREAM_LITE_ENABLED": "streams.lite",
    "CERTSTREAM_STREAM_DOMAINS_ONLY_ENABLED": "streams.domains_only",
    # Older names (see schema.KEY_ALIASES).
    "CERTSTREAM_RATE_LIMIT_REQUESTS_PER_SEC": "rate_limit.refill_rate",
}

#: ``CERTSTREAM_*`` variables that are not settings but are still ours: the config file's
#: path, what the master hands its children, and the switches of the compiled twins.
NON_SETTING_ENV = frozenset({
    "CERTSTREAM_CONFIG",
    "CERTSTREAM_RESOLVED_SETTINGS",
    "CERTSTREAM_MASTER_PID",
    "CERTSTREAM_FEED_SOCKET",
    "CERTSTREAM_NO_EXTENSIONS",
    "CERTSTREAM_REQUIRE_EXTENSIONS",
})


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    # get_type_hints resolves the string annotations (postponed evaluation); it is slow: cache.
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _env_names() -> dict[str, str]:
    names: dict[str, str] = {}
    for top in dataclasses.fields(Settings):
        tp = _hints(Settings)[top.name]
        subs = dataclasses.fields(tp) if tp in SECTIONS else None
        paths = [f"{top.name}.{f.name}" for f in subs] if subs else [top.name]
        for path in paths:
            env = "CERTSTREAM_" + path.replace(".", "_").upper()
            if env in names:  # pragma: no cover - guards the schema against ambiguous names
                raise AssertionError(f"{env} names both {names[env]} and {path}")
            names[env] = path
    names.update(_ENV_ALIASES)
    return names


#: Environment variable -> dotted settings path.
ENV_NAMES: dict[str, str] = _env_names()
#: The variables of ``RETIRED_KEYS``: read only to warn that they are ignored.
RETIRED_ENV_NAMES = {"CERTSTREAM_" + path.replace(".", "_").upper(): path
                     for path in RETIRED_KEYS}


def unknown_env_names(env: Mapping[str, str]) -> list[str]:
    """The ``CERTSTREAM_*`` variables of ``env`` that name no setting (sorted): a typo in a
    variable must be seen, as an unknown key in the file is."""
    return sorted(
        name for name in env
        if name.startswith("CERTSTREAM_")
        and name not in ENV_NAMES and name not in RETIRED_ENV_NAMES
        and name not in NON_SETTING_ENV
        # certstream-server-go's names (CERTSTREAM_ + its key path) are read by the Go
        # format's loader; a misspelt one is as unknown as a misspelt one of ours.
        and name not in GO_ENV_NAMES
    )


def key_warnings(tree: Mapping[str, Any]) -> list[str]:
    """Warnings about keys whose meaning may not be what the file's author meant."""
    out = []
    rate = tree.get("rate_limit")
    if isinstance(rate, Mapping) and "burst" in rate and "max_tokens" not in rate:
        out.append(
            "rate_limit.burst is the spec's allowance past the token bucket (that many more "
            "requests per rate_limit.burst_window_seconds); the bucket's size, which burst "
            "used to set, is rate_limit.max_tokens (default 100)"
        )
    return out


# -- conversion ------------------------------------------------------------------------------

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _convert(tp: Any, raw: Any, key: str, from_env: bool, unknown: list[str]) -> Any:
    """Turn one raw value (YAML node or env string) into ``tp``, or raise ConfigError."""
    origin = typing.get_origin(tp)
    if origin is types.UnionType:  # X | None
        inner = next(a for a in typing.get_args(tp) if a is not type(None))
        if raw is None or (from_env and raw.strip() == ""):
            return None
        return _convert(inner, raw, key, from_env, unknown)
    if tp is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConfigError(key, raw, "true or false (also 1/0, yes/no, on/off)")
    if tp is int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if isinstance(raw, str):
            try:
                return int(raw.strip())
            except ValueError:
                pass
        raise ConfigError(key, raw, "an integer")
    if tp is float:
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            return float(raw)
        if isinstance(raw, str):
            try:
                return float(raw.strip())
            except ValueError:
                pass
        raise ConfigError(key, raw, "a number")
    if tp is str:
        if isinstance(raw, str):
            return raw.strip() if from_env else raw
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            return str(raw)  # e.g. a numeric token written without quotes
        raise ConfigError(key, raw, "a string")
    if origin is tuple:
        item_tp = typing.get_args(tp)[0]
        if from_env and isinstance(raw, str):
            if item_tp in LOG_ENTRY_TYPES:
                raw = _json_from_env(raw, key)
            else:
                raw = [part.strip() for part in raw.split(",") if part.strip()]
        if not isinstance(raw, (list, tuple)):
            raise ConfigError(key, raw, "a list")
        return tuple(
            _convert(item_tp, item, f"{key}[{i}]", False, unknown) for i, item in enumerate(raw)
        )
    if origin is dict:
        if from_env and isinstance(raw, str):
            raw = _pairs_from_env(raw, key)
        if not isinstance(raw, Mapping):
            raise ConfigError(key, raw, "a mapping of name: value")
        _, val_tp = typing.get_args(tp)
        return {str(k): _convert(val_tp, v, f"{key}.{k}", False, unknown) for k, v in raw.items()}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _build(tp, raw, key, unknown)
    raise AssertionError(f"no converter for {tp!r}")  # pragma: no cover - schema bug


def _json_from_env(raw: str, key: str) -> Any:
    if not raw.strip():
        return []
    try:
        return json.loads(raw)
    except ValueError:
        raise ConfigError(key, raw, "a JSON list of {name, url, ...} objects") from None


def _pairs_from_env(raw: str, key: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise ConfigError(key, raw, "comma-separated name=value pairs")
        pairs[name.strip()] = value
    return pairs


def _check(f: dataclasses.Field[Any], value: Any, key: str) -> None:
    check = f.metadata.get("check")
    if check is None:
        return
    allowed = f.metadata["allowed"]
    if callable(allowed):  # computed late: e.g. the profile names, known only at run time
        allowed = allowed()
    if f.metadata["items"]:
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for k, item in items:
            if not check(item):
                sub = f"{key}.{k}" if isinstance(value, dict) else f"{key}[{k}]"
                raise ConfigError(sub, item, allowed)
    elif not check(value):
        raise ConfigError(key, value, allowed)


def _build(cls: type[Any], raw: Any, prefix: str, unknown: list[str]) -> Any:
    """Build dataclass ``cls`` from a mapping of raw values (YAML nodes)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(prefix or "config", raw, "a mapping of keys")
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for name, node in raw.items():
        key = f"{prefix}.{name}" if prefix else str(name)
        f = fields.get(str(name))
        if f is None and key in KEY_ALIASES:
            f = _alias_target(key, node, raw, fields)
            if f is None:
                continue  # the new name, from the environment, wins
        if f is None:
            unknown.append(key)
            continue
        if isinstance(node, _EnvValue):
            try:
                value = _convert(hints[f.name], node.text, key, True, unknown)
                _check(f, value, key)
            except ConfigError as exc:
                # Name the variable too: the user has to find where the bad value came from.
                allowed = f"{exc.allowed} (set by {node.name})"
                raise ConfigError(exc.key, exc.value, allowed) from None
        else:
            value = _convert(hints[f.name], node, key, False, unknown)
            _check(f, value, key)
        values[f.name] = value
    for name, f in fields.items():
        no_default = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if no_default and name not in values:
            raise ConfigError(f"{prefix}.{name}" if prefix else name, None, "a value (required)")
    return cls(**values)


def _alias_target(key: str, node: Any, raw: Mapping[str, Any],
                  fields: Mapping[str, dataclasses.Field[Any]]) -> dataclasses.Field[Any] | None:
    """The field an older key name sets; ``None`` when the new name is also given by the
    environment (which wins over the file); an error when both are in the same place."""
    target = KEY_ALIASES[key]
    name = target.rpartition(".")[2]
    if name in raw:
        if isinstance(raw[name], _EnvValue) and not isinstance(node, _EnvValue):
            return None
        raise ConfigError(key, node.text if isinstance(node, _EnvValue) else node,
                          f"only one of {key} and {target} ({key} is its older name)")
    return fields[name]


@dataclass(frozen=True, slots=True)
class _EnvValue:
    """A raw value from the environment, remembered with its variable name for error lines."""

    name: str
    text: str


def overlay_env(tree: dict[str, Any], env: Mapping[str, str]) -> None:
    """Put each ``CERTSTREAM_*`` variable of ``env`` over the file's tree (the environment
    wins), remembered as an ``_EnvValue`` so that an error names the variable."""
    for name, dotted in (*ENV_NAMES.items(), *RETIRED_ENV_NAMES.items()):
        if name not in env:
            continue
        section, _, leaf = dotted.rpartition(".")
        target = tree
        if section:
            node = tree.get(section)
            if not isinstance(node, dict):
                node = {} if node is None else node
                tree[section] = node
            if not isinstance(node, dict):
                raise ConfigError(section, node, "a mapping of keys")
            target = node
        if isinstance(target.get(leaf), _EnvValue):
            continue  # a setting's own variable beats its older name's (listed later)
        target[leaf] = _EnvValue(name, env[name])


def build_settings(tree: Mapping[str, Any], unknown: list[str]) -> Settings:
    """Build and check settings from a tree of raw values; keys the schema does not know
    are appended to ``unknown``."""
    settings: Settings = _build(Settings, tree, "", unknown)
    cross_checks(settings)
    return settings
