"""``certstream --demo``: start the demo log process and point the settings at it.

The command starts ``python -m certstream.demo.server`` before gunicorn, reads the line in
which it names its logs and their fresh keys, and replaces the log sources of the settings
with exactly those logs: no log lists (nothing is fetched from the internet), each demo log as
a ``custom_logs`` (RFC 6962) or ``static_logs`` entry with its key, signatures enforced (a
demo that shows certificates has shown that tree heads and checkpoints verify), and the
positions in a private state file (the logs are new at every start).  Everything else (port,
workers, output profile, ...) stays as configured, and the real ingest and workers run as in
production.

The master stops the demo log after its own graceful stop (``DemoProcess.stop``); the demo
log also exits by itself when the master is gone.
"""

from __future__ import annotations

import dataclasses
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from certstream.config import (
    CustomLog,
    Settings,
    StaticLog,
    settings_from_dict,
    settings_to_dict,
)
from certstream.errors import ConfigError
from certstream.shell import rundirs
from certstream.shell.children import spawn_sigint_blocked

__all__ = [
    "DEMO_RATE",
    "SERVER_MODULE",
    "DemoError",
    "DemoProcess",
    "demo_settings",
    "start_demo",
]

#: New entries per second, all demo logs together: a calm stream that is still a stream.
DEMO_RATE = 40.0
SERVER_MODULE = "certstream.demo.server"
#: How long the demo log process may take to say it is ready (loading and keys: < 1 s).
READY_SECS = 30.0
STOP_SECS = 5.0


class DemoError(RuntimeError):
    """The demo log process did not start; the message says what it printed instead."""


def demo_settings(settings: Settings, info: dict[str, Any], state_dir: str) -> Settings:
    """``settings`` following exactly the demo logs that ``info`` describes."""
    rfc = tuple(
        CustomLog(name=log["name"], url=log["url"], operator=log["operator"], key=log["key"])
        for log in info["logs"] if log["kind"] == "rfc6962"
    )
    static = tuple(
        StaticLog(name=log["name"], url=log["url"], key=log["key"], log_origin=log["origin"],
                  operator=log["operator"])
        for log in info["logs"] if log["kind"] == "static"
    )
    ct = dataclasses.replace(
        settings.ct_log,
        log_list_urls=(),
        rfc6962_enabled=True,
        static_ct_enabled=True,
        sth_signature="enforce",
        static_ct_checkpoint_signature="enforce",
        state_file=str(Path(state_dir) / "demo_state.json"),
    )
    demo = dataclasses.replace(settings, ct_log=ct, custom_logs=rfc, static_logs=static)
    # Validated like any other value (a demo log the schema refused would say so here).
    return settings_from_dict(settings_to_dict(demo))


@dataclasses.dataclass
class DemoProcess:
    """The running demo log process, its description, and the private state directory."""

    proc: subprocess.Popen[bytes]
    info: dict[str, Any]
    state_dir: str
    owner: int  # the process that started it; forked children must not stop it

    def stop(self) -> None:
        if os.getpid() != self.owner:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_SECS)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.state_dir, ignore_errors=True)


def _read_line(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            return b""
    return proc.stdout.readline()


def start_demo(settings: Settings, rate: float = DEMO_RATE) -> tuple[Settings, DemoProcess]:
    """Start the demo log process; the settings that follow it, and the process."""
    if not rate > 0:
        raise ConfigError("--demo-rate", rate, "a number of entries per second > 0")
    # SIGINT blocked for good: on Ctrl-C the master stops it last (see certstream.demo.server).
    proc = spawn_sigint_blocked(
        [sys.executable, "-m", SERVER_MODULE, "--rate", repr(float(rate)),
         "--parent", str(os.getpid())],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, close_fds=True,
    )
    line = _read_line(proc, READY_SECS)
    assert proc.stdout is not None
    proc.stdout.close()  # it says nothing more; its errors go to our stderr
    try:
        info = json.loads(line)
    except ValueError:
        proc.kill()
        proc.wait()
        said = line.decode(errors="replace").strip()[:200] or "nothing"
        raise DemoError(f"the demo log process did not start (it said: {said})") from None
    state_dir = rundirs.private_dir("demo")
    demo = DemoProcess(proc, info, state_dir, os.getpid())
    try:
        return demo_settings(settings, info, state_dir), demo
    except ConfigError:
        demo.stop()
        raise
