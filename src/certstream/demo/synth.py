"""Synthesise CT data from recorded entries: unique entries, tile leaves, Merkle roots.

The recorded corpora are small (live40 has 40 entries), but a demo that runs forever, and
load and dedup tests, need many *distinct* entries.  ``rewrite_entry`` rewrites the serial
number of an entry's certificate in place (same length, so every enclosing DER length stays
valid) and, for precerts, rewrites the same serial in both the leaf's TBSCertificate and the
``pre_certificate``, so that a decoder sees a consistent entry whose certificate hash no
earlier entry had.  Signatures no longer verify; nothing in certstream checks certificate
signatures.  ``unique_entries`` makes a batch of them (``UniqueEntryLog`` as many as a long
run needs, each when it is asked for), ``with_timestamp`` moves an entry in time.

``tile_leaves_from_entries`` converts RFC 6962 get-entries entries into static-ct-api TileLeaf
bytes (the recipe of the static-ct-api spec: reuse the TimestampedEntry, add the leaf_index
extension, replace the chain by SHA-256 fingerprints), ``entries_from_tile_leaves`` goes back.
``split_tile_leaves``, ``leaf_hash``, ``merkle_root`` and ``MerkleFrontier`` are the few tile
and tree helpers a log serving tiles needs.

Pure functions over bytes: the demo log (``certstream.demo``), the conformance replay log and
the benchmarks share this one copy.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Mapping, Sequence
from typing import overload

__all__ = [
    "MerkleFrontier",
    "SynthError",
    "UniqueEntryLog",
    "entries_from_tile_leaves",
    "leaf_hash",
    "leaf_index_extension",
    "merkle_root",
    "rewrite_entry",
    "rewrite_serial",
    "serial_length",
    "split_tile_leaves",
    "tile_leaves_from_entries",
    "unique_entries",
    "widen_serial",
    "with_timestamp",
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


def rewrite_entry(
    entry: Mapping[str, str], k: int, seed: int, attempt: int = 0
) -> tuple[dict[str, str], bytes]:
    """``entry`` with serial number ``(seed, k, attempt)``; also the certificate shown for it
    (the x509 leaf, or the precert's ``pre_certificate``), whose hash identifies it."""
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
            entry, cert = rewrite_entry(src, k, seed, attempt)
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
            entry = rewrite_entry(self.base[k % len(self.base)], k, self.seed, 0)[0]
            if len(self._cache) >= self._cache_size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[k] = entry
        return entry


def with_timestamp(entry: Mapping[str, str], timestamp_ms: int) -> dict[str, str]:
    """``entry`` logged at ``timestamp_ms`` instead (the leaf's TimestampedEntry time)."""
    leaf = base64.b64decode(entry["leaf_input"], validate=True)
    _split_leaf_input(leaf)  # checks that it is a leaf at all
    new_leaf = leaf[:2] + timestamp_ms.to_bytes(8, "big") + leaf[10:]
    return {"leaf_input": _b64(new_leaf), "extra_data": entry["extra_data"]}


def serial_length(entry: Mapping[str, str]) -> int:
    """Bytes in the serial number of the entry's certificate (or precert TBS)."""
    leaf = base64.b64decode(entry["leaf_input"], validate=True)
    _, entry_type, body, end = _split_leaf_input(leaf)
    if entry_type == X509_ENTRY:
        start, stop = _serial_span(leaf[body + 3 : end], is_tbs=False)
    else:
        start, stop = _serial_span(leaf[body + 35 : end], is_tbs=True)
    return stop - start


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(raw),)) + raw


def _resize_serial_in_tbs(tbs: bytes, serial: bytes) -> bytes:
    tag, pos, end = _der_header(tbs, 0)
    if tag != 0x30 or end != len(tbs):
        raise SynthError("TBSCertificate is not one SEQUENCE")
    ipos = pos
    itag, _, iend = _der_header(tbs, ipos)
    if itag == 0xA0:  # explicit [0] version: the serial follows it
        ipos = iend
    itag, _, iend = _der_header(tbs, ipos)
    if itag != 0x02:
        raise SynthError("no serialNumber INTEGER")
    content = tbs[pos:ipos] + b"\x02" + _der_length(len(serial)) + serial + tbs[iend:end]
    return b"\x30" + _der_length(len(content)) + content


