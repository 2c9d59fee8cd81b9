"""static-ct-api data tiles: real Navigli tiles, the synth11 tiled copy, paths and gzip."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from pathlib import Path
from types import ModuleType

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from tests.support.data import INPUTS, NAVIGLI

from certstream._fast._leaf_py import decode_entry as decode_entry_py
from certstream._fast._leaf_py import parse_data_tile as parse_data_tile_py
from certstream.core import tiles
from certstream.core.model import PRECERT_ENTRY
from certstream.errors import DecodeError, LocalProtocolError

SYNTH_TILED = INPUTS / "synth11-tiled" / "tiles"
SYNTH_ENTRIES = INPUTS / "synth11" / "rfc6962.get-entries.json"

NAVIGLI_TILES = [("000", 0, 256), ("001", 256, 256), ("002", 512, 256), ("003", 768, 256)]
NAVIGLI_TILES.append(("003.p/10", 768, 10))


def _issuers(root: Path) -> dict[bytes, bytes]:
    return {bytes.fromhex(p.name): p.read_bytes() for p in (root / "issuer").iterdir()}


@pytest.mark.parametrize(("name", "first", "count"), NAVIGLI_TILES)
def test_navigli_tiles_match_their_hash_tiles(
    leaf_mod: ModuleType, name: str, first: int, count: int
) -> None:
    data = (NAVIGLI / "tile" / "data" / name).read_bytes()
    hashes = (NAVIGLI / "tile" / "0" / name).read_bytes()
    assert len(hashes) == 32 * count
    got = leaf_mod.parse_data_tile(data, first, count)
    assert len(got) == count
    for i, leaf in enumerate(got):
        assert leaf.index == first + i
        assert leaf.leaf_hash() == hashes[32 * i : 32 * (i + 1)]
        # The leaf_index extension is the last 8 bytes of the TimestampedEntry.
        assert leaf.merkle_leaf[-8:] == b"\x00\x00\x05" + (first + i).to_bytes(5, "big")
        assert leaf.entry_type == PRECERT_ENTRY
        assert leaf.pre_certificate == leaf.cert_der
        assert leaf.tbs_der is not None and leaf.tbs_der[0] == 0x30
        assert all(len(fp) == 32 for fp in leaf.fingerprints)
    tiles.check_leaf_hashes(got, hashes)
    assert got == parse_data_tile_py(data, first, count)


def test_navigli_chains_resolve_and_issuer_key_hashes_match() -> None:
    issuers = _issuers(NAVIGLI)
    for fp, der in issuers.items():
        assert hashlib.sha256(der).digest() == fp
    spki_hash = {
        fp: hashlib.sha256(
            x509.load_der_x509_certificate(der)
            .public_key()
            .public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        ).digest()
        for fp, der in issuers.items()
    }
    got = tiles.parse_data_tile((NAVIGLI / "tile" / "data" / "000").read_bytes(), 0, 256)
    for leaf in got:
        entry = leaf.to_entry(issuers)
        assert entry.chain == tuple(issuers[fp] for fp in leaf.fingerprints)
        assert entry.issuer_key_hash == spki_hash[leaf.fingerprints[0]]
        assert entry.leaf_hash() == leaf.leaf_hash()


def test_partial_tile_is_a_prefix_of_the_full_one(leaf_mod: ModuleType) -> None:
    full = leaf_mod.parse_data_tile((NAVIGLI / "tile/data/003").read_bytes(), 768, 256)
    part = leaf_mod.parse_data_tile((NAVIGLI / "tile/data/003.p/10").read_bytes(), 768, 10)
    assert part == full[:10]


def test_synth11_tiled_equals_its_get_entries(leaf_mod: ModuleType) -> None:
    data = (SYNTH_TILED / "tile" / "data" / "000.p" / "11").read_bytes()
    issuers = _issuers(SYNTH_TILED)
    from_tiles = [leaf.to_entry(issuers) for leaf in leaf_mod.parse_data_tile(data, 0, 11)]
    doc = json.loads(SYNTH_ENTRIES.read_text())
    for i, (item, got) in enumerate(zip(doc["entries"], from_tiles, strict=True)):
        leaf_input = base64.b64decode(item["leaf_input"])
        want = decode_entry_py(i, leaf_input, base64.b64decode(item["extra_data"]))
        assert (got.index, got.cert_der, got.tbs_der, got.chain) == (
            want.index,
            want.cert_der,
            want.tbs_der,
            want.chain,
        )
        assert (got.entry_type, got.timestamp, got.issuer_key_hash) == (
            want.entry_type,
            want.timestamp,
            want.issuer_key_hash,
        )
        # Same TimestampedEntry, but the tile's carries the leaf_index extension.
        assert got.merkle_leaf[:-10] == want.merkle_leaf[:-2]
        assert got.merkle_leaf[-10:] == b"\x00\x08\x00\x00\x05" + i.to_bytes(5, "big")


def test_missing_issuer_is_a_decode_error(leaf_mod: ModuleType) -> None:
    data = (SYNTH_TILED / "tile" / "data" / "000.p" / "11").read_bytes()
    got = leaf_mod.parse_data_tile(data, 0, 11)
    with_chain = next(leaf for leaf in got if leaf.fingerprints)
    with pytest.raises(DecodeError) as info:
        with_chain.to_entry({})
    assert info.value.index == with_chain.index
    assert with_chain.fingerprints[0].hex() in str(info.value)


# --- strictness ----------------------------------------------------------------------------

TILE0 = (NAVIGLI / "tile" / "data" / "000").read_bytes()


def _leaf_spans(data: bytes, first: int, count: int) -> list[tuple[int, int]]:
    """(start, end) of each TileLeaf, found from the parsed leaves' own lengths."""
    spans = []
    pos = 0
    for leaf in parse_data_tile_py(data, first, count):
        size = len(leaf.merkle_leaf) - 2 + 3 + len(leaf.cert_der) + 2 + 32 * len(leaf.fingerprints)
        spans.append((pos, pos + size))
        pos += size
    assert pos == len(data)
    return spans


