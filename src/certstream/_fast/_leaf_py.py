"""CT leaf and data-tile decoders: the pure-Python twin of ``_leaf.pyx``.

Two binary layouts share most of their structure:

* RFC 6962 ``get-entries``: a ``MerkleTreeLeaf`` (``leaf_input``) plus ``extra_data``, which
  holds the issuer chain (and, for precerts, the full pre-certificate).
* static-ct-api data tiles: ``TileLeaf`` records back to back.  The first part of each is the
  same ``TimestampedEntry`` as in a ``MerkleTreeLeaf``, but with a ``leaf_index`` extension;
  the chain is a list of SHA-256 fingerprints that the caller resolves.

Both decoders are strict: every length must fit inside its parent and nothing may be left
over, because a length that does not add up means we are reading garbage, and garbage must
never reach the certificate parser as a plausible certificate.  Every failure is a
``DecodeError`` naming the log index and what was wrong; the compiled twin raises the same
messages, which the tests check.
"""

from __future__ import annotations

import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from certstream.core.model import PRECERT_ENTRY, X509_ENTRY, LogEntry
from certstream.errors import DecodeError, LocalProtocolError

__all__ = [
    "BadLeaf",
    "TileLeaf",
    "TileRead",
    "b64decode",
    "decode_entry",
    "decode_get_entries_fast",
    "leaf_span",
    "parse_data_tile",
    "read_data_tile",
]

_LEAF_INDEX_EXT = 0  # static-ct-api ExtensionType leaf_index
_FINGERPRINT_LEN = 32


@dataclass(frozen=True, slots=True)
class TileLeaf:
    """One entry of a static-ct-api data tile, before its chain is resolved.

    ``cert_der`` and ``tbs_der`` mean what they mean on ``LogEntry`` (for a precert,
    ``cert_der`` is the ``pre_certificate`` and ``tbs_der`` the TBSCertificate of the leaf).
    ``fingerprints`` are the SHA-256 hashes of the issuer certificates, in log order.
    ``merkle_leaf`` is ``00 00 ‖ TimestampedEntry``, leaf_index extension included, so that
    ``leaf_hash()`` equals the entry's slot in the level-0 hash tile.
    """

    index: int
    timestamp: int
    entry_type: int
    cert_der: bytes
    tbs_der: bytes | None
    issuer_key_hash: bytes | None
    fingerprints: tuple[bytes, ...]
    merkle_leaf: bytes

    @property
    def pre_certificate(self) -> bytes | None:
        return self.cert_der if self.entry_type == PRECERT_ENTRY else None

    def leaf_hash(self) -> bytes:
        """RFC 6962 leaf hash: SHA-256(0x00 || MerkleTreeLeaf)."""
        return hashlib.sha256(b"\x00" + self.merkle_leaf).digest()

    def to_entry(self, issuers: Mapping[bytes, bytes], missing_ok: bool = False) -> LogEntry:
        """The ``LogEntry`` for this leaf, its chain looked up in ``issuers`` (fingerprint→DER).

        A fingerprint missing from ``issuers`` is a ``DecodeError`` reported against this
        entry; with ``missing_ok`` it is left out of the chain instead (an issuer the log
        cannot serve: the entry goes out with the chain it has).
        """
        chain = []
        for fp in self.fingerprints:
            der = issuers.get(fp)
            if der is None:
                if missing_ok:
                    continue
                raise DecodeError(
                    f"index {self.index}: issuer {fp.hex()} is not available", index=self.index
                )
            chain.append(der)
        return LogEntry(
            index=self.index,
            timestamp=self.timestamp,
            entry_type=self.entry_type,
            cert_der=self.cert_der,
            tbs_der=self.tbs_der,
            issuer_key_hash=self.issuer_key_hash,
            chain=tuple(chain),
            merkle_leaf=self.merkle_leaf,
        )


def _fail(index: int, what: str) -> DecodeError:
    return DecodeError(f"index {index}: {what}", index=index)


def _opaque24(buf: bytes, pos: int, end: int, what: str, index: int) -> tuple[bytes, int]:
    """Read ``uint24 length ‖ bytes`` ending at or before ``end``; empty is an error."""
    if pos + 3 > end:
        raise _fail(index, f"{what}: length truncated")
    n = (buf[pos] << 16) | (buf[pos + 1] << 8) | buf[pos + 2]
    pos += 3
    if n == 0:
        # ASN.1Cert and TBSCertificate are opaque<1..2^24-1>.
        raise _fail(index, f"{what}: empty")
    if pos + n > end:
        raise _fail(index, f"{what}: length {n} overruns the data")
    return buf[pos : pos + n], pos + n


