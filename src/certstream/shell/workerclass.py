"""The worker class gunicorn's master imports: a stand-in that becomes ``CertstreamWorker``
only in the forked worker.

gunicorn loads the configured ``worker_class`` in the master and builds each worker object
there, before the fork.  Naming ``certstream.shell.worker.CertstreamWorker`` directly made the
master import everything a worker runs (gevent, h11, wsproto, the hub, prometheus_client):
~10 MiB of modules in a process that only forks and supervises.  This class is a plain
``gunicorn.workers.base.Worker`` in the master; after the fork, ``init_process`` imports the
real class, turns this object into one (``__class__`` assignment: no second
``Worker.__init__``, whose heartbeat file the arbiter is already watching) and hands over.
"""

from __future__ import annotations

from typing import Any

from gunicorn.workers.base import Worker

__all__ = ["REAL_WORKER", "CertstreamWorker"]

#: The class this stand-in becomes after the fork (``module:attribute``).
REAL_WORKER = "certstream.shell.worker:CertstreamWorker"


class CertstreamWorker(Worker):  # type: ignore[misc]  # gunicorn is untyped
    """See the module docstring.  Named like the real class: it is what the logs show."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # What gunicorn's AsyncWorker.__init__ adds, the one base __init__ not run in the
        # real class's chain.
        self.worker_connections = self.cfg.worker_connections

    def init_process(self) -> None:
        # In the worker, after the fork: now the whole worker stack is this process's own.
        import importlib  # noqa: PLC0415

        module, _, name = REAL_WORKER.partition(":")
        real = getattr(importlib.import_module(module), name)
        self.__class__ = real
        real.init_process(self)

    def run(self) -> None:  # pragma: no cover - replaced by the real class before it runs
        raise RuntimeError("certstream's worker stand-in ran without becoming the real worker")
