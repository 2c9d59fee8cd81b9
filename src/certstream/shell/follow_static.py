"""Static-API (tiled) logs: poll the checkpoint, then read data tiles in order.

Full tiles first, then the partial tile of the checkpoint's size; issuers come from the
shared ``IssuerCache`` since tile leaves carry only their fingerprints.

What can go wrong with a tile, and what it costs (never more than the entries concerned,
never silently, never the log):

* The fetch fails (timeout, 5xx, 429...): retried with backoff, as long as it takes.
* A leaf does not decode but its lengths add up (an unknown entry_type, a wrong
  leaf_index): that leaf is skipped alone, reported with its log and index.  When the
  hash tiles say the log really stored it, at once; else only if a second fetch has it
  too (one corrupted response must not cost an entry).
* The lengths stop adding up, or a leaf does not match its hash: the tile is fetched
  again, up to ``TILE_ATTEMPTS`` times; then what could be read and checked goes out and
  the rest of the tile is reported index by index and skipped.
* Hash tiles (``certstream.core.merkle``): the checkpoint's root is rebuilt from the edge
  hash tiles of each new checkpoint and every data tile is checked against it, so a
  corrupted tile is detected, not published.  Under ``static_ct_checkpoint_signature``
  ``off`` nothing is checked; ``warn`` reads on unchecked (logged, counted) when the hash
  tiles themselves cannot be had or do not match after ``TILE_ATTEMPTS`` tries;
  ``enforce`` never publishes an unchecked entry.
* An issuer the log cannot serve: the entries go out with the chain they have, counted
  (see ``IssuerCache``).
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

import gevent

from certstream.core.checkpoint import Checkpoint, parse_checkpoint, verify_checkpoint
from certstream.core.follow import TileRequest, plan_tiles
from certstream.core.merkle import TileTree, edge_tiles, tree_hash
from certstream.core.model import LogEntry
from certstream.core.tiles import TileRead, data_tile_path, hash_tile_path, read_data_tile
from certstream.errors import DecodeError
from certstream.shell.follow_base import LogFollower
from certstream.shell.httpclient import HTTPError, HTTPStatusError
from certstream.shell.issuers import IssuerCache
from certstream.shell.logformat import ct_context

__all__ = ["PARTIAL_ATTEMPTS", "TILE_ATTEMPTS", "UNCHECKED_SECS", "StaticFollower"]

log = logging.getLogger("certstream.ingest")

#: Failed fetches of a partial tile before the follower re-reads the checkpoint instead.
PARTIAL_ATTEMPTS = 3
#: Fetches of a tile whose content is wrong (lengths, hashes) before what cannot be read
#: is skipped; also of hash tiles that do not match, before ``warn`` reads on unchecked.
TILE_ATTEMPTS = 4

_EDGE_CACHE = 32  # edge hash tiles kept (they change only when the tree crosses 256**L)
#: Under ``warn``, a log whose hash tiles could not be used is read unchecked this long
#: before they are tried again (trying each round would slow the log with backoff).
UNCHECKED_SECS = 600.0


class _RoundAbortedError(Exception):
    """Static logs: the tiles of this checkpoint are not all there; refetch the checkpoint."""


def _leaf_hash(merkle_leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + merkle_leaf).digest()


class StaticFollower(LogFollower):
    """checkpoint, then data tiles (full, and the partial one of the checkpoint's size)."""

    parse_failures_metric = "STATIC_PARSE_FAILURES"
    zero_metrics = ("STATIC_PARSE_FAILURES", "CHECKPOINT_ERRORS", "TILES_FETCHED",
                    "STATIC_ENTRIES_PARSED")

    def __init__(self, *args: Any, issuers: IssuerCache, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.issuers = issuers
        self._started = False
        self._root: bytes | None = None
        #: Entries published without a chain certificate the log could not serve.
        self.incomplete_chains = 0
        # Hash tiles that matched a checkpoint: full ones by (level, n), edges by path.
        self._full_hashes: dict[tuple[int, int], bytes] = {}
        self._edge_hashes: dict[str, bytes] = {}
        self._unchecked_until = 0.0

    @property
    def checking(self) -> bool:
        return (self.cfg.checkpoint_signature != "off"
                and time.monotonic() >= self._unchecked_until)

    def run(self) -> None:
        while not self.finished:
            size = self._get_checkpoint()
            if size is None:
                continue
            if not self._started:
                self._started = True
                self.next_index = self.start_position(size)
                log.info("log %s: starting at index %d (tree size %d)",
                         self.spec.name, self.next_index, size,
                         extra=ct_context(self.spec.name, self.next_index))
            assert self.next_index is not None
            grew = size > self.tree_size
            self.tree_size = size
            try:
                end = size if self.spec.stop_at is None else min(size, self.spec.stop_at)
                tree = self._tile_tree(size) if self.checking and end > self.next_index else None
                self._read_tiles(self.next_index, size, tree)
            except _RoundAbortedError as exc:
                self.failed("tile_missing", str(exc))
                continue
            if self.spec.stop_at is not None and self.next_index >= self.spec.stop_at:
                self.finished = True
                return
            self.pause(grew)

    def _get_checkpoint(self) -> int | None:
        try:
            body = self.fetch(self.spec.url + "checkpoint", data=False)
            cp = self._check(body)
        except (HTTPError, DecodeError) as exc:
            self._metric("CHECKPOINT_ERRORS", self.spec.name)
            self.failed_exc(exc)
            return None
        if cp.size < self.tree_size:
            self._metric("CHECKPOINT_ERRORS", self.spec.name)
            self.failed("checkpoint_shrank", f"size {cp.size} < {self.tree_size}")
            return None
        if cp.size == self.tree_size and self._root is not None and cp.root_hash != self._root:
            # Two different trees of one size: the log forked or lies.  Do not read on.
            self._metric("CHECKPOINT_ERRORS", self.spec.name)
            self.failed("checkpoint_fork", f"size {cp.size} with a different root hash")
            return None
        self._root = cp.root_hash
        self.succeeded()
        return cp.size

    def _check(self, body: bytes) -> Checkpoint:
        mode = self.cfg.checkpoint_signature
        origin = self.spec.origin or self.spec.url.split("://", 1)[-1].rstrip("/")
        if mode == "off" or self.spec.spki is None:
            if mode == "enforce":
                raise DecodeError(f"checkpoint: no key configured for {self.spec.name}")
            if mode == "warn":
                self._warn_once("no log key configured: checkpoints are not verified")
            return parse_checkpoint(body)
        try:
            cp = verify_checkpoint(body, origin, self.spec.spki)
        except DecodeError as exc:
            if mode == "enforce":
                raise
            self._warn_once(f"checkpoint not verified ({exc}); using it anyway")
            return parse_checkpoint(body)
        self._warned = ""
        return cp

    # -- hash tiles

    def _tile_tree(self, size: int) -> TileTree | None:
        """The edge hash tiles of this checkpoint, checked against its root; None when they
        cannot be had or do not match after ``TILE_ATTEMPTS`` tries (``warn``: the round
        is read unchecked; ``enforce``: the round ends)."""
        assert self._root is not None
        for attempt in range(1, TILE_ATTEMPTS + 1):
            paths = {level: hash_tile_path(level, n, width)
                     for level, n, width in edge_tiles(size)}
            try:
                edges = {level: self._edge_hashes.get(path) or self.fetch(self.spec.url + path)
                         for level, path in paths.items()}
                tree = TileTree(size, self._root, edges, self._full_hashes)
            except (HTTPError, DecodeError) as exc:
                self._edge_hashes.clear()  # a fetched tile may be the bad one
                self.failed("hash_tiles", f"attempt {attempt}: {exc}")
                continue
            for level, path in paths.items():
                self._edge_hashes[path] = edges[level]
            while len(self._edge_hashes) > _EDGE_CACHE:
                self._edge_hashes.pop(next(iter(self._edge_hashes)))
            return tree
        if self.cfg.checkpoint_signature == "enforce":
            raise _RoundAbortedError(f"hash tiles of size {size} do not match its checkpoint")
        self._unchecked(f"the hash tiles of tree size {size} cannot be had or do not match")
        return None

    def _unchecked(self, why: str) -> None:
        self._metric("LOG_ERRORS", self.spec.name, "tiles_unchecked")
        self._unchecked_until = time.monotonic() + UNCHECKED_SECS
        log.warning("log %s: %s: reading its data tiles unchecked for %.0f s",
                    self.spec.name, why, UNCHECKED_SECS, extra=ct_context(self.spec.name))

    def _node(self, tree: TileTree, level: int, index: int) -> bytes:
        """Hash ``index`` of ``level``, fetching the full hash tiles that lead to it."""
        for lvl, n in tree.missing(level, index):
            tree.add_full(lvl, n, self.fetch(self.spec.url + hash_tile_path(lvl, n)))
        node = tree.node(level, index)
        assert node is not None
        return node

    def _mismatched(self, tree: TileTree, tile: TileRequest, read: TileRead, size: int) -> set[int]:
        """Indices of the leaves read (decoded or not) whose hash is not the log's."""
        first = tile.first_index
        end = first + min(tile.width, size - first)
        hashes = {leaf.index: leaf.leaf_hash() for leaf in read.leaves if leaf.index < end}
        hashes.update((b.index, _leaf_hash(b.merkle_leaf)) for b in read.bad if b.index < end)
        # A full tile is one comparison with its node on level 1; else, or if that fails,
        # each leaf is compared with its own hash.
        if len(hashes) == 256 and tree_hash(
            [hashes[first + i] for i in range(256)]
        ) == self._node(tree, 1, tile.n):
            return set()
        return {i for i, h in hashes.items() if self._node(tree, 0, i) != h}

    # -- data tiles

    def _read_tiles(self, start: int, size: int, tree: TileTree | None) -> None:
        tiles = plan_tiles(start, size, self.spec.stop_at)
        if not tiles:
            return
        width = max(1, self.cfg.fetch_concurrency)
        pending: list[gevent.Greenlet] = []
        it = iter(tiles)
        for tile in it:
            pending.append(self._group.spawn(self._tile_entries, tile, size, tree))
            if len(pending) >= width:
                break
        try:
            while pending:
                g = pending.pop(0)
                entries, tile, why = g.get()
                if entries is None:
                    raise _RoundAbortedError(why)
                nxt = next(it, None)
                if nxt is not None:
                    pending.append(self._group.spawn(self._tile_entries, nxt, size, tree))
                self.pipeline.deliver(self, entries, tile.first_index + tile.width, size)
        finally:
            for g in pending:
                g.kill(block=False)

    def _tile_entries(
        self, tile: TileRequest, size: int, tree: TileTree | None
    ) -> tuple[list[LogEntry] | None, TileRequest, str]:
        """Fetch, check and decode one tile, then resolve its issuers.

        Returns ``(None, tile, reason)`` when this round should end (re-read the
        checkpoint) rather than raising: an exception ending a greenlet is printed by
        gevent's hub even when the caller handles it.
        """
        try:
            read, wrong = self._read_checked(tile, size, tree)
        except _RoundAbortedError as exc:
            return None, tile, str(exc)
        except Exception as exc:  # a bug: end the round instead of the greenlet
            log.exception("log %s: tile %d failed", self.spec.name, tile.n,
                          extra=ct_context(self.spec.name, tile.first_index))
            return None, tile, repr(exc)
        lo, hi = tile.first_index + tile.skip, tile.first_index + tile.width
        leaves = [leaf for leaf in read.leaves if lo <= leaf.index < hi and leaf.index not in wrong]
        issuers = self._issuers([fp for leaf in leaves for fp in leaf.fingerprints])
        entries = []
        skips: dict[int, tuple[str, str]] = {}
        for bad in read.bad:
            skips[bad.index] = (str(bad.error), "decode")
        for index in wrong:
            skips[index] = ("its hash does not match the log's hash tiles", "hash")
        if read.framed < tile.width:
            why = f"unreadable after {TILE_ATTEMPTS} fetches: {read.broken}"
            for index in range(tile.first_index + read.framed, hi):
                skips[index] = (why, "framing")
        for leaf in leaves:
            entry = leaf.to_entry(issuers, missing_ok=True)
            if len(entry.chain) < len(leaf.fingerprints):
                self.incomplete_chains += 1
                self._metric("LOG_ERRORS", self.spec.name, "issuer_unavailable")
                log.warning("log %s index %d: published without %d chain certificate(s) the "
                            "log cannot serve", self.spec.name, leaf.index,
                            len(leaf.fingerprints) - len(entry.chain),
                            extra=ct_context(self.spec.name, leaf.index))
            entries.append(entry)
        for index in sorted(skips):
            if lo <= index < hi:
                self.report_skip(index, skips[index][0], skips[index][1])
        self.pipeline.inc("STATIC_ENTRIES_PARSED", self.spec.name, amount=len(entries))
        return entries, tile, ""

    def _read_checked(
        self, tile: TileRequest, size: int, tree: TileTree | None
    ) -> tuple[TileRead, set[int]]:
        """The tile read leaf by leaf and the indices whose hash is wrong, fetched again
        while its content is wrong (see the module docstring) and fetch errors retried."""
        attempts = failures = hash_failures = 0
        bad_before: set[int] | None = None
        while True:
            try:
                body, expected = self._fetch_tile(tile)
                self._metric("TILES_FETCHED", self.spec.name)
                read = read_data_tile(body, tile.first_index, expected)
                wrong = self._mismatched(tree, tile, read, size) if tree is not None else set()
            except HTTPError as exc:
                self.failed_exc(exc)
                failures += 1
                if tile.partial and failures >= PARTIAL_ATTEMPTS:
                    # A partial tile is a moving target: a newer checkpoint may make it a
                    # full (or wider) tile that the log serves properly.
                    raise _RoundAbortedError(f"partial tile {tile.n}: {exc}") from None
                continue
            except DecodeError as exc:  # the hash tiles under this tile do not match
                self.failed("hash_tiles", f"tile {tile.n}: {exc}")
                hash_failures += 1
                if hash_failures >= TILE_ATTEMPTS:
                    if self.cfg.checkpoint_signature == "enforce":
                        raise _RoundAbortedError(f"tile {tile.n}: {exc}") from None
                    self._unchecked(f"tile {tile.n}: {exc}")
                    tree = None
                continue
            attempts += 1
            bad = {b.index for b in read.bad} - wrong
            # A leaf that does not decode is skipped at once if the log's hashes vouch for
            # it, else once a second copy failed the same way.
            doubtful = bad if tree is None else set()
            if bad_before is not None:
                doubtful -= bad_before
            short = read.framed < tile.width
            if not (short or wrong or doubtful) or attempts >= TILE_ATTEMPTS:
                if read.broken is not None and not short:
                    self._warn_once(f"tile {tile.n}: {read.broken}")  # bytes left over
                if not short:
                    self.succeeded()
                return read, wrong
            bad_before = bad
            what = (f"leaves {sorted(wrong)[:5]} do not match the hash tiles" if wrong
                    else f"{read.broken}" if short
                    else f"leaves {sorted(doubtful)[:5]} do not decode")
            self.failed("tile_content", f"tile {tile.n}, attempt {attempts}: {what}")

    def _issuers(self, fingerprints: list[bytes]) -> dict[bytes, bytes]:
        """The issuers of these fingerprints; retried while the cache says so (see
        ``IssuerCache``), so an issuer the log cannot serve costs a few tries, not the log."""
        while True:
            try:
                return self.issuers.get_many(self.spec.url, fingerprints)
            except (HTTPError, DecodeError) as exc:
                gevent.sleep(self.failed_exc(exc))

    def _fetch_tile(self, tile: TileRequest) -> tuple[bytes, int]:
        """The body of the tile and the number of leaves it holds."""
        try:
            return self.fetch(self.spec.url + data_tile_path(tile.n, tile.width)), tile.width
        except HTTPStatusError as exc:
            if exc.status != 404 or not tile.partial:
                raise
        # Partial tiles vanish once the tile fills: the full tile's first W entries are the
        # same entries.  If the full one is not there yet either, re-read the checkpoint and
        # try again.
        log.info("log %s: partial tile %s is gone; trying the full tile",
                 self.spec.name, data_tile_path(tile.n, tile.width),
                 extra=ct_context(self.spec.name, tile.first_index))
        try:
            return self.fetch(self.spec.url + data_tile_path(tile.n)), 256
        except HTTPStatusError as exc2:
            if exc2.status == 404:
                raise _RoundAbortedError(f"tile {tile.n}: partial and full both 404") from None
            raise