def _resize_serial(der: bytes, serial: bytes, *, is_tbs: bool) -> bytes:
    """``der`` with a serial of any length; the enclosing DER lengths are re-encoded."""
    if is_tbs:
        return _resize_serial_in_tbs(der, serial)
    tag, pos, end = _der_header(der, 0)
    if tag != 0x30 or end != len(der):
        raise SynthError("Certificate is not one SEQUENCE")
    _, _, tbs_end = _der_header(der, pos)
    content = _resize_serial_in_tbs(der[pos:tbs_end], serial) + der[tbs_end:end]
    return b"\x30" + _der_length(len(content)) + content


def widen_serial(entry: Mapping[str, str], length: int, seed: int) -> dict[str, str]:
    """``entry`` with a serial of ``length`` bytes (drawn from ``seed``), every length prefix
    fixed: an entry whose serial is too short to be made unique many times over (a 1-byte
    serial has 127 values) becomes a base that can."""
    leaf = base64.b64decode(entry["leaf_input"], validate=True)
    extra = base64.b64decode(entry["extra_data"], validate=True)
    _, entry_type, body, end = _split_leaf_input(leaf)
    serial = _new_serial(length, seed, 0, 0)
    if entry_type == X509_ENTRY:
        cert = _resize_serial(leaf[body + 3 : end], serial, is_tbs=False)
        new_leaf = leaf[:body] + len(cert).to_bytes(3, "big") + cert + leaf[end:]
        return {"leaf_input": _b64(new_leaf), "extra_data": _b64(extra)}
    tbs = _resize_serial(leaf[body + 35 : end], serial, is_tbs=True)
    new_leaf = leaf[: body + 32] + len(tbs).to_bytes(3, "big") + tbs + leaf[end:]
    precert, after = _u24(extra, 0)
    new_precert = _resize_serial(precert, serial, is_tbs=False)
    new_extra = len(new_precert).to_bytes(3, "big") + new_precert + extra[after:]
    return {"leaf_input": _b64(new_leaf), "extra_data": _b64(new_extra)}


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


def entries_from_tile_leaves(
    leaves: Sequence[bytes], issuers: Mapping[bytes, bytes]
) -> list[dict[str, str]]:
    """Convert TileLeafs back to get-entries entries (``tile_leaves_from_entries`` reversed):
    the leaf_index extension is dropped and each chain fingerprint replaced by the DER that
    ``issuers`` (SHA-256 -> DER) holds for it."""
    out: list[dict[str, str]] = []
    for tile_leaf in leaves:
        parts = split_tile_leaves(tile_leaf)
        if len(parts) != 1:
            raise SynthError("each leaf must be exactly one TileLeaf")
        entry_type = int.from_bytes(tile_leaf[8:10], "big")
        pos = 10
        _, pos = _u24(tile_leaf, pos if entry_type == X509_ENTRY else pos + 32)
        signed_end = pos
        pos += 2 + int.from_bytes(tile_leaf[pos : pos + 2], "big")  # extensions
        precert = b""
        if entry_type == PRECERT_ENTRY:
            start = pos
            _, pos = _u24(tile_leaf, pos)
            precert = tile_leaf[start:pos]
        n = int.from_bytes(tile_leaf[pos : pos + 2], "big")
        fps = tile_leaf[pos + 2 : pos + 2 + n]
        chain = b""
        for i in range(0, len(fps), 32):
            der = issuers.get(fps[i : i + 32])
            if der is None:
                raise SynthError(f"no issuer for fingerprint {fps[i : i + 32].hex()}")
            chain += len(der).to_bytes(3, "big") + der
        leaf_input = b"\x00\x00" + tile_leaf[:signed_end] + b"\x00\x00"
        extra = precert + len(chain).to_bytes(3, "big") + chain
        out.append({"leaf_input": _b64(leaf_input), "extra_data": _b64(extra)})
    return out


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
