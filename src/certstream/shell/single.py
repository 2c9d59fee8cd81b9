"""``process_model: single``: one process serves everything, with no gunicorn master.

With ``ingest.mode: embedded`` and ``workers: 1`` the gunicorn master only supervises the one
worker, and costs ~26 MiB for it.  Here the same ``CertstreamWorker`` runs in the process the
``certstream`` command started, and this module provides in-process what the master would:

* the settings in the environment, the Prometheus multiprocess directory and the private run
  directories (``shell.app.prepare_master``, called by the command; removed at exit);
* the listening sockets, the metrics' own listener included, bound from the same gunicorn
  settings (``gunicorn.sock.create_sockets``); TLS is the worker's own, as under gunicorn;
  once they are bound, systemd's ``READY=1`` (``Type=notify`` units);
* the shared-memory table of counts, limits and stats, with its one row;
* logging (gunicorn's logger for the worker's own lines, certstream's format for the rest);
* signals: SIGTERM and SIGINT stop gracefully (every WebSocket gets 1001, SSE streams end),
  SIGQUIT quickly, SIGUSR1 reopens the log files, SIGHUP re-reads the config file now
  (``hot_reload``'s live keys; with ``hot_reload`` off it is logged and ignored).  A stop
  asked for while the process is still starting is kept and acted on once it can be (a
  SIGHUP then has nothing to do: the file was just read).

What it does not provide: a restart.  A crash ends the process; a supervisor (systemd's
``Restart=``, Docker's ``restart:``) starts it again, and the embedded ingest resumes from its
state file.  Nor does it watch its parent: a shell that exits, or PID 1 as the parent, must
not stop a server that has no master to lose.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any

from gunicorn import systemd
from gunicorn.sock import create_sockets

from certstream.config import Settings
from certstream.errors import ConfigError
from certstream.shell import logformat, sharedmem
from certstream.shell.app import CertstreamApp, take_swept_dirs
from certstream.shell.reload import ConfigWatcher
from certstream.shell.worker import CertstreamWorker

__all__ = ["SingleWorker", "run_single"]

log = logging.getLogger(__name__)

#: Signals kept while the process starts, acted on once the worker's handlers are in place.
_EARLY = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP)
#: A signature no file has: the next look at the config file reads it (SIGHUP).
_FORCE = (-1, -1, -1)


class SingleWorker(CertstreamWorker):
    """``CertstreamWorker`` with no master: nothing to heartbeat, no parent to watch, and
    SIGHUP (the master's reload) handled here."""

    _config_watcher: ConfigWatcher | None = None

    def notify(self) -> None:
        """No arbiter reads the heartbeat, and no parent is watched: under gunicorn a new
        parent means the master died; here it means only that a shell exited."""

    def init_signals(self) -> None:
        super().init_signals()
        signal.signal(signal.SIGHUP, self.handle_hup)

    def handle_hup(self, sig: int, frame: Any) -> None:
        import gevent  # noqa: PLC0415 - the worker's stack is loaded by now

        gevent.spawn(self._reload_now)  # off the signal handler

    def _reload_now(self) -> None:
        watcher = self._config_watcher
        if watcher is None:
            log.warning("SIGHUP: hot_reload is off (or there is no config file): the running "
                        "settings stay")
            return
        log.info("SIGHUP: re-reading %s", watcher.path)
        watcher.signature = _FORCE
        try:
            watcher.check()
        except Exception:  # as the poller: a bug in one look must not end the process
            log.exception("reloading %s failed", watcher.path)

    def _watcher(self) -> ConfigWatcher | None:
        watcher = self._config_watcher = super()._watcher()
        return watcher


def _keep_early(pending: list[int]) -> None:
    def keep(sig: int, frame: Any) -> None:
        pending.append(sig)

    for sig in _EARLY:
        signal.signal(sig, keep)


def run_single(settings: Settings, overrides: dict[str, Any] | None = None) -> int:
    """Serve until stopped, in this process; the exit status.  ``settings`` went through
    ``prepare_master`` (the environment, the metrics and run directories are set up)."""
    pending: list[int] = []
    _keep_early(pending)
    # The same gunicorn settings as the master would use (./gunicorn.conf.py included).
    app = CertstreamApp(settings, overrides)
    cfg = app.cfg
    if cfg.workers != 1:
        print(ConfigError("process_model", settings.process_model,
                          f"gunicorn when gunicorn.conf.py asks for {cfg.workers} workers; "
                          "single is one process"), file=sys.stderr)
        return 2
    glog = cfg.logger_class(cfg)  # applies logconfig_dict, as the arbiter does
    sharedmem.create(1, settings.connection_limit.max_connections)
    logformat.configure(settings.log_level, settings.log_format)
    for path in take_swept_dirs():
        log.info("certstream: removed %s (its server is gone)", path)
    sockets = create_sockets(cfg, glog)
    for sock in sockets:
        log.info("certstream: listening at %s", sock)
    # Ready when bound, as gunicorn's arbiter says it (systemd's Type=notify waits for it).
    systemd.sd_notify("READY=1\nSTATUS=certstream: one process", glog)
    log.info("certstream: one process (process_model: single), pid %d; no master restarts "
             "it: leave that to a supervisor", os.getpid())
    worker = SingleWorker(1, os.getppid(), sockets, app, cfg.timeout, cfg, glog)
    worker.pid = os.getpid()
    worker.inherited_signals = pending
    try:
        worker.init_process()  # patches for gevent, installs the handlers, serves, returns
    finally:
        for sock in worker.sockets:
            sock.close()
        worker.tmp.close()
    return 0
