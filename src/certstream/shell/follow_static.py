"""Static-API (tiled) logs: poll the checkpoint, then read data tiles in order.

Full tiles first, then the partial tile of the checkpoint's size; issuers come from the
shared ``IssuerCache`` since tile leaves carry only their fingerprints.
"""

from __future__ import annotations

import logging
from typing import Any

import gevent

from certstream.core.checkpoint import Checkpoint, parse_checkpoint, verify_checkpoint
from certstream.core.follow import TileRequest, plan_tiles
from certstream.core.model import LogEntry
from certstream.core.tiles import TileLeaf, data_tile_path, parse_data_tile
from certstream.errors import DecodeError
from certstream.shell.follow_base import LogFollower
from certstream.shell.httpclient import HTTPError, HTTPStatusError
from certstream.shell.issuers import IssuerCache
from certstream.shell.logformat import ct_context

__all__ = ["PARTIAL_ATTEMPTS", "StaticFollower"]

log = logging.getLogger("certstream.ingest")

#: Failed fetches of a partial tile before the follower re-reads the checkpoint instead.
PARTIAL_ATTEMPTS = 3


class _RoundAbortedError(Exception):
    """Static logs: the tiles of this checkpoint are not all there; refetch the checkpoint."""


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
                self._read_tiles(self.next_index, size)
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

    def _read_tiles(self, start: int, size: int) -> None:
        tiles = plan_tiles(start, size, self.spec.stop_at)
        if not tiles:
            return
        width = max(1, self.cfg.fetch_concurrency)
        pending: list[gevent.Greenlet] = []
        it = iter(tiles)
        for tile in it:
            pending.append(self._group.spawn(self._tile_entries, tile))
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
                    pending.append(self._group.spawn(self._tile_entries, nxt))
                self.pipeline.deliver(self, entries, tile.first_index + tile.width, size)
        finally:
            for g in pending:
                g.kill(block=False)

    def _tile_entries(
        self, tile: TileRequest
    ) -> tuple[list[LogEntry] | None, TileRequest, str]:
        """Fetch, decode and resolve one tile, retrying until it works.

        Returns ``(None, tile, reason)`` when this round should end (re-read the
        checkpoint) rather than raising: an exception ending a greenlet is printed by
        gevent's hub even when the caller handles it.
        """
        attempts = 0
        while True:
            try:
                leaves = self._fetch_tile(tile)
                self._metric("TILES_FETCHED", self.spec.name)
                chain_fps = [fp for leaf in leaves for fp in leaf.fingerprints]
                issuers = self.issuers.get_many(self.spec.url, chain_fps)
            except _RoundAbortedError as exc:
                return None, tile, str(exc)
            except (HTTPError, DecodeError) as exc:
                self.failed_exc(exc)
                attempts += 1
                if tile.partial and attempts >= PARTIAL_ATTEMPTS:
                    # A partial tile is a moving target: a newer checkpoint may make it a
                    # full (or wider) tile that the log serves properly.
                    return None, tile, f"partial tile {tile.n}: {exc}"
                continue
            except Exception as exc:  # a bug: end the round instead of the greenlet
                log.exception("log %s: tile %d failed", self.spec.name, tile.n,
                              extra=ct_context(self.spec.name, tile.first_index))
                return None, tile, repr(exc)
            self.succeeded()
            entries = []
            for leaf in leaves[tile.skip:]:
                try:
                    entries.append(leaf.to_entry(issuers))
                except DecodeError as exc:  # cannot happen after get_many; kept for safety
                    self.report_skip(leaf.index, str(exc))
            self.pipeline.inc("STATIC_ENTRIES_PARSED", self.spec.name, amount=len(entries))
            return entries, tile, ""

    def _fetch_tile(self, tile: TileRequest) -> list[TileLeaf]:
        try:
            body = self.fetch(self.spec.url + data_tile_path(tile.n, tile.width))
        except HTTPStatusError as exc:
            if exc.status != 404 or not tile.partial:
                raise
            # Partial tiles vanish once the tile fills: the full tile's first W entries are
            # the same entries.  If the full one is not there yet either, re-read the
            # checkpoint and try again.
            log.info("log %s: partial tile %s is gone; trying the full tile",
                     self.spec.name, data_tile_path(tile.n, tile.width),
                     extra=ct_context(self.spec.name, tile.first_index))
            try:
                body = self.fetch(self.spec.url + data_tile_path(tile.n))
            except HTTPStatusError as exc2:
                if exc2.status == 404:
                    raise _RoundAbortedError(f"tile {tile.n}: partial and full both 404") from None
                raise
            leaves = parse_data_tile(body, tile.first_index, 256)
            return leaves[: tile.width]
        return parse_data_tile(body, tile.first_index, tile.width)
