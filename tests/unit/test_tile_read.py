"""read_data_tile: a data tile read leaf by leaf, in both twins.

A leaf whose lengths add up but that does not decode is skipped alone (``bad``); the first
leaf whose lengths do not add up ends the reading (``broken``).  Both twins must return the
same thing for any input (the property test at the end feeds them mutated real tiles).
"""

from __future__ import annotations

import contextlib
import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conformance.synth import leaf_index_extension, split_tile_leaves
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certstream._fast import NO_EXTENSIONS
from certstream.errors import DecodeError

REPO = Path(__file__).resolve().parents[2]
NAVIGLI = REPO / "tests" / "fixtures" / "ct" / "static-ct" / "navigli2025h2"
SYNTH = REPO / "conformance" / "data" / "inputs" / "synth11-tiled" / "tiles" / "tile" / "data"
TILE0 = (NAVIGLI / "tile" / "data" / "000").read_bytes()  # 256 precert leaves
MIXED = (SYNTH / "000.p" / "11").read_bytes()  # 11 leaves, x509 and precert
LEAVES0 = [leaf for leaf, _te in split_tile_leaves(TILE0)]
MIXED_LEAVES = [leaf for leaf, _te in split_tile_leaves(MIXED)]


def summary(read: Any) -> tuple[Any, ...]:
    """What a TileRead says, comparable across twins (errors by their text)."""
    return (
        read.leaves,
        [(b.index, str(b.error), b.merkle_leaf) for b in read.bad],
        read.framed,
        None if read.broken is None else (read.broken.index, str(read.broken)),
    )


def test_a_whole_tile_reads_like_the_strict_parser(leaf_mod: ModuleType) -> None:
    read = leaf_mod.read_data_tile(TILE0, 0, 256)
    assert read.leaves == leaf_mod.parse_data_tile(TILE0, 0, 256)
    assert read.bad == [] and read.framed == 256 and read.broken is None


def retyped(leaf: bytes, entry_type: int) -> bytes:
    return leaf[:8] + entry_type.to_bytes(2, "big") + leaf[10:]


@pytest.mark.parametrize("where", [0, 5, 10])
def test_an_unknown_entry_type_is_skipped_alone(leaf_mod: ModuleType, where: int) -> None:
    leaves = list(MIXED_LEAVES)
    leaves[where] = retyped(leaves[where], 7)
    read = leaf_mod.read_data_tile(b"".join(leaves), 0, 11)
    assert [leaf.index for leaf in read.leaves] == [i for i in range(11) if i != where]
    assert [b.index for b in read.bad] == [where] and read.broken is None
    assert "unknown entry_type 7" in str(read.bad[0].error)
    # The hash input of the skipped leaf is its TimestampedEntry, as the log hashed it.
    te = split_tile_leaves(leaves[where], unknown_as=MIXED_LEAVES[where][9])[0][1]
    assert read.bad[0].merkle_leaf == b"\x00\x00" + te


def test_an_unknown_entry_type_with_a_precert_layout(leaf_mod: ModuleType) -> None:
    leaves = list(LEAVES0)
    leaves[100] = retyped(leaves[100], 2)
    read = leaf_mod.read_data_tile(b"".join(leaves), 0, 256)
    assert len(read.leaves) == 255 and [b.index for b in read.bad] == [100]
    assert read.broken is None


def test_a_wrong_leaf_index_is_skipped_alone(leaf_mod: ModuleType) -> None:
    leaves = list(LEAVES0)
    leaves[7] = leaves[7].replace(leaf_index_extension(7), leaf_index_extension(9), 1)
    read = leaf_mod.read_data_tile(b"".join(leaves), 0, 256)
    assert [b.index for b in read.bad] == [7] and len(read.leaves) == 255
    assert "leaf_index 9 at position of 7" in str(read.bad[0].error)


def test_lengths_that_do_not_add_up_end_the_reading(leaf_mod: ModuleType) -> None:
    leaves = list(LEAVES0)
    body = leaves[40]
    leaves[40] = body[:42] + b"\xff\xff\xff" + body[45:]  # the TBS length overruns the tile
    read = leaf_mod.read_data_tile(b"".join(leaves), 0, 256)
    assert [leaf.index for leaf in read.leaves] == list(range(40))
    assert read.framed == 40 and read.bad == []
    assert read.broken is not None and read.broken.index == 40
    with pytest.raises(DecodeError, match="index 40"):
        leaf_mod.parse_data_tile(b"".join(leaves), 0, 256)


def test_a_truncated_tile_and_trailing_bytes(leaf_mod: ModuleType) -> None:
    cut = leaf_mod.read_data_tile(TILE0[: len(b"".join(LEAVES0[:30]))], 0, 256)
    assert cut.framed == 30 and cut.broken is not None and cut.broken.index == 30
    extra = leaf_mod.read_data_tile(TILE0 + b"\x00\x01", 0, 256)
    assert len(extra.leaves) == 256 and extra.framed == 256
    assert extra.broken is not None and "2 trailing bytes" in str(extra.broken)


def test_an_unknown_type_that_cannot_be_framed_breaks_the_tile(leaf_mod: ModuleType) -> None:
    leaves = list(LEAVES0[:20])
    # An unknown type whose leaf_index extension is gone: no way to find where it ends.
    leaves[3] = retyped(leaves[3], 9).replace(leaf_index_extension(3), b"\x00" * 10, 1)
    read = leaf_mod.read_data_tile(b"".join(leaves), 0, 20)
    assert read.framed == 3 and read.broken is not None and read.broken.index == 3


# -- the twins agree on anything ----------------------------------------------------------


def _twins() -> list[ModuleType]:
    mods = [importlib.import_module("certstream._fast._leaf_py")]
    if not NO_EXTENSIONS:
        with contextlib.suppress(ImportError):  # a missing build: test_fast_loaded says so
            mods.append(importlib.import_module("certstream._fast._leaf"))
    return mods


@st.composite
def damaged_tile(draw: st.DrawFn) -> tuple[bytes, int]:
    leaves = list(draw(st.sampled_from([MIXED_LEAVES, LEAVES0[:12]])))
    for _ in range(draw(st.integers(1, 3))):
        k = draw(st.integers(0, len(leaves) - 1))
        kind = draw(st.sampled_from(["type", "index", "byte", "cut"]))
        leaf = leaves[k]
        if kind == "type":
            leaves[k] = retyped(leaf, draw(st.integers(0, 65535)))
        elif kind == "index":
            leaves[k] = leaf.replace(leaf_index_extension(k),
                                     leaf_index_extension(draw(st.integers(0, 99))), 1)
        elif kind == "byte" and leaf:
            pos = draw(st.integers(0, len(leaf) - 1))
            leaves[k] = leaf[:pos] + bytes([draw(st.integers(0, 255))]) + leaf[pos + 1 :]
        elif kind == "cut":
            leaves[k] = leaf[: draw(st.integers(0, len(leaf)))]
    return b"".join(leaves), len(leaves)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged_tile())
def test_the_twins_read_damaged_tiles_alike(tile: tuple[bytes, int]) -> None:
    data, count = tile
    results = [summary(m.read_data_tile(data, 0, count)) for m in _twins()]
    assert all(r == results[0] for r in results)
    leaves, bad, framed, broken = results[0]
    # Every position up to ``framed`` is a leaf or a bad leaf, once; a tile read without a
    # break was read to its end.
    assert sorted([leaf.index for leaf in leaves] + [b[0] for b in bad]) == list(range(framed))
    assert broken is not None or framed == count
