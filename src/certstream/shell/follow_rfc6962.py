"""RFC 6962 logs: poll get-sth, then read get-entries windows in order.

Several windows are in flight at once (``fetch_concurrency``); ``WindowPlanner`` (core)
hands out and re-queues them, and entries reach the pipeline strictly in index order.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import gevent.queue

from certstream.core.follow import Window, WindowPlanner
from certstream.core.leaves import decode_get_entries
from certstream.core.model import LogEntry
from certstream.core.sth import SignatureError, SignedTreeHead, parse_sth, verify_sth
from certstream.errors import DecodeError
from certstream.shell.follow_base import LogFollower
from certstream.shell.httpclient import HTTPError, HTTPStatusError
from certstream.shell.logformat import ct_context

__all__ = ["Rfc6962Follower"]

log = logging.getLogger("certstream.ingest")


class Rfc6962Follower(LogFollower):
    """get-sth, then get-entries windows, ``fetch_concurrency`` in flight, in order."""

    _planner: WindowPlanner[tuple[list[LogEntry], int]] | None = None
    #: The newest accepted head's (tree_size, root hash): a head of that size with another
    #: root means the log shows two trees.
    _head: tuple[int, bytes] | None = None
    #: Heads whose signature did not verify but were used anyway (``sth_signature: warn``).
    bad_signatures = 0

    def reset(self) -> None:
        super().reset()
        self._planner = None  # its in-flight windows died with the crashed run

    def run(self) -> None:
        while not self.finished:
            head = self._get_sth()
            if head is None:
                continue
            size, verified = head
            planner = self._planner
            if planner is None:
                start = self.start_position(size)
                planner = self._planner = WindowPlanner(
                    start, self.cfg.batch_size, self.cfg.fetch_concurrency,
                    stop_at=self.spec.stop_at,
                )
                self.next_index = start
                log.info("log %s: starting at index %d (tree size %d)",
                         self.spec.name, start, size, extra=ct_context(self.spec.name, start))
            if not planner.set_tree_size(size, verified):
                self.failed("sth_shrank", f"tree size {size} < {planner.verified_size}")
                continue
            grew = planner.tree_size > self.tree_size
            self.tree_size = planner.tree_size
            self._drain(planner)
            if planner.finished:
                log.info("log %s: readonly log read to its final size %d",
                         self.spec.name, planner.next_index, extra=ct_context(self.spec.name))
                self.finished = True
                return
            self.pause(grew)

    def _get_sth(self) -> tuple[int, bool] | None:
        """The head's tree size and whether it is to be trusted (see ``_check_sth``), or
        None when there is no usable head this time."""
        try:
            body = self.fetch(self.spec.url + "ct/v1/get-sth", data=False)
            doc = json.loads(body)
            if not isinstance(doc, dict):
                raise DecodeError("get-sth: not a JSON object")
            size, root, verified = self._check_sth(doc)
        except SignatureError as exc:  # only raised under "enforce"
            self.failed("sth_signature", f"get-sth: {exc}")
            return None
        except (HTTPError, DecodeError) as exc:
            self.failed_exc(exc)
            return None
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            self.failed("bad_json", f"get-sth: {exc}")
            return None
        if root is not None:
            head = self._head
            if head is not None and head[0] == size and head[1] != root:
                # Two different trees of one size: the log forked or lies.  Entries read
                # under one view may not be in the other; do not read on.
                log.error("log %s: tree size %d came with two different root hashes "
                          "(%s, then %s): not following this head",
                          self.spec.name, size, head[1].hex(), root.hex(),
                          extra=ct_context(self.spec.name))
                self.failed("sth_fork", f"size {size} with a different root hash")
                return None
            if head is None or size >= head[0]:
                self._head = (size, root)
        self.succeeded()
        return size, verified

    def _check_sth(self, doc: dict[str, Any]) -> tuple[int, bytes | None, bool]:
        """Tree size, root hash and trust of a get-sth object, its signature checked as
        configured.

        Raises DecodeError for a head that must not be used (malformed, or unverified under
        ``enforce``).  Without a key, or with ``off``, only tree_size must be sound, as
        before verification existed; the root is then compared only when it parses, and
        the head is trusted as before.  Under ``warn`` a head whose signature fails is
        used but not trusted: the planner reads it only as far as the log serves.
        """
        mode = self.cfg.sth_signature
        if mode == "off" or self.spec.spki is None:
            if mode != "off":
                self._warn_once("no log key configured: tree heads are not verified")
            size = doc["tree_size"]
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise DecodeError(f"get-sth: bad tree_size {size!r:.40}")
            try:
                return size, parse_sth(doc).root_hash, True
            except DecodeError:
                return size, None, True
        try:
            head: SignedTreeHead = verify_sth(doc, self.spec.spki)
        except DecodeError as exc:
            if mode == "enforce" or not isinstance(exc, SignatureError):
                raise
            head = parse_sth(doc)  # malformed heads are refused in every mode
            self.bad_signatures += 1
            self._metric("LOG_ERRORS", self.spec.name, "sth_signature")
            self._warn_once(f"tree head not verified ({exc}); using it anyway")
            return head.tree_size, head.root_hash, False
        self._warned = ""
        return head.tree_size, head.root_hash, True

    def _drain(self, planner: WindowPlanner[tuple[list[LogEntry], int]]) -> None:
        results: gevent.queue.Queue[tuple[Window, object]] = gevent.queue.Queue()
        inflight = 0
        # Indices that failed to decode once: skipped only if they fail again.
        suspects: set[int] = set()
        while True:
            while (w := planner.next_window()) is not None:
                self._group.spawn(self._fetch_window, w, results)
                inflight += 1
            if inflight == 0:
                return
            w, outcome = results.get()
            inflight -= 1
            if isinstance(outcome, Exception):
                if not (isinstance(outcome, HTTPStatusError) and outcome.status == 400):
                    planner.fail(w)
                elif planner.refuse(w):
                    # Past the last verified size: only an unverified head said these
                    # entries exist.  Read what the log serves; wait for a good head.
                    self.failed("sth_refuted", f"get-entries from {w.start} answered 400 "
                                f"under an unverified tree head; reading up to {w.start}")
                    continue
                self.failed_exc(outcome)
                continue
            assert isinstance(outcome, tuple)
            entries, errors = outcome
            count = len(entries) + len(errors)
            if count == 0:
                planner.complete(w, 0, ([], w.start))
                self.failed("empty", f"get-entries {w.start}-{w.end} returned no entries")
                continue
            if count > w.size:
                planner.fail(w)
                self.failed("too_many", f"{count} entries for {w.start}-{w.end}")
                continue
            new_suspects = {e.index for e in errors if e.index is not None} - suspects
            if new_suspects:
                suspects |= new_suspects
                planner.fail(w)
                self.failed("bad_entry", f"entries {sorted(new_suspects)} did not decode")
                continue
            for err in errors:
                if err.index is not None:
                    suspects.discard(err.index)
                    self.report_skip(err.index, str(err))
            self.succeeded()
            planner.complete(w, count, (entries, w.start + count))
            for _start, (batch, end) in planner.ready():
                self.pipeline.deliver(self, batch, end, planner.tree_size)

    def _fetch_window(self, w: Window, results: gevent.queue.Queue[tuple[Window, object]]) -> None:
        url = f"{self.spec.url}ct/v1/get-entries?start={w.start}&end={w.end}"
        try:
            body = self.fetch(url)
            outcome: object = decode_get_entries(body, w.start)
        except (HTTPError, DecodeError) as exc:
            outcome = exc
        except Exception as exc:  # a bug: still answer, or _drain would wait forever
            log.exception("log %s: fetching %s failed", self.spec.name, url,
                          extra=ct_context(self.spec.name, w.start))
            outcome = exc
        results.put((w, outcome))
