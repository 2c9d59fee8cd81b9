"""``python -m bench.no_ingest CONFIG``: certstream's gunicorn master and workers, no ingest.

The fan-out benchmarks feed the real workers from ``bench.feeder`` instead of CT logs.  The
app always starts an ingest from its ``when_ready`` hook (there is no setting to turn that
off), so this launcher is the embedded app with that one hook replaced; everything else (the
worker class, connection limits, the feed path in the settings handed to the workers) is the
app's own.
"""

from __future__ import annotations

import sys
from typing import Any

from certstream.config import load_settings
from certstream.shell import app


def _no_ingest(server: Any) -> None:
    server.log.info("bench: no ingest; the workers subscribe to the bench feeder")


class WorkersOnly(app.CertstreamApp):
    def load_config(self) -> None:
        super().load_config()
        self.cfg.set("when_ready", _no_ingest)


def main(argv: list[str]) -> None:
    settings = app.prepare_master(load_settings(path=argv[0]))
    WorkersOnly(settings).run()


if __name__ == "__main__":
    main(sys.argv[1:])
