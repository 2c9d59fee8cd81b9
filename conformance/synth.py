"""Synthesise CT test data from recorded entries: unique entries, TileLeafs, a test log key.

The recorded corpora are small (live40 has 40 entries), but load and dedup tests need many
*distinct* entries.  ``unique_entries`` rewrites the serial number of each leaf certificate in
place (same length, so every enclosing DER length stays valid) and, for precerts, rewrites the
same serial in both the leaf's TBSCertificate and the ``pre_certificate``, so that a decoder
sees a consistent entry whose certificate hash no earlier entry had.  Signatures no longer
verify; nothing in certstream checks certificate signatures.

``tile_leaves_from_entries`` converts RFC 6962 get-entries entries into static-ct-api TileLeaf
bytes (the recipe of the static-ct-api spec: reuse the TimestampedEntry, add the leaf_index
extension, replace the chain by SHA-256 fingerprints).  ``split_tile_leaves``, ``leaf_hash``
and ``merkle_root`` are the few tile and tree helpers the replay log needs to serve tiles.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Mapping, Sequence
from typing import NamedTuple, overload

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = [
    "MerkleFrontier",
    "TestSigner",
    "UniqueEntryLog",
    "leaf_hash",
    "make_test_signer",
    "merkle_root",
    "rewrite_serial",
    "split_tile_leaves",
    "tile_leaves_from_entries",
    "unique_entries",
]

X509_ENTRY = 0
PRECERT_ENTRY = 1


class SynthError(ValueError):
    """Input that these helpers cannot convert (they only accept well-formed entries)."""


# --- minimal DER: just enough to find the serial number --------------------------------


def _der_header(buf: bytes, pos: int) -> tuple[int, int, int]:
    """Return (tag, content_start, content_end) of the DER element at ``pos``."""
    if pos + 2 > len(buf):
        raise SynthError("DER: truncated header")
    tag = buf[pos]
    first = buf[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0 or n > 4 or pos + n > len(buf):
            raise SynthError("DER: bad length")
        length = int.from_bytes(buf[pos : pos + n], "big")
        pos += n
    if pos + length > len(buf):
        raise SynthError("DER: element runs past its container")
    return tag, pos, pos + length


def _serial_span_in_tbs(der: bytes, tbs_pos: int) -> tuple[int, int]:
    """(start, end) of the serial INTEGER's content bytes in the TBSCertificate at tbs_pos."""
    tag, pos, _ = _der_header(der, tbs_pos)
    if tag != 0x30:
        raise SynthError("TBSCertificate is not a SEQUENCE")
    tag, start, end = _der_header(der, pos)
    if tag == 0xA0:  # explicit [0] version: the serial follows it
        tag, start, end = _der_header(der, end)
    if tag != 0x02 or end == start:
        raise SynthError("no serialNumber INTEGER")
    return start, end


def _serial_span(der: bytes, *, is_tbs: bool) -> tuple[int, int]:
    if is_tbs:
        return _serial_span_in_tbs(der, 0)
    tag, pos, _ = _der_header(der, 0)
    if tag != 0x30:
        raise SynthError("Certificate is not a SEQUENCE")
    return _serial_span_in_tbs(der, pos)


def rewrite_serial(der: bytes, serial: bytes, *, is_tbs: bool = False) -> bytes:
    """Return ``der`` with the serial's content bytes replaced by ``serial`` (same length)."""
    start, end = _serial_span(der, is_tbs=is_tbs)
    if end - start != len(serial):
        raise SynthError("replacement serial must keep the encoded length")
    return der[:start] + serial + der[end:]


def _new_serial(length: int, seed: int, k: int, attempt: int) -> bytes:
    digest = b""
    counter = 0
    while len(digest) < length:
        label = f"certstream-synth/{seed}/{k}/{attempt}/{counter}"
        digest += hashlib.sha256(label.encode()).digest()
        counter += 1
    out = bytearray(digest[:length])
    # Keep the INTEGER positive and minimally encoded: a first byte in 0x01..0x7f is valid
    # DER whatever follows it.
    out[0] = (out[0] % 0x7F) + 1
    return bytes(out)


