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
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from certstream._version import __version__
from certstream.errors import ConfigError

__all__ = [
    "KEY_ALIASES",
    "KNOWN_LOG_STATES",
    "LOG_ENTRY_TYPES",
    "RESERVED_PATHS",
    "RETIRED_KEYS",
    "ROLES",
    "SECTIONS",
    "ApiSettings",
    "AuthSettings",
    "BrokerSettings",
    "ConnectionLimitSettings",
    "CtLogSettings",
    "CustomLog",
    "DedupSettings",
    "FiltersSettings",
    "HotReloadSettings",
    "IngestSettings",
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
    "cross_checks",
    "is_ip_or_cidr",
    "is_url_path",
    "metrics_listener",
    "normalize_path",
]

#: Log states of the v3 log lists (Google's and Apple's spell them the same way).
KNOWN_LOG_STATES = ("usable", "qualified", "readonly", "retired", "rejected", "pending")
_LOG_LEVELS = ("trace", "debug", "info", "warn", "warning", "error", "critical")
_FALLBACK_PROFILES = ("go", "calidog", "rust")
#: ``role``: one machine (all), or one of several: the log follower (ingest) or a server of
#: clients fed from the broker (edge).  See README "Running on several machines".
ROLES = ("all", "ingest", "edge")

#: Older names of keys (dotted path -> the key it now sets), accepted in files and the
#: environment; setting both names in one file is an error.
KEY_ALIASES = {
    "rate_limit.requests_per_sec": "rate_limit.refill_rate",
}

