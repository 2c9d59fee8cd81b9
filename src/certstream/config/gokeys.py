"""certstream-server-go's config keys and how their values are read: each key with its kind
and Go's default, its environment names, the keys that mean nothing here, and each value
converted and checked as Go reads it, with errors that name the Go key (and the variable).

``certstream.config.goformat`` maps the values read here onto certstream's settings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from certstream.config.rules import is_ip_or_cidr, is_url_path
from certstream.errors import ConfigError

__all__ = [
    "GO_ENV_NAMES",
    "GO_KEYS",
    "GO_TOP_KEYS",
    "NO_MEANING",
    "Raw",
    "convert",
    "fail",
    "go_env_in",
    "is_go_format",
    "is_ip",
    "read_raw",
]

#: The top-level keys of certstream-server-go's config.yaml.
GO_TOP_KEYS = ("webserver", "prometheus", "general")

# -- Go's keys -------------------------------------------------------------------------------

#: Every key certstream-server-go v1.9.0 reads, with its kind and Go's default.
GO_KEYS: dict[str, tuple[str, Any]] = {
    "webserver.listen_addr": ("ip", "0.0.0.0"),
    "webserver.listen_port": ("port", 8080),
    "webserver.full_url": ("path", "/full-stream"),
    "webserver.lite_url": ("path", "/"),
    "webserver.domains_only_url": ("path", "/domains-only"),
    "webserver.cert_path": ("str", ""),
    "webserver.cert_key_path": ("str", ""),
    "webserver.real_ip": ("bool", False),
    "webserver.whitelist": ("ips", ()),
    "webserver.compression_enabled": ("bool", False),
    "prometheus.enabled": ("bool", False),
    "prometheus.listen_addr": ("ip", "0.0.0.0"),
    "prometheus.listen_port": ("port", 9090),
    "prometheus.metrics_url": ("path", "/metrics"),
    "prometheus.expose_system_metrics": ("bool", False),
    "prometheus.real_ip": ("bool", False),
    "prometheus.whitelist": ("ips", ()),
    "prometheus.cert_path": ("str", ""),
    "prometheus.cert_key_path": ("str", ""),
    "general.disable_default_logs": ("bool", False),
    "general.additional_logs": ("logs", ()),
    "general.additional_tiled_logs": ("logs", ()),
    "general.buffer_sizes.websocket": ("size", 300),
    "general.buffer_sizes.ctlog": ("size", 1000),
    "general.buffer_sizes.broadcastmanager": ("size", 10000),
    "general.drop_old_logs": ("bool", True),
    "general.recovery.enabled": ("bool", False),
    "general.recovery.ct_index_file": ("str", "./ct_index.json"),
}
#: Keys of other Go versions (and of its sample file) that mean nothing here, and why.
NO_MEANING = {
    "webserver.trusted_proxies": "real_ip trusts the forwarded headers as they come, as "
                                 "certstream-server-go 1.9 does",
    "prometheus.trusted_proxies": "real_ip trusts the forwarded headers as they come",
    "general.buffer_sizes.ctlog": "no per-log channel here: entries go from each log's reader "
                                  "to the feed in index order (ct_log.batch_size sets the window)",
    "general.buffer_sizes.broadcastmanager": "no broadcast queue here: each entry is framed "
                                             "once into a ring per stream (buffer_size)",
    "general.buffer_sizes.dispatcher": "no dispatcher queue here (see buffer_size)",
    "general.excluded_logs": "not a setting of certstream-server-go 1.9; use ct_log.states or "
                             "custom_logs",
    "streamprocessing": "Kafka/NSQ output is not part of certstream",
}
#: Go's environment names: CERTSTREAM_ + the key upper-cased with "_" (viper's rule).
GO_ENV_NAMES = {"CERTSTREAM_" + key.replace(".", "_").upper(): key for key in GO_KEYS}

_LOG_ENTRY_KEYS = ("url", "operator", "description")
# Go's own check of an additional log's URL (config.go).
_GO_LOG_URL = re.compile(r"^https?://[a-zA-Z0-9\-._]+(:[0-9]+)?(/[a-zA-Z0-9\-._]+)*/?$")
_TRUE = ("1", "t", "true", "yes", "on")
_FALSE = ("0", "f", "false", "no", "off")


def is_go_format(tree: Mapping[str, Any]) -> bool:
    return any(key in tree for key in GO_TOP_KEYS)


def go_env_in(env: Mapping[str, str]) -> list[str]:
    """The Go environment names set in ``env``."""
    return sorted(name for name in GO_ENV_NAMES if name in env)


@dataclass(frozen=True, slots=True)
class Raw:
    """A Go key's value as found, before :func:`convert`."""

    value: Any
    source: str  # file | env | default
    env_name: str = ""


# -- reading Go's values ---------------------------------------------------------------------