# --- RFC 6962 leaf and extra_data pieces ------------------------------------------------


def _u24(buf: bytes, pos: int) -> tuple[bytes, int]:
    if pos + 3 > len(buf):
        raise SynthError("truncated uint24 length")
    n = int.from_bytes(buf[pos : pos + 3], "big")
    end = pos + 3 + n
    if end > len(buf):
        raise SynthError("uint24-prefixed field runs past the end")
    return buf[pos + 3 : end], end


def _split_leaf_input(leaf: bytes) -> tuple[bytes, int, int, int]:
    """Return (timestamp bytes, entry_type, body_start, body_end) of a MerkleTreeLeaf."""
    if len(leaf) < 12 or leaf[0] != 0 or leaf[1] != 0:
        raise SynthError("not a v1 timestamped_entry leaf")
    entry_type = int.from_bytes(leaf[10:12], "big")
    pos = 12
    if entry_type == X509_ENTRY:
        _, end = _u24(leaf, pos)
    elif entry_type == PRECERT_ENTRY:
        _, end = _u24(leaf, pos + 32)
    else:
        raise SynthError(f"unknown entry_type {entry_type}")
    return leaf[2:10], entry_type, pos, end


def _chain_certs(buf: bytes, pos: int) -> list[bytes]:
    total, end = _u24(buf, pos)
    certs: list[bytes] = []
    p = 0
    while p < len(total):
        der, p = _u24(total, p)
        certs.append(der)
    if end != len(buf):
        raise SynthError("trailing bytes after certificate_chain")
    return certs


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _rewrite_entry(
    entry: Mapping[str, str], k: int, seed: int, attempt: int
) -> tuple[dict[str, str], bytes]:
    leaf = base64.b64decode(entry["leaf_input"], validate=True)
    extra = base64.b64decode(entry["extra_data"], validate=True)
    _, entry_type, body, end = _split_leaf_input(leaf)
    if entry_type == X509_ENTRY:
        cert = leaf[body + 3 : end]
        start, stop = _serial_span(cert, is_tbs=False)
        serial = _new_serial(stop - start, seed, k, attempt)
        new_cert = rewrite_serial(cert, serial)
        new_leaf = leaf[: body + 3] + new_cert + leaf[end:]
        return {"leaf_input": _b64(new_leaf), "extra_data": _b64(extra)}, new_cert
    tbs = leaf[body + 35 : end]
    precert, after = _u24(extra, 0)
    start, stop = _serial_span(tbs, is_tbs=True)
    pstart, pstop = _serial_span(precert, is_tbs=False)
    if stop - start != pstop - pstart:
        raise SynthError("precert and its TBS carry serials of different lengths")
    serial = _new_serial(stop - start, seed, k, attempt)
    new_leaf = leaf[: body + 35] + rewrite_serial(tbs, serial, is_tbs=True) + leaf[end:]
    new_precert = rewrite_serial(precert, serial)
    new_extra = len(new_precert).to_bytes(3, "big") + new_precert + extra[after:]
    return {"leaf_input": _b64(new_leaf), "extra_data": _b64(new_extra)}, new_precert


def unique_entries(base: Sequence[Mapping[str, str]], n: int, seed: int) -> list[dict[str, str]]:
    """Make ``n`` get-entries entries, cycling through ``base``, each with a fresh serial.

    Every returned entry's displayed certificate (the x509 leaf, or the precert's
    ``pre_certificate``) has a SHA-256 no other returned entry has, and the leaf inputs all
    differ too.  The same ``(base, n, seed)`` always gives the same entries; different seeds
    give disjoint sets (up to hash collisions, which are re-drawn).
    """
    if not base:
        raise SynthError("unique_entries needs at least one base entry")
    out: list[dict[str, str]] = []
    seen: set[bytes] = set()
    for k in range(n):
        src = base[k % len(base)]
        attempt = 0
        while True:
            entry, cert = _rewrite_entry(src, k, seed, attempt)
            digest = hashlib.sha256(cert).digest()
            if digest not in seen:
                break
            attempt += 1  # a 1-byte serial can collide; draw again
            if attempt > 1000:
                raise SynthError("cannot make a distinct serial for this certificate")
        seen.add(digest)
        out.append(entry)
    return out


