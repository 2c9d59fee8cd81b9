"""Switching from certstream-server-go in one step: the real ``certstream`` command, started
as a Go user starts Go (``certstream -c config.yaml`` in a directory holding Go's
config.yaml and ct_index.json), against the replay CT log.

* The configs are the ones certstream-server-go itself ran with for the goldens
  (``conformance/data/golden/go/*/go-config.yaml``), with only the log URLs and the port
  changed, and the frames on ``lite_url``, ``full_url`` and ``domains_only_url`` are the
  golden frames (up to the deviations ``conformance/DEVIATIONS.md`` documents).
* ``create-index`` writes Go's ct_index.json, which the server then reads back: each log
  starts at the index it says (the replay log's requests show it), and at shutdown the file
  holds the last index sent, so that Go could resume from it.
* A Go config with custom paths, ``real_ip``, ``whitelist`` and a separate prometheus
  listener is served as Go would serve it (403 for another address).
* ``validate`` prints the mapping and exits 0, and names the Go key of a bad value.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conformance import compare
from conformance.replay import ReplayServer
from tests.support import RawWS, free_port, http_get
from tests.support.goldencheck import check_set, frame_key, split_by_log
from tests.support.goserver import cli, golden_go_config, run_certstream

from certstream.core.ctindex import format_index

STREAMS = {"lite": "/", "full": "/full-stream", "domains": "/domains-only"}


def _manifest(set_name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((compare.INPUTS / set_name / "manifest.json").read_text())
    return doc


def _entries(set_name: str, log: dict[str, Any]) -> list[dict[str, str]]:
    data: list[dict[str, str]] = json.loads(
        (compare.INPUTS / set_name / log["entries"]).read_text())["entries"]
    return data


def _receive(clients: dict[str, RawWS], count: int,
             deadline: float = 60.0) -> dict[str, list[str]]:
    """``count`` text frames from each client, or a failure after ``deadline`` seconds (the
    server's pings every 30 s would keep a plain socket timeout from ever firing)."""
    got: dict[str, list[str]] = {stream: [] for stream in clients}

    def give_up() -> None:
        for ws in clients.values():
            with contextlib.suppress(OSError):
                ws.sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(deadline, give_up)
    timer.start()
    try:
        for stream, ws in clients.items():
            while len(got[stream]) < count:
                try:
                    got[stream].append(ws.recv_data().decode())
                except (ConnectionError, OSError) as exc:
                    raise AssertionError(f"{stream}: {len(got[stream])} of {count} frames "
                                         f"in {deadline:.0f} s ({exc})") from None
    finally:
        timer.cancel()
    return got


def _first_start(replay: ReplayServer, path: str) -> int:
    """The start index of the first get-entries the log was asked."""
    for _method, target in replay.requests(path):
        if "get-entries" in target:
            query = dict(p.split("=") for p in target.split("?", 1)[1].split("&"))
            return int(query["start"])
    raise AssertionError(f"{path}: no get-entries request")


def _request(port: int, target: str, *, source: str = "127.0.0.1", headers: str = "",
             upgrade: bool = False) -> tuple[int, bytes]:
    """One request from the local address ``source``: the status and the body (for an
    upgrade, the head of the handshake answer)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10,
                                  source_address=(source, 0)) as sock:
        ws = ("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n") if upgrade else ""
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\n{ws}{headers}\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data or not upgrade:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), head if upgrade else body


@pytest.mark.slow
def test_live40_go_config_create_index_and_golden_frames(tmp_path: Path) -> None:
    manifest = _manifest("live40")
    replay = ReplayServer()
    for log in manifest["logs"]:
        replay.add_rfc6962_log(log["path"], _entries("live40", log), log["first_index"],
                               visible=0)
    replay.start()
    port = free_port()
    host = f"127.0.0.1:{replay.port}"
    (tmp_path / "config.yaml").write_text(
        golden_go_config("live40", port=port, log_base=replay.url))
    try:
        # Go's create-index: each log's tree size, in Go's format, where recovery looks.
        res = cli(["-c", "config.yaml", "create-index"], tmp_path)
        assert res.returncode == 0, res.stdout + res.stderr
        start = {f"{host}{log['path'].rstrip('/')}": log["first_index"]
                 for log in manifest["logs"]}
        assert (tmp_path / "ct_index.json").read_bytes() == format_index(start)
        assert (tmp_path / "ct_index.json").read_bytes().startswith(b'{\n "127.0.0.1:')
        res = cli(["-c", "config.yaml", "create-index"], tmp_path)
        assert res.returncode == 1 and "--force" in res.stdout  # as Go: no silent overwrite

        total = sum(int(log["count"]) for log in manifest["logs"])
        with run_certstream(tmp_path, port) as run:
            clients = {stream: RawWS(port, path, timeout=30) for stream, path in STREAMS.items()}
            try:
                time.sleep(1.0)  # the worker's WANT reaches the ingest before entries exist
                for log in manifest["logs"]:
                    replay.grow(log["path"], log["count"])
                received = _receive(clients, total)
                # Go's series on the shared listener (prometheus port == webserver port).
                _status, _headers, body = http_get(port, "/metrics")
            finally:
                for ws in clients.values():
                    ws.close()
            assert run.stop() == 0, run.log()
        # The resume file, kept in Go's format: the last index sent of each log.
        last = {key: first + 19 for key, first in start.items()}
        assert (tmp_path / "ct_index.json").read_bytes() == format_index(last)
    finally:
        replay.stop()

    for log in manifest["logs"]:
        assert _first_start(replay, log["path"]) == log["first_index"]
    exact = check_set("go", "live40", received, replay.url)
    assert exact >= 3 * total - 6  # go-1: 1 lite and 5 full frames differ, documented
    metrics = body.decode()
    for log in manifest["logs"]:
        url = f"{host}{log['path'].rstrip('/')}"
        assert (f'certstreamservergo_certs_by_log_total{{operator="{log["operator"]}",'
                f'url="{url}"}} 20.0') in metrics
    assert 'certstreamservergo_clients_total{type="lite"} 1.0' in metrics
    assert "certstreamservergo_certificates_total" in metrics


@pytest.mark.slow
def test_tiled_go_config_golden_frames_and_a_log_resumed_at_10(tmp_path: Path) -> None:
    """synth11-tiled through ``additional_tiled_logs`` (no key: checkpoints unverified,
    one warning), beside the config's RFC 6962 log, which ct_index.json starts at 10."""
    tiled = _manifest("synth11-tiled")["logs"][0]
    argon = _manifest("live40")["logs"][0]
    replay = ReplayServer()
    # Another log's entries under the RFC 6962 path, so that nothing there is a duplicate
    # of a tiled entry (dedup would hide one of the two).
    replay.add_rfc6962_log("/rfc6962/", _entries("live40", argon), 0, visible=10)
    replay.add_static_log("/tiled/", compare.INPUTS / "synth11-tiled" / tiled["tiles"],
                          visible=0)
    replay.start()
    port = free_port()
    rfc_url = f"{replay.url}/rfc6962"
    (tmp_path / "config.yaml").write_text(
        golden_go_config("synth11-tiled", port=port, log_base=replay.url))
    (tmp_path / "ct_index.json").write_bytes(
        format_index({f"127.0.0.1:{replay.port}/rfc6962": 10}))
    try:
        with run_certstream(tmp_path, port) as run:
            clients = {stream: RawWS(port, path, timeout=30) for stream, path in STREAMS.items()}
            try:
                time.sleep(1.0)
                replay.grow("/tiled/", tiled["count"])
                replay.grow("/rfc6962/", 10)
                received = _receive(clients, tiled["count"] + 10)
            finally:
                for ws in clients.values():
                    ws.close()
        log = run.log()
    finally:
        replay.stop()

    assert _first_start(replay, "/rfc6962/") == 10
    rfc = split_by_log(received, rfc_url)
    assert [frame_key(t)[1] for t in rfc["lite"]] == list(range(10, 20))
    assert [frame_key(t)[1] for t in rfc["full"]] == list(range(10, 20))
    tiled_frames = split_by_log(received, f"{replay.url}/tiled")
    # Go skipped index 0 (its bug); we send all 11 (go-3), the rest byte for byte.
    exact = check_set("go", "synth11-tiled", tiled_frames, replay.url)
    assert exact >= 3 * 11 - 9
    assert log.count("checkpoints are not verified") == 1, log


GO_FEATURES = """\
webserver:
  listen_addr: "127.0.0.1"
  listen_port: {port}
  full_url: "/stream/full"
  lite_url: "/lite/"
  domains_only_url: "/dom"
  real_ip: true
  whitelist:
    - "127.0.0.1/32"
prometheus:
  enabled: true
  listen_addr: "127.0.0.1"
  listen_port: {prom}
  whitelist:
    - "127.0.0.1"
general:
  disable_default_logs: true
  additional_logs:
    - url: {log}
      operator: "Fake Operator"
      description: "Fake RFC6962 log"
"""


@pytest.mark.slow
def test_custom_paths_real_ip_whitelist_and_own_metrics_listener(tmp_path: Path) -> None:
    synth = _manifest("synth11")["logs"][0]
    replay = ReplayServer()
    replay.add_rfc6962_log("/rfc6962/", _entries("synth11", synth), 0, visible=5)
    replay.start()
    port, prom = free_port(), free_port()
    (tmp_path / "config.yaml").write_text(
        GO_FEATURES.format(port=port, prom=prom, log=f"{replay.url}/rfc6962"))
    try:
        with run_certstream(tmp_path, port):
            clients = {"lite": RawWS(port, "/lite", timeout=30),
                       "lite/": RawWS(port, "/lite/", timeout=30),
                       "full": RawWS(port, "/stream/full/", timeout=30),
                       "domains": RawWS(port, "/dom", timeout=30)}
            try:
                assert {ws.status for ws in clients.values()} == {101}
                time.sleep(1.0)
                replay.grow("/rfc6962/", 6)
                # Without recovery a log starts at its head, as in Go: 5..10.
                received = _receive(clients, 6)
                checks = {
                    "old lite path": _request(port, "/", upgrade=True)[0],
                    "old full path": _request(port, "/full-stream", upgrade=True)[0],
                    "example": _request(port, "/stream/full/example.json")[0],
                    "other address": _request(port, "/lite", source="127.0.0.2",
                                              upgrade=True)[0],
                    "forwarded other": _request(port, "/lite", upgrade=True,
                                                headers="X-Forwarded-For: 192.0.2.7\r\n")[0],
                    "forwarded listed": _request(port, "/dom", source="127.0.0.2", upgrade=True,
                                                 headers="X-Real-IP: 127.0.0.1\r\n")[0],
                    "metrics on main": _request(port, "/metrics")[0],
                    "metrics listener, other path": _request(prom, "/lite")[0],
                    "metrics listener, other address": _request(prom, "/metrics",
                                                                source="127.0.0.2")[0],
                }
                status, metrics = _request(prom, "/metrics")
                # compression_enabled is false (Go's default): an offer is declined.
                _, head = _request(port, "/lite", upgrade=True,
                                   headers="Sec-WebSocket-Extensions: permessage-deflate\r\n")
            finally:
                for ws in clients.values():
                    ws.close()
    finally:
        replay.stop()

    assert [frame_key(t)[1] for t in received["lite"]] == list(range(5, 11))
    assert received["lite/"] == received["lite"]
    assert [frame_key(t)[1] for t in received["full"]] == list(range(5, 11))
    assert all(json.loads(t)["message_type"] == "dns_entries" for t in received["domains"])
    assert checks == {
        "old lite path": 404, "old full path": 404, "example": 200,
        "other address": 403, "forwarded other": 403, "forwarded listed": 101,
        "metrics on main": 404, "metrics listener, other path": 404,
        "metrics listener, other address": 403,
    }
    assert status == 200
    assert head.startswith(b"HTTP/1.1 101") and b"sec-websocket-extensions" not in head.lower()
    text = metrics.decode()
    assert 'certstreamservergo_clients_total{type="lite"} 2.0' in text
    assert 'certstreamservergo_certificates_total{type="regular"}' in text
    assert "certstream_frames_sent_total" in text  # ours beside Go's


@pytest.mark.slow
def test_validate_prints_the_mapping_and_names_a_bad_key(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "config.yaml").write_text(
        golden_go_config("live40", port=port, log_base="http://127.0.0.1:9"))
    res = cli(["-c", "config.yaml", "validate"], tmp_path)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "certstream-server-go's format" in out and out.rstrip().endswith("OK")
    for line in ("webserver.listen_port", f"port = {port}", "paths.full = /full-stream",
                 "general.recovery.enabled", "ct_log.ct_index_file = ./ct_index.json",
                 "custom_logs = [Google 'Argon2026h2' <http://127.0.0.1:9/argon2026h2/>"):
        assert line in out, out
    # Go's environment names override the file, as in Go.
    res = cli(["validate", "-c", "config.yaml"], tmp_path,
              {"CERTSTREAM_WEBSERVER_LISTEN_PORT": "18999"})
    assert res.returncode == 0 and "port = 18999" in res.stdout and "(env)" in res.stdout
    (tmp_path / "bad.yaml").write_text((tmp_path / "config.yaml").read_text().replace(
        'listen_addr: "127.0.0.1"', 'listen_addr: "localhost:80"', 1))
    res = cli(["-c", "bad.yaml", "validate"], tmp_path)
    assert res.returncode != 0
    assert res.stderr.strip().splitlines() == [res.stderr.strip()]
    assert "webserver.listen_addr" in res.stderr and "localhost:80" in res.stderr
    assert res.stdout == ""