#: Keys that are accepted and ignored, with a warning saying why (dotted path -> reason).
RETIRED_KEYS = {
    "ct_log.health_check_interval_secs":
        "log health is judged on every request to the log, not on a timer",
    "ct_log.retry_max_attempts":
        "a failing log is retried forever, with backoff, so that no entry is lost",
    "ct_log.state_flush_secs":
        "each log's position is saved right after each batch its clients received",
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


def is_ip_or_cidr(v: str) -> bool:
    """An IP address or a CIDR range (host bits may be set: ``127.0.0.1/8``, as Go allows)."""
    try:
        ipaddress.ip_network(v.strip(), strict=False)
    except ValueError:
        return False
    return True


_PATH_RE = re.compile(r"^/(?:[A-Za-z0-9._~-]+/?)*$")


def is_url_path(v: str) -> bool:
    """A request path: ``/`` or ``/seg/seg``, one trailing slash allowed."""
    return bool(_PATH_RE.match(v))


def normalize_path(path: str) -> str:
    """The path a request for ``path`` routes by: without its trailing slash (``/`` stays)."""
    return path.rstrip("/") or "/"


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
_URL_PATH = _rule(is_url_path, "a path such as /full-stream (letters, digits, - . _ ~ and /)")
_IPS_OR_CIDRS = _rule(is_ip_or_cidr, "IP addresses or CIDR ranges", items=True)
_PORT_OR_ZERO = _rule(lambda v: 0 <= v <= 65535,
                      "0 (on the main listener) or an integer from 1 to 65535")


def _is_broker_url(v: str) -> bool:
    if not v:
        return True  # checked against role in cross_checks
    from certstream.core.brokerurl import parse_broker_url  # noqa: PLC0415 - only when set

    try:
        parse_broker_url(v)
    except ValueError:
        return False
    return True


_BROKER_URL = _rule(
    _is_broker_url,
    "redis://host:port/db or redis+sentinel://host:port[,host:port]/service_name/db",
)


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
    # permessage-deflate (RFC 7692) for clients that offer it, each message compressed once
    # for every client (no context takeover); certstream-server-go's compression_enabled.
    compression: bool = True


@dataclass(frozen=True, slots=True)
class FiltersSettings:
    """Server-side filters (``?domain=``, ``domain_re=``, ``issuer=``, ``log=`` on any stream
    path): the most values one client may send; more is a 400."""

    max_patterns: int = field(default=100, metadata=_POSITIVE)


@dataclass(frozen=True, slots=True)
class PathsSettings:
    """Where the WebSocket streams and the metrics are served.  Each stream's example is
    ``<path>/example.json``; a request may add one trailing slash to any of them."""

    lite: str = field(default="/", metadata=_URL_PATH)
    full: str = field(default="/full-stream", metadata=_URL_PATH)
    domains_only: str = field(default="/domains-only", metadata=_URL_PATH)
    metrics: str = field(default="/metrics", metadata=_URL_PATH)


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """What ``/metrics`` holds and where it listens (``protocols.metrics`` switches it on).

    ``port`` 0 (or the main ``host``/``port``) serves it on the main listener; any other
    port gives it a listener of its own, which serves nothing else and has its own
    ``real_ip``, ``whitelist`` and TLS pair.
    """

    host: str = ""  # its own listener's address; "" = the main host
    port: int = field(default=0, metadata=_PORT_OR_ZERO)
    real_ip: bool = False
    whitelist: tuple[str, ...] = field(default=(), metadata=_IPS_OR_CIDRS)
    tls_cert: str | None = None
    tls_key: str | None = None
    # process_* series of every process of the deployment, summed (CPU, memory, fds).
    process_metrics: bool = False
    # certstream-server-go's series (certstreamservergo_*) beside ours.
    go_series: bool = False


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
    # The spec's documented 256: catching up is as fast as with 1024 whatever the log's cap
    # (the ingest's CPU, or Google's 32 per request, is the limit), and a log that serves
    # 1024 per request holds 4x less response data in flight (bench/batch_size.py, README).
    batch_size: int = field(default=256, metadata=_POSITIVE)
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
    # certstream-server-go's ct_index.json ("" = none): logs the state file does not know
    # start at its index (0 when it has none, as in Go), and it is kept current.
    ct_index_file: str = ""
    # Stop following a log that left the log lists (certstream-server-go's drop_old_logs).
    drop_unlisted_logs: bool = True


@dataclass(frozen=True, slots=True)
class DedupSettings:
    capacity: int = field(default=200000, metadata=_POSITIVE)
    ttl_secs: int = field(default=900, metadata=_POSITIVE)


@dataclass(frozen=True, slots=True)
class ConnectionLimitSettings:
    enabled: bool = False
    max_connections: int = field(default=10000, metadata=_POSITIVE)
    # The spec's documented default; null = no limit per address.
    per_ip_limit: int | None = field(default=100, metadata=_OPTIONAL_POSITIVE)


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """The spec's per-address request limit, for the whole server (the workers share it): a
    sliding window of ``window_max_requests`` per ``window_seconds``, then a token bucket of
    ``max_tokens`` refilled at ``refill_rate`` per second, then ``burst`` more requests per
    ``burst_window_seconds`` (see ``certstream.core.ratelimit``).  ``requests_per_sec`` is
    the older name of ``refill_rate`` (``KEY_ALIASES``)."""

    enabled: bool = False
    max_tokens: float = field(default=100.0, metadata=_at_least(1))
    refill_rate: float = field(default=10.0, metadata=_POSITIVE_FLOAT)
    burst: float = field(default=20.0, metadata=_NON_NEGATIVE)
    window_seconds: int = field(default=60, metadata=_POSITIVE)
    window_max_requests: int = field(default=1000, metadata=_POSITIVE)
    burst_window_seconds: int = field(default=10, metadata=_POSITIVE)


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
class BrokerSettings:
    """The Redis that carries the records between machines (``role: ingest`` or ``edge``).

    ``retention`` records are kept in the stream (``XADD ... MAXLEN ~``): about retention x
    the built payloads x 1.1 of Redis memory.  ``lease_ms``: how long the leading ingest's
    lease lasts without renewal (a standby takes over after it).  ``buffer_bytes``: what the
    ingest holds while Redis is unreachable before its log followers wait.
    """

    url: str = field(default="", metadata=_BROKER_URL)
    retention: int = field(default=10000, metadata=_at_least(100))
    key_prefix: str = field(default="certstream", metadata=_NON_EMPTY)
    lease_ms: int = field(default=10000, metadata=_at_least(500))
    buffer_bytes: int = field(default=64 * 1024 * 1024, metadata=_at_least(1024 * 1024))


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
    buffer_bytes: int = field(default=16 << 20, metadata=_at_least(4096))  # bytes per ring
    # Entries arriving within this long of a client's last write wait for the next one, so
    # each client gets one write per interval, not one per feed message (0 = write at once).
    flush_interval_ms: int = field(default=20, metadata=_between(0, 1000))
    tls_cert: str | None = None
    tls_key: str | None = None
    # The client address from X-Forwarded-For / X-Real-IP (behind a proxy that sets them).
    real_ip: bool = False
    # Only these addresses (IPs or CIDR ranges) may connect; others get 403.  Empty = all.
    whitelist: tuple[str, ...] = field(default=(), metadata=_IPS_OR_CIDRS)
    feed_socket: str = ""  # "" = the master chooses a private path at start
    role: str = field(default="all", metadata=_one_of(*ROLES))
    protocols: ProtocolsSettings = field(default_factory=ProtocolsSettings)
    streams: StreamsSettings = field(default_factory=StreamsSettings)
    paths: PathsSettings = field(default_factory=PathsSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    output: OutputSettings = field(default_factory=OutputSettings)
    websocket: WebSocketSettings = field(default_factory=WebSocketSettings)
    sse: SseSettings = field(default_factory=SseSettings)
    filters: FiltersSettings = field(default_factory=FiltersSettings)
    ct_log: CtLogSettings = field(default_factory=CtLogSettings)
    dedup: DedupSettings = field(default_factory=DedupSettings)
    connection_limit: ConnectionLimitSettings = field(default_factory=ConnectionLimitSettings)
    rate_limit: RateLimitSettings = field(default_factory=RateLimitSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    hot_reload: HotReloadSettings = field(default_factory=HotReloadSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    broker: BrokerSettings = field(default_factory=BrokerSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    custom_logs: tuple[CustomLog, ...] = ()
    static_logs: tuple[StaticLog, ...] = ()


SECTIONS = (
    ProtocolsSettings, StreamsSettings, PathsSettings, MetricsSettings, OutputSettings,
    WebSocketSettings, SseSettings, CtLogSettings, DedupSettings, ConnectionLimitSettings,
    RateLimitSettings, AuthSettings, HotReloadSettings, ApiSettings, FiltersSettings,
    BrokerSettings, IngestSettings,
)
#: Paths of the main listener that a configured path may not take.
RESERVED_PATHS = ("/sse", "/health", "/health/deep", "/api")


def metrics_listener(s: Settings) -> tuple[str, int] | None:
    """The (host, port) of the metrics' own listener, or None when they are served on the
    main listener."""
    m = s.metrics
    host = m.host or s.host
    if m.port == 0 or (m.port == s.port and host == s.host):
        return None
    return host, m.port
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
    if (s.metrics.tls_cert is None) != (s.metrics.tls_key is None):
        raise ConfigError("metrics.tls_key" if s.metrics.tls_key is None else "metrics.tls_cert",
                          None, "metrics.tls_cert and metrics.tls_key must be set together")
    _check_paths(s)
    _role_checks(s)


def _check_paths(s: Settings) -> None:
    """Each stream (and the metrics, on the main listener) at a path of its own."""
    taken: dict[str, str] = {}
    keys = ["paths.lite", "paths.full", "paths.domains_only"]
    if metrics_listener(s) is None:
        keys.append("paths.metrics")
    for key in keys:
        value = getattr(s.paths, key.partition(".")[2])
        path = normalize_path(value)
        reserved = next((r for r in RESERVED_PATHS
                         if path == r or path.startswith(r + "/")), None)
        if reserved is not None:
            raise ConfigError(key, value, f"a path not used by another endpoint ({reserved})")
        if path in taken:
            raise ConfigError(key, value, f"a path of its own ({taken[path]} has it)")
        taken[path] = key
        if key != "paths.metrics":
            example = path.rstrip("/") + "/example.json"
            taken.setdefault(example, key)


def _role_checks(s: Settings) -> None:
    if s.role != "all" and s.ingest.mode == "embedded":
        raise ConfigError("ingest.mode", s.ingest.mode, f"process when role is {s.role} (the "
                          "embedded ingest feeds this machine's one worker, not a broker)")
    if s.role != "all" and not s.broker.url:
        raise ConfigError("broker.url", "", f"a redis:// or redis+sentinel:// URL when role is "
                          f"{s.role}")
    if s.role == "all" and s.broker.url:
        raise ConfigError("role", s.role, "ingest or edge when broker.url is set (role all "
                          "uses no broker)")