class UniqueEntryLog(Sequence[dict[str, str]]):
    """``n`` unique entries like ``unique_entries``, made when asked for, not all at once.

    A long run (the soak serves ~750 entries/s for 10 minutes: 450,000 entries, 2 GB of
    base64) cannot hold them all.  Entry ``k`` is ``base[k % len(base)]`` with the serial
    that ``unique_entries`` gives it at its first draw; serials are 8 bytes or more in the
    recorded bases, so two of them collide with negligible probability (the soak's clients
    would see the dedup drop it).  The last ``cache`` entries made are kept, since a log
    serves the same index to its tree-hash and to get-entries.
    """

    def __init__(self, base: Sequence[Mapping[str, str]], n: int, seed: int,
                 cache: int = 4096) -> None:
        if not base:
            raise SynthError("UniqueEntryLog needs at least one base entry")
        self.base = list(base)
        self.n = n
        self.seed = seed
        self._cache: dict[int, dict[str, str]] = {}
        self._cache_size = cache

    def __len__(self) -> int:
        return self.n

    @overload
    def __getitem__(self, k: int) -> dict[str, str]: ...
    @overload
    def __getitem__(self, k: slice) -> list[dict[str, str]]: ...

    def __getitem__(self, k: int | slice) -> dict[str, str] | list[dict[str, str]]:
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(self.n))]
        if not 0 <= k < self.n:
            raise IndexError(k)
        entry = self._cache.get(k)
        if entry is None:
            entry = _rewrite_entry(self.base[k % len(self.base)], k, self.seed, 0)[0]
            if len(self._cache) >= self._cache_size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[k] = entry
        return entry


# --- static-ct-api TileLeafs ----------------------------------------------------------


def leaf_index_extension(index: int) -> bytes:
    """The static-ct-api extensions field: uint16 length 8 ‖ type 0 ‖ uint16 5 ‖ uint40."""
    return b"\x00\x08\x00\x00\x05" + index.to_bytes(5, "big")


def tile_leaves_from_entries(
    entries: Sequence[Mapping[str, str]], first_index: int = 0
) -> tuple[list[bytes], dict[bytes, bytes]]:
    """Convert get-entries entries to TileLeaf bytes; entry k gets leaf_index first_index+k.

    Returns ``(tile_leaves, issuers)`` where ``issuers`` maps each chain certificate's
    SHA-256 (32 raw bytes) to its DER, ready for ``ReplayServer.add_static_log``.
    """
    leaves: list[bytes] = []
    issuers: dict[bytes, bytes] = {}
    for k, entry in enumerate(entries):
        leaf = base64.b64decode(entry["leaf_input"], validate=True)
        extra = base64.b64decode(entry["extra_data"], validate=True)
        ts, entry_type, body, end = _split_leaf_input(leaf)
        if leaf[end:] != b"\x00\x00":
            raise SynthError("RFC 6962 leaf with non-empty extensions or trailing bytes")
        te = ts + leaf[10:12] + leaf[body:end] + leaf_index_extension(first_index + k)
        tail = b""
        if entry_type == PRECERT_ENTRY:
            precert, after = _u24(extra, 0)
            tail = len(precert).to_bytes(3, "big") + precert
            chain = _chain_certs(extra, after)
        else:
            chain = _chain_certs(extra, 0)
        fps = b""
        for der in chain:
            fp = hashlib.sha256(der).digest()
            issuers[fp] = der
            fps += fp
        leaves.append(te + tail + struct.pack(">H", len(fps)) + fps)
    return leaves, issuers


