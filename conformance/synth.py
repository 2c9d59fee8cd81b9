"""Test CT data: the package's synthesis helpers, plus a deterministic test log key.

The generation code (unique entries, tile leaves, Merkle roots) lives in
``certstream.demo.synth``, which the offline demo shares with the replay log, the tests and
the benchmarks; it is re-exported here under its old name.  What only tests need stays here:
``make_test_signer``, a P-256 key derived from a seed, so that a replay subprocess and the
test driving it agree on the log key without passing it around.
"""

from __future__ import annotations

import base64
import hashlib
from typing import NamedTuple

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certstream.demo.synth import (
    MerkleFrontier,
    SynthError,
    UniqueEntryLog,
    entries_from_tile_leaves,
    leaf_hash,
    leaf_index_extension,
    merkle_root,
    rewrite_entry,
    rewrite_serial,
    serial_length,
    split_tile_leaves,
    tile_leaves_from_entries,
    unique_entries,
    widen_serial,
    with_timestamp,
)

__all__ = [
    "MerkleFrontier",
    "SynthError",
    "TestSigner",
    "UniqueEntryLog",
    "entries_from_tile_leaves",
    "leaf_hash",
    "leaf_index_extension",
    "make_test_signer",
    "merkle_root",
    "rewrite_entry",
    "rewrite_serial",
    "serial_length",
    "signer_from_key",
    "split_tile_leaves",
    "tile_leaves_from_entries",
    "unique_entries",
    "widen_serial",
    "with_timestamp",
]


class TestSigner(NamedTuple):
    """A test log key: the private key, base64 SPKI DER, base64 log ID (SHA-256 of SPKI)."""

    key: ec.EllipticCurvePrivateKey
    key_b64: str
    log_id_b64: str

    @property
    def spki_der(self) -> bytes:
        return base64.b64decode(self.key_b64)

    @property
    def log_id(self) -> bytes:
        return base64.b64decode(self.log_id_b64)


_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def signer_from_key(key: ec.EllipticCurvePrivateKey) -> TestSigner:
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return TestSigner(
        key,
        base64.b64encode(spki).decode("ascii"),
        base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii"),
    )


def make_test_signer(seed: int = 0) -> TestSigner:
    """A P-256 key derived from ``seed``: a replay subprocess and its test share it."""
    scalar = int.from_bytes(hashlib.sha256(f"certstream-test-log/{seed}".encode()).digest(), "big")
    return signer_from_key(ec.derive_private_key(scalar % (_P256_ORDER - 1) + 1, ec.SECP256R1()))
