"""static-ct-api (tiled log) helpers: tile paths, data-tile decoding, hash checks, gzip.

``parse_data_tile``, ``read_data_tile`` and their results come from ``certstream._fast`` (the
compiled ``_leaf`` or its pure twin).  Everything else here is small enough that C would not
help.  The hash tiles that authenticate data tiles are ``certstream.core.merkle``'s.

Paths follow C2SP tlog-tiles: the tile number is split into 3-digit groups, every group but
the last prefixed with ``x`` (``1234067`` → ``x001/x234/067``), and a partial tile of width
``W`` gets ``.p/W``.
"""

from __future__ import annotations

import zlib

from certstream._fast import BadLeaf, TileLeaf, TileRead, parse_data_tile, read_data_tile
from certstream.errors import DecodeError, LocalProtocolError

__all__ = [
    "TILE_WIDTH",
    "BadLeaf",
    "TileLeaf",
    "TileRead",
    "check_leaf_hashes",
    "data_tile_path",
    "data_tiles_for",
    "hash_tile_path",
    "issuer_path",
    "maybe_gunzip",
    "parse_data_tile",
    "read_data_tile",
    "tile_path",
]

TILE_WIDTH = 256
_HASH_LEN = 32
_GZIP_MAGIC = b"\x1f\x8b"


def tile_path(n: int, width: int | None = None) -> str:
    """The ``<N>[.p/<W>]`` part of a tile URL: ``tile_path(1234, 5) == "x001/234.p/5"``."""
    if n < 0:
        raise LocalProtocolError(f"tile number must be >= 0, not {n}")
    groups = []
    while True:
        groups.append(f"{n % 1000:03d}")
        n //= 1000
        if n == 0:
            break
    path = "/".join("x" + g for g in reversed(groups[1:]))
    path = f"{path}/{groups[0]}" if path else groups[0]
    if width is None or width == TILE_WIDTH:
        return path
    if not 1 <= width < TILE_WIDTH:
        raise LocalProtocolError(f"partial tile width must be 1..255, not {width}")
    return f"{path}.p/{width}"


def data_tile_path(n: int, width: int | None = None) -> str:
    """``tile/data/<N>[.p/<W>]``, relative to the monitoring prefix."""
    return "tile/data/" + tile_path(n, width)


def hash_tile_path(level: int, n: int, width: int | None = None) -> str:
    """``tile/<L>/<N>[.p/<W>]``, relative to the monitoring prefix."""
    if not 0 <= level <= 63:
        raise LocalProtocolError(f"tile level must be 0..63, not {level}")
    return f"tile/{level}/" + tile_path(n, width)


def issuer_path(fingerprint: bytes) -> str:
    """``issuer/<lowercase hex SHA-256>``, relative to the monitoring prefix."""
    if len(fingerprint) != _HASH_LEN:
        raise LocalProtocolError(f"issuer fingerprint must be 32 bytes, not {len(fingerprint)}")
    return "issuer/" + fingerprint.hex()


def data_tiles_for(start: int, size: int) -> list[tuple[int, int | None]]:
    """The data tiles that hold leaves ``start .. size-1``, as ``(N, width or None)``.

    ``width`` is ``None`` for a full tile and ``size % 256`` for the last, partial one.
    The caller skips the leaves below ``start`` in the first tile.
    """
    if not 0 <= start <= size:
        raise LocalProtocolError(f"need 0 <= start <= size, got start={start} size={size}")
    tiles: list[tuple[int, int | None]] = []
    for n in range(start // TILE_WIDTH, (size + TILE_WIDTH - 1) // TILE_WIDTH):
        full = (n + 1) * TILE_WIDTH <= size
        tiles.append((n, None if full else size % TILE_WIDTH))
    return tiles


def check_leaf_hashes(leaves: list[TileLeaf], hash_tile: bytes) -> None:
    """Check each leaf's hash against its slot in the matching level-0 hash tile.

    ``leaves`` are those of one data tile (``leaves[0]`` in slot 0); ``hash_tile`` may be
    wider than the data tile (a full hash tile for a partial data tile).
    """
    if len(hash_tile) % _HASH_LEN:
        raise DecodeError(f"hash tile: length {len(hash_tile)} is not a multiple of 32")
    if len(hash_tile) < len(leaves) * _HASH_LEN:
        raise DecodeError(
            f"hash tile: {len(hash_tile) // _HASH_LEN} hashes for {len(leaves)} leaves"
        )
    for slot, leaf in enumerate(leaves):
        want = hash_tile[slot * _HASH_LEN : (slot + 1) * _HASH_LEN]
        if leaf.leaf_hash() != want:
            raise DecodeError(
                f"index {leaf.index}: leaf hash does not match the hash tile", index=leaf.index
            )


def maybe_gunzip(body: bytes, limit: int) -> bytes:
    """Return ``body``, gunzipped first if it starts with the gzip magic ``1f 8b``.

    Logs may gzip tiles without being asked, and a real data tile starts with a millisecond
    timestamp whose first byte is 0, so the magic is unambiguous.  The output is capped at
    ``limit`` bytes (a gzip bomb is a ``DecodeError``, not an out-of-memory).  Concatenated
    gzip members are joined, as gzip itself does.
    """
    if limit < 0:
        raise LocalProtocolError(f"limit must be >= 0, not {limit}")
    if not body.startswith(_GZIP_MAGIC):
        if len(body) > limit:
            raise DecodeError(f"body of {len(body)} bytes is over the limit of {limit}")
        return body
    out: list[bytes] = []
    size = 0
    data = body
    try:
        while True:
            d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            chunk = d.decompress(data, limit - size + 1)
            size += len(chunk)
            if size > limit:
                raise DecodeError(f"gzip body inflates past the limit of {limit} bytes")
            out.append(chunk)
            if not d.eof:
                # Output stopped short of the cap, so the input ran out mid-stream.
                raise DecodeError("gzip body is truncated")
            data = d.unused_data
            if not data:
                break
            if not data.startswith(_GZIP_MAGIC):
                raise DecodeError(f"gzip body has {len(data)} trailing bytes")
    except zlib.error as exc:
        raise DecodeError(f"gzip body is corrupt: {exc}") from None
    return b"".join(out)
