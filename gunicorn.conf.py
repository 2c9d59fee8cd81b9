"""gunicorn configuration for certstream: ``gunicorn -c gunicorn.conf.py`` runs a deployment.

The values come from certstream's own settings (``CERTSTREAM_*`` variables and the config
file, see config.example.yaml), so this file and the ``certstream`` command start the same
server: the CertstreamWorker class, one ingest process started by ``when_ready`` and stopped
by ``on_exit``.  The ``certstream`` command reads this file too when it is in the current
directory; edit gunicorn-only knobs here.
"""

from __future__ import annotations

import sys

from certstream.errors import ConfigError
from certstream.shell.app import (
    child_exit,
    gunicorn_options,
    on_exit,
    on_starting,
    post_fork,
    pre_fork,
    prepare_master,
    when_ready,
)

try:
    # Also sets PROMETHEUS_MULTIPROC_DIR before gunicorn imports the worker class.
    _settings = prepare_master()
except ConfigError as _exc:
    # One clear line and status 2, not gunicorn's "Failed to read config file" traceback.
    print(_exc, file=sys.stderr)
    sys.exit(2)

_opts = gunicorn_options(_settings)

bind = _opts["bind"]
workers = _opts["workers"]
worker_class = _opts["worker_class"]
worker_connections = _opts["worker_connections"]
graceful_timeout = _opts["graceful_timeout"]
timeout = _opts["timeout"]
max_requests = _opts["max_requests"]
loglevel = _opts["loglevel"]
logconfig_dict = _opts["logconfig_dict"]
proc_name = _opts["proc_name"]
wsgi_app = _opts["wsgi_app"]
if "control_socket_disable" in _opts:
    control_socket_disable = _opts["control_socket_disable"]
if "certfile" in _opts:
    certfile = _opts["certfile"]
    keyfile = _opts["keyfile"]

__all__ = ["child_exit", "on_exit", "on_starting", "post_fork", "pre_fork", "when_ready"]
