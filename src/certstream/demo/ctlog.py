"""The demo CT logs: packaged recorded entries, made unique, growing at a steady rate for ever.

Each demo log serves one source of the packaged corpus (see ``certstream.demo.corpus``) as a
real log would, so that the real ingest follows it over HTTP exactly as it follows the
public logs:

* RFC 6962 logs answer ``ct/v1/get-sth`` (a tree head signed with the log's key over the
  Merkle root of the entries served) and ``ct/v1/get-entries`` (at most ``MAX_BATCH``
  entries, HTTP 400 outside the tree, as Trillian's CTFE does);
* static-ct-api logs answer ``checkpoint`` (a signed note over the root of their tile
  leaves), ``tile/data/<N>[.p/<W>]``, the hash tiles ``tile/<L>/<N>[.p/<W>]`` that tie
  the data tiles to that root (the follower checks every data tile with them), and
  ``issuer/<sha256>``.

Entry ``i`` of a log is base entry ``i % len(base)`` with a serial number of its own
(``rewrite_entry``, seeded by the log) and the timestamp of a steady clock: the log started
with ``backlog`` entries and gains ``rate`` entries per second from ``start``.  Entries are
computed, not stored, so the log grows for ever in constant memory (a bounded cache holds
the recent ones, the Merkle frontier is O(log n), and a bounded cache the subtree hashes of
the hash tiles, any of which can be computed again from the entries).

Sans-IO: :meth:`DemoLogs.respond` takes the request and the time and returns the response;
``certstream.demo.server`` puts it behind a socket.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certstream.core.checkpoint import sign_checkpoint
from certstream.core.merkle import tree_hash
from certstream.core.sth import sign_sth
from certstream.core.tiles import TILE_WIDTH
from certstream.demo.corpus import Corpus
from certstream.demo.synth import (
    MerkleFrontier,
    leaf_hash,
    rewrite_entry,
    split_tile_leaves,
    tile_leaves_from_entries,
    with_timestamp,
)

__all__ = [
    "BACKLOG",
    "DEMO_LOGS",
    "MAX_BATCH",
    "DemoLogDef",
    "DemoLogs",
    "GrowingLog",
    "Response",
    "Rfc6962DemoLog",
    "StaticDemoLog",
]

#: Entries each log holds when the demo starts, so the first clients see some at once.
BACKLOG = 32
#: get-entries answers at most this many entries (Google's logs: 32, Cloudflare's: 1024).
MAX_BATCH = 256
#: Generated entries kept for the requests that follow (the ingest reads each once or twice).
CACHE_ENTRIES = 4096
#: Subtree hashes of the hash tiles above level 0 kept (each the root of 256**L entries):
#: the edge tiles near the head are asked for at every checkpoint; older ones are rare.
SUBTREE_CACHE = 4096


@dataclass(frozen=True, slots=True)
class DemoLogDef:
    """One demo log: its name and operator as shown to clients, kind, URL path, source."""

    name: str
    operator: str
    kind: str  # "rfc6962" | "static"
    path: str  # "/name/"
    source: str  # a source of the packaged corpus


DEMO_LOGS = (
    DemoLogDef("Demo Argon2026h2", "Google", "rfc6962", "/argon2026h2/", "argon2026h2"),
    DemoLogDef("Demo Nimbus2026", "Cloudflare", "rfc6962", "/nimbus2026/", "nimbus2026"),
    DemoLogDef("Demo Synth11", "Demo", "rfc6962", "/synth11/", "synth11"),
    DemoLogDef("Demo Navigli2025h2", "Geomys", "static", "/navigli2025h2/", "navigli2025h2"),
    DemoLogDef("Demo Synth11 tiled", "Demo", "static", "/synth11-tiled/", "synth11-tiled"),
)


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    #: Tiles and issuers never change; tree heads and entries near the head do.
    immutable: bool = False


def _error(status: int, text: str) -> Response:
    return Response(status, text.encode() + b"\n", "text/plain; charset=utf-8")


def _json(obj: object) -> Response:
    return Response(200, json.dumps(obj, separators=(",", ":")).encode())


def _spki_b64(key: ec.EllipticCurvePrivateKey) -> str:
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(spki).decode("ascii")


class GrowingLog:
    """What both kinds share: the steady clock, the entries, the tree, the signing key."""

    def __init__(
        self,
        definition: DemoLogDef,
        base: Sequence[Mapping[str, str]],
        *,
        key: ec.EllipticCurvePrivateKey,
        seed: int,
        rate: float,
        start: float,
        backlog: int = BACKLOG,
        url: str,
    ) -> None:
        if not base:
            raise ValueError(f"demo log {definition.name}: no base entries")
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.definition = definition
        self.base = list(base)
        self.key = key
        self.key_b64 = _spki_b64(key)
        self.seed = seed
        self.rate = rate
        self.start = start
        self.backlog = backlog
        self.url = url
        self._size = 0
        self._frontier = MerkleFrontier()
        self._cache: OrderedDict[int, tuple[dict[str, str], bytes]] = OrderedDict()
        self._head: tuple[int, Any] | None = None  # (size, signed head) of the last head

    # -- the steady clock

    def size(self, now: float) -> int:
        """Entries visible at ``now``; never smaller than before (the wall clock may step)."""
        grown = math.floor(max(0.0, now - self.start) * self.rate)
        self._size = max(self._size, self.backlog + grown)
        return self._size

    def timestamp_ms(self, index: int) -> int:
        """When entry ``index`` was logged: steady, ``rate`` per second from ``start``."""
        return math.floor(self.start * 1000 + (index - self.backlog) * 1000 / self.rate)

    # -- entries

    def _item(self, index: int) -> tuple[dict[str, str], bytes]:
        item = self._cache.get(index)
        if item is not None:
            self._cache.move_to_end(index)
            return item
        entry, _ = rewrite_entry(self.base[index % len(self.base)], index, self.seed)
        entry = with_timestamp(entry, self.timestamp_ms(index))
        item = (entry, self._encode(entry, index))
        self._cache[index] = item
        if len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return item

    def _encode(self, entry: dict[str, str], index: int) -> bytes:
        """The entry as this kind of log serves it (static: its TileLeaf)."""
        return b""

    def entry(self, index: int) -> dict[str, str]:
        return self._item(index)[0]

    def _leaf_hash(self, index: int) -> bytes:
        raise NotImplementedError

    def root(self, size: int) -> bytes:
        """Merkle root of the first ``size`` entries (sizes only grow: a frontier)."""
        if size < self._frontier.size:
            raise ValueError("the tree never shrinks")
        while self._frontier.size < size:
            self._frontier.append(self._leaf_hash(self._frontier.size))
        return self._frontier.root()

    def info(self) -> dict[str, str]:
        d = self.definition
        return {"name": d.name, "operator": d.operator, "kind": d.kind, "url": self.url,
                "key": self.key_b64}

    def respond(self, rel: str, query: str, now: float) -> Response:
        raise NotImplementedError


class Rfc6962DemoLog(GrowingLog):
    """``ct/v1/get-sth`` and ``ct/v1/get-entries``."""

    def _leaf_hash(self, index: int) -> bytes:
        leaf = base64.b64decode(self.entry(index)["leaf_input"])
        return hashlib.sha256(b"\x00" + leaf).digest()

    def sth(self, now: float) -> dict[str, object]:
        size = self.size(now)
        if self._head is None or self._head[0] != size:
            self._head = (size, sign_sth(size, math.floor(now * 1000), self.root(size), self.key))
        sth: dict[str, object] = self._head[1]
        return sth

    def respond(self, rel: str, query: str, now: float) -> Response:
        if rel == "ct/v1/get-sth":
            return _json(self.sth(now))
        if rel == "ct/v1/get-roots":
            return _json({"certificates": []})
        if rel != "ct/v1/get-entries":
            return _error(404, "not found")
        params = parse_qs(query)
        try:
            (start_s,), (end_s,) = params["start"], params["end"]
            start, end = int(start_s), int(end_s)
        except (KeyError, ValueError):
            return _error(400, "start and end must each be given once, as integers")
        size = self.size(now)
        if start < 0 or start > end:
            return _error(400, f"invalid range start={start} end={end}")
        if start >= size:
            return _error(400, f"need tree size: {start} >= {size}")
        end = min(end, size - 1, start + MAX_BATCH - 1)
        return _json({"entries": [self.entry(i) for i in range(start, end + 1)]})


_TILE = re.compile(r"^tile/(data|[0-5])/((?:x\d{3}/)*\d{3})(?:\.p/(\d{1,3}))?$")
_ISSUER = re.compile(r"^issuer/([0-9a-f]{64})$")


class StaticDemoLog(GrowingLog):
    """``checkpoint``, ``tile/data/...``, the hash tiles ``tile/<L>/...`` and
    ``issuer/...``."""

    def __init__(self, *args: Any, origin: str, issuers: Mapping[bytes, bytes],
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.origin = origin
        self.issuers = {fp.hex(): der for fp, der in issuers.items()}
        self._subtrees: OrderedDict[tuple[int, int], bytes] = OrderedDict()

    def _encode(self, entry: dict[str, str], index: int) -> bytes:
        leaves, _ = tile_leaves_from_entries([entry], index)
        return leaves[0]

    def tile_leaf(self, index: int) -> bytes:
        return self._item(index)[1]

    def _leaf_hash(self, index: int) -> bytes:
        ((_, timestamped_entry),) = split_tile_leaves(self.tile_leaf(index))
        return leaf_hash(timestamped_entry)

    def subtree_hash(self, level: int, index: int) -> bytes:
        """Hash ``index`` of hash-tile level ``level``: the root of the ``256**level``
        entries from ``index * 256**level`` on (level 0: an entry's leaf hash)."""
        if level == 0:
            return self._leaf_hash(index)
        key = (level, index)
        node = self._subtrees.get(key)
        if node is not None:
            self._subtrees.move_to_end(key)
            return node
        first = index * TILE_WIDTH
        node = tree_hash([self.subtree_hash(level - 1, first + k) for k in range(TILE_WIDTH)])
        self._subtrees[key] = node
        if len(self._subtrees) > SUBTREE_CACHE:
            self._subtrees.popitem(last=False)
        return node

    def checkpoint(self, now: float) -> bytes:
        size = self.size(now)
        if self._head is None or self._head[0] != size:
            body = sign_checkpoint(self.origin, size, self.root(size), self.key,
                                   math.floor(now * 1000))
            self._head = (size, body)
        note: bytes = self._head[1]
        return note

    def info(self) -> dict[str, str]:
        return {**super().info(), "origin": self.origin}

    def respond(self, rel: str, query: str, now: float) -> Response:
        if rel == "checkpoint":
            return Response(200, self.checkpoint(now), "text/plain; charset=utf-8")
        m = _ISSUER.match(rel)
        if m is not None:
            der = self.issuers.get(m.group(1))
            if der is None:
                return _error(404, "no such issuer")
            return Response(200, der, "application/pkix-cert", immutable=True)
        m = _TILE.match(rel)
        if m is None:
            return _error(404, "not found")
        n = int(m.group(2).replace("x", "").replace("/", ""))
        width = int(m.group(3)) if m.group(3) else TILE_WIDTH
        if not 1 <= width <= TILE_WIDTH or (m.group(3) and width == TILE_WIDTH):
            return _error(404, "bad partial tile width")
        first = n * TILE_WIDTH
        level = 0 if m.group(1) == "data" else int(m.group(1))
        if (first + width) * TILE_WIDTH**level > self.size(now):
            return _error(404, "tile beyond the tree")
        if m.group(1) == "data":
            body = b"".join(self.tile_leaf(first + j) for j in range(width))
        else:
            body = b"".join(self.subtree_hash(level, first + j) for j in range(width))
        return Response(200, body, "application/octet-stream", immutable=True)


class DemoLogs:
    """All demo logs behind one base URL, routed by path prefix."""

    def __init__(
        self,
        corpus: Corpus,
        base_url: str,
        *,
        rate: float,
        start: float,
        seed: int = 0,
        backlog: int = BACKLOG,
        definitions: Iterable[DemoLogDef] = DEMO_LOGS,
    ) -> None:
        defs = list(definitions)
        if not defs:
            raise ValueError("no demo logs")
        base_url = base_url.rstrip("/")
        per_log = rate / len(defs)
        self.logs: dict[str, GrowingLog] = {}
        for i, d in enumerate(defs):
            base = corpus.entries[d.source]
            common: dict[str, Any] = {
                "key": ec.generate_private_key(ec.SECP256R1()),
                "seed": seed * 100 + i,
                "rate": per_log,
                "start": start,
                "backlog": backlog,
                "url": base_url + d.path,
            }
            log: GrowingLog
            if d.kind == "static":
                _, issuers = tile_leaves_from_entries(base)
                origin = (base_url + d.path).partition("://")[2].rstrip("/")
                log = StaticDemoLog(d, base, origin=origin, issuers=issuers, **common)
            else:
                log = Rfc6962DemoLog(d, base, **common)
            self.logs[d.path] = log
        self.url = base_url

    def describe(self) -> dict[str, Any]:
        """What a server needs to follow these logs: URL, key and origin of each."""
        return {"url": self.url, "logs": [log.info() for log in self.logs.values()]}

    def respond(self, method: str, path: str, query: str, now: float) -> Response:
        if method not in ("GET", "HEAD"):
            return _error(405, "method not allowed")
        for prefix, log in self.logs.items():
            if path.startswith(prefix):
                return log.respond(path[len(prefix):], query, now)
        return _error(404, "no log here")
