"""The real server for tests: the ``certstream`` command (or gunicorn) on a free port, in a
temporary directory, fed by a :class:`~tests.support.feed.FakeFeed` or by its own ingest."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from tests.support.data import ROOT
from tests.support.feed import FakeFeed
from tests.support.net import accepts, free_port, short_tmpdir
from tests.support.procs import Proc, children, clean_env, is_ingest, proc_env, processes
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

    def tree(self) -> tuple[list[Proc], list[Proc]]:
        """The master's children: its ingest process(es), and the workers that serve clients."""
        kids = children(self.proc.pid)
        return [p for p in kids if is_ingest(p)], [p for p in kids if not is_ingest(p)]

    def worker_pids(self) -> list[int]:
        """The master's children that serve clients (the ingest process is left out)."""
        return [p.pid for p in self.tree()[1]]


# Read by the ``certstream`` command from its working directory, after its own options.
NO_INGEST_CONF = """\
# The test's FakeFeed listens on the feed socket in place of the ingest.
def when_ready(server):
    pass
"""


def deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Settings ``extra`` over ``base``, sections merged key by key."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


@contextlib.contextmanager
def run_server(config: Mapping[str, Any] | None = None, *, workers: int = 1,
               graceful: int | None = None,
               ingest: bool | Literal["embedded", "single"] = False,
               gunicorn: bool = False,
               config_via: Literal["env", "flag", "none"] = "env", port: int | None = None,
               args: Sequence[str] = (), env: Mapping[str, str] | None = None,
               ) -> Iterator[Server]:
    """The ``certstream`` command on a free port, in a temporary working directory, fed by a
    :class:`FakeFeed`, or with ``ingest=True`` by its own ingest process (configure
    ``custom_logs`` then). It is ready when the master has its ``workers`` workers (and its
    one ingest), the port accepts, and the workers are on the fake feed.  ``ingest="embedded"``
    sets ``ingest.mode: embedded``: the one worker runs the ingest, there is no ingest process;
    ``ingest="single"`` also sets ``process_model: single``: the command's own process serves,
    with no master and no child at all.

    ``gunicorn=True`` starts ``gunicorn -c gunicorn.conf.py`` (the repository's file)
    instead of the ``certstream`` command; it needs ``ingest=True``, since the fake feed
    relies on a ``gunicorn.conf.py`` of the test's own. ``graceful`` sets gunicorn's
    graceful timeout (by that file in the working directory; else the default holds).

    The settings (``config`` over a default of this host, a free port, ``workers``, no log
    lists and a state file in the working directory) go to ``config.yaml``, which the server
    is told of by ``config_via``: ``"env"`` ($CERTSTREAM_CONFIG) or ``"flag"`` (``--config``);
    with ``"none"`` there is no file, and ``args`` (after the command) and ``env`` (over an
    environment without any ``CERTSTREAM_*``) say everything, ``port`` included.

    On the way out the server gets SIGQUIT (SIGKILL if it lingers), an ingest it left behind
    is killed, and, if the test passed, its log must show no traceback."""
    assert ingest or not gunicorn, "gunicorn.conf.py always starts the real ingest"
    assert ingest or config_via != "none", "the fake feed's socket is set in the config file"
    assert not (gunicorn and config_via == "flag"), "gunicorn takes no --config of ours"
    with short_tmpdir("certstream-test-") as workdir:
        port = free_port() if port is None else port
        feed_path = str(workdir / "feed.sock")
        defaults: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": port,
            "workers": workers,
            "ct_log": {"log_list_urls": [], "state_file": str(workdir / "state.json")},
        }
        if not ingest:
            defaults["feed_socket"] = feed_path
        if ingest in ("embedded", "single"):
            defaults["ingest"] = {"mode": "embedded"}
        if ingest == "single":
            defaults["process_model"] = "single"
        argv = list(args)
        server_env = clean_env(PYTHONUNBUFFERED="1", **(env or {}))
        if config_via != "none":
            settings = deep_merge(defaults, config or {})
            (workdir / "config.yaml").write_text(yaml.safe_dump(settings))
            if config_via == "env":
                server_env["CERTSTREAM_CONFIG"] = str(workdir / "config.yaml")
            else:
                argv = ["--config", "config.yaml", *argv]
        conf = "" if ingest else NO_INGEST_CONF
        if graceful is not None:
            conf += f"graceful_timeout = {graceful}\n"
        if conf:
            (workdir / "gunicorn.conf.py").write_text(conf)
        feed = FakeFeed(feed_path) if not ingest else None
        log_path = workdir / "server.log"
        with open(log_path, "wb") as log_file:
            # The real entry point: the console script next to this interpreter.
            bin_dir = Path(sys.executable).parent
            command = ([str(bin_dir / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py")]
                       if gunicorn else [str(bin_dir / "certstream")])
            proc = subprocess.Popen(
                command + argv,
                cwd=workdir, env=server_env, stdout=log_file, stderr=subprocess.STDOUT,
            )
        server = Server(port, proc, feed, workdir, log_path)

        def ready() -> bool:
            assert proc.poll() is None, f"the server exited ({proc.returncode}):\n{server.log()}"
            ingests, serving = server.tree()
            return (len(serving) == (0 if ingest == "single" else workers)
                    and len(ingests) == int(ingest is True)
                    and accepts(port)
                    and (feed is None or feed.connected() >= workers))

        try:
            what = f"the master, {workers} worker(s){' and the ingest' if ingest is True else ''}"
            wait_until(ready, 60, what, interval=0.05)
            yield server
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGQUIT)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            _kill_orphaned_ingest(proc.pid)
            if feed is not None:
                feed.close()
        # Reached only when the test passed: the server must not have logged a crash.
        assert "Traceback" not in server.log(), server.log()


def _kill_orphaned_ingest(master: int) -> None:
    """An ingest whose master was killed exits on its own, soon; a test does not wait."""
    for p in processes():
        if is_ingest(p):
            with contextlib.suppress(OSError):
                if proc_env(p.pid).get("CERTSTREAM_MASTER_PID") == str(master):
                    os.kill(p.pid, signal.SIGKILL)
