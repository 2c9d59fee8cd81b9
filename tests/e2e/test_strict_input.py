"""Strict input and quiet logs, with the real server: an unknown SSE stream is a 400 naming
the allowed values, /example.json before the first certificate a 503 with a reason, a
CERTSTREAM_* variable that names no setting a warning at start, and logs and lists that
cannot be reached are reported once, not on every retry."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from tests.support import SSEClient, free_port, http_get, run_server, wait_until

pytestmark = pytest.mark.slow


def test_an_unknown_sse_stream_is_a_400_naming_the_allowed_values() -> None:
    with run_server() as srv:
        status, headers, body = http_get(srv.port, "/sse?stream=bogus")
        assert (status, headers["content-type"]) == (400, "application/json")
        reason = json.loads(body)["reason"]
        assert all(v in reason for v in ("lite", "full", "domains", "domains-only", "dns"))
        for target in ("/sse", "/sse?stream=full", "/sse?stream=DOMAINS"):
            client = SSEClient(srv.port, target)
            assert client.head.startswith("HTTP/1.1 200")
            client.close()


def test_example_json_before_the_first_certificate_is_a_503_with_a_reason() -> None:
    with run_server() as srv:
        for target in ("/example.json", "/full-stream/example.json"):
            status, headers, body = http_get(srv.port, target)
            assert (status, headers["content-type"]) == (503, "application/json")
            assert "no certificate has been received yet" in json.loads(body)["reason"]
        srv.feed.publish_one(lite=b'{"lite":1}', full=b'{"full":1}')
        assert wait_until(lambda: http_get(srv.port, "/full-stream/example.json")[:3:2]
                          == (200, b'{"full":1}'), 5)


def test_an_unknown_certstream_variable_is_a_warning_at_start(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({
        "host": "127.0.0.1", "port": port, "workers": 2,
        "ct_log": {"log_list_urls": [], "state_file": str(tmp_path / "s.json")}}))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CERTSTREAM_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(CERTSTREAM_PROT="9000", CERTSTREAM_RATE_LIMIT_ENABLE="1",
               CERTSTREAM_WEBSERVER_LISTEN_PORT="8080")  # the last: certstream-server-go's
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "certstream"), "--config",
                                 "c.yaml"], cwd=tmp_path, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        assert wait_until(lambda: http_get(port, "/health")[0] == 200
                          if "Booting worker" in log.read_text() else False, 30), log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    lines = [line for line in log.read_text().splitlines() if "CERTSTREAM_" in line]
    # Said once, by the master: both misspelt variables as unknown; certstream-server-go's
    # variable is not unknown, but ignored beside a file in certstream's own format, and
    # says so on a line of its own.
    assert lines == [
        "ignored: CERTSTREAM_WEBSERVER_LISTEN_PORT: certstream-server-go names, but the config "
        "file is in certstream's own format (use the names of config.example.yaml)",
        "unknown CERTSTREAM_* environment variables ignored (no such setting): "
        "CERTSTREAM_PROT, CERTSTREAM_RATE_LIMIT_ENABLE",
    ], lines


WARNING = re.compile(r"\bWARNING\b")


def test_unreachable_logs_and_lists_are_reported_once_not_per_retry() -> None:
    closed = free_port()  # nothing listens there: every request is refused at once
    base = f"http://127.0.0.1:{closed}"
    names = [f"Offline log {i}" for i in range(8)]
    config = {
        "ct_log": {"log_list_urls": [f"{base}/list/log_list.json"], "poll_interval_ms": 100,
                   "retry_initial_delay_ms": 20, "retry_max_delay_ms": 100,
                   "static_ct_checkpoint_signature": "off"},
        "custom_logs": [{"name": n, "url": f"{base}/{i}/"} for i, n in enumerate(names[:6])],
        "static_logs": [{"name": n, "url": f"{base}/s{i}/"} for i, n in enumerate(names[6:])],
    }
    with run_server(config, ingest=True) as srv:
        time.sleep(6.0)  # dozens of failed requests per log at this backoff
        metrics = http_get(srv.port, "/metrics")[2].decode()
        text = srv.log()
    # Each log really failed again and again (every failure is counted)...
    for name in names:
        errors = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                     if line.startswith("certstream_log_errors_total{") and
                     f'log="{name}"' in line)
        assert errors >= 10, (name, errors)
    # ...and was reported once, as was the list.
    warnings = [line for line in text.splitlines() if WARNING.search(line)]
    per_log = Counter(name for line in warnings for name in names if f"log {name}:" in line)
    assert per_log == Counter(dict.fromkeys(names, 1)), warnings
    assert sum("log list" in line for line in warnings) == 1, warnings
    assert len(warnings) == len(names) + 1, warnings
    assert all("reported again every 10 min" in line for line in warnings
               if "log Offline" in line), warnings
