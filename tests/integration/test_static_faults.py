"""Static-ct logs: a bad leaf costs that entry alone, a corrupted tile is detected, a tile
that stays unreadable is skipped after a bounded number of tries, and an issuer the log
cannot serve does not stall it.

A replay log serves tiles built from real entries (made unique), with leaves changed as a
log could store them and with faults injected into responses.  Before the fix, any of
these made the follower retry the same tile forever (and a corrupted certificate was
published as it came).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conformance.replay import ReplayServer
from conformance.synth import (
    leaf_index_extension,
    make_test_signer,
    tile_leaves_from_entries,
    unique_entries,
)
from tests.support.data import base_entries
from tests.support.feed import FULL, FakeFeed
from tests.support.pipeline import IndexBuilder, log_follower, make_pipeline
from tests.support.wait import wait_until

from certstream.core.tiles import parse_data_tile
from certstream.shell.follow_static import TILE_ATTEMPTS
from certstream.shell.httpclient import HTTPClient
from certstream.shell.issuers import IssuerCache

SIGNER = make_test_signer(5)
TOTAL = 1000
SETTINGS = {"fetch_concurrency": 2, "poll_interval_ms": 50, "retry_initial_delay_ms": 20,
            "retry_max_delay_ms": 100}


@pytest.fixture
def tmp_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="cs-static-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def make_leaves(seed: int) -> tuple[list[bytes], dict[bytes, bytes]]:
    return tile_leaves_from_entries(unique_entries(base_entries(), TOTAL, seed))


def certs_of(leaves: list[bytes]) -> dict[int, bytes]:
    return {i: parse_data_tile(leaf, i, 1)[0].cert_der for i, leaf in enumerate(leaves)}


def first_x509(leaves: list[bytes], start: int) -> int:
    return next(i for i in range(start, len(leaves)) if leaves[i][8:10] == b"\x00\x00")


def follow(replay: ReplayServer, tmp: Path, mode: str = "warn") -> tuple[Any, Any, Any]:
    feed = FakeFeed(wanted=FULL)
    pipeline, _ = make_pipeline(feed, IndexBuilder(), tmp)
    f = log_follower(replay.url + "/s/", "static", pipeline, start_index=0,
                     spki=SIGNER.spki_der,
                     settings={**SETTINGS, "static_ct_checkpoint_signature": mode},
                     issuers=IssuerCache(HTTPClient("certstream-test", 2.0)))
    return f, feed, pipeline.builder


def tile_gets(replay: ReplayServer, tile: str) -> int:
    return sum(t.endswith(tile) for _m, t in replay.requests("/s/"))


@pytest.mark.timeout(120)
def test_bad_leaves_cost_one_entry_each_and_an_unservable_issuer_none(tmp_dir: Path) -> None:
    leaves, issuers = make_leaves(81)
    unknown = first_x509(leaves, 300)  # an entry_type the spec does not define (x509 layout)
    leaves[unknown] = leaves[unknown][:8] + b"\x00\x02" + leaves[unknown][10:]
    misplaced = 600  # its leaf_index says 601
    leaves[misplaced] = leaves[misplaced].replace(
        leaf_index_extension(misplaced), leaf_index_extension(misplaced + 1), 1)
    orphan = 700  # its chain names an issuer the log does not have
    body = leaves[orphan]
    fps = len(parse_data_tile(body, orphan, 1)[0].fingerprints) * 32  # the leaf ends with them
    stray = hashlib.sha256(b"no such issuer").digest()
    leaves[orphan] = (body[: len(body) - fps - 2] + (fps + 32).to_bytes(2, "big")
                      + body[len(body) - fps :] + stray)
    with ReplayServer() as replay:
        replay.add_static_log("/s/", leaves, None, SIGNER, issuers)
        f, feed, builder = follow(replay, tmp_dir)
        f.start()
        try:
            wait_until(lambda: f.next_index == TOTAL, 60, "the log read past its bad leaves")
        finally:
            f.stop()
    assert feed.indices() == [i for i in range(TOTAL) if i not in (unknown, misplaced)]
    assert f.skipped == 2
    assert f.incomplete_chains == 1
    chain = builder.entries[orphan].chain
    assert len(chain) == fps // 32 >= 1  # every issuer but the stray one


@pytest.mark.timeout(120)
def test_a_corrupted_tile_is_detected_and_fetched_again(tmp_dir: Path) -> None:
    leaves, issuers = make_leaves(82)
    with ReplayServer() as replay:
        replay.add_static_log("/s/", leaves, None, SIGNER, issuers)
        replay.inject("/s/", "tile_corrupt", match="tile/data/001")
        replay.inject("/s/", "hash_corrupt", match="tile/0/")
        f, feed, builder = follow(replay, tmp_dir)
        f.start()
        try:
            wait_until(lambda: f.next_index == TOTAL, 60, "the log read")
        finally:
            f.stop()
        assert tile_gets(replay, "tile/data/001") == 2
    assert feed.indices() == list(range(TOTAL))
    want = certs_of(leaves)
    assert [i for i in range(TOTAL) if builder.entries[i].cert_der != want[i]] == []
    assert f.skipped == 0
    assert f.health.errors_by_kind.get("tile_content", 0) >= 1
    assert f.health.errors_by_kind.get("hash_tiles", 0) >= 1


@pytest.mark.timeout(120)
def test_a_tile_that_stays_unreadable_is_skipped_after_bounded_tries(tmp_dir: Path) -> None:
    leaves, issuers = make_leaves(83)
    with ReplayServer() as replay:
        replay.add_static_log("/s/", leaves, None, SIGNER, issuers)
        # Every copy of tile 2 has the lengths of its leaf 640 overrunning the tile.
        replay.inject("/s/", "tile_garble", count=1000, match="tile/data/002")
        f, feed, _builder = follow(replay, tmp_dir)
        f.start()
        try:
            wait_until(lambda: f.next_index == TOTAL, 60, "the log read past tile 2")
        finally:
            f.stop()
        assert tile_gets(replay, "tile/data/002") == TILE_ATTEMPTS
    unreadable = set(range(640, 768))
    assert feed.indices() == [i for i in range(TOTAL) if i not in unreadable]
    assert f.skipped == len(unreadable)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["warn", "enforce"])
def test_hash_tiles_that_never_match(tmp_dir: Path, mode: str) -> None:
    leaves, issuers = make_leaves(84)
    with ReplayServer() as replay:
        replay.add_static_log("/s/", leaves, None, SIGNER, issuers, visible=600)
        replay.inject("/s/", "hash_corrupt", count=10_000, match="tile/1/")
        f, feed, _builder = follow(replay, tmp_dir, mode)
        f.start()
        try:
            if mode == "warn":  # read on unchecked, and say so
                wait_until(lambda: f.next_index == 600, 60, "the log read unchecked")
                replay.grow("/s/", TOTAL - 600)
                wait_until(lambda: f.next_index == TOTAL, 60, "the rest, unchecked too")
            else:  # never publish what cannot be checked
                wait_until(lambda: f.health.status == "unhealthy", 60, "the log unhealthy")
        finally:
            f.stop()
        data_gets = sum("tile/data/" in t for _m, t in replay.requests("/s/"))
        hashes_asked = replay.requests("/s/")
    if mode == "warn":
        assert feed.indices() == list(range(TOTAL))
        assert data_gets >= 4
        # Given up on for a while: not tried again at the next checkpoint.
        assert sum("tile/1/" in t for _m, t in hashes_asked) == TILE_ATTEMPTS
    else:
        assert feed.indices() == [] and data_gets == 0
