"""The real server for tests: the ``certstream`` command (or gunicorn) on a free port, in a
temporary directory, fed by a :class:`~tests.support.feed.FakeFeed` or by its own ingest."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from tests.support.data import ROOT
from tests.support.feed import FakeFeed
from tests.support.net import accepts, free_port, short_tmpdir
from tests.support.wait import wait_until


@dataclass
class Server:
    port: int
    proc: subprocess.Popen[bytes]
    fake_feed: FakeFeed | None
    workdir: Path
    log_path: Path

    @property
    def feed(self) -> FakeFeed:
        """The fake ingest (servers started with ``ingest=True`` have the real one)."""
        assert self.fake_feed is not None, "this server runs the real ingest"
        return self.fake_feed

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def worker_pids(self) -> list[int]:
        """The master's children that serve clients (the ingest process is left out)."""
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True,
                             text=True, check=False)
        pids = []
        for pid in (int(p) for p in out.stdout.split()):
            with contextlib.suppress(OSError):
                if b"certstream.shell.ingest" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                    pids.append(pid)
        return pids


# Read by the ``certstream`` command from its working directory, after its own options.
GUNICORN_CONF = """\
# The test's FakeFeed listens on the feed socket in place of the ingest.
def when_ready(server):
    pass

graceful_timeout = {graceful}
"""


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


@contextlib.contextmanager
def run_server(config: Mapping[str, Any] | None = None, *, workers: int = 1,
               graceful: int = 10, ingest: bool = False,
               gunicorn: bool = False) -> Iterator[Server]:
    """The ``certstream`` command on a free port, fed by a :class:`FakeFeed`, or with
    ``ingest=True`` by its own ingest process (configure ``custom_logs`` then).

    ``gunicorn=True`` starts ``gunicorn -c gunicorn.conf.py`` (the repository's file)
    instead of the ``certstream`` command; it needs ``ingest=True``, since the fake feed
    relies on a ``gunicorn.conf.py`` of the test's own."""
    assert ingest or not gunicorn, "gunicorn.conf.py always starts the real ingest"
    with short_tmpdir("certstream-test-") as workdir:
        port = free_port()
        feed_path = str(workdir / "feed.sock")
        settings = _deep_merge(
            {
                "host": "127.0.0.1",
                "port": port,
                "workers": workers,
                "feed_socket": feed_path,
                "ct_log": {"log_list_urls": [], "state_file": str(workdir / "state.json")},
            },
            config or {},
        )
        (workdir / "config.yaml").write_text(yaml.safe_dump(settings))
        (workdir / "gunicorn.conf.py").write_text(
            GUNICORN_CONF.format(graceful=graceful) if not ingest
            else f"graceful_timeout = {graceful}\n"
        )
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("CERTSTREAM_") and k != "PROMETHEUS_MULTIPROC_DIR"}
        env.update({"CERTSTREAM_CONFIG": str(workdir / "config.yaml"), "PYTHONUNBUFFERED": "1"})
        feed = FakeFeed(feed_path) if not ingest else None
        log_path = workdir / "server.log"
        with open(log_path, "wb") as log_file:
            # The real entry point: the console script next to this interpreter.
            bin_dir = Path(sys.executable).parent
            argv = ([str(bin_dir / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py")]
                    if gunicorn else [str(bin_dir / "certstream")])
            proc = subprocess.Popen(
                argv,
                cwd=workdir, env=env, stdout=log_file, stderr=subprocess.STDOUT,
            )
        server = Server(port, proc, feed, workdir, log_path)
        try:
            if feed is not None:
                feed.wait_workers(workers)
            assert wait_until(lambda: accepts(port), 15), server.log()
            yield server
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGQUIT)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if feed is not None:
                feed.close()
        # Reached only when the test passed: the server must not have logged a crash.
        assert "Traceback" not in server.log(), server.log()