SPANS = _leaf_spans(TILE0, 0, 256)


def _expect(leaf_mod: ModuleType, data: bytes, first: int, count: int, *needles: str) -> int:
    with pytest.raises(DecodeError) as info:
        leaf_mod.parse_data_tile(data, first, count)
    for needle in needles:
        assert needle in str(info.value)
    with pytest.raises(DecodeError) as again:
        parse_data_tile_py(data, first, count)
    assert str(again.value) == str(info.value)
    assert info.value.index is not None
    return info.value.index


def test_wrong_count_is_an_error(leaf_mod: ModuleType) -> None:
    assert _expect(leaf_mod, TILE0[: SPANS[9][1]], 0, 11, "ends after 10 of 11") == 10
    _expect(leaf_mod, TILE0[: SPANS[10][1]], 0, 10, "trailing bytes after 10 leaves")
    assert len(leaf_mod.parse_data_tile(TILE0[: SPANS[10][1]], 0, 11)) == 11


def test_wrong_first_index_names_the_index(leaf_mod: ModuleType) -> None:
    assert _expect(leaf_mod, TILE0, 256, 256, "leaf_index 0", "of 256") == 256


def test_leaf_index_mismatch_in_the_middle(leaf_mod: ModuleType) -> None:
    start, end = SPANS[5]
    leaf = TILE0[start:end]
    ext = b"\x00\x08\x00\x00\x05" + (5).to_bytes(5, "big")
    at = leaf.index(ext)
    bad = leaf[:at] + b"\x00\x08\x00\x00\x05" + (6).to_bytes(5, "big") + leaf[at + 10 :]
    data = TILE0[:start] + bad + TILE0[end:]
    assert _expect(leaf_mod, data, 0, 256, "leaf_index 6 at position of 5") == 5


def test_leaf_index_extension_rules(leaf_mod: ModuleType) -> None:
    start, end = SPANS[0]
    leaf = TILE0[start:end]
    ext = b"\x00\x08\x00\x00\x05" + bytes(5)
    at = leaf.index(ext)

    def with_ext(raw: bytes) -> bytes:
        return leaf[:at] + len(raw).to_bytes(2, "big") + raw + leaf[at + 10 :]

    _expect(leaf_mod, with_ext(b""), 0, 1, "no leaf_index extension")
    _expect(leaf_mod, with_ext(b"\x00\x00\x04" + bytes(4)), 0, 1, "has length 4, not 5")
    _expect(leaf_mod, with_ext(ext[2:] * 2), 0, 1, "duplicate leaf_index")
    _expect(leaf_mod, with_ext(b"\x00\x00"), 0, 1, "extension header truncated")
    # Unknown extensions are skipped, before or after leaf_index.
    got = leaf_mod.parse_data_tile(with_ext(b"\x07\x00\x01z" + ext[2:] + b"\x09\x00\x00"), 0, 1)
    assert got[0].index == 0
    assert got[0].cert_der == leaf_mod.parse_data_tile(leaf, 0, 1)[0].cert_der


def test_chain_length_must_be_a_multiple_of_32(leaf_mod: ModuleType) -> None:
    start, end = SPANS[0]
    leaf = TILE0[start:end]
    leaf_obj = parse_data_tile_py(leaf, 0, 1)[0]
    k = len(leaf_obj.fingerprints)
    at = len(leaf) - 32 * k - 2
    assert leaf[at : at + 2] == (32 * k).to_bytes(2, "big")
    bad = leaf[:at] + (32 * k - 1).to_bytes(2, "big") + leaf[at + 2 : -1]
    _expect(leaf_mod, bad, 0, 1, f"chain length {32 * k - 1} is not a multiple of 32")
    _expect(leaf_mod, leaf[:-1], 0, 1, "overruns")


