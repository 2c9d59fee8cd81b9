"""The demo logs behind the real WSGI server, fetched by the ingest's own HTTP client.

One process: the gevent server and the client are greenlets of the same hub.  The clock is
the test's, so sizes are exact.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from gevent.pywsgi import WSGIServer

from certstream.core.checkpoint import verify_checkpoint
from certstream.core.leaves import decode_get_entries
from certstream.core.sth import verify_sth
from certstream.core.tiles import data_tile_path, parse_data_tile
from certstream.demo.corpus import load_corpus
from certstream.demo.ctlog import BACKLOG, DemoLogs
from certstream.demo.server import wsgi_app
from certstream.shell.httpclient import HTTPClient, HTTPStatusError

T0 = 1_800_000_000.0


class Clock:
    now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def served() -> Iterator[tuple[DemoLogs, Clock, HTTPClient]]:
    server = WSGIServer(("127.0.0.1", 0), None, log=None, error_log=None)
    server.init_socket()
    clock = Clock()
    logs = DemoLogs(load_corpus(), f"http://127.0.0.1:{server.server_port}", rate=25,
                    start=T0, seed=1)
    server.application = wsgi_app(logs, clock)
    server.start()
    http = HTTPClient("certstream-test", 5.0, 1 << 24)
    try:
        yield logs, clock, http
    finally:
        http.close()
        server.stop(timeout=1)


def test_rfc6962_log_over_http(served: tuple[DemoLogs, Clock, HTTPClient]) -> None:
    logs, clock, http = served
    log = logs.logs["/argon2026h2/"]
    clock.now = T0 + 2.0  # 5 entries/s per log
    sth = verify_sth(json.loads(http.get(log.url + "ct/v1/get-sth").body),
                     base64.b64decode(log.key_b64))
    assert sth.tree_size == BACKLOG + 10
    body = http.get(f"{log.url}ct/v1/get-entries?start=0&end={sth.tree_size - 1}").body
    entries, errors = decode_get_entries(body, 0)
    assert (len(entries), errors) == (sth.tree_size, [])
    with pytest.raises(HTTPStatusError) as err:
        http.get(f"{log.url}ct/v1/get-entries?start={sth.tree_size}&end={sth.tree_size}")
    assert err.value.status == 400


def test_static_log_over_http(served: tuple[DemoLogs, Clock, HTTPClient]) -> None:
    logs, clock, http = served
    log = logs.logs["/navigli2025h2/"]
    clock.now = T0 + 1.0
    resp = http.get(log.url + "checkpoint")
    assert resp.headers.get("cache-control") == "no-store"
    cp = verify_checkpoint(resp.body, log.url.split("://")[1].rstrip("/"),
                           base64.b64decode(log.key_b64))
    tile = http.get(log.url + data_tile_path(0, cp.size))
    assert "immutable" in tile.headers.get("cache-control", "")
    leaves = parse_data_tile(tile.body, 0, cp.size)
    fp = leaves[0].fingerprints[0]
    assert http.get(f"{log.url}issuer/{fp.hex()}").headers.get(
        "content-type") == "application/pkix-cert"
    with pytest.raises(HTTPStatusError) as err:
        http.get(log.url + data_tile_path(0))
    assert err.value.status == 404
