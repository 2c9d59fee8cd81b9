"""A real WebSocket client reads our compressed-once frames: Python ``websockets``, which
offers permessage-deflate by default, against a real socket server driven by the core
session (node ``ws``: ``tests/e2e/test_deflate_node.py``)."""

from __future__ import annotations

import pytest
from tests.support import golden_payloads
from tests.support.deflate_server import DeflateServer
from websockets.sync import client as sync_client

PAYLOADS = golden_payloads("lite") + golden_payloads("full") + golden_payloads("domains")


@pytest.mark.parametrize("compression", [True, False])
def test_python_websockets_reads_every_golden_frame(compression: bool) -> None:
    with DeflateServer(PAYLOADS, compression=compression) as server, \
            sync_client.connect(server.url, max_size=None, open_timeout=10) as ws:
        assert ws.request is not None and ws.response is not None
        offered = ws.request.headers.get("Sec-WebSocket-Extensions", "")
        answered = ws.response.headers.get("Sec-WebSocket-Extensions")
        got = [m.encode() if isinstance(m, str) else m for m in ws]
    assert "permessage-deflate" in offered  # it offers by default ...
    assert got == PAYLOADS  # ... and reads every frame, byte for byte
    if compression:
        assert answered is not None and "server_no_context_takeover" in answered
        assert server.negotiated[0] is not None
    else:
        assert answered is None and server.negotiated == [None]
