"""permessage-deflate on the real server (ingest, workers, the live40 replay log): every
stream compressed once for every client that offers it, read by a raw client (RSV1 on every
message, each inflated on its own), by Python ``websockets`` and by node ``ws`` (both offer
it by default); a client that does not offer it gets plain frames.  What every client
received is judged against the Go server's golden frames as ``python -m conformance`` does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import zlib
from pathlib import Path

import pytest
from conformance.verdict import format_verdict
from tests.support import RawWS, wait_until
from tests.support.live40 import judge_ws, live40_server
from websockets.sync import client as sync_client

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
NODE_MODULES = REPO / ".venv" / "node" / "node_modules"
PATHS = {"lite": "/", "full": "/full-stream", "domains": "/domains-only"}
COUNT = 40  # live40: 40 entries, 40 frames per stream
OFFER = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
TAIL = b"\x00\x00\xff\xff"

# Connects to every URL given, prints "open" per connection, and once each has COUNT
# messages prints {url: {ext, got}} and exits.
_NODE_CLIENT = """
const WebSocket = require(process.argv[2]);
const count = Number(process.argv[3]);
const urls = process.argv.slice(4);
const out = {};
let done = 0;
for (const url of urls) {
  const ws = new WebSocket(url);
  out[url] = { ext: null, got: [] };
  ws.on('upgrade', (res) => { out[url].ext = res.headers['sec-websocket-extensions'] || null; });
  ws.on('open', () => console.log('open'));
  ws.on('message', (data) => {
    out[url].got.push(data.toString('utf8'));
    if (out[url].got.length === count) {
      ws.close();
      // Exit once the pipe took it all (a pipe is written asynchronously).
      if (++done === urls.length) process.stdout.write(JSON.stringify(out), () => process.exit(0));
    }
  });
  ws.on('error', (err) => { console.error(String(err)); process.exit(2); });
}
"""


def _raw_messages(ws: RawWS, *, compressed: bool) -> list[str]:
    """COUNT data messages; each compressed one (RSV1) inflated with a fresh inflater."""
    got: list[str] = []
    while len(got) < COUNT:
        first, payload = ws.recv_raw_frame()
        opcode = first & 0x0F
        if opcode != 1:
            assert opcode in (9, 10), f"unexpected opcode {opcode}"
            continue
        assert bool(first & 0x40) is compressed, f"RSV1 {'clear' if compressed else 'set'}"
        if compressed:
            payload = zlib.decompressobj(-15).decompress(payload + TAIL)
        got.append(payload.decode())
    return got


def _python_client(url: str, out: dict[str, object]) -> None:
    with sync_client.connect(url, max_size=None, open_timeout=10) as ws:
        assert ws.response is not None
        out["ext"] = ws.response.headers.get("Sec-WebSocket-Extensions")
        out["open"] = True
        got: list[str] = []
        for message in ws:
            got.append(message if isinstance(message, str) else message.decode())
            if len(got) == COUNT:
                break
        out["got"] = got


def _node() -> tuple[str, Path] | None:
    node = shutil.which("node")
    module = Path(os.environ.get("CERTSTREAM_NODE_WS", NODE_MODULES / "ws"))
    return (node, module) if node is not None and module.is_dir() else None


def test_every_stream_is_compressed_once_and_real_clients_read_it(tmp_path: Path) -> None:
    node = _node()
    if node is None:
        pytest.skip("node or its ws package is missing (make test installs ws with npm)")
    script = tmp_path / "client.js"
    script.write_text(_NODE_CLIENT)
    with live40_server() as live:
        port = live.server.port
        base = f"ws://127.0.0.1:{port}"
        packed = {s: RawWS(port, p, extra_headers=OFFER, timeout=60) for s, p in PATHS.items()}
        plain = {s: RawWS(port, p, timeout=60) for s, p in PATHS.items()}
        python: dict[str, dict[str, object]] = {s: {} for s in PATHS}
        threads = [threading.Thread(target=_python_client, args=(base + p, python[s]),
                                    daemon=True) for s, p in PATHS.items()]
        for t in threads:
            t.start()
        proc = subprocess.Popen(
            [node[0], str(script), str(node[1]), str(COUNT), *(base + p for p in PATHS.values())],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            opened = [proc.stdout.readline() for _ in PATHS]
            assert opened == ["open\n"] * len(PATHS), proc.stderr.read() if proc.stderr else ""
            assert wait_until(lambda: all(o.get("open") for o in python.values()), 15)
            for ws in packed.values():
                head = ws.head.decode().lower()
                assert ws.status == 101 and "permessage-deflate" in head
                assert "server_no_context_takeover" in head
            assert all("sec-websocket-extensions" not in ws.head.decode().lower()
                       for ws in plain.values())
            # Clients first, then the log opens: each sees every entry from the first.
            wait_until(lambda: False, 1.0)
            live.open()
            got_packed = {s: _raw_messages(ws, compressed=True) for s, ws in packed.items()}
            got_plain = {s: _raw_messages(ws, compressed=False) for s, ws in plain.items()}
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            for t in threads:
                t.join(60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for ws in (*packed.values(), *plain.values()):
                ws.close()
        base_url = live.url
    node_out = json.loads(out)
    got_node = {s: node_out[base + p]["got"] for s, p in PATHS.items()}
    assert all(node_out[base + p]["ext"].startswith("permessage-deflate") for p in PATHS.values())
    got_python = {s: python[s]["got"] for s in PATHS}
    assert all(str(python[s]["ext"]).startswith("permessage-deflate") for s in PATHS)
    for who, frames in (("raw, compressed", got_packed), ("raw, plain", got_plain),
                        ("node ws", got_node), ("python websockets", got_python)):
        verdict = judge_ws(base_url, frames)  # type: ignore[arg-type]
        assert verdict.ok and verdict.matched == 3 * COUNT, who + "\n" + format_verdict(verdict)


def test_with_compression_off_an_offer_gets_plain_frames() -> None:
    with live40_server({"websocket": {"compression": False}}) as live:
        ws = RawWS(live.server.port, "/", extra_headers=OFFER, timeout=60)
        try:
            assert ws.status == 101
            assert "sec-websocket-extensions" not in ws.head.decode().lower()
            wait_until(lambda: False, 1.0)
            live.open()
            got = _raw_messages(ws, compressed=False)
        finally:
            ws.close()
        verdict = judge_ws(live.url, {"lite": got})
    assert verdict.ok and verdict.matched == COUNT, format_verdict(verdict)
