"""node ``ws`` (it offers permessage-deflate by default) reads our compressed-once frames from
a real socket server driven by the core session."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.support import golden_payloads
from tests.support.deflate_server import DeflateServer

REPO = Path(__file__).resolve().parents[2]
NODE_MODULES = REPO / ".venv" / "node" / "node_modules"
PAYLOADS = golden_payloads("lite") + golden_payloads("full") + golden_payloads("domains")

_NODE_CLIENT = """
const WebSocket = require(process.argv[2]);
const ws = new WebSocket(process.argv[3]);
const got = [];
let ext = null;
ws.on('upgrade', (res) => { ext = res.headers['sec-websocket-extensions'] || null; });
ws.on('message', (data) => got.push(data.toString('utf8')));
ws.on('close', () => process.stdout.write(JSON.stringify({ ext, got })));
ws.on('error', (err) => { console.error(String(err)); process.exit(2); });
"""


@pytest.mark.slow
def test_node_ws_reads_every_golden_frame(tmp_path: Path) -> None:
    node = shutil.which("node")
    module = Path(os.environ.get("CERTSTREAM_NODE_WS", NODE_MODULES / "ws"))
    if node is None or not module.is_dir():
        pytest.skip("node or its ws package is missing (make test installs ws with npm)")
    script = tmp_path / "client.js"
    script.write_text(_NODE_CLIENT)
    with DeflateServer(PAYLOADS) as server:
        res = subprocess.run([node, str(script), str(module), server.url],
                             capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["ext"] and out["ext"].startswith("permessage-deflate")
    assert [m.encode() for m in out["got"]] == PAYLOADS
