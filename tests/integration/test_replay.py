"""The replay CT log, served in this process: CTFE rules, every fault kind, static-ct tiles.

The ingest's own tests trust this server, so here it is checked against the protocol rules
and the recorded fixtures with a plain ``http.client``, never against its own helpers: roots
are the ones documented for the Navigli tiles, tiles are compared with the recorded files.

The entry synthesis alone is tests/unit/test_replay_synth.py; the log as its own process,
tests/e2e/test_replay_subprocess.py.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.client
import json
import socket
from collections.abc import Iterator, Mapping

import pytest
from conformance.replay import ReplayServer
from conformance.synth import (
    make_test_signer,
    tile_leaves_from_entries,
)
from tests.support.data import NAVIGLI, live40_entries
from tests.support.rfc6962 import mth, u24

from certstream.core.checkpoint import verify_checkpoint
from certstream.core.leaves import decode_entry
from certstream.core.sth import verify_sth
from certstream.errors import DecodeError

ARGON_FIRST = 1111014090

# Root hashes of the Navigli tiles as documented in tests/fixtures/ct/SOURCES.md.
NAVIGLI_ROOTS = {
    778: "+WnHOMRZl/LG1669oeskbdK9bcO4nkrY1cfVyknC52U=",
    1024: "EMfGG85uIddeOXt5/wdQGP3IQd0COCqoLg9Q6CsPLJA=",
}
ORIGIN = "replay.test/navigli2025h2"

ARGON = live40_entries("argon2026h2.get-entries.json")
NIMBUS = live40_entries("nimbus2026.get-entries.json")


# --- a server per test ----------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[ReplayServer]:
    srv = ReplayServer(hold_seconds=3.0)
    srv.add_rfc6962_log("/argon/", ARGON, ARGON_FIRST, visible=10, max_batch=4)
    srv.add_rfc6962_log("/zero/", NIMBUS, 0)
    srv.add_static_log("/navigli/", NAVIGLI, ORIGIN, make_test_signer(), visible=778)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def fetch(
    srv: ReplayServer, path: str, headers: Mapping[str, str] | None = None, timeout: float = 10
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=timeout)
    try:
        conn.request("GET", path, headers=dict(headers or {}))
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def get_entries(srv: ReplayServer, log: str, start: int, end: int) -> list[dict[str, str]]:
    status, _, body = fetch(srv, f"{log}ct/v1/get-entries?start={start}&end={end}")
    assert status == 200, body
    entries: list[dict[str, str]] = json.loads(body)["entries"]
    return entries


# --- RFC 6962 ------------------------------------------------------------------------


def test_get_sth_is_signed_and_grows(server: ReplayServer) -> None:
    key = make_test_signer().spki_der
    status, headers, body = fetch(server, "/argon/ct/v1/get-sth")
    assert status == 200 and headers["content-type"].startswith("application/json")
    sth = json.loads(body)
    assert sth["tree_size"] == ARGON_FIRST + 10
    verify_sth(sth, key)
    server.grow("/argon/", 5)
    grown = json.loads(fetch(server, "/argon/ct/v1/get-sth")[2])
    assert grown["tree_size"] == ARGON_FIRST + 15
    assert grown["sha256_root_hash"] != sth["sha256_root_hash"]
    verify_sth(grown, key)
    with pytest.raises(ValueError):
        server.grow("/argon/", 6)  # only 20 recorded entries


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        # (start, end) relative to the first index; expected = (first, last) served or None=400
        (0, 0, (0, 0)),
        (0, 100, (0, 3)),  # capped to max_batch=4
        (8, 100, (8, 9)),  # truncated to tree_size - 1
        (9, 9, (9, 9)),
        (3, 2, None),  # start > end
        (10, 12, None),  # start >= tree_size
        (-1, 2, None),  # before the first index
    ],
)
def test_get_entries_ctfe_rules(
    server: ReplayServer, start: int, end: int, expected: tuple[int, int] | None
) -> None:
    path = f"/argon/ct/v1/get-entries?start={ARGON_FIRST + start}&end={ARGON_FIRST + end}"
    status, _, body = fetch(server, path)
    if expected is None:
        assert status == 400
        return
    assert status == 200
    first, last = expected
    assert json.loads(body)["entries"] == ARGON[first : last + 1]


@pytest.mark.parametrize(
    "query", ["start=-1&end=2", "start=a&end=2", "start=1", "", "start=1&start=2&end=3"]
)
def test_get_entries_bad_parameters_are_400(server: ReplayServer, query: str) -> None:
    assert fetch(server, f"/zero/ct/v1/get-entries?{query}")[0] == 400


def test_unknown_paths_are_404(server: ReplayServer) -> None:
    assert fetch(server, "/nolog/ct/v1/get-sth")[0] == 404
    assert fetch(server, "/zero/ct/v1/nothing")[0] == 404
    assert fetch(server, "/_control/requests?log=/zero/")[0] == 404  # control is off


def test_keep_alive_and_gzip(server: ReplayServer) -> None:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.request("GET", "/zero/ct/v1/get-entries?start=0&end=5")
        plain = conn.getresponse()
        assert plain.getheader("Content-Encoding") is None
        plain_body = plain.read()
        sock = conn.sock
        conn.request(
            "GET", "/zero/ct/v1/get-entries?start=0&end=5", headers={"Accept-Encoding": "gzip"}
        )
        zipped = conn.getresponse()
        assert zipped.getheader("Content-Encoding") == "gzip"
        assert gzip.decompress(zipped.read()) == plain_body
        assert conn.sock is sock  # the same TCP connection served both
    finally:
        conn.close()


def test_requests_are_recorded(server: ReplayServer) -> None:
    fetch(server, "/zero/ct/v1/get-sth")
    fetch(server, "/zero/ct/v1/get-entries?start=1&end=2")
    fetch(server, "/argon/ct/v1/get-sth")
    assert server.requests("/zero/") == [
        ("GET", "/zero/ct/v1/get-sth"),
        ("GET", "/zero/ct/v1/get-entries?start=1&end=2"),
    ]


# --- faults --------------------------------------------------------------------------


def test_fault_429_with_retry_after_then_recovers(server: ReplayServer) -> None:
    server.inject("/zero/", "429", count=2)
    for _ in range(2):
        status, headers, _ = fetch(server, "/zero/ct/v1/get-sth")
        assert status == 429 and headers["retry-after"] == "1"
    assert fetch(server, "/zero/ct/v1/get-sth")[0] == 200


def test_fault_500_only_where_it_matches(server: ReplayServer) -> None:
    server.inject("/zero/", "500", match="get-entries")
    assert fetch(server, "/zero/ct/v1/get-sth")[0] == 200
    assert fetch(server, "/argon/ct/v1/get-sth")[0] == 200
    assert fetch(server, "/zero/ct/v1/get-entries?start=0&end=0")[0] == 500
    assert fetch(server, "/zero/ct/v1/get-entries?start=0&end=0")[0] == 200


def test_fault_timeout_holds_past_the_client_timeout(server: ReplayServer) -> None:
    server.inject("/zero/", "timeout")
    with pytest.raises(TimeoutError):
        fetch(server, "/zero/ct/v1/get-sth", timeout=0.5)
    # Without a client timeout the server gives up after hold_seconds and closes: no answer.
    server.inject("/zero/", "timeout")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        fetch(server, "/zero/ct/v1/get-sth", timeout=30)
    assert fetch(server, "/zero/ct/v1/get-sth")[0] == 200


def test_fault_reset_cuts_the_body(server: ReplayServer) -> None:
    server.inject("/zero/", "reset")
    with pytest.raises((http.client.IncompleteRead, ConnectionError)):
        fetch(server, "/zero/ct/v1/get-entries?start=0&end=9")
    assert fetch(server, "/zero/ct/v1/get-entries?start=0&end=9")[0] == 200


def test_fault_truncate_promises_more_than_it_sends(server: ReplayServer) -> None:
    server.inject("/zero/", "truncate")
    with pytest.raises(http.client.IncompleteRead):
        fetch(server, "/zero/ct/v1/get-entries?start=0&end=3")


def test_fault_bad_json(server: ReplayServer) -> None:
    server.inject("/zero/", "bad_json")
    status, _, body = fetch(server, "/zero/ct/v1/get-entries?start=0&end=3")
    assert status == 200
    with pytest.raises(ValueError):
        json.loads(body)


def test_entry_faults_skip_requests_that_fail_anyway(server: ReplayServer) -> None:
    server.inject("/zero/", "bad_json")
    assert fetch(server, "/zero/ct/v1/get-entries?start=5&end=4")[0] == 400
    assert fetch(server, "/zero/ct/v1/get-sth")[0] == 200
    with pytest.raises(ValueError):  # the first get-entries that would succeed gets it
        json.loads(fetch(server, "/zero/ct/v1/get-entries?start=0&end=0")[2])
    assert get_entries(server, "/zero/", 0, 0) == NIMBUS[:1]


def test_fault_bad_base64_is_transient(server: ReplayServer) -> None:
    server.inject("/zero/", "bad_base64")
    entries = get_entries(server, "/zero/", 0, 3)
    assert len(entries) == 4
    bad = 0
    for e in entries:
        try:
            base64.b64decode(e["leaf_input"], validate=True)
        except ValueError:
            bad += 1
    assert bad == 1
    assert get_entries(server, "/zero/", 0, 3) == NIMBUS[:4]


def test_fault_short_and_empty(server: ReplayServer) -> None:
    full = get_entries(server, "/zero/", 0, 9)
    assert len(full) == 10
    server.inject("/zero/", "short")
    short = get_entries(server, "/zero/", 0, 9)
    assert 1 <= len(short) < 10 and short == full[: len(short)]
    server.inject("/zero/", "empty")
    assert get_entries(server, "/zero/", 0, 9) == []
    assert get_entries(server, "/zero/", 0, 9) == full


def test_fault_garbage_entry_is_permanent(server: ReplayServer) -> None:
    server.inject("/zero/", "garbage_entry")
    first = get_entries(server, "/zero/", 3, 6)
    assert server.garbage("/zero/") == [3]
    for _ in range(2):  # still garbage on every later request covering index 3
        again = get_entries(server, "/zero/", 2, 5)
        assert again[1] == first[0] != NIMBUS[3]
        assert again[0] == NIMBUS[2] and again[2:] == NIMBUS[4:6]
    raw = base64.b64decode(first[0]["leaf_input"], validate=True)  # valid base64...
    extra = base64.b64decode(first[0]["extra_data"], validate=True)
    with pytest.raises(DecodeError):  # ...of bytes no leaf decoder accepts
        decode_entry(3, raw, extra)


def test_fault_kinds_are_checked(server: ReplayServer) -> None:
    with pytest.raises(ValueError):
        server.inject("/zero/", "nonsense")
    with pytest.raises(ValueError):
        server.inject("/zero/", "partial_404")  # tiles only
    with pytest.raises(ValueError):
        server.inject("/navigli/", "short")  # get-entries only
    with pytest.raises(ValueError):
        server.inject("/nolog/", "500")


# --- static-ct-api -------------------------------------------------------------------


@pytest.mark.parametrize("size", [778, 1024])
def test_checkpoint_verifies_with_documented_root(server: ReplayServer, size: int) -> None:
    server.grow("/navigli/", size - 778)
    status, headers, body = fetch(server, "/navigli/checkpoint")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    cp = verify_checkpoint(body, ORIGIN, make_test_signer().spki_der)
    assert cp.size == size
    assert base64.b64encode(cp.root_hash).decode() == NAVIGLI_ROOTS[size]
    with pytest.raises(DecodeError):
        verify_checkpoint(body, "other.origin/x", make_test_signer().spki_der)
    with pytest.raises(DecodeError):
        verify_checkpoint(body, ORIGIN, make_test_signer(1).spki_der)


@pytest.mark.parametrize(
    "tile",
    ["tile/data/000", "tile/data/002", "tile/data/003.p/10", "tile/0/001", "tile/0/003.p/10"],
)
def test_tiles_equal_the_recorded_ones(server: ReplayServer, tile: str) -> None:
    status, _, body = fetch(server, f"/navigli/{tile}")
    assert status == 200
    assert body == (NAVIGLI / tile).read_bytes()


def test_tiles_beyond_the_checkpoint_are_404(server: ReplayServer) -> None:
    for tile in ["tile/data/003", "tile/0/003", "tile/data/003.p/11", "tile/1/000.p/4"]:
        assert fetch(server, f"/navigli/{tile}")[0] == 404, tile
    server.grow("/navigli/", 1024 - 778)
    for tile in ["tile/data/003", "tile/0/003", "tile/1/000.p/4"]:
        assert fetch(server, f"/navigli/{tile}")[0] == 200, tile
    assert fetch(server, "/navigli/tile/data/004.p/1")[0] == 404


def test_level1_tile_holds_the_level0_subtree_roots(server: ReplayServer) -> None:
    server.grow("/navigli/", 1024 - 778)
    body = fetch(server, "/navigli/tile/1/000.p/4")[2]
    expected = b""
    for n in range(4):
        level0 = (NAVIGLI / "tile" / "0" / f"{n:03d}").read_bytes()
        expected += mth([level0[i : i + 32] for i in range(0, len(level0), 32)])
    assert body == expected
    assert (
        base64.b64encode(mth([body[i : i + 32] for i in range(0, 128, 32)])).decode()
        == (NAVIGLI_ROOTS[1024])
    )


def test_issuers_are_served_by_fingerprint(server: ReplayServer) -> None:
    names = sorted(p.name for p in (NAVIGLI / "issuer").iterdir())
    for name in names:
        status, headers, body = fetch(server, f"/navigli/issuer/{name}")
        assert status == 200 and headers["content-type"] == "application/pkix-cert"
        assert hashlib.sha256(body).hexdigest() == name
    assert fetch(server, "/navigli/issuer/" + "00" * 32)[0] == 404


def test_fault_partial_404_hits_only_partial_data_tiles(server: ReplayServer) -> None:
    server.inject("/navigli/", "partial_404")
    assert fetch(server, "/navigli/tile/data/000")[0] == 200
    assert fetch(server, "/navigli/tile/0/003.p/10")[0] == 200
    assert fetch(server, "/navigli/tile/data/003.p/10")[0] == 404
    assert fetch(server, "/navigli/tile/data/003.p/10")[0] == 200


def test_static_log_from_synthesised_leaves() -> None:
    leaves, issuers = tile_leaves_from_entries(ARGON, first_index=0)
    signer = make_test_signer(7)
    with ReplayServer() as srv:
        srv.add_static_log("/synth/", leaves, "replay.test/synth", signer, issuers)
        cp = verify_checkpoint(
            fetch(srv, "/synth/checkpoint")[2], "replay.test/synth", signer.spki_der
        )
        assert cp.size == 20
        data = fetch(srv, "/synth/tile/data/000.p/20")[2]
        hashes = fetch(srv, "/synth/tile/0/000.p/20")[2]
    assert data == b"".join(leaves)
    assert mth([hashes[i : i + 32] for i in range(0, len(hashes), 32)]) == cp.root_hash
    # Each TileLeaf starts with the RFC 6962 TimestampedEntry plus the leaf_index extension,
    # and its leaf hash is slot i of the level-0 tile.
    for i, (entry, leaf) in enumerate(zip(ARGON, leaves, strict=True)):
        merkle_leaf = base64.b64decode(entry["leaf_input"])
        te = merkle_leaf[2:-2] + b"\x00\x08\x00\x00\x05" + i.to_bytes(5, "big")
        assert leaf.startswith(te)
        assert hashlib.sha256(b"\x00\x00\x00" + te).digest() == hashes[32 * i : 32 * i + 32]
        extra = base64.b64decode(entry["extra_data"])
        pos = 0
        if merkle_leaf[10:12] == b"\x00\x01":  # precert: pre_certificate comes first
            precert, pos = u24(extra, 0)
            assert (len(precert).to_bytes(3, "big") + precert) in leaf
        chain_blob, _ = u24(extra, pos)
        fps = b""
        while chain_blob:
            der, used = u24(chain_blob, 0)
            fps += hashlib.sha256(der).digest()
            chain_blob = chain_blob[used:]
        assert leaf.endswith(len(fps).to_bytes(2, "big") + fps)
    for fp, der in issuers.items():
        assert hashlib.sha256(der).digest() == fp


def test_raw_socket_reset_is_a_reset(server: ReplayServer) -> None:
    """A "reset" fault ends in RST or a body shorter than its Content-Length."""
    server.inject("/zero/", "reset")
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(b"GET /zero/ct/v1/get-entries?start=0&end=9 HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        try:
            while chunk := sock.recv(65536):
                got += chunk
        except ConnectionResetError:
            return
    head, _, body = got.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    assert len(body) < length


def test_in_process_control_endpoints_keep_the_connection_usable() -> None:
    with ReplayServer(control=True) as srv:
        srv.add_rfc6962_log("/a/", NIMBUS, 0, visible=2)
        conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
        try:
            # A POST with a body: the body must be drained, or the next request misparses.
            conn.request("POST", "/_control/grow?log=/a/&n=3", body=b"ignored")
            assert json.loads(conn.getresponse().read()) == {"ok": True}
            conn.request("GET", "/a/ct/v1/get-sth")
            assert json.loads(conn.getresponse().read())["tree_size"] == 5
            conn.request("POST", "/_control/grow?log=/a/&n=99")
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 400  # more than recorded
            conn.request("POST", "/_control/inject?log=/a/&kind=500&count=1&match=get-sth")
            conn.getresponse().read()
            conn.request("GET", "/a/ct/v1/get-sth")
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 500
            conn.request("GET", "/_control/logs")
            logs = json.loads(conn.getresponse().read())
            assert logs["/a/"]["log_id"] == make_test_signer().log_id_b64
        finally:
            conn.close()
