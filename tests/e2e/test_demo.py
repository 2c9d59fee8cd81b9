"""``certstream --demo`` as a newcomer runs it, then Ctrl-C.

The real command (master, two workers, the ingest, the demo log process) from an empty
directory with no config: certificates must reach a WebSocket client, an SSE client, the PyPI
client, ``/example.json`` and ``/health/deep`` within seconds, from logs on loopback only, and
keep coming.  Then SIGINT to the whole process group, as a terminal sends it: each WebSocket
gets close 1001, each SSE stream ends, the exit is 0, and nothing prints a traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support import (
    RawWS,
    SSEClient,
    close_info,
    free_port,
    http_get,
    wait_until,
)
from tests.support.procs import alive, cmdline, family

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CLIENTS_CLI = ROOT / ".venv" / "clients" / "bin" / "certstream"
WORKERS = 2


@contextlib.contextmanager
def demo(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """``certstream --demo`` in its own process group, from an empty directory."""
    port = free_port()
    cwd = tmp_path / "empty"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CERTSTREAM_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env["PYTHONUNBUFFERED"] = "1"
    log_path = tmp_path / "demo.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(BIN / "certstream"), "--demo", "--host", "127.0.0.1", "--port", str(port),
             "--workers", str(WORKERS)],
            cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc, port, log_path
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _certificate(payload: bytes) -> dict[str, object]:
    msg = json.loads(payload)
    assert msg["message_type"] == "certificate_update", payload[:200]
    data: dict[str, object] = msg["data"]
    return data


def _pypi_client_lines(port: int, want: int, timeout: float) -> list[str]:
    """What the README's client command prints (its --json form), until ``want`` lines."""
    proc = subprocess.Popen([str(CLIENTS_CLI), "--url", f"ws://127.0.0.1:{port}/", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    lines: list[str] = []
    buf = b""
    deadline = time.monotonic() + timeout
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while len(lines) < want and time.monotonic() < deadline:
                if not sel.select(0.5):
                    continue
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                buf += chunk
                *done, buf = buf.split(b"\n")
                lines += [d.decode() for d in done if d.strip()]
    finally:
        proc.kill()
        proc.wait()
    return lines


@pytest.mark.slow
def test_demo_streams_recorded_certificates_then_stops_cleanly_on_ctrl_c(
        tmp_path: Path) -> None:
    with demo(tmp_path) as (proc, port, log_path):
        started = time.monotonic()

        def accepting() -> bool:
            assert proc.poll() is None, log_path.read_text()
            with contextlib.suppress(OSError):
                return http_get(port, "/health", timeout=2)[0] == 200
            return False

        assert wait_until(accepting, 30), log_path.read_text()

        # A WebSocket client: at least 20 certificates within 30 s of the start.
        ws = RawWS(port, "/", timeout=10)
        seen: list[dict[str, object]] = []
        while len(seen) < 20:
            assert time.monotonic() - started < 30, (len(seen), log_path.read_text())
            seen.append(_certificate(ws.recv_data()))
        # ... and they keep coming, from every demo log (both kinds).
        mark = time.monotonic()
        sources: set[str] = set()
        while len(seen) < 60 or len(sources) < 5:
            assert time.monotonic() - mark < 20, (len(seen), sources)
            seen.append(_certificate(ws.recv_data()))
            sources.add(str(seen[-1]["source"]["url"]))  # type: ignore[index]
        fingerprints = {str(d["leaf_cert"]["sha256"]) for d in seen}  # type: ignore[index]
        assert len(fingerprints) == len(seen), "the demo entries are made unique"
        assert all(re.match(r"^http://127\.0\.0\.1:\d+/", u) for u in sources), sources
        ws.close()

        # SSE shows them too.
        sse = SSEClient(port, "/sse", timeout=10)
        event = sse.next_event()
        assert event is not None
        _certificate(event[1])
        sse.close()

        # /example.json: the latest certificate.
        status, _, body = http_get(port, "/example.json")
        assert status == 200
        assert _certificate(body)["leaf_cert"]

        # /health/deep: the five demo logs, healthy.
        def healthy() -> bool:
            status, _, body = http_get(port, "/health/deep")
            deep = json.loads(body)
            return bool(status == 200 and deep["logs_total"] == 5 and deep["logs_healthy"] == 5)

        assert wait_until(healthy, 20), http_get(port, "/health/deep")[2]

        # The client the README shows.
        if CLIENTS_CLI.exists():
            lines = _pypi_client_lines(port, 3, 20)
            assert len(lines) >= 3
            for line in lines:
                _certificate(line.encode())

        # Nothing but loopback was followed: no log list, every log on 127.0.0.1.
        text = log_path.read_text()
        followed = re.findall(r"log (.+?) \((rfc6962|static), (\S+)\): following", text)
        assert len(followed) == 5 and {k for _, k, _ in followed} == {"rfc6962", "static"}
        assert all(url.startswith("http://127.0.0.1:") for _, _, url in followed)
        assert "log list" not in text
        assert "compiled extensions:" in text

        # Ctrl-C with clients connected on every stream and transport.
        sockets = [RawWS(port, path, timeout=15) for path in ("/", "/full-stream",
                                                             "/domains-only")]
        streams = [SSEClient(port, target, timeout=15) for target in ("/sse",
                                                                      "/sse?stream=domains")]
        for client in streams:
            assert client.next_event() is not None  # the streams are live
        pids = family(proc.pid)
        assert len(pids) == 1 + WORKERS + 2, [cmdline(p) for p in pids]  # + ingest, demo log
        tmp = re.escape(tempfile.gettempdir())
        rundirs = set(re.findall(tmp + r"/certstream-(?:run|demo)-\d+-[^/\s]+", text))
        assert rundirs and all(Path(d).exists() for d in rundirs)
        os.killpg(proc.pid, signal.SIGINT)

        for ws_client in sockets:
            while True:
                opcode, payload = ws_client.recv_frame()
                if opcode == 8:
                    assert close_info(payload) == (1001, "server shutting down")
                    break
            ws_client.close()  # as a client does once the close handshake is done
        for sse_client in streams:
            while sse_client.next_block() is not None:
                pass  # the stream ends: EOF, not a reset
            sse_client.close()
        assert proc.wait(30) == 0
        assert wait_until(lambda: not any(alive(p) for p in pids), 10)
        out = log_path.read_text()
        assert "Traceback" not in out and "SystemExit" not in out, out
        assert not any(Path(d).exists() for d in rundirs)
