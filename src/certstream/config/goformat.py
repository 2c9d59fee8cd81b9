"""certstream-server-go's config format mapped onto certstream's settings (its keys, their
defaults and environment names, and how their values are read, are ``config.gokeys``').

A file whose top level has ``webserver``, ``prometheus`` or ``general`` is Go's format (our
own format has none of those keys); so is no file at all when a Go environment name
(``CERTSTREAM_WEBSERVER_LISTEN_PORT``, ...) is set.  Every Go key then maps onto our settings
with Go's defaults (a file that omits ``webserver.listen_port`` listens on 8080), checked with
errors that name the Go key; a key with no meaning here is a warning naming it.

Precedence, lowest first: Go's defaults, the file's Go keys, certstream's own keys in the
same file (``workers: 2`` beside ``webserver:``), Go's environment names, certstream's own
environment names.  So the environment beats the file, and of two names for one setting at
the same level certstream's own wins; each such override is logged with both names.

:func:`translate` is pure (trees and an environment in, a tree of our keys out, with the
mapping as rows for ``certstream validate``); the loader in ``certstream.config`` calls it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from certstream.config.gokeys import (
    GO_TOP_KEYS,
    NO_MEANING,
    Raw,
    convert,
    fail,
    is_ip,
    read_raw,
)
from certstream.config.schema import Settings

__all__ = [
    "GOOGLE_LOG_LIST",
    "GO_STATES",
    "GoMapping",
    "MappedKey",
    "show_value",
    "translate",
]

#: The only list Go follows (Google's); Apple's list is ours alone.
GOOGLE_LOG_LIST = "https://www.gstatic.com/ct/log_list/v3/log_list.json"
#: Go follows every listed log that is not retired.
GO_STATES = ("usable", "qualified", "readonly", "pending", "rejected")

# -- results ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MappedKey:
    """One line of the mapping: a Go key, its value and where it came from (``file``,
    ``env``, ``default``, or ``implied`` for what Go does without a key), and what it
    became here."""

    go_key: str
    value: Any
    source: str
    target: str


@dataclass(slots=True)
class GoMapping:
    """What :func:`translate` made of a Go config."""

    tree: dict[str, Any]
    rows: list[MappedKey] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: our dotted key -> the Go key it came from, so that an error can name the Go key.
    origin: dict[str, str] = field(default_factory=dict)


# -- the mapping -----------------------------------------------------------------------------


class _Builder:
    """Collects our leaves (dotted key -> value), where each came from, and the rows."""

    def __init__(self, raws: dict[str, Raw], values: dict[str, Any]) -> None:
        self.raws = raws
        self.values = values
        self.leaves: dict[str, Any] = {}
        self.from_env: set[str] = set()
        self.origin: dict[str, str] = {}
        self.rows: list[MappedKey] = []
        self.warnings: list[str] = []

    def row(self, go_key: str, target: str) -> None:
        raw = self.raws[go_key]
        self.rows.append(MappedKey(go_key, self.values[go_key], raw.source, target))

    def set(self, ours: str, value: Any, *go_keys: str, show: Callable[[Any], str] | None = None,
            note: str = "") -> None:
        """Our key ``ours`` takes ``value``, derived from ``go_keys`` (a row for each)."""
        self.leaves[ours] = value
        for go_key in go_keys:
            self.origin.setdefault(ours, go_key)
            if self.raws[go_key].source == "env":
                self.from_env.add(ours)
        text = f"{ours} = {show(value) if show else show_value(value)}"
        if note:
            text += f" ({note})"
        for go_key in go_keys[:1]:
            self.row(go_key, text)

    def derived(self, ours: str, value: Any, why: str) -> None:
        """A setting Go's behaviour implies, with no key of its own."""
        self.leaves[ours] = value
        self.rows.append(MappedKey("(certstream-server-go)", why, "implied",
                                   f"{ours} = {show_value(value)}"))


