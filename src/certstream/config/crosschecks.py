"""The rules that involve more than one setting, checked once the whole tree is built; and
where the metrics are served, which both they and the server need to know.

A field's own rule is its metadata (``certstream.config.rules``); ``certstream.config.convert``
calls :func:`cross_checks` last, on the finished :class:`~certstream.config.schema.Settings`.
"""

from __future__ import annotations

from certstream.config.rules import normalize_path
from certstream.config.schema import Settings
from certstream.errors import ConfigError

__all__ = ["RESERVED_PATHS", "cross_checks", "metrics_listener"]

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


def cross_checks(s: Settings) -> None:
    """The rules that involve more than one field."""
    if (s.tls_cert is None) != (s.tls_key is None):
        raise ConfigError("tls_key" if s.tls_key is None else "tls_cert", None,
                          "tls_cert and tls_key must be set together")
    if s.ct_log.retry_max_delay_ms < s.ct_log.retry_initial_delay_ms:
        raise ConfigError("ct_log.retry_max_delay_ms", s.ct_log.retry_max_delay_ms,
                          f"a delay >= ct_log.retry_initial_delay_ms "
                          f"({s.ct_log.retry_initial_delay_ms})")
    single = (s.workers, s.ingest.mode, s.role) == (1, "embedded", "all")
    if s.process_model == "single" and not single:
        raise ConfigError("process_model", s.process_model,
                          f"gunicorn with workers: {s.workers}, ingest.mode: {s.ingest.mode}, "
                          f"role: {s.role}; single needs workers: 1, ingest.mode: embedded, "
                          "role: all")
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
