"""The demo log process: ``python -m certstream.demo.server`` serves ``DemoLogs`` over HTTP.

``certstream --demo`` starts it (see ``certstream.demo.launch``) before the server itself.
It binds a loopback port, makes a fresh key per log, and prints one JSON line (base URL and,
per log, name, operator, kind, URL, base64 SPKI key and, for static logs, origin) so that the
server's configuration names exactly these logs and keys.  Then it serves until:

* SIGTERM (the ``certstream`` command stops it after the server's own graceful stop), or
* its parent process is gone (a master killed with SIGKILL must not leave it behind).

``certstream`` starts it with SIGINT blocked, for good: Ctrl-C reaches every process of the
terminal's group at once, and the logs must stay up while the ingest stops reading them, or
its last requests fail noisily.  Run by hand, Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from socket import SO_REUSEADDR, SOL_SOCKET
from typing import Any

import gevent
import gevent.event
from gevent.pywsgi import WSGIServer
from gevent.socket import socket as gsocket

from certstream.demo.corpus import load_corpus
from certstream.demo.ctlog import BACKLOG, DemoLogs

__all__ = ["main", "wsgi_app"]

WATCHDOG_SECS = 1.0

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


def wsgi_app(logs: DemoLogs, clock: Callable[[], float] = time.time) -> Any:
    """The demo logs as a WSGI application (the clock is read here, once per request)."""

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        resp = logs.respond(environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""),
                            environ.get("QUERY_STRING", ""), clock())
        headers = [
            ("Content-Type", resp.content_type),
            ("Content-Length", str(len(resp.body))),
            ("Cache-Control",
             "public, max-age=604800, immutable" if resp.immutable else "no-store"),
        ]
        start_response(f"{resp.status} {_REASONS.get(resp.status, 'Error')}", headers)
        return [resp.body]

    return app


def _watchdog(parent: int, stop: gevent.event.Event) -> None:
    while os.getppid() == parent:
        gevent.sleep(WATCHDOG_SECS)
    stop.set()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m certstream.demo.server", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0: any free port")
    ap.add_argument("--rate", type=float, default=40.0, help="new entries/s, all logs together")
    ap.add_argument("--backlog", type=int, default=BACKLOG, help="entries per log at start")
    ap.add_argument("--seed", type=int, default=None, help="serials (default: from the time)")
    ap.add_argument("--parent", type=int, default=None,
                    help="exit when this process is no longer the parent (default: the parent)")
    args = ap.parse_args(argv)
    if args.rate <= 0:
        ap.error("--rate must be > 0")

    listener = gsocket()
    listener.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
    listener.bind((args.host, args.port))
    listener.listen(128)
    host, port = listener.getsockname()[:2]
    now = time.time()
    logs = DemoLogs(load_corpus(), f"http://{host}:{port}", rate=args.rate, start=now,
                    seed=int(now) if args.seed is None else args.seed, backlog=args.backlog)
    server = WSGIServer(listener, wsgi_app(logs), log=None, error_log=None)
    server.start()

    stop = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stop.set)
    gevent.signal_handler(signal.SIGINT, stop.set)  # never fires under certstream: blocked
    gevent.spawn(_watchdog, os.getppid() if args.parent is None else args.parent, stop)
    print(json.dumps(logs.describe()), flush=True)
    stop.wait()
    server.stop(timeout=1)
    return 0


if __name__ == "__main__":  # pragma: no cover - the process entry
    sys.exit(main(sys.argv[1:]))