@pytest.mark.parametrize("expected", [0, 257, -1])
def test_expected_count_out_of_range_is_a_local_error(leaf_mod: ModuleType, expected: int) -> None:
    with pytest.raises(LocalProtocolError):
        leaf_mod.parse_data_tile(TILE0, 0, expected)


def test_check_leaf_hashes_detects_a_changed_leaf() -> None:
    hashes = (NAVIGLI / "tile" / "0" / "000").read_bytes()
    got = tiles.parse_data_tile(TILE0, 0, 256)
    tiles.check_leaf_hashes(got[:10], hashes)  # a partial data tile against a full hash tile
    swapped = hashes[32:64] + hashes[:32] + hashes[64:]
    with pytest.raises(DecodeError) as info:
        tiles.check_leaf_hashes(got, swapped)
    assert info.value.index == 0
    with pytest.raises(DecodeError):
        tiles.check_leaf_hashes(got, hashes[:-32])
    with pytest.raises(DecodeError):
        tiles.check_leaf_hashes(got, hashes + b"x")


# --- paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "width", "path"),
    [
        (0, None, "000"),
        (7, None, "007"),
        (999, None, "999"),
        (1000, None, "x001/000"),
        (1234, None, "x001/234"),
        (1234067, None, "x001/x234/067"),
        (3881873, None, "x003/x881/873"),
        (3, 10, "003.p/10"),
        (1234, 255, "x001/234.p/255"),
        (5, 256, "005"),
    ],
)
def test_tile_path(n: int, width: int | None, path: str) -> None:
    assert tiles.tile_path(n, width) == path


def test_tile_urls() -> None:
    assert tiles.data_tile_path(3, 10) == "tile/data/003.p/10"
    assert tiles.hash_tile_path(0, 1234) == "tile/0/x001/234"
    assert tiles.hash_tile_path(2, 0, 4) == "tile/2/000.p/4"
    fp = bytes(range(32))
    assert tiles.issuer_path(fp) == "issuer/" + fp.hex()
    # The fixture tree uses the same layout, so the paths find real files.
    assert (NAVIGLI / tiles.data_tile_path(3, 10)).is_file()
    assert (NAVIGLI / tiles.hash_tile_path(0, 2)).is_file()


@pytest.mark.parametrize(("n", "width"), [(-1, None), (0, 0), (0, 257), (0, -3)])
def test_bad_tile_path_arguments(n: int, width: int | None) -> None:
    with pytest.raises(LocalProtocolError):
        tiles.tile_path(n, width)


def test_data_tiles_for() -> None:
    assert tiles.data_tiles_for(0, 0) == []
    assert tiles.data_tiles_for(0, 778) == [(0, None), (1, None), (2, None), (3, 10)]
    assert tiles.data_tiles_for(700, 1024) == [(2, None), (3, None)]
    assert tiles.data_tiles_for(770, 778) == [(3, 10)]
    assert tiles.data_tiles_for(256, 257) == [(1, 1)]
    with pytest.raises(LocalProtocolError):
        tiles.data_tiles_for(5, 4)


# --- gzip ----------------------------------------------------------------------------------


def test_maybe_gunzip_passes_plain_tiles_through() -> None:
    assert tiles.maybe_gunzip(TILE0, len(TILE0)) is TILE0
    with pytest.raises(DecodeError):
        tiles.maybe_gunzip(TILE0, len(TILE0) - 1)


def test_maybe_gunzip_inflates_within_the_limit() -> None:
    packed = gzip.compress(TILE0)
    assert tiles.maybe_gunzip(packed, len(TILE0)) == TILE0
    assert tiles.maybe_gunzip(packed + gzip.compress(b"more"), len(TILE0) + 4) == TILE0 + b"more"


def test_maybe_gunzip_rejects_bombs_truncation_and_junk() -> None:
    bomb = gzip.compress(bytes(50_000_000))
    with pytest.raises(DecodeError, match="limit"):
        tiles.maybe_gunzip(bomb, 1 << 20)
    packed = gzip.compress(TILE0)
    with pytest.raises(DecodeError, match="truncated"):
        tiles.maybe_gunzip(packed[:-100], 1 << 20)
    with pytest.raises(DecodeError, match="trailing"):
        tiles.maybe_gunzip(packed + b"junk", 1 << 20)
    with pytest.raises(DecodeError, match="corrupt"):
        tiles.maybe_gunzip(packed[:20] + bytes(50) + packed[70:], 1 << 20)
