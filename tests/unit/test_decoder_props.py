"""Property tests: random and mutated bytes into every decoder.

Whatever a CT log sends, a decoder may only return a result or raise ``DecodeError``: any
other exception would escape the per-entry error handling and stop a log follower.  The
mutations start from real leaves, tiles and responses (bit flips, truncation, insertion,
overwritten length fields) because random bytes alone rarely get past the first check.
Each example also runs through both twins, which must agree exactly.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import importlib
import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support.data import INPUTS, NAVIGLI

from certstream._fast import NO_EXTENSIONS
from certstream.core import leaves, tiles
from certstream.errors import DecodeError


def _twins(name: str) -> list[ModuleType]:
    mods = [importlib.import_module(f"certstream._fast.{name}_py")]
    if not NO_EXTENSIONS:
        # A missing build is reported by test_fast_loaded.
        with contextlib.suppress(ImportError):
            mods.append(importlib.import_module(f"certstream._fast.{name}"))
    return mods


LEAF_TWINS = _twins("_leaf")

PROPS = settings(
    max_examples=250,
    deadline=None,  # hangs are caught by the timeout below, not by per-example timing
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
pytestmark = pytest.mark.timeout(120)


def _entries(path: Path) -> list[tuple[bytes, bytes]]:
    doc = json.loads(path.read_text())
    return [
        (base64.b64decode(e["leaf_input"]), base64.b64decode(e["extra_data"]))
        for e in doc["entries"]
    ]


REAL = _entries(INPUTS / "live40" / "argon2026h2.get-entries.json") + _entries(
    INPUTS / "synth11" / "rfc6962.get-entries.json"
)
SYNTH_TILE = (INPUTS / "synth11-tiled" / "tiles" / "tile" / "data" / "000.p" / "11").read_bytes()
NAVIGLI_PART = (NAVIGLI / "tile" / "data" / "003.p" / "10").read_bytes()
TILES = [(SYNTH_TILE, 0, 11), (NAVIGLI_PART, 768, 10)]


def _outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    """('ok', result) or ('err', message); anything but DecodeError fails the test."""
    try:
        return "ok", fn()
    except DecodeError as exc:
        assert exc.index is None or isinstance(exc.index, int)
        return "err", str(exc)


def _agree(fns: list[Callable[[], Any]]) -> tuple[str, Any]:
    outcomes = [_outcome(fn) for fn in fns]
    assert all(o == outcomes[0] for o in outcomes), outcomes
    return outcomes[0]


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with a few random edits, biased to what breaks length-prefixed formats."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "delete", "length", "byte"]))
        if not buf and kind != "insert":
            kind = "insert"
        pos = draw(st.integers(0, max(0, len(buf) - 1)))
        if kind == "flip":
            buf[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del buf[pos:]
        elif kind == "insert":
            buf[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del buf[pos : pos + draw(st.integers(1, 8))]
        elif kind == "length":
            # Overwrite a would-be length field with an extreme or random value.
            width = draw(st.sampled_from([1, 2, 3]))
            value = draw(st.sampled_from([0, 1, (1 << (8 * width)) - 1])) | draw(
                st.integers(0, (1 << (8 * width)) - 1)
            ) * draw(st.integers(0, 1))
            buf[pos : pos + width] = value.to_bytes(width, "big")
        else:
            buf[pos] = draw(st.integers(0, 255))
    return bytes(buf)


@st.composite
def mutated_entry(draw: st.DrawFn) -> tuple[bytes, bytes]:
    leaf_input, extra_data = draw(st.sampled_from(REAL))
    which = draw(st.sampled_from(["leaf", "extra", "both"]))
    if which in ("leaf", "both"):
        leaf_input = draw(mutated(leaf_input))
    if which in ("extra", "both"):
        extra_data = draw(mutated(extra_data))
    return leaf_input, extra_data


def _decode_all(index: int, leaf_input: bytes, extra_data: bytes) -> tuple[str, Any]:
    return _agree([partial(m.decode_entry, index, leaf_input, extra_data) for m in LEAF_TWINS])


@PROPS
@given(st.binary(max_size=300), st.binary(max_size=300), st.integers(0, 1 << 62))
def test_random_bytes_into_decode_entry(leaf_input: bytes, extra_data: bytes, index: int) -> None:
    kind, value = _decode_all(index, leaf_input, extra_data)
    if kind == "ok":
        assert value.index == index and value.merkle_leaf == leaf_input


@PROPS
@given(st.binary(max_size=60), st.binary(max_size=60), st.sampled_from([0, 1]))
def test_random_bodies_behind_a_valid_header(body: bytes, extra: bytes, entry_type: int) -> None:
    # Get past version/leaf_type/entry_type so the length fields are what is random.
    leaf_input = b"\x00\x00" + bytes(8) + entry_type.to_bytes(2, "big") + body
    _decode_all(3, leaf_input, extra)


@PROPS
@given(mutated_entry())
def test_mutated_real_entries(entry: tuple[bytes, bytes]) -> None:
    kind, value = _decode_all(42, *entry)
    if kind == "ok":
        # Whatever was accepted is self-consistent: the pieces lie inside the input.
        assert value.cert_der and value.cert_der in entry[0] + entry[1]
        assert all(c in entry[1] for c in value.chain)


@st.composite
def mutated_tile(draw: st.DrawFn) -> tuple[bytes, int, int]:
    data, first, count = draw(st.sampled_from(TILES))
    count = draw(st.sampled_from([count, count - 1, count + 1, 1]))
    return draw(mutated(data)), first, count


@PROPS
@given(mutated_tile())
def test_mutated_tiles(tile: tuple[bytes, int, int]) -> None:
    data, first, count = tile
    kind, value = _agree([partial(m.parse_data_tile, data, first, count) for m in LEAF_TWINS])
    if kind == "ok":
        assert [leaf.index for leaf in value] == list(range(first, first + count))


@PROPS
@given(st.binary(max_size=400), st.integers(1, 256))
def test_random_tiles(data: bytes, count: int) -> None:
    _agree([partial(m.parse_data_tile, data, 0, count) for m in LEAF_TWINS])


@PROPS
@given(mutated_tile())
def test_mutated_tile_leaves_resolve_or_fail_cleanly(tile: tuple[bytes, int, int]) -> None:
    data, first, count = tile
    kind, value = _outcome(lambda: tiles.parse_data_tile(data, first, count))
    if kind == "ok":
        issuers = {p.name: p.read_bytes() for p in (NAVIGLI / "issuer").iterdir()}
        known = {bytes.fromhex(k): v for k, v in issuers.items()}
        for leaf in value:
            _outcome(partial(leaf.to_entry, known))


GET_ENTRIES = (INPUTS / "live40" / "nimbus2026.get-entries.json").read_bytes()


@PROPS
@given(st.one_of(st.binary(max_size=500), mutated(GET_ENTRIES[:3000] + b"]}")))
def test_get_entries_bodies(body: bytes) -> None:
    kind, value = _outcome(lambda: leaves.decode_get_entries(body, 100))
    if kind == "ok":
        got, errors = value
        assert all(isinstance(e, DecodeError) and e.index is not None for e in errors)
        assert sorted([e.index for e in got] + [e.index for e in errors]) == list(
            range(100, 100 + len(got) + len(errors))
        )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=10,
)


@PROPS
@given(
    st.lists(
        st.fixed_dictionaries({"leaf_input": json_values, "extra_data": json_values})
        | json_values,
        max_size=4,
    )
)
def test_get_entries_with_wrong_json_types(items: list[Any]) -> None:
    body = json.dumps({"entries": items}).encode()
    got, errors = leaves.decode_get_entries(body, 0)
    assert len(got) + len(errors) == len(items)


GZ = gzip.compress(NAVIGLI_PART)


@PROPS
@given(st.one_of(mutated(GZ), st.binary(max_size=200).map(lambda b: b"\x1f\x8b" + b)))
def test_maybe_gunzip(body: bytes) -> None:
    kind, value = _outcome(lambda: tiles.maybe_gunzip(body, 1 << 20))
    if kind == "ok":
        assert len(value) <= 1 << 20


def test_twins_are_both_exercised() -> None:
    # Guards the comparisons above against quietly comparing the pure twin with itself.
    if NO_EXTENSIONS:
        assert len(LEAF_TWINS) == 1
    else:
        assert [m.__name__ for m in LEAF_TWINS] == [
            "certstream._fast._leaf_py",
            "certstream._fast._leaf",
        ]