def show_value(value: Any) -> str:
    """A value as the mapping shows it (YAML-like)."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {show_value(v)}" for k, v in value.items()) + "}"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return '""' if value == "" else str(value)


def _webserver(b: _Builder) -> None:
    v = b.values
    b.set("host", v["webserver.listen_addr"], "webserver.listen_addr")
    if v["webserver.listen_port"] == 0:
        raise fail("webserver.listen_port", b.raws["webserver.listen_port"],
                    "an integer from 1 to 65535")
    b.set("port", v["webserver.listen_port"], "webserver.listen_port")
    b.set("paths.full", v["webserver.full_url"], "webserver.full_url")
    b.set("paths.lite", v["webserver.lite_url"], "webserver.lite_url")
    b.set("paths.domains_only", v["webserver.domains_only_url"], "webserver.domains_only_url")
    _tls(b, "webserver", "tls_cert", "tls_key")
    b.set("real_ip", v["webserver.real_ip"], "webserver.real_ip")
    b.set("whitelist", v["webserver.whitelist"], "webserver.whitelist")
    b.set("websocket.compression", v["webserver.compression_enabled"],
          "webserver.compression_enabled", note="permessage-deflate, for clients that offer it")


def _tls(b: _Builder, section: str, cert_key: str, key_key: str) -> None:
    cert, key = b.values[f"{section}.cert_path"], b.values[f"{section}.cert_key_path"]
    if bool(cert) != bool(key):
        missing = f"{section}.cert_key_path" if cert else f"{section}.cert_path"
        other = f"{section}.cert_path" if cert else f"{section}.cert_key_path"
        raise fail(missing, b.raws[missing], f"a PEM file path, set together with {other}")
    prefix = "metrics." if section == "prometheus" else ""
    b.set(prefix + cert_key, cert or None, f"{section}.cert_path")
    b.set(prefix + key_key, key or None, f"{section}.cert_key_path")


def _prometheus(b: _Builder) -> None:
    v = b.values
    enabled = v["prometheus.enabled"]
    b.set("protocols.metrics", enabled, "prometheus.enabled")
    b.set("paths.metrics", v["prometheus.metrics_url"], "prometheus.metrics_url")
    b.set("metrics.process_metrics", v["prometheus.expose_system_metrics"],
          "prometheus.expose_system_metrics")
    addr, port = v["prometheus.listen_addr"], v["prometheus.listen_port"]
    # Go serves the metrics on the webserver when address and port are equal (or unset).
    shared = (addr in ("", v["webserver.listen_addr"])
              and port in (0, v["webserver.listen_port"]))
    if shared or not enabled:
        note = "on the webserver's listener" if enabled else "metrics are off"
        b.set("metrics.port", 0, "prometheus.listen_port", note=note)
        b.row("prometheus.listen_addr", f"metrics.host = (the webserver's, {note})")
        for key in ("prometheus.real_ip", "prometheus.whitelist", "prometheus.cert_path",
                    "prometheus.cert_key_path"):
            b.row(key, "(not used: " + note + ")")
            if enabled and b.raws[key].source != "default" and v[key]:
                b.warnings.append(f"{key}: ignored: the metrics are served on the webserver's "
                                  "listener, whose settings apply (as in certstream-server-go)")
        return
    if not addr or not is_ip(addr):
        raise fail("prometheus.listen_addr", b.raws["prometheus.listen_addr"], "an IP address")
    b.set("metrics.host", addr, "prometheus.listen_addr")
    b.set("metrics.port", port, "prometheus.listen_port", note="a listener of its own")
    b.set("metrics.real_ip", v["prometheus.real_ip"], "prometheus.real_ip")
    b.set("metrics.whitelist", v["prometheus.whitelist"], "prometheus.whitelist")
    _tls(b, "prometheus", "tls_cert", "tls_key")


def _general(b: _Builder) -> None:
    v = b.values
    disabled = v["general.disable_default_logs"]
    b.set("ct_log.log_list_urls", [] if disabled else [GOOGLE_LOG_LIST],
          "general.disable_default_logs")
    customs: list[dict[str, str]] = []
    statics: list[dict[str, str]] = []
    for go_key, out in (("general.additional_logs", customs),
                        ("general.additional_tiled_logs", statics)):
        for i, entry in enumerate(v[go_key]):
            if "_unknown" in entry:
                b.warnings.append(f"{entry['_unknown']}: ignored: a log has url, operator and "
                                  "description")
            name = entry["description"]
            if not name:
                name = entry["url"].split("://", 1)[-1].rstrip("/")
                b.warnings.append(f"{go_key}[{i}].description: empty; the log is named "
                                  f"{name!r} (source.name)")
            out.append({"name": name, "url": entry["url"], "operator": entry["operator"]})
    if disabled and not customs and not statics:
        raise fail("general.additional_logs", b.raws["general.additional_logs"],
                    "at least one log when general.disable_default_logs is true")
    b.set("custom_logs", customs, "general.additional_logs",
          show=lambda logs: show_value([f"{e['name']} <{e['url']}>" for e in logs]))
    b.set("static_logs", statics, "general.additional_tiled_logs",
          note="no key: checkpoint signatures are not verified",
          show=lambda logs: show_value([f"{e['name']} <{e['url']}>" for e in logs]))
    size = v["general.buffer_sizes.websocket"]
    if size <= 0:
        size = 300  # Go's rule: 0 or less means its default
    b.set("buffer_size", size, "general.buffer_sizes.websocket",
          note="messages a client may be behind before it loses some")
    for key in ("general.buffer_sizes.ctlog", "general.buffer_sizes.broadcastmanager"):
        b.row(key, "(no equivalent)")
        if b.raws[key].source != "default":
            b.warnings.append(f"{key}: ignored: {NO_MEANING[key]}")
    b.set("ct_log.drop_unlisted_logs", v["general.drop_old_logs"], "general.drop_old_logs")
    recovery = v["general.recovery.enabled"]
    path = v["general.recovery.ct_index_file"] or "./ct_index.json"
    b.set("ct_log.ct_index_file", path if recovery else "", "general.recovery.enabled",
          note="resume from it and keep it current" if recovery else "recovery off")
    b.row("general.recovery.ct_index_file",
          f"ct_log.ct_index_file = {path}" if recovery else "(not used: recovery off)")


def translate(tree: Mapping[str, Any], env: Mapping[str, str]) -> GoMapping:
    """Our settings tree from a Go config ``tree`` (with certstream's own keys, if the file
    has any) and the Go environment names in ``env``.  Raises ``ConfigError`` naming the Go
    key (and the variable) of the first bad value."""
    warnings: list[str] = []
    raws = read_raw(tree, env, warnings)
    values = {key: convert(key, raw) for key, raw in raws.items()}
    b = _Builder(raws, values)
    b.warnings.extend(warnings)
    _webserver(b)
    _prometheus(b)
    _general(b)
    b.derived("ct_log.states", list(GO_STATES), "follows every listed log that is not retired")
    b.derived("ct_log.start_overlap_leaves", 0, "starts a new log at its current tree head")
    b.derived("metrics.go_series", True, "its certstreamservergo_* metric series")
    leaves = _merge_own_keys(b, tree)
    return GoMapping(_nest(leaves), b.rows, b.warnings, b.origin)


_OWN_TOP_KEYS = frozenset(f.name for f in dataclasses.fields(Settings))
#: Our lists of logs: certstream's own entries are added to Go's (same URL: ours wins).
_LOG_LISTS = ("custom_logs", "static_logs")


def _merge_own_keys(b: _Builder, tree: Mapping[str, Any]) -> dict[str, Any]:
    """Certstream's own keys in the Go file go over the Go keys' values, except over a Go
    environment name (the environment beats the file)."""
    leaves = dict(b.leaves)
    for top, node in tree.items():
        if top in GO_TOP_KEYS:
            continue
        if top not in _OWN_TOP_KEYS and top in NO_MEANING:
            b.warnings.append(f"{top}: ignored: {NO_MEANING[top]}")
            continue
        own = ({f"{top}.{k}": v for k, v in node.items()} if isinstance(node, Mapping) and node
               else {str(top): node})
        for key, value in own.items():
            if key in _LOG_LISTS and isinstance(value, list):
                leaves[key] = [*leaves.get(key, []), *value]
                b.rows.append(MappedKey(key, f"{len(value)} logs", "file",
                                        f"{key} (certstream's own key, added to Go's logs)"))
                continue
            if key in b.from_env:
                b.warnings.append(f"{key}: the file's value is overridden by the Go "
                                  f"environment name for {b.origin.get(key, key)}")
                continue
            if key in leaves and key in b.origin:
                b.warnings.append(f"{key}: the file's certstream key wins over "
                                  f"{b.origin[key]}")
                b.origin.pop(key)
            leaves[key] = value
            b.rows.append(MappedKey(key, value, "file", f"{key} (certstream's own key)"))
    return leaves


def _nest(leaves: Mapping[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in leaves.items():
        section, _, leaf = key.rpartition(".")
        if not section:
            tree[key] = value
            continue
        node = tree.setdefault(section, {})
        if isinstance(node, dict):
            node[leaf] = value
    return tree
