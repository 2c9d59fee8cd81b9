"""RFC 6962 Merkle hashes over tlog-tiles hash tiles: a checkpoint's root from the tiles at
its right edge, and the authentication of the data tiles below it.

Theory of operation
-------------------
A hash tile at level ``L`` holds up to 256 hashes of Merkle height ``8·L``: hash ``j`` of
tile ``N`` is the root of the ``256**L`` leaves from ``(N·256 + j)·256**L`` on (level 0
holds the leaf hashes themselves).  A tree of ``size`` leaves has, at each level, the
nodes ``0 .. (size >> 8L) - 1``; the last ``(size >> 8L) % 256`` of them sit in the
*edge* tile of that level (a partial tile, ``tile/L/N.p/W``).  RFC 6962 splits a tree
into perfect subtrees by the bits of its size, largest first, and the bits ``8L .. 8L+7``
of the size are exactly the runs of nodes in the edge tile of level ``L``.  So the edge
tiles of every level give the root (``root_from_edges``): fetching them (a few kilobytes,
and they only change when the tree crosses a multiple of ``256**L``) and comparing with
the checkpoint's signed root authenticates every hash in them.

A full data tile ``n`` is then checked in one comparison: the tree hash of its 256 leaf
hashes is node ``n`` of level 1, found in the level-1 edge tile or in a full level-1 tile
that is itself checked against level 2, and so on up to an edge (``TileTree.missing``
lists the full tiles to fetch, top down).  A partial data tile is the level-0 edge: each
leaf is compared with its own hash.  When a full tile does not match, its level-0 hash
tile (authenticated the same way) says which leaves are wrong.

Sans-IO: the caller fetches the tiles ``edge_tiles`` and ``TileTree.missing`` name and
hands their bodies in; nothing here reads a clock or does I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from certstream.errors import DecodeError, LocalProtocolError

__all__ = [
    "HASH_SIZE",
    "TileTree",
    "edge_tiles",
    "node_hash",
    "root_from_edges",
    "split_hashes",
    "tree_hash",
]

HASH_SIZE = 32
_WIDTH = 256
_FULL = _WIDTH * HASH_SIZE
_EMPTY_ROOT = hashlib.sha256(b"").digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """An interior node: SHA-256(0x01 ‖ left ‖ right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def tree_hash(hashes: Sequence[bytes]) -> bytes:
    """RFC 6962 Merkle Tree Hash over already-hashed leaves (any count; the empty tree is
    SHA-256 of nothing).  Pairs bottom-up, carrying an odd last node up unchanged: the same
    tree as the largest-power-of-two split."""
    if not hashes:
        return _EMPTY_ROOT
    level = list(hashes)
    sha = hashlib.sha256
    while len(level) > 1:
        nxt = [sha(b"\x01" + level[i] + level[i + 1]).digest()
               for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def split_hashes(body: bytes, count: int | None = None) -> list[bytes]:
    """The 32-byte hashes of a hash tile body (exactly ``count`` of them if given)."""
    if len(body) % HASH_SIZE or (count is not None and len(body) != count * HASH_SIZE):
        want = "a multiple of 32" if count is None else f"{count * HASH_SIZE}"
        raise DecodeError(f"hash tile: {len(body)} bytes, not {want}")
    return [body[i : i + HASH_SIZE] for i in range(0, len(body), HASH_SIZE)]


def edge_tiles(size: int) -> list[tuple[int, int, int]]:
    """``(level, tile number, width)`` of the edge tile of every level that has one, level 0
    first.  A level whose node count is a multiple of 256 has none."""
    if size < 0:
        raise LocalProtocolError(f"tree size must be >= 0, not {size}")
    out = []
    level = 0
    while nodes := size >> (8 * level):
        if nodes % _WIDTH:
            out.append((level, nodes // _WIDTH, nodes % _WIDTH))
        level += 1
    return out


def root_from_edges(size: int, edges: Mapping[int, bytes]) -> bytes:
    """The root of a tree of ``size`` leaves from its edge tiles (``edges[level]`` is the
    body of that level's edge tile, see ``edge_tiles``)."""
    parts: list[bytes] = []  # roots of the perfect subtrees, left to right
    for level, _n, width in reversed(edge_tiles(size)):
        body = edges.get(level)
        if body is None:
            raise LocalProtocolError(f"no edge tile for level {level}")
        hashes = split_hashes(body, width)
        pos = 0
        for bit in range(7, -1, -1):
            if width >> bit & 1:
                parts.append(tree_hash(hashes[pos : pos + (1 << bit)]))
                pos += 1 << bit
    if not parts:
        return _EMPTY_ROOT
    node = parts[-1]
    for left in reversed(parts[:-1]):
        node = node_hash(left, node)
    return node


class TileTree:
    """The hash tiles of one checkpoint that are known to match its root.

    ``edges`` maps each level of ``edge_tiles(size)`` to its tile's body; the constructor
    raises ``DecodeError`` if they do not hash to ``root``.  ``full`` holds full hash tiles
    already checked, by ``(level, tile number)``: they never change, so a follower passes
    the same dict to the tree of each new checkpoint (``max_full`` bounds it).
    """

    def __init__(
        self,
        size: int,
        root: bytes,
        edges: Mapping[int, bytes],
        full: dict[tuple[int, int], bytes] | None = None,
        max_full: int = 64,
    ) -> None:
        if root_from_edges(size, edges) != root:
            raise DecodeError(f"hash tiles: the edge of the tree of size {size} does not "
                              "hash to the checkpoint's root")
        self.size = size
        self._edges = {level: (n, edges[level]) for level, n, _w in edge_tiles(size)}
        self.full = {} if full is None else full
        self.max_full = max_full

    def node(self, level: int, index: int) -> bytes | None:
        """Hash ``index`` of level ``level`` if a checked tile holds it, else None."""
        n, slot = divmod(index, _WIDTH)
        edge = self._edges.get(level)
        body = edge[1] if edge is not None and edge[0] == n else self.full.get((level, n))
        if body is None or (slot + 1) * HASH_SIZE > len(body):
            return None
        return body[slot * HASH_SIZE : (slot + 1) * HASH_SIZE]

    def missing(self, level: int, index: int) -> list[tuple[int, int]]:
        """The full hash tiles ``(level, tile number)`` to fetch and ``add_full``, in this
        order, before ``node(level, index)`` is known; empty when it is."""
        if not 0 <= index < self.size >> (8 * level):
            raise LocalProtocolError(f"node {index} of level {level} is not in a tree of "
                                     f"size {self.size}")
        chain = []
        while self.node(level, index) is None:
            index //= _WIDTH
            chain.append((level, index))
            level += 1
        return chain[::-1]

    def add_full(self, level: int, n: int, body: bytes) -> None:
        """A full hash tile, checked against its node one level up (which must be known:
        add tiles in the order ``missing`` gives)."""
        parent = self.node(level + 1, n)
        if parent is None:
            raise LocalProtocolError(f"hash tile {level}/{n}: its parent is not known yet")
        key = (level + 1, n // _WIDTH)
        if key in self.full:  # in use: keep it over older tiles (least recently used goes)
            self.full[key] = self.full.pop(key)
        if tree_hash(split_hashes(body, _WIDTH)) != parent:
            raise DecodeError(f"hash tile {level}/{n} does not match the tree")
        if len(self.full) >= self.max_full:
            self.full.pop(next(iter(self.full)))
        self.full[(level, n)] = body