def _chain24(
    buf: bytes, pos: int, end: int, what: str, index: int
) -> tuple[tuple[bytes, ...], int]:
    """Read ``uint24 total ‖ (uint24 length ‖ DER)*``; the certificates must fill ``total``."""
    if pos + 3 > end:
        raise _fail(index, f"{what}: length truncated")
    total = (buf[pos] << 16) | (buf[pos + 1] << 8) | buf[pos + 2]
    pos += 3
    stop = pos + total
    if stop > end:
        raise _fail(index, f"{what}: length {total} overruns the data")
    certs: list[bytes] = []
    while pos < stop:
        cert, pos = _opaque24(buf, pos, stop, f"{what}[{len(certs)}]", index)
        certs.append(cert)
    return tuple(certs), pos


def _timestamped_entry(
    buf: bytes, pos: int, end: int, what: str, index: int
) -> tuple[int, int, bytes, bytes | None, int]:
    """Read a TimestampedEntry up to (not including) its extensions.

    Returns (timestamp, entry_type, cert or TBS, issuer_key_hash, position).
    """
    if pos + 10 > end:
        raise _fail(index, f"{what}: truncated header")
    timestamp = int.from_bytes(buf[pos : pos + 8], "big")
    entry_type = (buf[pos + 8] << 8) | buf[pos + 9]
    pos += 10
    if entry_type == X509_ENTRY:
        cert, pos = _opaque24(buf, pos, end, f"{what}: certificate", index)
        return timestamp, entry_type, cert, None, pos
    if entry_type == PRECERT_ENTRY:
        if pos + 32 > end:
            raise _fail(index, f"{what}: issuer_key_hash truncated")
        ikh = buf[pos : pos + 32]
        tbs, pos = _opaque24(buf, pos + 32, end, f"{what}: tbs_certificate", index)
        return timestamp, entry_type, tbs, ikh, pos
    raise _fail(index, f"{what}: unknown entry_type {entry_type}")


def b64decode(text: str) -> bytes:
    """Strict base64 (``binascii.Error`` on anything but the alphabet and final padding)."""
    return binascii.a2b_base64(text, strict_mode=True)


def decode_get_entries_fast(
    body: bytes, start: int
) -> tuple[list[LogEntry], list[DecodeError]] | None:
    """The compiled twin reads plain get-entries bodies without json; here every body is
    left to the caller's json path (None), which is as fast as Python gets."""
    return None


def decode_entry(index: int, leaf_input: bytes, extra_data: bytes) -> LogEntry:
    """Decode one RFC 6962 get-entries item into a ``LogEntry`` (``index`` is its log index)."""
    if type(leaf_input) is not bytes:
        leaf_input = bytes(leaf_input)
    if type(extra_data) is not bytes:
        extra_data = bytes(extra_data)
    end = len(leaf_input)
    if end < 2:
        raise _fail(index, "leaf_input: truncated header")
    if leaf_input[0] != 0:
        raise _fail(index, f"leaf_input: unknown version {leaf_input[0]}")
    if leaf_input[1] != 0:
        raise _fail(index, f"leaf_input: unknown leaf_type {leaf_input[1]}")
    timestamp, entry_type, body, ikh, pos = _timestamped_entry(
        leaf_input, 2, end, "leaf_input", index
    )
    # CtExtensions: always empty on RFC 6962 logs, but consumed rather than assumed.
    if pos + 2 > end:
        raise _fail(index, "leaf_input: extensions length truncated")
    ext_len = (leaf_input[pos] << 8) | leaf_input[pos + 1]
    pos += 2 + ext_len
    if pos > end:
        raise _fail(index, f"leaf_input: extensions length {ext_len} overruns the data")
    if pos != end:
        raise _fail(index, f"leaf_input: {end - pos} trailing bytes")

    xend = len(extra_data)
    if entry_type == PRECERT_ENTRY:
        cert, xpos = _opaque24(extra_data, 0, xend, "extra_data: pre_certificate", index)
        chain, xpos = _chain24(extra_data, xpos, xend, "extra_data: precertificate_chain", index)
        tbs: bytes | None = body
    else:
        cert, tbs = body, None
        chain, xpos = _chain24(extra_data, 0, xend, "extra_data: certificate_chain", index)
    if xpos != xend:
        raise _fail(index, f"extra_data: {xend - xpos} trailing bytes")
    return LogEntry(
        index=index,
        timestamp=timestamp,
        entry_type=entry_type,
        cert_der=cert,
        tbs_der=tbs,
        issuer_key_hash=ikh,
        chain=chain,
        merkle_leaf=leaf_input,
    )