def split_tile_leaves(data: bytes, unknown_as: int | None = None) -> list[tuple[bytes, bytes]]:
    """Split concatenated TileLeafs into ``(tile_leaf, timestamped_entry)`` pairs.

    A leaf whose entry_type the spec does not define is an error, or, with ``unknown_as``,
    laid out like that known type (how a test log stores a leaf of a future type).
    """
    out: list[tuple[bytes, bytes]] = []
    pos = 0
    while pos < len(data):
        start = pos
        if pos + 10 > len(data):
            raise SynthError("truncated TileLeaf")
        entry_type = int.from_bytes(data[pos + 8 : pos + 10], "big")
        if entry_type not in (X509_ENTRY, PRECERT_ENTRY) and unknown_as is not None:
            entry_type = unknown_as
        pos += 10
        if entry_type == X509_ENTRY:
            _, pos = _u24(data, pos)
        elif entry_type == PRECERT_ENTRY:
            _, pos = _u24(data, pos + 32)
        else:
            raise SynthError(f"unknown entry_type {entry_type}")
        if pos + 2 > len(data):
            raise SynthError("truncated extensions")
        pos += 2 + int.from_bytes(data[pos : pos + 2], "big")
        te_end = pos
        if entry_type == PRECERT_ENTRY:
            _, pos = _u24(data, pos)
        if pos + 2 > len(data):
            raise SynthError("truncated chain")
        pos += 2 + int.from_bytes(data[pos : pos + 2], "big")
        if pos > len(data):
            raise SynthError("chain runs past the end")
        out.append((data[start:pos], data[start:te_end]))
    return out


def leaf_hash(timestamped_entry: bytes) -> bytes:
    """RFC 6962 leaf hash of a TimestampedEntry: SHA-256(00 ‖ 00 00 ‖ entry)."""
    return hashlib.sha256(b"\x00\x00\x00" + timestamped_entry).digest()


def merkle_root(hashes: Sequence[bytes]) -> bytes:
    """RFC 6962 Merkle Tree Hash over leaf hashes (SHA-256 of "" for the empty tree)."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    level = list(hashes)
    # Bottom-up pairing, carrying an odd last node up unchanged: the same tree as
    # RFC 6962's largest-power-of-two split.
    while len(level) > 1:
        nxt = [
            hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest()
            for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


class MerkleFrontier:
    """Incremental RFC 6962 root: the roots of the perfect subtrees of the leaves so far.

    A growing replay log asks for the root of every new size; recomputing the whole tree
    each time is O(n), the frontier makes appends amortized O(1) and a root O(log n).
    """

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[tuple[int, bytes]] = []  # (height, subtree root), left to right

    def append(self, leaf_hash: bytes) -> None:
        self.size += 1
        height, node = 0, leaf_hash
        while self._stack and self._stack[-1][0] == height:
            _, left = self._stack.pop()
            node = hashlib.sha256(b"\x01" + left + node).digest()
            height += 1
        self._stack.append((height, node))

    def root(self) -> bytes:
        if not self._stack:
            return hashlib.sha256(b"").digest()
        node = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            node = hashlib.sha256(b"\x01" + left + node).digest()
        return node


# --- a deterministic test log key ----------------------------------------------------


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


def make_test_signer(seed: int = 0) -> TestSigner:
    """A P-256 key derived from ``seed``: a replay subprocess and its test share it."""
    scalar = int.from_bytes(hashlib.sha256(f"certstream-test-log/{seed}".encode()).digest(), "big")
    key = ec.derive_private_key(scalar % (_P256_ORDER - 1) + 1, ec.SECP256R1())
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return TestSigner(key, _b64(spki), _b64(hashlib.sha256(spki).digest()))
