"""The demo CT logs, sans-IO: what a follower gets, checked with the real decoders and
verifiers and an independent Merkle computation, at times the test chooses."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from certstream.core.checkpoint import verify_checkpoint
from certstream.core.leaves import decode_entry, decode_get_entries
from certstream.core.merkle import TileTree, edge_tiles, tree_hash
from certstream.core.sth import verify_sth
from certstream.core.tiles import data_tile_path, hash_tile_path, parse_data_tile
from certstream.demo import ctlog
from certstream.demo.corpus import Corpus, load_corpus
from certstream.demo.ctlog import BACKLOG, DEMO_LOGS, MAX_BATCH, DemoLogs
from certstream.demo.synth import merkle_root

T0 = 1_800_000_000.0
RATE = 50.0  # all logs together: 10 per log per second
PER_LOG = RATE / len(DEMO_LOGS)
BASE = "http://127.0.0.1:9/"


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return load_corpus()


@pytest.fixture
def logs(corpus: Corpus) -> DemoLogs:
    return DemoLogs(corpus, BASE, rate=RATE, start=T0, seed=3)


def _get(logs: DemoLogs, path: str, now: float) -> tuple[int, bytes]:
    target, _, query = path.partition("?")
    resp = logs.respond("GET", target, query, now)
    return resp.status, resp.body


def _spki(logs: DemoLogs, path: str) -> bytes:
    return base64.b64decode(logs.logs[path].key_b64)


def _rfc_paths() -> list[str]:
    return [d.path for d in DEMO_LOGS if d.kind == "rfc6962"]


def _static_paths() -> list[str]:
    return [d.path for d in DEMO_LOGS if d.kind == "static"]


def test_describe_names_every_log_with_its_key(logs: DemoLogs) -> None:
    info = logs.describe()
    assert info["url"] == BASE.rstrip("/")
    described = info["logs"]
    assert isinstance(described, list)
    assert [d["name"] for d in described] == [d.name for d in DEMO_LOGS]
    for d, log in zip(described, logs.logs.values(), strict=True):
        assert d["url"] == BASE.rstrip("/") + log.definition.path
        assert base64.b64decode(d["key"])[0] == 0x30  # an SPKI
        if d["kind"] == "static":
            assert d["origin"] == "127.0.0.1:9" + log.definition.path.rstrip("/")
    assert len({d["key"] for d in described}) == len(described)  # a key per log


@pytest.mark.parametrize("path", _rfc_paths())
def test_sth_grows_steadily_and_verifies(logs: DemoLogs, path: str) -> None:
    sizes = []
    for dt in (0.0, 1.0, 2.0, 10.0, 10.05):
        status, body = _get(logs, path + "ct/v1/get-sth", T0 + dt)
        assert status == 200
        sth = verify_sth(json.loads(body), _spki(logs, path))
        sizes.append(sth.tree_size)
    assert sizes == [BACKLOG, BACKLOG + int(PER_LOG), BACKLOG + int(2 * PER_LOG),
                     BACKLOG + int(10 * PER_LOG), BACKLOG + int(10 * PER_LOG)]
    # The clock stepping back never shrinks the tree.
    status, body = _get(logs, path + "ct/v1/get-sth", T0 + 5)
    assert json.loads(body)["tree_size"] == sizes[-1]


@pytest.mark.parametrize("path", _rfc_paths())
def test_sth_root_is_the_merkle_root_of_the_entries_served(logs: DemoLogs, path: str) -> None:
    now = T0 + 7.3
    _, body = _get(logs, path + "ct/v1/get-sth", now)
    sth = verify_sth(json.loads(body), _spki(logs, path))
    leaves: list[bytes] = []
    while len(leaves) < sth.tree_size:
        _, body = _get(logs, f"{path}ct/v1/get-entries?start={len(leaves)}"
                             f"&end={sth.tree_size - 1}", now)
        leaves += [base64.b64decode(e["leaf_input"]) for e in json.loads(body)["entries"]]
    hashes = [hashlib.sha256(b"\x00" + leaf).digest() for leaf in leaves]
    assert merkle_root(hashes) == sth.root_hash


@pytest.mark.parametrize(("query", "status"), [
    ("start=0&end=3", 200),
    ("start=5&end=4", 400),
    ("start=-1&end=4", 400),
    ("start=a&end=4", 400),
    ("start=0", 400),
    (f"start={BACKLOG}&end={BACKLOG + 5}", 400),  # at T0 the tree holds BACKLOG entries
])
def test_get_entries_follows_the_ctfe_rules(logs: DemoLogs, query: str, status: int) -> None:
    got, _ = _get(logs, "/argon2026h2/ct/v1/get-entries?" + query, T0)
    assert got == status


def test_get_entries_is_capped_and_truncated_to_the_tree(logs: DemoLogs) -> None:
    now = T0 + 100
    size = BACKLOG + int(100 * PER_LOG)
    _, body = _get(logs, f"/synth11/ct/v1/get-entries?start=0&end={size + 50}", now)
    assert len(json.loads(body)["entries"]) == min(MAX_BATCH, size)
    _, body = _get(logs, f"/synth11/ct/v1/get-entries?start={size - 3}&end={size + 50}", now)
    assert len(json.loads(body)["entries"]) == 3


def test_entries_are_distinct_recent_and_served_the_same_each_time(logs: DemoLogs) -> None:
    now = T0 + 60
    certs: set[bytes] = set()
    for path in _rfc_paths():
        _, body = _get(logs, f"{path}ct/v1/get-entries?start=0&end=199", now)
        entries, errors = decode_get_entries(body, 0)
        assert errors == []
        assert [e.index for e in entries] == list(range(200))
        for e in entries:
            certs.add(hashlib.sha256(e.cert_der).digest())
            # logged on the steady clock: BACKLOG entries before T0, then PER_LOG a second
            expected_ms = int(T0 * 1000 + (e.index - BACKLOG) * 1000 / PER_LOG)
            assert abs(e.timestamp - expected_ms) <= 1
        again = _get(logs, f"{path}ct/v1/get-entries?start=0&end=199", now)[1]
        assert again == body
    assert len(certs) == 3 * 200  # unique across entries and across logs


@pytest.mark.parametrize("path", _static_paths())
def test_checkpoint_verifies_and_tiles_decode(logs: DemoLogs, path: str) -> None:
    now = T0 + 40.0  # 32 + 400 entries: one full tile and a partial one
    status, body = _get(logs, path + "checkpoint", now)
    assert status == 200
    origin = "127.0.0.1:9" + path.rstrip("/")
    cp = verify_checkpoint(body, origin, _spki(logs, path))
    assert cp.size == BACKLOG + int(40 * PER_LOG)
    full = _get(logs, path + data_tile_path(0), now)
    assert full[0] == 200
    partial_width = cp.size - 256
    partial = _get(logs, path + data_tile_path(1, partial_width), now)
    assert partial[0] == 200
    leaves = parse_data_tile(full[1], 0, 256) + parse_data_tile(partial[1], 256, partial_width)
    assert [leaf.index for leaf in leaves] == list(range(cp.size))
    # the checkpoint's root is the RFC 6962 root of these leaves
    assert merkle_root([leaf.leaf_hash() for leaf in leaves]) == cp.root_hash
    # every chain certificate is served by fingerprint, and the entries resolve
    fps = {fp for leaf in leaves for fp in leaf.fingerprints}
    issuers = {}
    for fp in fps:
        status, der = _get(logs, f"{path}issuer/{fp.hex()}", now)
        assert status == 200 and hashlib.sha256(der).digest() == fp
        issuers[fp] = der
    certs = {hashlib.sha256(leaf.to_entry(issuers).cert_der).digest() for leaf in leaves}
    assert len(certs) == cp.size


@pytest.mark.parametrize("path", _static_paths())
def test_hash_tiles_tie_the_data_tiles_to_the_checkpoint(logs: DemoLogs, path: str) -> None:
    now = T0 + 300.0  # 32 + 3,000 entries: hash tiles of levels 0 and 1
    cp = verify_checkpoint(_get(logs, path + "checkpoint", now)[1],
                           "127.0.0.1:9" + path.rstrip("/"), _spki(logs, path))
    edges = {}
    for level, n, width in edge_tiles(cp.size):
        status, body = _get(logs, path + hash_tile_path(level, n, width), now)
        assert status == 200 and len(body) == 32 * width
        edges[level] = body
    assert len(edges) == 2
    tree = TileTree(cp.size, cp.root_hash, edges)  # raises unless they hash to the root
    # A full data tile is node n of level 1; its leaves, through the full level-0 tile.
    n = 7
    leaves = parse_data_tile(_get(logs, path + data_tile_path(n), now)[1], n * 256, 256)
    assert tree_hash([leaf.leaf_hash() for leaf in leaves]) == tree.node(1, n)
    assert tree.missing(0, n * 256 + 3) == [(0, n)]
    tree.add_full(0, n, _get(logs, path + hash_tile_path(0, n), now)[1])  # checked there
    assert tree.node(0, n * 256 + 3) == leaves[3].leaf_hash()


def test_static_paths_outside_the_tree_are_404(logs: DemoLogs) -> None:
    now = T0  # BACKLOG entries: only a partial first tile
    path = "/navigli2025h2/"
    assert _get(logs, path + data_tile_path(0), now)[0] == 404
    assert _get(logs, path + data_tile_path(0, BACKLOG), now)[0] == 200
    assert _get(logs, path + data_tile_path(0, BACKLOG + 1), now)[0] == 404
    assert _get(logs, path + "tile/data/000.p/256", now)[0] == 404
    assert _get(logs, path + "tile/0/000", now)[0] == 404  # a full hash tile: not yet
    assert _get(logs, path + hash_tile_path(0, 0, BACKLOG), now)[0] == 200
    assert _get(logs, path + hash_tile_path(0, 0, BACKLOG + 1), now)[0] == 404
    assert _get(logs, path + "tile/1/000.p/1", now)[0] == 404  # 256 entries: not yet
    assert _get(logs, path + "issuer/" + "00" * 32, now)[0] == 404
    assert logs.respond("POST", path + "checkpoint", "", now).status == 405
    assert logs.respond("GET", "/nowhere/", "", now).status == 404


def test_memory_stays_bounded_as_the_log_grows(logs: DemoLogs) -> None:
    log = logs.logs["/nimbus2026/"]
    later = T0 + 1500.0  # 15,000 entries
    _get(logs, "/nimbus2026/ct/v1/get-sth", later)  # hashes every entry up to the head
    assert log.size(later) > 3 * ctlog.CACHE_ENTRIES
    assert len(log._cache) <= ctlog.CACHE_ENTRIES
    assert len(log._frontier._stack) <= 64  # O(log n) subtree roots
    # an old entry is computed again, identically
    first = decode_entry(0, base64.b64decode(log.entry(0)["leaf_input"]),
                         base64.b64decode(log.entry(0)["extra_data"]))
    again = logs.logs["/nimbus2026/"].entry(0)
    assert decode_entry(0, base64.b64decode(again["leaf_input"]),
                        base64.b64decode(again["extra_data"])).cert_der == first.cert_der
