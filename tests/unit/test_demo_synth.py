"""The synthesis helpers the demo adds: tiles back to entries, wider serials, new timestamps.

Each result is checked with the real decoders and with ``cryptography``, not with the helpers
themselves: a converted or widened entry must be one a CT log could have served.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography import x509

from certstream.core.leaves import decode_entry
from certstream.core.tiles import parse_data_tile
from certstream.demo.synth import (
    SynthError,
    entries_from_tile_leaves,
    rewrite_entry,
    serial_length,
    tile_leaves_from_entries,
    widen_serial,
    with_timestamp,
)

ROOT = Path(__file__).resolve().parents[2]
INPUTS = ROOT / "conformance" / "data" / "inputs"


def _entries(rel: str) -> list[dict[str, str]]:
    raw = json.loads((INPUTS / rel).read_text())["entries"]
    return [{"leaf_input": e["leaf_input"], "extra_data": e["extra_data"]} for e in raw]


LIVE = _entries("live40/argon2026h2.get-entries.json") + _entries(
    "live40/nimbus2026.get-entries.json")
SYNTH = _entries("synth11/rfc6962.get-entries.json")


def _shown_cert(entry: dict[str, str]) -> x509.Certificate:
    """The certificate a client is shown: the x509 leaf, or the precert's pre_certificate."""
    decoded = decode_entry(0, base64.b64decode(entry["leaf_input"]),
                           base64.b64decode(entry["extra_data"]))
    return x509.load_der_x509_certificate(decoded.cert_der)


def test_tile_leaves_convert_back_to_the_same_entries() -> None:
    for entries in (LIVE, SYNTH):
        leaves, issuers = tile_leaves_from_entries(entries, 7)
        assert entries_from_tile_leaves(leaves, issuers) == entries
        # and the leaves are real TileLeafs at indices 7.. for the tile decoder
        parsed = parse_data_tile(b"".join(leaves), 7, len(leaves))
        assert [leaf.index for leaf in parsed] == list(range(7, 7 + len(entries)))


def test_a_missing_issuer_is_an_error() -> None:
    leaves, issuers = tile_leaves_from_entries(LIVE[:3])
    with pytest.raises(SynthError, match="no issuer"):
        entries_from_tile_leaves(leaves, dict(list(issuers.items())[1:]))


@pytest.mark.parametrize("index", range(len(SYNTH)))
def test_widen_serial_gives_a_valid_entry_with_a_longer_serial(index: int) -> None:
    entry = SYNTH[index]
    before = _shown_cert(entry)
    wide = widen_serial(entry, 12, seed=index)
    assert serial_length(wide) == 12
    after = _shown_cert(wide)  # cryptography parses it: every DER length is right
    assert after.serial_number != before.serial_number
    assert after.subject == before.subject and after.issuer == before.issuer
    assert after.not_valid_after_utc == before.not_valid_after_utc
    if decode_entry(0, base64.b64decode(wide["leaf_input"]),
                    base64.b64decode(wide["extra_data"])).is_precert:
        # the TBS in the leaf carries the same serial as the pre_certificate
        leaf = base64.b64decode(wide["leaf_input"])
        assert b"\x02\x0c" + after.serial_number.to_bytes(12, "big") in leaf


def test_widened_short_serials_can_be_made_unique_many_times() -> None:
    shortest = min(SYNTH, key=serial_length)
    assert serial_length(shortest) <= 2  # the synth11 set has 1- and 2-byte serials
    wide = widen_serial(shortest, 8, seed=1)
    digests = {hashlib.sha256(rewrite_entry(wide, k, 5)[1]).digest() for k in range(3000)}
    assert len(digests) == 3000


def test_with_timestamp_moves_only_the_timestamp() -> None:
    entry = LIVE[0]
    moved = with_timestamp(entry, 1_800_000_000_123)
    old = decode_entry(0, base64.b64decode(entry["leaf_input"]),
                       base64.b64decode(entry["extra_data"]))
    new = decode_entry(0, base64.b64decode(moved["leaf_input"]),
                       base64.b64decode(moved["extra_data"]))
    assert new.timestamp == 1_800_000_000_123
    assert (new.cert_der, new.chain, new.is_precert) == (old.cert_der, old.chain, old.is_precert)
    assert moved["extra_data"] == entry["extra_data"]