def _leaf_index(buf: bytes, pos: int, end: int, index: int) -> int:
    """Find the one leaf_index extension in the CtExtensions bytes ``buf[pos:end]``."""
    found = -1
    while pos < end:
        if pos + 3 > end:
            raise _fail(index, "tile leaf: extension header truncated")
        ext_type = buf[pos]
        n = (buf[pos + 1] << 8) | buf[pos + 2]
        pos += 3
        if pos + n > end:
            raise _fail(index, f"tile leaf: extension {ext_type} length {n} overruns")
        if ext_type == _LEAF_INDEX_EXT:
            if n != 5:
                raise _fail(index, f"tile leaf: leaf_index extension has length {n}, not 5")
            if found >= 0:
                raise _fail(index, "tile leaf: duplicate leaf_index extension")
            found = int.from_bytes(buf[pos : pos + 5], "big")
        pos += n
    if found < 0:
        raise _fail(index, "tile leaf: no leaf_index extension")
    return found


def _tile_leaf(data: bytes, pos: int, end: int, index: int) -> tuple[TileLeaf, int]:
    """Decode the TileLeaf at ``pos``, strictly; returns it and the position after it."""
    start = pos
    timestamp, entry_type, body, ikh, pos = _timestamped_entry(data, pos, end, "tile leaf", index)
    if pos + 2 > end:
        raise _fail(index, "tile leaf: extensions length truncated")
    ext_len = (data[pos] << 8) | data[pos + 1]
    pos += 2
    if pos + ext_len > end:
        raise _fail(index, f"tile leaf: extensions length {ext_len} overruns the data")
    leaf_index = _leaf_index(data, pos, pos + ext_len, index)
    pos += ext_len
    merkle_leaf = b"\x00\x00" + data[start:pos]
    if entry_type == PRECERT_ENTRY:
        cert, pos = _opaque24(data, pos, end, "tile leaf: pre_certificate", index)
        tbs: bytes | None = body
    else:
        cert, tbs = body, None
    if pos + 2 > end:
        raise _fail(index, "tile leaf: chain length truncated")
    chain_len = (data[pos] << 8) | data[pos + 1]
    pos += 2
    if chain_len % _FINGERPRINT_LEN:
        raise _fail(index, f"tile leaf: chain length {chain_len} is not a multiple of 32")
    if pos + chain_len > end:
        raise _fail(index, f"tile leaf: chain length {chain_len} overruns the data")
    fps = tuple(data[p : p + _FINGERPRINT_LEN] for p in range(pos, pos + chain_len, 32))
    pos += chain_len
    if leaf_index != index:
        raise _fail(index, f"tile leaf: leaf_index {leaf_index} at position of {index}")
    leaf = TileLeaf(
        index=index,
        timestamp=timestamp,
        entry_type=entry_type,
        cert_der=cert,
        tbs_der=tbs,
        issuer_key_hash=ikh,
        fingerprints=fps,
        merkle_leaf=merkle_leaf,
    )
    return leaf, pos


def parse_data_tile(data: bytes, first_index: int, expected: int) -> list[TileLeaf]:
    """Decode a static-ct-api data tile holding exactly ``expected`` leaves, strictly: the
    first bad leaf fails the whole tile (``read_data_tile`` reads on past it).

    ``first_index`` is the log index of the first leaf (``N * 256`` for tile ``N``); each
    leaf's ``leaf_index`` extension must equal its position.
    """
    if not 1 <= expected <= 256:
        raise LocalProtocolError(f"a data tile holds 1..256 leaves, not {expected}")
    if type(data) is not bytes:
        data = bytes(data)
    end = len(data)
    pos = 0
    leaves = []
    for i in range(expected):
        index = first_index + i
        if pos >= end:
            raise _fail(index, f"data tile: ends after {i} of {expected} leaves")
        leaf, pos = _tile_leaf(data, pos, end, index)
        leaves.append(leaf)
    if pos != end:
        last = first_index + expected - 1
        raise _fail(last, f"data tile: {end - pos} trailing bytes after {expected} leaves")
    return leaves


@dataclass(frozen=True, slots=True)
class BadLeaf:
    """A leaf of a data tile that could be framed but not decoded: skipped alone.

    ``merkle_leaf`` (``00 00 ‖ TimestampedEntry``) is kept so that the leaf can still be
    checked against its hash tile: a leaf the log really stored is skipped at once, one
    that does not match is a corrupted copy, fetched again.
    """

    index: int
    error: DecodeError
    merkle_leaf: bytes


@dataclass(frozen=True, slots=True)
class TileRead:
    """A data tile read leaf by leaf (``read_data_tile``).

    ``leaves`` decoded and ``bad`` did not, each at its own index; together they are the
    first ``framed`` positions of the tile.  ``broken`` says why the rest could not be
    read (its lengths do not add up), or that bytes were left over after every leaf
    (then ``framed`` is the whole tile); None when the tile was whole.
    """

    leaves: list[TileLeaf]
    bad: list[BadLeaf]
    framed: int
    broken: DecodeError | None


