"""What a worker's ``/metrics`` shows and where: our series (``shell.metrics``, kept
current by ``shell.metricsync``), plus, as the settings ask, certstream-server-go's series
(``shell.gometrics``) and the deployment's process series (``shell.procmetrics``); and the
connection context of the metrics' own listener (``metrics.port``), which serves the
metrics path and nothing else, with its own whitelist, ``real_ip`` and TLS pair.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable
from typing import Any

from certstream.config import Settings, metrics_listener
from certstream.core.clientip import AllowList
from certstream.core.routes import RouteTable
from certstream.shell import metrics
from certstream.shell.access import Access
from certstream.shell.endpoints import ServerContext
from certstream.shell.gometrics import SkippedCollector, WorkerSeries
from certstream.shell.procmetrics import DeploymentProcesses

__all__ = ["MetricsView", "bound_to", "metrics_context", "metrics_tls"]


class MetricsView:
    """A worker's metrics: ``tick`` once a second and before each scrape, ``render`` for
    ``/metrics``.  ``peers`` is the client -> address map the connection handler keeps
    when Go's per-client series are on (None otherwise: nothing is kept)."""

    def __init__(self, settings: Settings, hub: Any, sync: Callable[[], None]) -> None:
        # The gunicorn master sets both (shell.app) before any worker starts.
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
        self.sync = sync
        self.peers: dict[Any, str] | None = None
        self.go: WorkerSeries | None = None
        self.collectors: list[Any] = []
        if settings.metrics.go_series:
            self.peers = {}
            self.go = WorkerSeries(hub, self.peers, directory)
            self.collectors.append(SkippedCollector(self.go, directory))
        if settings.metrics.process_metrics:
            master = os.environ.get("CERTSTREAM_MASTER_PID", "")
            self.collectors.append(
                DeploymentProcesses(directory, int(master) if master.isdigit() else None))

    def tick(self) -> None:
        self.sync()
        if self.go is not None:
            self.go()

    def render(self) -> tuple[bytes, str]:
        self.tick()  # this worker's values are current in the scrape
        return metrics.render_metrics(self.collectors)


def metrics_context(settings: Settings, hub: Any, render: Callable[[], tuple[bytes, str]],
                    on_response: Callable[[str, int], None] | None) -> ServerContext:
    """The context of the metrics' own listener."""
    m = settings.metrics
    return ServerContext(
        hub=hub,
        routes=RouteTable.metrics_only(settings.paths.metrics),
        access=Access(allow=AllowList(m.whitelist)),
        render_metrics=render,
        on_response=on_response,
        real_ip=m.real_ip,
    )


def metrics_tls(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of the metrics' own listener (its own pair, else plain HTTP)."""
    m = settings.metrics
    if not (m.tls_cert and m.tls_key):
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(m.tls_cert, m.tls_key)
    return context


def bound_to(sock: Any, settings: Settings) -> bool:
    """Whether gunicorn's listening ``sock`` is the metrics' own listener."""
    own = metrics_listener(settings) if settings.protocols.metrics else None
    if own is None:
        return False
    host, port = own
    addr = getattr(sock, "cfg_addr", None)  # gunicorn's parsed bind address
    if isinstance(addr, tuple) and len(addr) >= 2:
        return (str(addr[0]).strip("[]"), int(addr[1])) == (host.strip("[]"), port)
    try:
        return int(sock.getsockname()[1]) == port
    except (OSError, AttributeError, IndexError):
        return False
