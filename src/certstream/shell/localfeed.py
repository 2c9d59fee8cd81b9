"""The feed inside one process: an embedded ingest publishes straight into its worker's hub.

``ingest.mode: embedded`` (``workers: 1`` only) runs the ingest's followers and pipeline as
greenlets of the one worker.  ``LocalFeed`` stands where the feed socket was: to the ingest
it is a publisher (``shell.ingest.IngestFeed``, as ``FeedPublisher``), to the worker a
subscriber (``set_wanted``, ``want_example``, ``close``, as ``FeedSubscriber``), and in
between nothing is encoded, copied or queued: each entry's payloads go to the hub as the
pipeline built them.  The STATE object goes through JSON, so that the hub holds the same
shapes a STATE from the feed socket has.

Nothing is replayed across an ingest restart here (the ingest lives and dies with the
worker), so there is no per-log index filter as in ``FeedSubscriber``.

Delivery, as on the feed socket: a batch is delivered, and the ingest may save its log's
position, once the hub has written it into the socket of every client that keeps up
(``after_flush``, the hub's: the same rule as a worker's ACK).  There is no other worker
a batch could be lost with: the ingest dies with this one, so ``on_lost`` is never called.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from certstream.core.resume import EPOCH_SHIFT, Stamp, feed_number, stamp_key
from certstream.core.streams import STREAM_ALL, STREAM_DOMAINS, STREAM_FULL, STREAM_LITE
from certstream.shell.feed import PayloadsLike
from certstream.shell.feedsub import OnEntry

__all__ = ["LocalFeed"]

log = logging.getLogger(__name__)


class LocalFeed:
    """See the module docstring.  ``on_entry``, ``on_state`` and ``on_example`` are the
    worker's, as for ``FeedSubscriber``."""

    dropped = 0  # nothing is ever dropped: there is no queue
    replayed = 0  # nor replayed

    def __init__(self, on_entry: OnEntry, on_state: Callable[[dict[str, Any]], None],
                 on_example: Callable[[bytes], None], epoch_ms: int | None = None,
                 after_flush: Callable[[Callable[[], None]], None] | None = None) -> None:
        self.on_entry = on_entry
        self.after_flush = after_flush
        #: The ids' epoch and the last number given, as ``shell.feed.FeedPublisher``'s: every
        #: entry gets the global id ``<epoch>-<n>`` (the SSE ``id:``, what clients resume from).
        self.epoch_ms = int(time.time() * 1000) if epoch_ms is None else epoch_ms
        self.numbered = 0
        self.on_state = on_state
        self.on_example = on_example
        #: The ingest's: called when the worker asks for an ``/example.json`` sample.
        self.on_example_wanted: Callable[[], None] | None = None
        self._want = 0
        self._example = False

    # -- the ingest's side (a publisher) ------------------------------------------------------

    def start(self) -> None:
        return None  # nothing to listen on

    def connected(self) -> int:
        return 1  # the one worker: this process

    def wanted(self) -> int:
        return self._want & STREAM_ALL

    def pending_bytes(self) -> int:
        return 0  # nothing is queued: published is in the hub

    def publish(self, items: Sequence[tuple[str, int, PayloadsLike]],
                on_delivered: Callable[[], None] | None = None,
                on_lost: Callable[[], None] | None = None) -> None:
        """Hand ``items`` to the hub; ``on_delivered`` once it has written them (see the
        module docstring; ``on_lost`` is never called)."""
        del on_lost
        on_entry, epoch = self.on_entry, self.epoch_ms
        for _key, _index, p in items:
            self.numbered += 1
            n = self.numbered
            stamp = Stamp(stamp_key(epoch, n), p.seen, (epoch << EPOCH_SHIFT) | n, p.fields)
            lite, full, domains = p.lite, p.full, p.domains
            mask = ((STREAM_LITE if lite is not None else 0)
                    | (STREAM_FULL if full is not None else 0)
                    | (STREAM_DOMAINS if domains is not None else 0))
            try:
                on_entry(mask, lite, full, domains, stamp)
            except Exception:  # as FeedSubscriber: a consumer bug must not stop the ingest
                log.exception("local feed: the worker failed on an entry")
        if on_delivered is None:
            return
        done = partial(self._delivered, on_delivered)
        if self.after_flush is None:
            done()
        else:
            self.after_flush(done)

    @staticmethod
    def _delivered(on_delivered: Callable[[], None]) -> None:
        try:
            on_delivered()
        except Exception:  # runs in the hub's flush: a failing callback must not stop it
            log.exception("local feed: a delivery callback failed")

    def publish_state(self, state: Mapping[str, object]) -> None:
        self.on_state(json.loads(json.dumps(state)))

    def publish_example(self, lite: bytes) -> None:
        self.on_example(lite)

    def close(self) -> None:
        self.on_example_wanted = None

    # -- the worker's side (a subscriber, a ``shell.source.RecordSource``) ---------------------

    @staticmethod
    def locate(key: int) -> int | None:
        """The number of the record with id ``key``: the id is the number, as on the feed."""
        return feed_number(key)

    def run(self) -> None:
        return None  # nothing to read: the ingest publishes straight in

    def set_wanted(self, mask: int) -> None:
        self._want = mask

    def want_example(self, on: bool) -> None:
        """Set or clear the wish for a sample; setting it asks the ingest at once (the
        sample may come back before this returns, clearing the wish again)."""
        if on == self._example:
            return
        self._example = on
        if on and self.on_example_wanted is not None:
            try:
                self.on_example_wanted()
            except Exception:  # a failed sample must not fail the request that asked
                log.exception("local feed: building the example failed")
