"""Settings: one frozen tree, read from a YAML file and ``CERTSTREAM_*`` variables, validated once.

Every process of a deployment (the gunicorn master, each worker, the ingest) must agree on the
settings, even when the master was given ``--config PATH`` or ``--port`` on its command line.
So the master resolves them once and hands the result down in ``CERTSTREAM_RESOLVED_SETTINGS``
(see :func:`settings_to_env`); :func:`load_settings` honours that variable before anything else.

Theory of operation: the schema *is* the dataclasses below.  Attribute paths equal the YAML
keys (``ct_log.batch_size``), the environment name is derived from the path
(``CERTSTREAM_CT_LOG_BATCH_SIZE``) plus the certstream-server-rust spellings in
``_ENV_ALIASES``, each field's type says how to convert a raw value, and its metadata says what
is allowed.  A bad value raises :class:`~certstream.errors.ConfigError`, whose text is the one
line shown to the user.  Unknown keys are logged as a warning naming them, so that a config
written for another certstream server still starts.

Nothing here does I/O except reading the config file in :func:`load_settings`.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
import json
import logging
import os
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from certstream import __version__
from certstream.errors import ConfigError

__all__ = [
    "DEFAULT_CONFIG_PATHS",
    "ENV_NAMES",
    "KNOWN_LOG_STATES",
    "RESOLVED_ENV",
    "ApiSettings",
    "AuthSettings",
    "ConnectionLimitSettings",
    "CtLogSettings",
    "CustomLog",
    "DedupSettings",
    "HotReloadSettings",
    "OutputSettings",
    "ProtocolsSettings",
    "RateLimitSettings",
    "Settings",
    "SseSettings",
    "StaticLog",
    "StreamsSettings",
    "WebSocketSettings",
    "load_settings",
    "settings_to_dict",
    "settings_to_env",
]

log = logging.getLogger(__name__)

#: Where a config file is looked for when no path is given ($CERTSTREAM_CONFIG comes first).
DEFAULT_CONFIG_PATHS = ("config.yaml", "config.yml", "/etc/certstream/config.yaml")
#: The environment variable that carries the master's resolved settings to its children.
RESOLVED_ENV = "CERTSTREAM_RESOLVED_SETTINGS"
#: Log states of the v3 log lists (Google's and Apple's spell them the same way).
KNOWN_LOG_STATES = ("usable", "qualified", "readonly", "retired", "rejected", "pending")
_LOG_LEVELS = ("trace", "debug", "info", "warn", "warning", "error", "critical")
_FALLBACK_PROFILES = ("go", "calidog", "rust")


# -- rules: field metadata saying what a value may be ----------------------------------------

Check = Callable[[Any], bool]


def _rule(check: Check, allowed: str | Callable[[], str], *, items: bool = False) -> dict[str, Any]:
    # ``items``: the check applies to each element of a tuple, so the error can name the element.
    return {"check": check, "allowed": allowed, "items": items}


def _between(lo: int, hi: int) -> dict[str, Any]:
    return _rule(lambda v: lo <= v <= hi, f"an integer from {lo} to {hi}")


def _at_least(lo: float) -> dict[str, Any]:
    return _rule(lambda v: v >= lo, f"a value >= {lo}")


def _one_of(*choices: str) -> dict[str, Any]:
    return _rule(lambda v: v in choices, "one of " + ", ".join(choices))


def _is_http_url(v: str) -> bool:
    scheme, sep, rest = v.partition("://")
    return bool(sep) and scheme.lower() in ("http", "https") and bool(rest.split("/")[0])


def _is_spki_b64(v: str) -> bool:
    try:
        der = base64.b64decode(v, validate=True)
    except ValueError:
        return False
    return len(der) > 2 and der[0] == 0x30  # an SPKI is a DER SEQUENCE


def _close_code_ok(v: int) -> bool:
    # 1004-1006 and 1015 are reserved: they must never be sent on the wire (RFC 6455 7.4.1).
    return (1000 <= v <= 1014 and v not in (1004, 1005, 1006)) or 3000 <= v <= 4999


_POSITIVE = _at_least(1)
_NON_NEGATIVE = _at_least(0)
_POSITIVE_FLOAT = _rule(lambda v: v > 0, "a number > 0")
_NON_EMPTY = _rule(bool, "a non-empty string")
_HTTP_URL = _rule(_is_http_url, "an http:// or https:// URL")
_HTTP_URLS = _rule(_is_http_url, "http:// or https:// URLs", items=True)
_OPTIONAL_POSITIVE = _rule(lambda v: v is None or v >= 1, "empty or an integer >= 1")
_OPTIONAL_INDEX = _rule(lambda v: v is None or v >= 0, "empty or an integer >= 0")
_SPKI_KEY = _rule(lambda v: v is None or _is_spki_b64(v), "base64 of the log's SPKI DER")


# -- the schema ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProtocolsSettings:
    websocket: bool = True
    sse: bool = True
    metrics: bool = True
    health: bool = True
    example_json: bool = True
    api: bool = False


@dataclass(frozen=True, slots=True)
class StreamsSettings:
    full: bool = True
    lite: bool = True
    domains_only: bool = True


@dataclass(frozen=True, slots=True)
class OutputSettings:
    profile: str = field(
        default="go",
        metadata=_rule(lambda v: v in _profile_names(),
                       lambda: "one of " + ", ".join(_profile_names())),
    )


@dataclass(frozen=True, slots=True)
class WebSocketSettings:
    ping_interval_secs: float = field(default=30.0, metadata=_POSITIVE_FLOAT)
    heartbeat_secs: float = field(default=0.0, metadata=_NON_NEGATIVE)  # 0 = no JSON heartbeat
    max_message_bytes: int = field(default=65536, metadata=_at_least(125))
    slow_client_drop_budget: int = field(default=1000, metadata=_NON_NEGATIVE)
    slow_client_close_code: int = field(
        default=1008,
        metadata=_rule(_close_code_ok, "a sendable close code: 1000-1003, 1007-1014 or 3000-4999"),
    )


@dataclass(frozen=True, slots=True)
class SseSettings:
    keepalive_secs: float = field(default=15.0, metadata=_POSITIVE_FLOAT)


@dataclass(frozen=True, slots=True)
class CtLogSettings:
    log_list_urls: tuple[str, ...] = field(
        default=(
            "https://www.gstatic.com/ct/log_list/v3/log_list.json",
            "https://valid.apple.com/ct/log_list/current_log_list.json",
        ),
        metadata=_HTTP_URLS,
    )
    log_list_refresh_secs: int = field(default=3600, metadata=_POSITIVE)
    states: tuple[str, ...] = field(
        default=("usable", "qualified", "readonly"),
        metadata=_rule(lambda v: v in KNOWN_LOG_STATES, "log states among "
                       + ", ".join(KNOWN_LOG_STATES), items=True),
    )
    retry_initial_delay_ms: int = field(default=1000, metadata=_NON_NEGATIVE)
    retry_max_delay_ms: int = field(default=30000, metadata=_NON_NEGATIVE)
    retry_max_attempts: int = field(default=3, metadata=_NON_NEGATIVE)  # accepted for compat
    request_timeout_secs: int = field(default=30, metadata=_POSITIVE)
    healthy_threshold: int = field(default=2, metadata=_POSITIVE)
    unhealthy_threshold: int = field(default=5, metadata=_POSITIVE)
    health_check_interval_secs: int = field(default=60, metadata=_POSITIVE)
    state_file: str = field(default="certstream_state.json", metadata=_NON_EMPTY)
    state_flush_secs: float = field(default=5.0, metadata=_POSITIVE_FLOAT)
    batch_size: int = field(default=1024, metadata=_POSITIVE)
    poll_interval_ms: int = field(default=1000, metadata=_POSITIVE)
    fetch_concurrency: int = field(default=4, metadata=_between(1, 16))
    start_overlap_leaves: int = field(default=256, metadata=_NON_NEGATIVE)
    rfc6962_enabled: bool = True
    static_ct_enabled: bool = True
    static_ct_checkpoint_signature: str = field(
        default="warn", metadata=_one_of("off", "warn", "enforce")
    )
    # RFC 6962 get-sth: check tree_head_signature when the log's key is known.
    sth_signature: str = field(default="warn", metadata=_one_of("off", "warn", "enforce"))
    # 50 ms = 20 data requests/s per operator: Google's logs serve 32 entries per
    # get-entries, so 500 ms (64 entries/s) could never keep up with a real log; a log that
    # minds answers 429 and the followers back off by themselves.
    default_operator_rate_limit_ms: int = field(default=50, metadata=_NON_NEGATIVE)
    operator_rate_limits: dict[str, int] = field(
        default_factory=dict, metadata=_rule(lambda v: v >= 0, "milliseconds >= 0", items=True)
    )
    user_agent: str = field(
        default=f"certstream-python/{__version__} (Certificate Transparency stream server)",
        metadata=_NON_EMPTY,
    )
    max_body_bytes: int = field(default=16 * 1024 * 1024, metadata=_POSITIVE)


@dataclass(frozen=True, slots=True)
class DedupSettings:
    capacity: int = field(default=200000, metadata=_POSITIVE)
    ttl_secs: int = field(default=900, metadata=_POSITIVE)


@dataclass(frozen=True, slots=True)
class ConnectionLimitSettings:
    enabled: bool = False
    max_connections: int = field(default=10000, metadata=_POSITIVE)
    per_ip_limit: int | None = field(default=None, metadata=_OPTIONAL_POSITIVE)


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """A token bucket per client address and worker: ``burst`` requests at once, then
    ``requests_per_sec`` on average (see ``certstream.core.ratelimit``)."""

    enabled: bool = False
    requests_per_sec: float = field(default=10.0, metadata=_POSITIVE_FLOAT)
    burst: int = field(default=100, metadata=_POSITIVE)


@dataclass(frozen=True, slots=True)
class AuthSettings:
    enabled: bool = False
    tokens: tuple[str, ...] = field(
        default=(), metadata=_rule(bool, "non-empty tokens", items=True)
    )
    header_name: str = field(default="Authorization", metadata=_NON_EMPTY)


@dataclass(frozen=True, slots=True)
class HotReloadSettings:
    """Workers poll ``watch_path`` and apply what can change at run time.  Left empty, the
    loader fills in the file the settings were read from (absolute), so that every process
    of the deployment watches the same file."""

    enabled: bool = False
    watch_path: str | None = None


@dataclass(frozen=True, slots=True)
class ApiSettings:
    cache_capacity: int = field(default=1000, metadata=_POSITIVE)


@dataclass(frozen=True, slots=True)
class CustomLog:
    """An RFC 6962 log to follow besides (or instead of) the ones the log lists name.  ``key``
    (base64 SPKI DER, optional) lets ``ct_log.sth_signature`` check its tree heads."""

    name: str = field(metadata=_NON_EMPTY)
    url: str = field(metadata=_HTTP_URL)
    start_index: int | None = field(default=None, metadata=_OPTIONAL_INDEX)
    operator: str = ""
    # Last, so that positional construction (name, url, start_index, operator) still works.
    key: str | None = field(default=None, metadata=_SPKI_KEY)


@dataclass(frozen=True, slots=True)
class StaticLog:
    """A static-ct-api (tiled) log.  ``url`` is the monitoring prefix; ``key`` the log's public
    key as base64 SPKI DER; ``log_origin`` the checkpoint origin, which defaults to the URL
    without scheme and trailing slash (it differs when the monitoring prefix is on another host).
    """

    name: str = field(metadata=_NON_EMPTY)
    url: str = field(metadata=_HTTP_URL)
    start_index: int | None = field(default=None, metadata=_OPTIONAL_INDEX)
    key: str | None = field(default=None, metadata=_SPKI_KEY)
    log_origin: str | None = None
    operator: str = ""

    def __post_init__(self) -> None:
        if not self.log_origin:
            origin = self.url.partition("://")[2] or self.url
            object.__setattr__(self, "log_origin", origin.rstrip("/"))


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a certstream deployment can be told.  Attribute paths equal the YAML keys."""

    host: str = field(default="0.0.0.0", metadata=_NON_EMPTY)
    port: int = field(default=8080, metadata=_between(1, 65535))
    log_level: str = field(default="info", metadata=_one_of(*_LOG_LEVELS))
    log_format: str = field(default="text", metadata=_one_of("text", "json"))  # json: for shippers
    workers: int = field(default=1, metadata=_POSITIVE)
    buffer_size: int = field(default=1000, metadata=_POSITIVE)  # frames per stream ring
    # Entries arriving within this long of a client's last write wait for the next one, so
    # each client gets one write per interval, not one per feed message (0 = write at once).
    flush_interval_ms: int = field(default=20, metadata=_between(0, 1000))
    tls_cert: str | None = None
    tls_key: str | None = None
    feed_socket: str = ""  # "" = the master chooses a private path at start
    protocols: ProtocolsSettings = field(default_factory=ProtocolsSettings)
    streams: StreamsSettings = field(default_factory=StreamsSettings)
    output: OutputSettings = field(default_factory=OutputSettings)
    websocket: WebSocketSettings = field(default_factory=WebSocketSettings)
    sse: SseSettings = field(default_factory=SseSettings)
    ct_log: CtLogSettings = field(default_factory=CtLogSettings)
    dedup: DedupSettings = field(default_factory=DedupSettings)
    connection_limit: ConnectionLimitSettings = field(default_factory=ConnectionLimitSettings)
    rate_limit: RateLimitSettings = field(default_factory=RateLimitSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    hot_reload: HotReloadSettings = field(default_factory=HotReloadSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    custom_logs: tuple[CustomLog, ...] = ()
    static_logs: tuple[StaticLog, ...] = ()


_SECTIONS = (
    ProtocolsSettings, StreamsSettings, OutputSettings, WebSocketSettings, SseSettings,
    CtLogSettings, DedupSettings, ConnectionLimitSettings, RateLimitSettings, AuthSettings,
    HotReloadSettings, ApiSettings,
)
_LOG_ENTRY_TYPES = (CustomLog, StaticLog)


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
}


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
        subs = dataclasses.fields(tp) if tp in _SECTIONS else None
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
            if item_tp in _LOG_ENTRY_TYPES:
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


@dataclass(frozen=True, slots=True)
class _EnvValue:
    """A raw value from the environment, remembered with its variable name for error lines."""

    name: str
    text: str


# -- loading ---------------------------------------------------------------------------------


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


def _overlay_env(tree: dict[str, Any], env: Mapping[str, str]) -> None:
    for name, dotted in ENV_NAMES.items():
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
        target[leaf] = _EnvValue(name, env[name])


def _cross_checks(s: Settings) -> None:
    if (s.tls_cert is None) != (s.tls_key is None):
        raise ConfigError("tls_key" if s.tls_key is None else "tls_cert", None,
                          "tls_cert and tls_key must be set together")
    if s.ct_log.retry_max_delay_ms < s.ct_log.retry_initial_delay_ms:
        raise ConfigError("ct_log.retry_max_delay_ms", s.ct_log.retry_max_delay_ms,
                          f"a delay >= ct_log.retry_initial_delay_ms "
                          f"({s.ct_log.retry_initial_delay_ms})")
    if s.auth.enabled and not s.auth.tokens:
        raise ConfigError("auth.tokens", [], "at least one token when auth.enabled is true")


def _profile_names() -> tuple[str, ...]:
    # Imported late: config must load even while the message builder is absent or broken.
    try:
        profiles = importlib.import_module("certstream.core.profiles")
    except ImportError:
        return _FALLBACK_PROFILES
    names = getattr(profiles, "PROFILES", None)
    return tuple(names) if names else _FALLBACK_PROFILES


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
    _overlay_env(tree, env)
    unknown: list[str] = []
    settings = _build_settings(tree, unknown)
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


def _build_settings(tree: Mapping[str, Any], unknown: list[str]) -> Settings:
    settings: Settings = _build(Settings, tree, "", unknown)
    _cross_checks(settings)
    return settings


def settings_from_dict(tree: Mapping[str, Any]) -> Settings:
    """Build and validate settings from a nested mapping (as :func:`settings_to_dict` makes)."""
    return _build_settings(tree, [])


def settings_to_dict(settings: Settings) -> dict[str, Any]:
    """The settings as plain nested dicts and lists, ready for JSON."""
    return typing.cast(dict[str, Any], json.loads(json.dumps(dataclasses.asdict(settings))))


def settings_to_env(settings: Settings) -> dict[str, str]:
    """Environment entries that make :func:`load_settings` return exactly ``settings``."""
    return {RESOLVED_ENV: json.dumps(settings_to_dict(settings), separators=(",", ":"))}
