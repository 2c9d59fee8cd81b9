"""core.merkle: a checkpoint's root from its edge hash tiles, and the tiles below it.

Checked against the real Navigli tiles (whose roots for several sizes are recorded in the
fixtures' SOURCES.md) and against an independent RFC 6962 implementation
(``conformance.synth.merkle_root``) on synthetic trees with three levels of tiles.
"""

from __future__ import annotations

import base64
import hashlib
import random
from pathlib import Path

import pytest
from conformance.synth import merkle_root

from certstream.core.merkle import TileTree, edge_tiles, root_from_edges, tree_hash
from certstream.errors import DecodeError, LocalProtocolError

NAVIGLI = Path(__file__).resolve().parents[1] / "fixtures" / "ct" / "static-ct" / "navigli2025h2"
# From the fixtures' SOURCES.md: roots computed from tile/0 when the fixtures were recorded.
NAVIGLI_ROOTS = {
    256: "bIAheYeHkQOXeHKw0PKjttmJ2hGtGU/VDxU5b0SAb+c=",
    512: "1rualgPSURLEItjl5HFo49Lce7W6WxraoY66Rfa1PUU=",
    768: "BlJT10XHnmoBywZHqyp+JSLTIjTmWuPdVZw51fzXNnM=",
    778: "+WnHOMRZl/LG1669oeskbdK9bcO4nkrY1cfVyknC52U=",
    1000: "pt0kHjEpgVKBV0ixCIEYPTp8wDP6q+4onmnamV2er/4=",
    1024: "EMfGG85uIddeOXt5/wdQGP3IQd0COCqoLg9Q6CsPLJA=",
}


def navigli_level0() -> list[bytes]:
    body = b"".join((NAVIGLI / "tile" / "0" / f"00{n}").read_bytes() for n in range(4))
    return [body[i : i + 32] for i in range(0, len(body), 32)]


def tiles_of(hashes: list[bytes]) -> dict[int, list[bytes]]:
    """Every level's nodes (level 0: the leaf hashes) of a tree with these leaves."""
    levels = {0: hashes}
    level = 0
    while len(levels[level]) >= 256:
        below = levels[level]
        full = len(below) // 256 * 256
        levels[level + 1] = [tree_hash(below[i : i + 256]) for i in range(0, full, 256)]
        level += 1
    return levels


def edges_for(levels: dict[int, list[bytes]], size: int) -> dict[int, bytes]:
    return {lvl: b"".join(levels[lvl][n * 256 : n * 256 + w]) for lvl, n, w in edge_tiles(size)}


@pytest.mark.parametrize("size", sorted(NAVIGLI_ROOTS))
def test_the_navigli_roots_from_their_edge_tiles(size: int) -> None:
    levels = tiles_of(navigli_level0())
    root = root_from_edges(size, edges_for(levels, size))
    assert base64.b64encode(root).decode() == NAVIGLI_ROOTS[size]
    # The edge of size 778 is the real partial hash tile 003.p/10 and the roots of 000-002.
    if size == 778:
        assert edges_for(levels, size)[0] == (NAVIGLI / "tile/0/003.p/10").read_bytes()


def test_edge_tiles() -> None:
    assert edge_tiles(0) == []
    assert edge_tiles(1) == [(0, 0, 1)]
    assert edge_tiles(256) == [(1, 0, 1)]
    assert edge_tiles(778) == [(0, 3, 10), (1, 0, 3)]
    assert edge_tiles(65536) == [(2, 0, 1)]
    assert edge_tiles(70_000) == [(0, 273, 112), (1, 1, 17), (2, 0, 1)]
    with pytest.raises(LocalProtocolError):
        edge_tiles(-1)


SYNTH = [hashlib.sha256(b"leaf %d" % i).digest() for i in range(70_000)]
SYNTH_LEVELS = tiles_of(SYNTH)


@pytest.mark.parametrize("size", [0, 1, 2, 3, 255, 256, 257, 511, 513, 65_535, 65_536,
                                  65_537, 65_792, 70_000])
def test_root_from_edges_equals_the_tree_hash_of_every_leaf(size: int) -> None:
    assert root_from_edges(size, edges_for(SYNTH_LEVELS, size)) == merkle_root(SYNTH[:size])


def test_random_sizes_agree() -> None:
    rng = random.Random(12)
    for size in rng.sample(range(1, 70_000), 12):
        assert root_from_edges(size, edges_for(SYNTH_LEVELS, size)) == merkle_root(SYNTH[:size])


def test_a_tree_with_a_wrong_edge_is_refused() -> None:
    edges = edges_for(SYNTH_LEVELS, 70_000)
    root = merkle_root(SYNTH)
    TileTree(70_000, root, edges)
    for level in edges:
        bad = dict(edges)
        bad[level] = bytes([edges[level][0] ^ 1]) + edges[level][1:]
        with pytest.raises(DecodeError):
            TileTree(70_000, root, bad)
    with pytest.raises(DecodeError):
        TileTree(70_000, root, {**edges, 0: edges[0][:-32]})


def test_full_tiles_are_checked_up_to_an_edge() -> None:
    size = 70_000
    full: dict[tuple[int, int], bytes] = {}
    tree = TileTree(size, merkle_root(SYNTH), edges_for(SYNTH_LEVELS, size), full)
    # Data tile 5: its level-1 node sits in the full level-1 tile 0, checked by level 2.
    assert tree.node(1, 5) is None
    assert tree.missing(1, 5) == [(1, 0)]
    assert tree.missing(0, 5 * 256 + 3) == [(1, 0), (0, 5)]
    tile1 = b"".join(SYNTH_LEVELS[1][:256])
    with pytest.raises(DecodeError):
        tree.add_full(1, 0, tile1[:-1] + bytes([tile1[-1] ^ 1]))
    with pytest.raises(LocalProtocolError):
        tree.add_full(0, 5, b"".join(SYNTH[5 * 256 : 6 * 256]))  # its parent is not known
    tree.add_full(1, 0, tile1)
    assert tree.node(1, 5) == tree_hash(SYNTH[5 * 256 : 6 * 256])
    tree.add_full(0, 5, b"".join(SYNTH[5 * 256 : 6 * 256]))
    assert tree.node(0, 5 * 256 + 3) == SYNTH[5 * 256 + 3]
    # The checked full tiles carry over to the tree of the next checkpoint.
    nxt = TileTree(70_000, merkle_root(SYNTH), edges_for(SYNTH_LEVELS, 70_000), full)
    assert nxt.missing(0, 5 * 256 + 3) == []
    # Tiles near the edge need nothing more than the edge tiles.
    assert tree.missing(1, 272) == [] and tree.missing(0, 69_999) == []
    with pytest.raises(LocalProtocolError):
        tree.missing(0, 70_000)


def test_full_tiles_kept_are_bounded() -> None:
    size = 70_000
    tree = TileTree(size, merkle_root(SYNTH), edges_for(SYNTH_LEVELS, size), max_full=3)
    tree.add_full(1, 0, b"".join(SYNTH_LEVELS[1][:256]))
    for n in range(5):
        tree.add_full(0, n, b"".join(SYNTH[n * 256 : (n + 1) * 256]))
    assert len(tree.full) == 3
