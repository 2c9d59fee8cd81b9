"""The settings' schema: one frozen dataclass per section, each field with its default and
a rule saying what values it may take.

Attribute paths equal the YAML keys (``ct_log.batch_size``); ``certstream.config.convert``
derives the environment names and converts raw values by the field types, and applies the
rules (field metadata, from ``certstream.config.rules``) and the rules that involve more than
one field (``certstream.config.crosschecks``).  Keys that used to exist and are read by
nothing are listed in ``RETIRED_KEYS``: configs written for older versions or for other
certstream servers still start, with a warning.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from certstream._version import __version__

# The rules under the short names the fields below are written with.
from certstream.config.rules import BROKER_URL as _BROKER_URL
from certstream.config.rules import HTTP_URL as _HTTP_URL
from certstream.config.rules import HTTP_URLS as _HTTP_URLS
from certstream.config.rules import IPS_OR_CIDRS as _IPS_OR_CIDRS
from certstream.config.rules import NON_EMPTY as _NON_EMPTY
from certstream.config.rules import NON_NEGATIVE as _NON_NEGATIVE
from certstream.config.rules import OPTIONAL_INDEX as _OPTIONAL_INDEX
from certstream.config.rules import OPTIONAL_POSITIVE as _OPTIONAL_POSITIVE
from certstream.config.rules import PORT_OR_ZERO as _PORT_OR_ZERO
from certstream.config.rules import POSITIVE as _POSITIVE
from certstream.config.rules import POSITIVE_FLOAT as _POSITIVE_FLOAT
from certstream.config.rules import SPKI_KEY as _SPKI_KEY
from certstream.config.rules import URL_PATH as _URL_PATH
from certstream.config.rules import at_least as _at_least
from certstream.config.rules import between as _between
from certstream.config.rules import close_code_ok as _close_code_ok
from certstream.config.rules import one_of as _one_of
from certstream.config.rules import rule as _rule

__all__ = [
    "KEY_ALIASES",
    "KNOWN_LOG_STATES",
    "LOG_ENTRY_TYPES",
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
    # gunicorn: a master supervising the workers; single: one process, no master (shell.single).
    process_model: str = field(default="gunicorn", metadata=_one_of("gunicorn", "single"))
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
LOG_ENTRY_TYPES = (CustomLog, StaticLog)
