"""rate_limit and hot_reload in a running server (real processes, the ``certstream`` command)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support import RawWS, http_get, run_server, wait_until

pytestmark = pytest.mark.slow


BEARER = {"Authorization": "Bearer s3cret"}


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "_total "):
            return float(line.split()[-1])
    return 0.0


def test_rate_limit_answers_429_with_retry_after_once_the_burst_is_spent() -> None:
    # One token per 100 s: however slow this machine, no token comes back during the test.
    config = {"rate_limit": {"enabled": True, "max_tokens": 3, "refill_rate": 0.01,
                             "burst": 2}}
    with run_server(config) as srv:
        assert [http_get(srv.port, "/health")[0] for _ in range(5)] == [200] * 5
        status, headers, body = http_get(srv.port, "/health")
        assert status == 429
        assert json.loads(body) == {"error": "Too Many Requests"}
        assert 1 <= int(headers["retry-after"]) <= 100
        # A stream connect is a request like any other.
        ws = RawWS(srv.port, "/")
        assert ws.status == 429
        ws.close()
        # Another address has its own bucket, and the refusals are counted.
        status, _, text = http_get(srv.port, "/metrics", source="127.0.0.2")
        assert status == 200
        assert _metric(text.decode(), "certstream_clients_rate_limited") == 2
        assert 'code="429"' in text.decode()


def _write_config(path: Path, change: dict[str, Any]) -> None:
    tree = yaml.safe_load(path.read_text())
    tree.update(change)
    path.write_text(yaml.safe_dump(tree))


def test_auth_turned_on_by_editing_the_config_file() -> None:
    config = {"protocols": {"api": True}, "hot_reload": {"enabled": True}}
    with run_server(config, workers=2) as srv:
        path = srv.workdir / "config.yaml"
        assert http_get(srv.port, "/api/stats")[0] == 200
        _write_config(path, {"auth": {"enabled": True, "tokens": ["s3cret"]},
                             "buffer_size": 50})
        assert wait_until(lambda: http_get(srv.port, "/api/stats")[0] == 401, 20), srv.log()
        # Both workers picked it up: whichever answers, the rule is the same.
        assert wait_until(lambda: srv.log().count("hot reload: applied") >= 2, 20), srv.log()
        assert "needs a restart: buffer_size" in srv.log()
        for _ in range(10):
            assert http_get(srv.port, "/api/stats")[0] == 401
            assert http_get(srv.port, "/api/stats", headers=BEARER)[0] == 200
        assert http_get(srv.port, "/health")[0] == 200  # public, as before

        # A broken edit (auth on without tokens) is logged and ignored by every worker.
        _write_config(path, {"auth": {"enabled": True, "tokens": []}})
        assert wait_until(
            lambda: srv.log().count("keeping the running settings") >= 2, 20), srv.log()
        assert "config error: auth.tokens" in srv.log()
        for _ in range(10):
            assert http_get(srv.port, "/api/stats")[0] == 401
            assert http_get(srv.port, "/api/stats", headers=BEARER)[0] == 200