def read_data_tile(data: bytes, first_index: int, expected: int) -> TileRead:
    """Decode a data tile of ``expected`` leaves leaf by leaf: a leaf that does not decode
    but whose lengths add up (an unknown entry_type, a wrong leaf_index, an empty
    certificate...) is a ``BadLeaf`` and the next one is read; the first leaf that cannot
    be framed ends the reading (``broken``)."""
    if not 1 <= expected <= 256:
        raise LocalProtocolError(f"a data tile holds 1..256 leaves, not {expected}")
    if type(data) is not bytes:
        data = bytes(data)
    end = len(data)
    pos = 0
    leaves: list[TileLeaf] = []
    bad: list[BadLeaf] = []
    for i in range(expected):
        index = first_index + i
        if pos >= end:
            return TileRead(leaves, bad, i, _fail(index, f"data tile: ends after {i} of "
                                                         f"{expected} leaves"))
        start = pos
        try:
            leaf, pos = _tile_leaf(data, pos, end, index)
        except DecodeError as exc:
            span = leaf_span(data, start, end, index, i == expected - 1)
            if span is None:
                return TileRead(leaves, bad, i, exc)
            bad.append(BadLeaf(index, exc, b"\x00\x00" + data[start : span[0]]))
            pos = span[1]
            continue
        leaves.append(leaf)
    if pos != end:
        last = first_index + expected - 1
        return TileRead(leaves, bad, expected, _fail(
            last, f"data tile: {end - pos} trailing bytes after {expected} leaves"))
    return TileRead(leaves, bad, expected, None)


def _skip24(data: bytes, pos: int, end: int) -> int:
    """The position after ``uint24 length ‖ bytes`` at ``pos``, or -1 if it overruns (or
    ``pos`` is -1 already)."""
    if pos < 0 or pos + 3 > end:
        return -1
    pos += 3 + ((data[pos] << 16) | (data[pos + 1] << 8) | data[pos + 2])
    return pos if pos <= end else -1


def _skip16(data: bytes, pos: int, end: int) -> int:
    """The same for ``uint16 length ‖ bytes``."""
    if pos < 0 or pos + 2 > end:
        return -1
    pos += 2 + ((data[pos] << 8) | data[pos + 1])
    return pos if pos <= end else -1


def leaf_span(
    data: bytes, start: int, end: int, index: int, last: bool
) -> tuple[int, int] | None:
    """Where the TileLeaf at ``start`` (log index ``index``) ends, by its lengths alone:
    ``(end of its TimestampedEntry, end of the leaf)``, or None if they do not add up.

    Both twins call this one function on the slow path (after a leaf failed to decode), so
    they skip exactly the same bytes.  For a known entry_type the lengths say it all.  An
    unknown entry_type has no known layout: the TimestampedEntry is taken to end with its
    ``leaf_index`` extension (``00 08 ‖ 00 0005 ‖ index``, the bytes every static-ct leaf
    ends that part with), followed by the tail of an x509 or a precert leaf; a guess is
    kept only if the next leaf then decodes with the next index (or, for the ``last``
    leaf, the data ends exactly there).
    """
    if start + 10 > end:
        return None
    entry_type = (data[start + 8] << 8) | data[start + 9]
    if entry_type in (X509_ENTRY, PRECERT_ENTRY):
        precert = entry_type == PRECERT_ENTRY
        # TimestampedEntry: [issuer_key_hash ‖] body ‖ extensions; then [pre_certificate ‖]
        # the fingerprints.
        te_end = _skip16(data, _skip24(data, start + 10 + (32 if precert else 0), end), end)
        pos = _skip24(data, te_end, end) if precert else te_end
        pos = _skip16(data, pos, end)
        return None if pos < 0 else (te_end, pos)
    marker = b"\x00\x08\x00\x00\x05" + index.to_bytes(5, "big")
    q = data.find(marker, start + 10, end)
    while q >= 0:
        te_end = q + len(marker)
        for precert_tail in (False, True):
            pos = _skip16(data, _skip24(data, te_end, end) if precert_tail else te_end, end)
            if pos < 0:
                continue
            if pos == end if last else _next_leaf_fits(data, pos, end, index + 1):
                return te_end, pos
        q = data.find(marker, q + 1, end)
    return None


def _next_leaf_fits(data: bytes, pos: int, end: int, index: int) -> bool:
    try:
        _tile_leaf(data, pos, end, index)
    except DecodeError:
        return False
    return True
