"""Hot reload: re-read the config file when it changes and apply what may change at run time.

Each worker watches the file by itself (workers share no memory for settings): it polls the
file's mtime, size and inode every ``POLL_SECS`` (no inotify: it must work on any filesystem
and across an editor's write-and-rename), re-reads it with the same loader as at start (so the
``CERTSTREAM_*`` environment still overrides the file), and then:

* a file that fails validation is logged (the one-line ``ConfigError``) and ignored: the
  running settings stay;
* the keys in ``LIVE_KEYS`` take the file's values at once;
* any other key that differs from what the file said when the worker started is logged as
  "needs a restart".  Compared with the file at start rather than with the running settings
  because the command line (``--port``, ``--workers``) may override the file: those values
  are not changes.

``plan_reload`` is pure (settings in, plan out) and ``ConfigWatcher.check`` does one poll
without sleeping, so both are tested without sockets or greenlets.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import gevent

from certstream.config import RESOLVED_ENV, Settings, load_settings
from certstream.errors import ConfigError
from certstream.shell import metrics

__all__ = [
    "LIVE_KEYS",
    "POLL_SECS",
    "ConfigWatcher",
    "ReloadPlan",
    "changed_keys",
    "is_live",
    "load_file",
    "plan_reload",
]

log = logging.getLogger(__name__)

#: How often the watched file is looked at.
POLL_SECS = 2.0
#: Settings a running worker applies from a reloaded file (a section name covers its keys).
#: Everything else is read once at start (listeners, streams, the ingest's logs, ...).
LIVE_KEYS = (
    "auth",
    "connection_limit",
    "rate_limit",
    "websocket.heartbeat_secs",
    "websocket.slow_client_drop_budget",
)


def is_live(key: str) -> bool:
    """Whether the dotted settings path ``key`` can change without a restart."""
    return any(key == live or key.startswith(live + ".") for live in LIVE_KEYS)


def changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted paths of the leaves that differ between two settings trees (a list of log
    entries is one leaf: it is replaced as a whole)."""
    if (dataclasses.is_dataclass(old) and not isinstance(old, type)
            and type(old) is type(new)):
        keys: list[str] = []
        for f in dataclasses.fields(old):
            path = f"{prefix}.{f.name}" if prefix else f.name
            keys += changed_keys(getattr(old, f.name), getattr(new, f.name), path)
        return keys
    return [] if old == new else [prefix]


def _replace_path(obj: Any, parts: list[str], value: Any) -> Any:
    head, rest = parts[0], parts[1:]
    inner = value if not rest else _replace_path(getattr(obj, head), rest, value)
    return dataclasses.replace(obj, **{head: inner})


def _get_path(obj: Any, parts: Iterable[str]) -> Any:
    for part in parts:
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """What a reloaded file means for a running worker."""

    #: The running settings with the file's live keys applied.
    settings: Settings
    #: Live keys whose value changed (now in ``settings``).
    applied: tuple[str, ...]
    #: Other keys the file changes since the start: they take effect only after a restart.
    restart: tuple[str, ...]


def plan_reload(running: Settings, started: Settings, new: Settings) -> ReloadPlan:
    """Merge a freshly loaded ``new`` into ``running``; ``started`` is what the same file
    said when the worker started (see the module docstring)."""
    applied = tuple(k for k in changed_keys(running, new) if is_live(k))
    settings = running
    for key in applied:
        parts = key.split(".")
        settings = _replace_path(settings, parts, _get_path(new, parts))
    restart = tuple(k for k in changed_keys(started, new) if not is_live(k))
    return ReloadPlan(settings, applied, restart)


def load_file(path: str) -> Settings:
    """The settings from ``path`` and this process's environment, as the master loads them
    (the master's handed-down settings are left out: they would win over the file)."""
    env = {k: v for k, v in os.environ.items() if k != RESOLVED_ENV}
    return load_settings(env, path=path)


def _signature(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


class ConfigWatcher:
    """Polls one config file and hands each valid change to ``apply`` as a ``ReloadPlan``."""

    def __init__(self, path: str, running: Settings, apply: Callable[[ReloadPlan], None],
                 load: Callable[[str], Settings] = load_file) -> None:
        self.path = path
        self.running = running
        self.apply = apply
        self.load = load
        self.signature = _signature(path)
        try:
            self.started = load(path)
        except ConfigError:
            # Changed (and broken) since the master read it: compare later edits with what
            # actually runs.
            self.started = running

    def check(self) -> ReloadPlan | None:
        """Look at the file once; reload it if it changed.  The plan, when there was one."""
        signature = _signature(self.path)
        if signature == self.signature:
            return None
        self.signature = signature
        if signature is None:
            log.warning("hot reload: %s is gone; keeping the running settings", self.path)
            return None
        try:
            new = self.load(self.path)
        except ConfigError as exc:
            metrics.CONFIG_RELOADS.labels("invalid").inc()
            # The one line says it all: no traceback for a user's typo.
            log.error("hot reload: %s; keeping the running settings", exc)
            return None
        plan = plan_reload(self.running, self.started, new)
        if plan.restart:
            log.warning("hot reload: %s needs a restart: %s", self.path, ", ".join(plan.restart))
        if plan.applied:
            self.running = plan.settings
            self.apply(plan)
            log.info("hot reload: applied %s", ", ".join(plan.applied))
        metrics.CONFIG_RELOADS.labels("valid").inc()
        return plan

    def run(self, interval: float = POLL_SECS) -> None:
        """Poll forever (a greenlet)."""
        while True:
            gevent.sleep(interval)
            try:
                self.check()
            except Exception:  # a bug in one look must not end hot reload for good
                log.exception("hot reload of %s failed", self.path)
