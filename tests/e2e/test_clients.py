"""Real client libraries against the real server: they must receive and parse our frames.

The PyPI ``certstream`` library (its API and its CLI) and ``websocket-client`` live in a venv
of their own (``.venv/clients``: the library's import name clashes with ours), so they run
as subprocesses.  The npm ``ws`` package is used when ``node`` and ``npm`` are present and
the registry is reachable; it offers permessage-deflate, which the server accepts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support import (
    DOMAINS,
    FULL,
    LITE,
    ROOT,
    Server,
    golden_payloads,
    run_server,
    wait_until,
)

pytestmark = pytest.mark.slow

CLIENTS_BIN = ROOT / ".venv" / "clients" / "bin"
CLIENTS_PY = CLIENTS_BIN / "python"
LITE_P = golden_payloads("lite")
FULL_P = golden_payloads("full")
DOMAINS_P = golden_payloads("domains")
COUNT = 10

needs_clients_venv = pytest.mark.skipif(
    not CLIENTS_PY.exists(), reason="the clients venv (.venv/clients) is not installed"
)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with run_server({"websocket": {"ping_interval_secs": 1.0}}) as srv:
        yield srv


class Lines:
    """A subprocess whose stdout lines are collected by a thread."""

    def __init__(self, cmd: list[str], cwd: Path | None = None) -> None:
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     cwd=cwd, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.append(raw.decode("utf-8").rstrip("\n"))

    def wait_lines(self, n: int, timeout: float = 20.0) -> list[str]:
        wait_until(lambda: len(self.lines) >= n or self.proc.poll() is not None, timeout)
        if len(self.lines) < n and self.proc.poll() is not None:
            self.thread.join(1)  # the lines it printed before it exited
        return self.lines[:n]

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.kill()
        _out, err = self.proc.communicate(timeout=10)
        return err.decode("utf-8", "replace")


def _feed_when_connected(server: Server, mask: int, count: int = COUNT) -> None:
    server.feed.wait_wanted(mask, timeout=20)
    server.feed.publish_many([(LITE_P[i], FULL_P[i], DOMAINS_P[i]) for i in range(count)])


@needs_clients_venv
def test_pypi_certstream_library(server: Server) -> None:
    script = (
        "import certstream, json, sys\n"
        "def callback(message, context):\n"
        "    sys.stdout.write(json.dumps(message) + '\\n'); sys.stdout.flush()\n"
        f"certstream.listen_for_events(callback, url='ws://127.0.0.1:{server.port}/full-stream')\n"
    )
    client = Lines([str(CLIENTS_PY), "-c", script])
    try:
        _feed_when_connected(server, FULL)
        got = [json.loads(line) for line in client.wait_lines(COUNT)]
    finally:
        err = client.stop()
    assert got == [json.loads(p) for p in FULL_P[:COUNT]], err


@needs_clients_venv
def test_pypi_certstream_cli_json(server: Server) -> None:
    cli = CLIENTS_BIN / "certstream"
    client = Lines([str(cli), "--url", f"ws://127.0.0.1:{server.port}/", "--full", "--json"])
    try:
        _feed_when_connected(server, LITE)
        got = [json.loads(line) for line in client.wait_lines(COUNT)]
    finally:
        err = client.stop()
    assert got == [json.loads(p) for p in LITE_P[:COUNT]], err


@needs_clients_venv
def test_pypi_certstream_cli_human_output(server: Server) -> None:
    cli = CLIENTS_BIN / "certstream"
    client = Lines([str(cli), "--url", f"ws://127.0.0.1:{server.port}", "--full",
                    "--disable-colors"])
    try:
        _feed_when_connected(server, LITE)
        got = client.wait_lines(COUNT)
    finally:
        err = client.stop()
    assert len(got) == COUNT, err
    for line, payload in zip(got, LITE_P, strict=False):
        data = json.loads(payload)["data"]
        assert data["source"]["url"] in line
        assert ", ".join(data["leaf_cert"]["all_domains"]) in line


@needs_clients_venv
def test_websocket_client_gets_exact_text(server: Server) -> None:
    script = (
        "import json, sys, websocket\n"
        f"ws = websocket.create_connection('ws://127.0.0.1:{server.port}/domains-only',"
        " timeout=20)\n"
        "ws.send('ping')\n"
        "ws.ping(b'hi')\n"
        f"for _ in range({COUNT}):\n"
        "    sys.stdout.write(json.dumps(ws.recv()) + '\\n'); sys.stdout.flush()\n"
        "ws.close()\n"
    )
    client = Lines([str(CLIENTS_PY), "-c", script])
    try:
        _feed_when_connected(server, DOMAINS)
        got = [json.loads(line).encode("utf-8") for line in client.wait_lines(COUNT)]
    finally:
        err = client.stop()
    assert got == DOMAINS_P[:COUNT], err


@pytest.fixture(scope="module")
def node_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm not installed")
    where = tmp_path_factory.mktemp("node-ws")
    try:
        done = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "ws"], cwd=where,
                              capture_output=True, timeout=120, check=False)
    except subprocess.TimeoutExpired:
        pytest.skip("npm install ws timed out (no registry access?)")
    if done.returncode != 0 or not (where / "node_modules" / "ws").exists():
        pytest.skip(f"npm cannot install ws: {done.stderr.decode(errors='replace')[-300:]}")
    return where


def test_npm_ws_client(server: Server, node_ws: Path) -> None:
    script = node_ws / "client.js"
    script.write_text(
        "const WebSocket = require('ws');\n"
        f"const ws = new WebSocket('ws://127.0.0.1:{server.port}/');\n"
        "let n = 0;\n"
        "ws.on('open', () => { process.stdout.write(JSON.stringify({ext: ws.extensions})"
        " + '\\n'); });\n"
        "ws.on('message', (data, isBinary) => {\n"
        "  process.stdout.write(JSON.stringify({binary: isBinary, text: data.toString('utf8')})"
        " + '\\n');\n"
        f"  if (++n >= {COUNT}) ws.close(1000);\n"
        "});\n"
        "ws.on('close', (code) => { process.stdout.write(JSON.stringify({close: code}) + '\\n');"
        " process.exit(0); });\n"
    )
    client = Lines(["node", str(script)], cwd=node_ws)
    try:
        assert client.wait_lines(1, timeout=20), "node client did not connect"
        _feed_when_connected(server, LITE)
        got = [json.loads(line) for line in client.wait_lines(COUNT + 2)]
    finally:
        err = client.stop()
    # ws offers permessage-deflate by default and the server accepts it: each message below
    # came compressed (once for every such client) and reads as the plain payload.
    assert got[0] == {"ext": "permessage-deflate"}, err
    messages = got[1 : COUNT + 1]
    assert [m["text"].encode("utf-8") for m in messages] == LITE_P[:COUNT]
    assert not any(m["binary"] for m in messages)
    assert got[-1] == {"close": 1000}


def test_this_interpreter_is_not_the_clients_one() -> None:
    # The clients run in their own venv: importing "certstream" here must be this project.
    import certstream  # noqa: PLC0415

    assert Path(certstream.__file__).is_relative_to(ROOT / "src")
    assert sys.executable != str(CLIENTS_PY)
