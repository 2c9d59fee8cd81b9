"""One limit and one status for the whole server, under real gunicorn with 2 workers: the
connection limits, the rate limit and /health/deep and /api/stats count every worker, and
a worker that dies gives its connections back."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from tests.support import (
    RawWS,
    Server,
    SSEClient,
    http_get,
    run_server,
    sockets_on_port,
    wait_until,
)

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def _clients() -> Iterator[list[Any]]:
    held: list[Any] = []
    try:
        yield held
    finally:
        for client in held:
            client.close()


def _try_ws(port: int, held: list[Any], path: str = "/") -> int:
    """A WebSocket handshake: kept open when admitted; its status either way."""
    ws = RawWS(port, path)
    if ws.status == 101:
        held.append(ws)
    else:
        ws.close()
    return ws.status


def _per_worker(srv: Server) -> dict[int, int]:
    return {pid: sockets_on_port(pid, srv.port) for pid in srv.worker_pids()}


def _held(srv: Server, n: int) -> dict[int, int]:
    """Connections held per worker, once they add up to ``n`` (the server's sockets of
    closed clients take a moment to go)."""
    assert wait_until(lambda: sum(_per_worker(srv).values()) == n, 10), _per_worker(srv)
    return _per_worker(srv)


def test_max_connections_is_exact_across_workers_and_places_come_back() -> None:
    config = {"connection_limit": {"enabled": True, "max_connections": 5, "per_ip_limit": None}}
    with run_server(config, workers=2) as srv, _clients() as held:
        statuses = [_try_ws(srv.port, held) for _ in range(11)]
        assert statuses.count(101) == 5 and statuses.count(429) == 6, statuses
        # Both workers hold some of the 5: either alone would have let 3 in (ceil(5/2)).
        spread = _held(srv, 5)
        assert all(spread.values()), spread
        for ws in held[:3]:
            ws.close()
        del held[:3]
        _held(srv, 2)
        statuses = [_try_ws(srv.port, held) for _ in range(6)]
        assert statuses.count(101) == 3 and statuses.count(429) == 3, statuses


def test_per_ip_limit_is_exact_across_workers() -> None:
    config = {"connection_limit": {"enabled": True, "per_ip_limit": 3}}
    with run_server(config, workers=2) as srv, _clients() as held:
        statuses = [_try_ws(srv.port, held, path) for path in
                    ("/", "/full-stream", "/domains-only", "/", "/", "/full-stream", "/")]
        assert statuses.count(101) == 3 and statuses.count(429) == 4, statuses
        assert all(_held(srv, 3).values())
        # SSE counts too, and so does another address only for itself.
        assert http_get(srv.port, "/sse", timeout=5)[0] == 429
        sock = socket.socket()
        sock.bind(("127.0.0.2", 0))
        sock.connect(("127.0.0.1", srv.port))
        sock.sendall(b"GET /sse HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(64).startswith(b"HTTP/1.1 200")
        sock.close()


def test_rate_limit_burst_is_exact_across_workers_and_counts_unknown_paths() -> None:
    # 6 tokens (one back every 1000 s) + a burst of 4: 10 requests, on whichever worker.
    config = {"rate_limit": {"enabled": True, "max_tokens": 6, "refill_rate": 0.001,
                             "burst": 4, "burst_window_seconds": 3600}}
    with run_server(config, workers=2) as srv, _clients() as held:
        assert [http_get(srv.port, "/nope")[0] for _ in range(3)] == [404] * 3
        statuses = [_try_ws(srv.port, held) for _ in range(7)]
        assert statuses == [101] * 7, statuses
        assert all(_held(srv, 7).values())  # the 7 landed on both workers
        status, headers, body = http_get(srv.port, "/nope")  # the 11th: an unknown path
        assert status == 429 and json.loads(body) == {"error": "Too Many Requests"}
        assert int(headers["retry-after"]) >= 1
        assert _try_ws(srv.port, held) == 429
        assert http_get(srv.port, "/health")[0] == 429


def _deep(port: int) -> dict[str, Any]:
    status, _, body = http_get(port, "/health/deep")
    assert status == 200
    return dict(json.loads(body))


def _stats(port: int) -> dict[str, Any]:
    status, _, body = http_get(port, "/api/stats")
    assert status == 200
    return dict(json.loads(body))


def test_status_counts_every_workers_clients_on_every_request() -> None:
    with run_server({"protocols": {"api": True}}, workers=2) as srv, _clients() as held:
        for path in ("/", "/", "/", "/full-stream", "/full-stream", "/full-stream",
                     "/domains-only", "/domains-only", "/domains-only"):
            assert _try_ws(srv.port, held, path) == 101
        held += [SSEClient(srv.port, "/sse"), SSEClient(srv.port, "/sse?stream=full")]
        assert all(_held(srv, 11).values())
        for _ in range(10):  # answered by either worker: always all 11
            deep = _deep(srv.port)
            assert deep["active_connections"] == 11
            assert deep["connections"] == {"websocket": {"lite": 3, "full": 3, "domains": 3},
                                           "sse": {"lite": 1, "full": 1, "domains": 0}}
            stats = _stats(srv.port)
            assert stats["connections"] == {"total": 11, "websocket": 9, "sse": 2}
        # Frames and bytes of both workers: one entry to 3 + 1 lite clients.
        srv.feed.wait_wanted(1, all_workers=True)
        srv.feed.publish_one(lite=b'{"lite":1}', full=b'{"full":1}', domains=b'{"domains":1}')
        assert wait_until(lambda: _stats(srv.port)["throughput"]["messages_sent"] == 11, 10)
        sent = _stats(srv.port)["throughput"]["bytes_sent"]
        assert sent >= 11 * len(b'{"lite":1}')


def test_a_dead_workers_connections_come_back_and_it_counts_as_a_restart() -> None:
    config = {"connection_limit": {"enabled": True, "max_connections": 4, "per_ip_limit": None}}
    with run_server(config, workers=2) as srv, _clients() as held:
        assert [_try_ws(srv.port, held) for _ in range(4)] == [101] * 4
        spread = _held(srv, 4)
        victim = next(pid for pid, n in spread.items() if n)
        os.kill(victim, signal.SIGKILL)
        # gunicorn starts another worker; the dead one's places are free again.
        assert wait_until(lambda: len(srv.worker_pids()) == 2
                          and victim not in srv.worker_pids(), 30), srv.log()
        srv.feed.wait_workers(2)
        time.sleep(0.5)
        statuses = [_try_ws(srv.port, held) for _ in range(spread[victim] + 2)]
        assert statuses.count(101) == spread[victim] and statuses.count(429) == 2, statuses
        text = http_get(srv.port, "/metrics")[2].decode()
        assert "certstream_worker_panics 1\n" in text
        assert 'certstream_restarts_total{process="worker"} 1.0' in text
