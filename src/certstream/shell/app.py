"""The process model: gunicorn owns the workers, its master starts the one ingest process.

::

    gunicorn master (certstream CLI, or ``gunicorn -c gunicorn.conf.py``)
      |- on_starting: the settings for every child, the memory the workers share
      |- when_ready: python -m certstream.shell.ingest   (one per deployment, LISTENs on the feed;
      |              none with ingest.mode: embedded, where the one worker runs the ingest, and
      |              none on an edge, whose workers read the broker)
      |- worker 1 .. N: certstream.shell.worker.CertstreamWorker (each subscribes to the feed;
      |                 the master imports only its stand-in, certstream.shell.workerclass)
      |- child_exit: a worker's connections and row of the shared memory are given back,
      |  and a worker that died (did not stop cleanly) counts as a restart
      '- on_exit: SIGTERM the ingest, wait, then SIGKILL

Everything a child must agree on travels in the environment, set by :func:`prepare_master` in
the master before any child exists (workers fork from it, the ingest inherits it):

``CERTSTREAM_RESOLVED_SETTINGS``
    The master's resolved settings as JSON (so ``--config``/``--port`` reach every process),
    with ``feed_socket`` filled in: a path in a private temporary directory unless configured.
``CERTSTREAM_MASTER_PID``
    The ingest exits when its parent is no longer this process.
``PROMETHEUS_MULTIPROC_DIR``
    A fresh private directory (or the configured one, wiped), so ``/metrics`` from any worker
    aggregates all processes.  It must be set before prometheus_client is imported anywhere,
    which is why it is set while the configuration is read, not in a later hook.

The master runs nothing long-lived of its own (gunicorn's advice): the ingest supervises its
log followers itself and exits when the master is gone; the master only notices, once a
second in its own loop, when the ingest process has died, and starts a new one.  The hooks
are module-level functions so that ``gunicorn.conf.py`` can name the same ones.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import gc
import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gunicorn.app.base import Application
from gunicorn.config import Config, get_default_config_file

from certstream.config import (
    RESOLVED_ENV,
    Settings,
    load_settings,
    metrics_listener,
    settings_to_env,
)
from certstream.errors import ConfigError
from certstream.shell import logformat, rundirs, sharedmem
from certstream.shell.children import spawn_sigint_blocked

__all__ = [
    "GRACEFUL_TIMEOUT",
    "INGEST_MODULE",
    "MASTER_PID_ENV",
    "WORKER_CLASS",
    "CertstreamApp",
    "child_exit",
    "gunicorn_options",
    "on_exit",
    "on_starting",
    "post_fork",
    "pre_fork",
    "prepare_master",
    "take_swept_dirs",
    "when_ready",
    "wsgi_app",
]

# A stand-in that imports the real worker only after the fork (see shell.workerclass).
WORKER_CLASS = "certstream.shell.workerclass.CertstreamWorker"
INGEST_MODULE = "certstream.shell.ingest"
MASTER_PID_ENV = "CERTSTREAM_MASTER_PID"
PROM_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Seconds a worker gets to close its clients (1001) and the ingest to flush its state.
GRACEFUL_TIMEOUT = 10
#: An ingest that died is restarted, but not sooner than this after its last start.
INGEST_RESTART_SECS = 5.0

_KNOWN_GUNICORN_SETTINGS = frozenset(Config().settings)
_LEVELS = {"trace": "debug", "warn": "warning"}  # certstream-server-rust names -> gunicorn's

log = logging.getLogger(__name__)


class _Master:
    """What this master process prepared and started (module state: hooks are functions)."""

    settings: Settings | None = None
    own_dirs: list[str] = []
    swept: list[str] = []  # stale run directories removed at start
    ingest: subprocess.Popen[bytes] | None = None
    ingest_started = 0.0


def prepare_master(settings: Settings | None = None) -> Settings:
    """Resolve the per-deployment settings and publish them in ``os.environ`` for all children.

    Idempotent within one process: the embedded app and ``gunicorn.conf.py`` may both call it.
    Raises ConfigError when the settings are invalid.
    """
    if _Master.settings is not None and os.environ.get(MASTER_PID_ENV) == str(os.getpid()):
        return _Master.settings
    if settings is None:
        # A variable inherited from some other master must not decide this deployment.
        env = {k: v for k, v in os.environ.items() if k != RESOLVED_ENV}
        settings = load_settings(env)
    # Left by a master killed with SIGKILL; said once logging is set up (on_starting).
    _Master.swept += rundirs.sweep_stale()
    if not settings.feed_socket:
        rundir = _private_dir("run")
        settings = dataclasses.replace(settings, feed_socket=os.path.join(rundir, "feed.sock"))
    prom_dir = os.environ.get(PROM_ENV)
    if prom_dir:
        _wipe_metrics_dir(Path(prom_dir))  # values of a previous run would be summed in
    else:
        os.environ[PROM_ENV] = _private_dir("metrics")
    os.environ.update(settings_to_env(settings))
    # Also under its own name, for tools that read only this one setting.
    os.environ["CERTSTREAM_FEED_SOCKET"] = settings.feed_socket
    os.environ[MASTER_PID_ENV] = str(os.getpid())
    _Master.settings = settings
    return settings


def take_swept_dirs() -> list[str]:
    """The stale run directories ``prepare_master`` removed, once (for the log)."""
    swept, _Master.swept = _Master.swept, []
    return swept


def _private_dir(kind: str) -> str:
    path = rundirs.private_dir(kind)  # mode 0700: the feed is for this user only
    _Master.own_dirs.append(path)
    return path


def _wipe_metrics_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    for db in path.glob("*.db"):
        db.unlink(missing_ok=True)


@atexit.register
def _remove_own_dirs() -> None:
    # Forked workers inherit this handler: only the process that made the dirs removes them.
    if os.environ.get(MASTER_PID_ENV) != str(os.getpid()):
        return
    for path in _Master.own_dirs:
        shutil.rmtree(path, ignore_errors=True)
    _Master.own_dirs.clear()


#: Connections a worker accepts at least (gunicorn's ``worker_connections``).
MIN_WORKER_CONNECTIONS = 20000


def worker_connections() -> int:
    """Connections a worker may hold: as many as it may open files (each connection is one;
    ``ulimit -n``, systemd's ``LimitNOFILE``), at least ``MIN_WORKER_CONNECTIONS``; so that
    raising the limit is all 50,000 connections on 2 workers need."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MIN_WORKER_CONNECTIONS
    return max(MIN_WORKER_CONNECTIONS, soft)


def gunicorn_options(settings: Settings) -> dict[str, Any]:
    """gunicorn settings for a certstream deployment (hooks included)."""
    binds = [_bind(settings.host, settings.port)]
    own = metrics_listener(settings) if settings.protocols.metrics else None
    if own is not None:
        binds.append(_bind(*own))  # the metrics' own listener: the workers route by socket
    opts: dict[str, Any] = {
        "bind": binds,
        "workers": settings.workers,
        "worker_class": WORKER_CLASS,
        # Streams are long-lived: gunicorn's default of 1000 per worker is far too low.
        "worker_connections": worker_connections(),
        "graceful_timeout": GRACEFUL_TIMEOUT,
        # The heartbeat: a worker is killed if its loop stalls this long (not a request limit).
        "timeout": 30,
        "max_requests": 0,  # never recycle a worker: it would drop every client on it
        "loglevel": _LEVELS.get(settings.log_level, settings.log_level),
        "logconfig_dict": logformat.gunicorn_logconfig(settings.log_level, settings.log_format),
        "proc_name": "certstream",
        "wsgi_app": "certstream.shell.app:wsgi_app",
        "on_starting": on_starting,
        "when_ready": when_ready,
        "post_fork": post_fork,
        "pre_fork": pre_fork,
        "child_exit": child_exit,
        "on_exit": on_exit,
    }
    if "control_socket_disable" in _KNOWN_GUNICORN_SETTINGS:
        # gunicorn >= 25 opens a control socket at one fixed per-user path: a second
        # deployment (or a test server) on the same machine would fight over it.
        opts["control_socket_disable"] = True
    if settings.tls_cert and settings.tls_key:
        opts["certfile"], opts["keyfile"] = settings.tls_cert, settings.tls_key
    return opts


def _bind(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# -- hooks (master) --------------------------------------------------------------------------


def on_starting(server: Any) -> None:
    settings = prepare_master()
    workers = getattr(getattr(server, "cfg", None), "workers", settings.workers)
    if settings.ingest.mode == "embedded" and workers != 1:
        # The settings allow it only with workers: 1, but gunicorn's own -w (or a
        # gunicorn.conf.py) may ask for more: every worker would follow every log.
        print(ConfigError("ingest.mode", "embedded",
                          f"process when gunicorn runs {workers} workers; embedded runs the "
                          "ingest inside the one worker and needs 1"), file=sys.stderr)
        sys.exit(2)
    if settings.process_model == "single":
        print(ConfigError("process_model", "single", "gunicorn when gunicorn starts the "
                          "server; single runs without it: start it with the certstream "
                          "command"), file=sys.stderr)
        sys.exit(2)
    # The memory the workers count connections, rate limits and traffic in, and balance
    # their accepts by: mapped here, in the master, so that every worker forked from it
    # shares the same pages.
    sharedmem.create(settings.workers, settings.connection_limit.max_connections)
    # Workers fork from here and inherit this; the ingest configures its own logging.
    logformat.configure(settings.log_level, settings.log_format)
    # Ctrl-C reaches the master, the workers and the ingest at once: stop gracefully, as
    # on SIGTERM (gunicorn's INT is a quick stop that drops every client without a close).
    server.handle_int = server.handle_term
    for path in take_swept_dirs():
        server.log.info("certstream: removed %s (its server is gone)", path)


def when_ready(server: Any) -> None:
    """Start the one ingest process, now that the listeners are bound, and keep it running.
    An edge (``role: edge``) follows no log: its workers read the broker, it has no ingest;
    with ``ingest.mode: embedded`` the one worker runs the ingest itself."""
    settings = prepare_master()
    if settings.role == "edge":
        # One config file may serve every node: an edge leaves the logs to the ingest.
        logs = len(settings.custom_logs) + len(settings.static_logs)
        server.log.info("certstream: edge: no ingest here%s; the workers read %s",
                        f" (the {logs} configured logs are the ingest's)" if logs else "",
                        _describe(settings.broker.url))
        return
    if settings.ingest.mode == "embedded":
        server.log.info("certstream: the ingest runs in the worker (ingest.mode: embedded)")
        return
    if _Master.ingest is None or _Master.ingest.poll() is not None:
        _start_ingest(server)
    _supervise(server)


def _describe(url: str) -> str:
    from certstream.core.brokerurl import parse_broker_url  # noqa: PLC0415 - edge only

    return parse_broker_url(url).describe()


def pre_fork(server: Any, worker: Any) -> None:
    """Right before each worker forks: move every object the master holds out of the
    collector's way, so that the worker's collections never write to those pages and they
    stay shared with the master instead of being copied into every worker."""
    gc.collect()  # only what is alive is frozen (frozen garbage would never be collected)
    gc.freeze()


def _start_ingest(server: Any) -> None:
    # A fresh interpreter: it inherits neither our listeners (close_fds) nor patched modules;
    # Ctrl-C waits until it can handle it (see shell.children).
    _Master.ingest = spawn_sigint_blocked(
        [sys.executable, "-m", INGEST_MODULE], env=dict(os.environ), close_fds=True
    )
    _Master.ingest_started = time.monotonic()
    server.log.info("certstream: ingest started (pid %d)", _Master.ingest.pid)


def _supervise(server: Any) -> None:
    """Restart the ingest if it dies (a crash must not leave the workers without a feed).

    gunicorn has no periodic hook and reaps unknown children quietly, so the check rides on
    the arbiter's own once-a-second ``manage_workers`` call: a ``poll()``, nothing long-lived.
    """
    if getattr(server, "_certstream_supervised", False):
        return
    manage = server.manage_workers

    def manage_workers() -> None:
        manage()
        proc = _Master.ingest
        # poll() is also right when the arbiter reaped the ingest first (ECHILD reads as 0).
        if proc is None or proc.poll() is None:
            return
        if time.monotonic() - _Master.ingest_started < INGEST_RESTART_SECS:
            return  # a crash loop must not become a fork storm
        server.log.warning("certstream: ingest (pid %d) exited with %s; restarting it",
                           proc.pid, proc.returncode)
        _forget_process(proc.pid)
        _count_restart("ingest")
        _start_ingest(server)

    server.manage_workers = manage_workers
    server._certstream_supervised = True


def post_fork(server: Any, worker: Any) -> None:
    """In a new worker, before it installs its own signal handlers.  Until then a signal to
    it runs the master's handler it inherited, which only queues the signal in the master's
    queue (the worker's copy of it): a worker told to stop while booting would serve on until
    killed at the end of the grace period.  The worker looks in that queue once its handlers
    are in place (``CertstreamWorker.init_signals``)."""
    worker.inherited_signals = getattr(server, "SIG_QUEUE", None)


def _forget_process(pid: int) -> None:
    """Its gauges leave the scrape (its counters stay in the sums)."""
    if os.environ.get(PROM_ENV):
        from prometheus_client import multiprocess  # noqa: PLC0415 - env must be set first

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def _count_restart(process: str) -> None:
    """One more ``certstream_restarts_total{process}`` (``certstream_worker_panics``)."""
    from certstream.shell.specmetrics import RESTARTS  # noqa: PLC0415 - env must be set first

    RESTARTS.labels(process).inc()


def child_exit(server: Any, worker: Any) -> None:
    """A worker exited: its gauges go, its connections and row are given back, and if it did
    not stop cleanly while the server runs (killed, crashed, stuck and aborted by the
    arbiter's timeout) it counts as a restart: gunicorn starts another."""
    _forget_process(worker.pid)
    mem = sharedmem.shared()
    clean = mem.reclaim(worker.pid) if mem is not None else None
    # The arbiter empties its listeners first thing when it stops: workers stopping then are
    # not restarts.
    if clean is False and getattr(server, "LISTENERS", None):
        server.log.warning("certstream: worker (pid %d) died; gunicorn restarts it", worker.pid)
        _count_restart("worker")


def on_exit(server: Any) -> None:
    """Stop the ingest: SIGTERM (it flushes its state), then SIGKILL after the grace period."""
    proc, _Master.ingest = _Master.ingest, None
    if proc is None:
        return
    timeout = float(getattr(getattr(server, "cfg", None), "graceful_timeout", GRACEFUL_TIMEOUT))
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        server.log.warning("certstream: ingest did not stop in %.0f s, killing it", timeout)
        proc.kill()
        proc.wait()
    _remove_own_dirs()


def wsgi_app(environ: Any, start_response: Any) -> list[bytes]:
    """Never called: CertstreamWorker serves raw sockets.  gunicorn's command line insists on
    an application, so ``gunicorn.conf.py`` names this one."""
    start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
    return [b"certstream needs worker_class = " + WORKER_CLASS.encode() + b"\n"]


# -- the embedded server ---------------------------------------------------------------------


class CertstreamApp(Application):  # type: ignore[misc]
    """gunicorn embedded: our settings first, then ``./gunicorn.conf.py`` if there is one,
    then the explicit command-line overrides (gunicorn's own argv parsing is not used: our
    options would clash with it, ``-c`` above all)."""

    def __init__(self, settings: Settings, overrides: dict[str, Any] | None = None) -> None:
        self.settings = settings
        self.overrides = overrides or {}
        super().__init__(usage="certstream [options]", prog="certstream")

    def init(self, parser: Any, opts: Any, args: Any) -> None:  # pragma: no cover - unused
        return None

    def load_config(self) -> None:
        for key, value in gunicorn_options(self.settings).items():
            self.cfg.set(key, value)
        conf = get_default_config_file()
        if conf is not None:
            self.load_config_from_file(conf)
        for key, value in self.overrides.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return wsgi_app
