"""The replay log's synthesis, checked against the RFC and the recorded data without serving
anything: Merkle roots, unique entries, tile leaves (the served log is
tests/integration/test_replay.py)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping

from conformance.synth import (
    MerkleFrontier,
    merkle_root,
    tile_leaves_from_entries,
    unique_entries,
)
from cryptography import x509
from tests.support.data import INPUTS, live40_entries
from tests.support.rfc6962 import mth

from certstream.core.leaves import decode_entry

ARGON = live40_entries("argon2026h2.get-entries.json")
NIMBUS = live40_entries("nimbus2026.get-entries.json")


def displayed_cert(entry: Mapping[str, str]) -> tuple[bytes, bytes | None]:
    """(the displayed certificate DER, the precert's leaf TBS or None), decoded for real."""
    leaf = base64.b64decode(entry["leaf_input"], validate=True)
    extra = base64.b64decode(entry["extra_data"], validate=True)
    e = decode_entry(0, leaf, extra)
    return e.cert_der, e.tbs_der


def _tbs_serial(tbs: bytes) -> int:
    """Serial of a TBSCertificate: SEQUENCE { [0] version, INTEGER serial, ... }."""

    def header(pos: int) -> tuple[int, int, int]:
        tag, first = tbs[pos], tbs[pos + 1]
        if first < 0x80:
            return tag, pos + 2, pos + 2 + first
        n = first & 0x7F
        length = int.from_bytes(tbs[pos + 2 : pos + 2 + n], "big")
        return tag, pos + 2 + n, pos + 2 + n + length

    _, pos, _ = header(0)
    tag, start, end = header(pos)
    if tag == 0xA0:
        tag, start, end = header(end)
    assert tag == 0x02
    return int.from_bytes(tbs[start:end], "big", signed=True)


def test_tree_roots_match_the_rfc_definition() -> None:
    hashes = [hashlib.sha256(b"%d" % i).digest() for i in range(300)]
    frontier = MerkleFrontier()
    assert frontier.root() == merkle_root([]) == hashlib.sha256(b"").digest()
    for n in range(1, 301):
        frontier.append(hashes[n - 1])
        expected = mth(hashes[:n])
        assert frontier.root() == expected
        assert merkle_root(hashes[:n]) == expected


def test_unique_entries_are_distinct_and_decode() -> None:
    base = ARGON + NIMBUS
    made = unique_entries(base, 100, seed=1)
    assert len(made) == 100
    certs = [displayed_cert(e) for e in made]
    digests = {hashlib.sha256(der).digest() for der, _ in certs}
    leaves = {e["leaf_input"] for e in made}
    originals = {hashlib.sha256(displayed_cert(e)[0]).digest() for e in base}
    assert len(digests) == 100 and len(leaves) == 100
    assert not digests & originals
    precerts = 0
    for (der, tbs), src in zip(certs, base * 3, strict=False):
        cert = x509.load_der_x509_certificate(der)
        orig = x509.load_der_x509_certificate(displayed_cert(src)[0])
        assert cert.serial_number != orig.serial_number
        assert cert.subject == orig.subject  # only the serial changed
        if tbs is not None:
            precerts += 1
            assert _tbs_serial(tbs) == cert.serial_number  # TBS and precert agree
    assert precerts > 0


def test_unique_entries_are_deterministic_per_seed() -> None:
    assert unique_entries(ARGON, 25, seed=3) == unique_entries(ARGON, 25, seed=3)
    a = {e["leaf_input"] for e in unique_entries(ARGON, 25, seed=3)}
    b = {e["leaf_input"] for e in unique_entries(ARGON, 25, seed=4)}
    assert not a & b


def test_tile_leaves_match_the_recorded_synth11_tiled_set() -> None:
    """The peer capture served synth11 as tiles too: our conversion gives the same bytes."""
    entries = json.loads((INPUTS / "synth11" / "rfc6962.get-entries.json").read_text())["entries"]
    leaves, issuers = tile_leaves_from_entries(entries)
    tiles = INPUTS / "synth11-tiled" / "tiles"
    assert b"".join(leaves) == (tiles / "tile" / "data" / "000.p" / "11").read_bytes()
    assert {fp.hex() for fp in issuers} == {p.name for p in (tiles / "issuer").iterdir()}
    for fp, der in issuers.items():
        assert (tiles / "issuer" / fp.hex()).read_bytes() == der