def fail(key: str, raw: Raw, allowed: str) -> ConfigError:
    """The error for Go key ``key``, naming the variable when the value came from one."""
    if raw.env_name:
        allowed = f"{allowed} (set by {raw.env_name})"
    return ConfigError(key, raw.value, allowed)


def _flatten_go(tree: Mapping[str, Any], warnings: list[str]) -> dict[str, Any]:
    """Go's keys of the file, by dotted path; other keys are warned about."""
    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if prefix in GO_KEYS:
            out[prefix] = node
            return
        if prefix in NO_MEANING:
            warnings.append(f"{prefix}: ignored: {NO_MEANING[prefix]}")
            return
        is_section = any(k.startswith(prefix + ".") for k in GO_KEYS)
        if not isinstance(node, Mapping):
            if is_section and node is not None:
                raise ConfigError(prefix, node, "a mapping of keys")
            if not is_section:
                warnings.append(f"{prefix}: not a key of certstream-server-go; ignored")
            return  # "prometheus:" with nothing under it: Go's defaults
        for name, child in node.items():
            walk(child, f"{prefix}.{name}" if prefix else str(name))

    walk({k: v for k, v in tree.items() if k in GO_TOP_KEYS}, "")
    return out


def convert(key: str, raw: Raw) -> Any:
    """Go key ``key``'s value, converted by its kind and checked."""
    kind = GO_KEYS[key][0]
    value = raw.value
    from_env = raw.source == "env"
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise fail(key, raw, "true or false")
    if kind in ("port", "size"):
        number = _int(value)
        if number is None:
            raise fail(key, raw, "an integer")
        if kind == "port" and not 0 <= number <= 65535:
            raise fail(key, raw, "an integer from 1 to 65535")
        return number
    if kind in ("str", "ip", "path"):
        if value is None:
            return ""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise fail(key, raw, "a string")
        value = value.strip()
        if kind == "ip" and not is_ip(value):
            raise fail(key, raw, "an IP address such as 0.0.0.0 or ::")
        if kind == "path" and not is_url_path(value):
            raise fail(key, raw, "a path such as /full-stream (letters, digits, - . _ and /)")
        return value
    if kind == "ips":
        items = _list(value, from_env)
        if items is None:
            raise fail(key, raw, "a list of IP addresses or CIDR ranges")
        for i, item in enumerate(items):
            if not isinstance(item, str) or not is_ip_or_cidr(item):
                raise fail(f"{key}[{i}]", Raw(item, raw.source, raw.env_name),
                            "an IP address or a CIDR range such as 127.0.0.1/8")
        return tuple(item.strip() for item in items)
    return _logs(key, raw)


def _int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def is_ip(text: str) -> bool:
    return is_ip_or_cidr(text) and "/" not in text


def _list(value: Any, from_env: bool) -> list[Any] | None:
    if value is None:
        return []
    if from_env and isinstance(value, str):
        return [part for part in re.split(r"[\s,]+", value) if part]
    if isinstance(value, (list, tuple)):
        return list(value)
    return None


def _logs(key: str, raw: Raw) -> tuple[dict[str, str], ...]:
    value = raw.value
    if raw.source == "env" and isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except ValueError:
            raise fail(key, raw, "a JSON list of {url, operator, description}") from None
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise fail(key, raw, "a list of {url, operator, description}")
    out = []
    for i, item in enumerate(value):
        where = f"{key}[{i}]"
        if not isinstance(item, Mapping):
            raise fail(where, Raw(item, raw.source, raw.env_name),
                        "a mapping of url, operator, description")
        entry: dict[str, str] = {}
        for name in _LOG_ENTRY_KEYS:
            node = item.get(name)
            text = "" if node is None else str(node).strip()
            entry[name] = text
        url = entry["url"]
        if not _GO_LOG_URL.match(url):
            raise fail(f"{where}.url", Raw(item.get("url"), raw.source, raw.env_name),
                        "an http:// or https:// URL such as https://ct.example.com/log/")
        extra = [str(k) for k in item if k not in _LOG_ENTRY_KEYS]
        if extra:
            entry["_unknown"] = ", ".join(f"{where}.{k}" for k in extra)
        out.append(entry)
    return tuple(out)


def read_raw(tree: Mapping[str, Any], env: Mapping[str, str],
             warnings: list[str]) -> dict[str, Raw]:
    """Every Go key's raw value: Go's default, under the file's, under Go's environment
    name (other keys of the file are warned about)."""
    flat = _flatten_go(tree, warnings)
    raws = {key: Raw(default, "default") for key, (_kind, default) in GO_KEYS.items()}
    for key, value in flat.items():
        raws[key] = Raw(value, "file")
    for name, key in GO_ENV_NAMES.items():
        if name in env:
            raws[key] = Raw(env[name], "env", name)
    return raws
