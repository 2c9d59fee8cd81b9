"""Run the real ``certstream`` command as a certstream-server-go user would: ``certstream -c
config.yaml`` in a directory holding Go's config.yaml (and maybe a ct_index.json), with a
clean environment; and the golden configs certstream-server-go itself ran with, with only
their log URLs and ports changed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.support import ROOT, wait_until
from tests.support.net import accepts

__all__ = ["GoRun", "cli", "golden_go_config", "run_certstream"]

BIN = Path(sys.executable).parent
GOLDEN_GO = ROOT / "conformance" / "data" / "golden" / "go"


def golden_go_config(set_name: str, *, port: int, log_base: str) -> str:
    """The config.yaml certstream-server-go ran with for ``set_name``, listening on
    ``port`` (its webserver and prometheus shared one) and reading its logs at ``log_base``
    instead of the fake log it was captured with."""
    text = (GOLDEN_GO / set_name / "go-config.yaml").read_text()
    for old in ("18180", "18080"):
        text = text.replace(f"listen_port: {old}", f"listen_port: {port}")
    for old in ("http://127.0.0.1:18865", "http://127.0.0.1:18765"):
        text = text.replace(old, log_base)
    return text


def _env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CERTSTREAM_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def cli(args: list[str], cwd: Path, env: Mapping[str, str] | None = None,
        ) -> subprocess.CompletedProcess[str]:
    """``certstream ARGS`` run to its end in ``cwd``."""
    return subprocess.run([str(BIN / "certstream"), *args], cwd=cwd, env=_env(env),
                          capture_output=True, text=True, timeout=120, check=False)


@dataclass
class GoRun:
    proc: subprocess.Popen[bytes]
    workdir: Path
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it: clients get 1001, the ingest writes its
        state (and ct_index.json) before the master exits."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@contextlib.contextmanager
def run_certstream(workdir: Path, port: int, args: list[str] | None = None,
                   env: Mapping[str, str] | None = None) -> Iterator[GoRun]:
    """``certstream -c config.yaml`` (or ``args``) started in ``workdir``; stopped with
    SIGTERM at the end (if still running).  The test passes only if it logged no
    traceback."""
    log_path = workdir / "server.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen([str(BIN / "certstream"), *(args or ["-c", "config.yaml"])],
                                cwd=workdir, env=_env(env), stdout=log_file,
                                stderr=subprocess.STDOUT)
    run = GoRun(proc, workdir, log_path)
    try:
        assert wait_until(lambda: accepts(port) or proc.poll() is not None, 30), run.log()
        assert proc.poll() is None, run.log()
        yield run
    finally:
        run.stop()
    assert "Traceback" not in run.log(), run.log()
