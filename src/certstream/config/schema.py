"""The settings' schema: one frozen dataclass per section, each field with its default and
a rule saying what values it may take.

Attribute paths equal the YAML keys (``ct_log.batch_size``); ``certstream.config.convert``
derives the environment names and converts raw values by the field types, and applies the
rules (field metadata) and :func:`cross_checks`.  Keys that used to exist and are read by
nothing are listed in ``RETIRED_KEYS``: configs written for older versions or for other
certstream servers still start, with a warning.
"""

from __future__ import annotations

import base64
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from certstream._version import __version__
from certstream.errors import ConfigError

__all__ = [
    "KNOWN_LOG_STATES",
    "LOG_ENTRY_TYPES",
    "RETIRED_KEYS",
    "SECTIONS",
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
    "cross_checks",
]

#: Log states of the v3 log lists (Google's and Apple's spell them the same way).
KNOWN_LOG_STATES = ("usable", "qualified", "readonly", "retired", "rejected", "pending")
_LOG_LEVELS = ("trace", "debug", "info", "warn", "warning", "error", "critical")
_FALLBACK_PROFILES = ("go", "calidog", "rust")

#: Keys that are accepted and ignored, with a warning saying why (dotted path -> reason).
RETIRED_KEYS = {
    "ct_log.health_check_interval_secs":
        "log health is judged on every request to the log, not on a timer",
    "ct_log.retry_max_attempts":
        "a failing log is retried forever, with backoff, so that no entry is lost",
}


def _profile_names() -> tuple[str, ...]:
    # Imported late: config must load even while the message builder is absent or broken.
    try:
        profiles = importlib.import_module("certstream.core.profiles")
    except ImportError:
        return _FALLBACK_PROFILES
    names = getattr(profiles, "PROFILES", None)
    return tuple(names) if names else _FALLBACK_PROFILES


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
    request_timeout_secs: int = field(default=30, metadata=_POSITIVE)
    healthy_threshold: int = field(default=2, metadata=_POSITIVE)
    unhealthy_threshold: int = field(default=5, metadata=_POSITIVE)
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
    """``/api/cert/{hash}`` keeps the last ``cache_capacity`` lite messages (per worker), and
    at most ``cache_max_bytes`` of them: a message is 1.5-3 KiB, so the default 1,000 take
    2-3 MiB, and the byte bound caps a capacity raised far beyond that."""

    cache_capacity: int = field(default=1000, metadata=_POSITIVE)
    cache_max_bytes: int = field(default=16 * 1024 * 1024, metadata=_at_least(65536))


@dataclass(frozen=True, slots=True)
class IngestSettings:
    """Where the ingest runs.  ``process`` (the default): a process of its own, fed to the
    workers over the feed socket; a crash or a long decode there never touches a client.
    ``embedded``: inside the one worker (``workers: 1`` only), one process less (~45 MiB on
    a small deployment), at the price of that isolation."""

    mode: str = field(default="process", metadata=_one_of("process", "embedded"))


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
    ingest: IngestSettings = field(default_factory=IngestSettings)
    custom_logs: tuple[CustomLog, ...] = ()
    static_logs: tuple[StaticLog, ...] = ()


SECTIONS = (
    ProtocolsSettings, StreamsSettings, OutputSettings, WebSocketSettings, SseSettings,
    CtLogSettings, DedupSettings, ConnectionLimitSettings, RateLimitSettings, AuthSettings,
    HotReloadSettings, ApiSettings, IngestSettings,
)
LOG_ENTRY_TYPES = (CustomLog, StaticLog)


def cross_checks(s: Settings) -> None:
    """The rules that involve more than one field."""
    if (s.tls_cert is None) != (s.tls_key is None):
        raise ConfigError("tls_key" if s.tls_key is None else "tls_cert", None,
                          "tls_cert and tls_key must be set together")
    if s.ct_log.retry_max_delay_ms < s.ct_log.retry_initial_delay_ms:
        raise ConfigError("ct_log.retry_max_delay_ms", s.ct_log.retry_max_delay_ms,
                          f"a delay >= ct_log.retry_initial_delay_ms "
                          f"({s.ct_log.retry_initial_delay_ms})")
    if s.ingest.mode == "embedded" and s.workers != 1:
        raise ConfigError("ingest.mode", s.ingest.mode,
                          f"process when workers is {s.workers}; embedded runs the ingest "
                          "inside the one worker and needs workers: 1")
    if s.auth.enabled and not s.auth.tokens:
        raise ConfigError("auth.tokens", [], "at least one token when auth.enabled is true")
