"""The ingest side of the feed, played by the test: :class:`FakeFeed`."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tests.support.wait import wait_until

from certstream.core.feedcodec import (
    FeedDecoder,
    encode_entry,
    encode_example,
    encode_state,
)
from certstream.core.messages import Payloads

# The feed's stream bits, written here from the feed contract rather than imported, so that
# the tests hold the wire format to the contract.
LITE, FULL, DOMAINS = 1, 2, 4
KIND_WANT = 3


class FakeFeed:
    """The ingest side of the feed, driven by the test; shaped like
    ``certstream.shell.feed.FeedPublisher`` (``publish``, ``publish_state``,
    ``publish_example``, ``wanted``, ``connected``).

    ``FakeFeed(path)`` listens on the feed socket, from plain threads (no gevent loop needed):
    real workers (a server from :func:`~tests.support.server.run_server`) connect to it, every
    message goes to each of them encoded with the real feed codec, and the WANT mask each one
    sends is tracked (:meth:`masks`, :meth:`wait_wanted`).

    ``FakeFeed(wanted=mask)`` has no socket: a ``Pipeline`` publishes into it in-process, it
    reports one connected worker that wants ``mask``, and the test reads what arrived.

    Either way everything published is kept: :attr:`items`, :attr:`states`, :attr:`examples`.
    """

    def __init__(self, path: str | None = None, *, wanted: int = 0) -> None:
        self.path = path
        self.mask = wanted  # what the workers want when there is no socket
        self.items: list[tuple[str, int, Any]] = []
        self.states: list[Mapping[str, object]] = []
        self.examples: list[bytes] = []
        self._lock = threading.Lock()
        self._peers: dict[socket.socket, int] = {}
        self._closed = False
        self._index = 0
        self._listener: socket.socket | None = None
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._listener.bind(path)
            self._listener.listen(16)
            threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    # -- the workers' side ---------------------------------------------------------------

    def _accept(self, listener: socket.socket) -> None:
        while not self._closed:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self._peers[conn] = 0
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        decoder = FeedDecoder()
        try:
            while data := conn.recv(65536):
                decoder.receive_data(data)
                while (msg := decoder.next_message()) is not None:
                    kind, value = msg
                    if kind == KIND_WANT:
                        with self._lock:
                            self._peers[conn] = value
        except OSError:
            pass
        with self._lock:
            self._peers.pop(conn, None)
        conn.close()

    def connected(self) -> int:
        """Workers connected to the socket; without a socket, the one the test stands for."""
        if self._listener is None:
            return 1
        with self._lock:
            return len(self._peers)

    def masks(self) -> list[int]:
        """The WANT mask of each connected worker."""
        with self._lock:
            return list(self._peers.values())

    def wanted(self) -> int:
        """The streams any worker wants (``mask`` when there is no socket)."""
        if self._listener is None:
            return self.mask
        combined = 0
        for m in self.masks():
            combined |= m
        return combined

    def wait_workers(self, n: int, timeout: float = 15.0) -> None:
        assert wait_until(lambda: self.connected() >= n, timeout), (
            f"{self.connected()} of {n} workers")

    def wait_wanted(self, mask: int, *, all_workers: bool = False, timeout: float = 10.0) -> None:
        def ok() -> bool:
            masks = self.masks()
            if all_workers:
                return bool(masks) and all(m & mask == mask for m in masks)
            return self.wanted() & mask == mask

        assert wait_until(ok, timeout), f"wanted {mask}, have {self.masks()}"

    # -- publishing ----------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        with self._lock:
            peers = list(self._peers)
        for conn in peers:
            with contextlib.suppress(OSError):
                conn.sendall(data)

    def publish(self, items: Sequence[tuple[str, int, Any]],
                on_delivered: Callable[[], None] | None = None,
                on_lost: Callable[[], None] | None = None) -> None:
        """ENTRY messages, all in one write (as the ingest sends a batch): ``(log key, index,
        payloads)`` with ``lite``, ``full``, ``domains`` and optionally ``fields`` (the filter
        field) attributes, as ``Pipeline`` publishes them.  Delivered at once (the test
        stands for workers that got them): ``on_delivered`` is called before this returns."""
        self.items.extend(items)
        if self._listener is not None:
            self._send(b"".join(
                encode_entry(key, index, p.lite, p.full, p.domains,
                             fields=getattr(p, "fields", None))
                for key, index, p in items))
        if on_delivered is not None:
            on_delivered()

    def indices(self, key_suffix: str = "") -> list[int]:
        """The indices published, in order, of the logs whose key ends with ``key_suffix``."""
        return [i for k, i, _p in self.items if k.endswith(key_suffix)]

    def publish_one(self, lite: bytes | None = None, full: bytes | None = None,
                    domains: bytes | None = None, *, key: str = "test-log") -> int:
        """One ENTRY with the next index of ``key``; returns that index."""
        index = self._index
        self.publish_many([(lite, full, domains)], key=key)
        return index

    def publish_many(self, payloads: Sequence[tuple[bytes | None, bytes | None, bytes | None]],
                     *, key: str = "test-log") -> None:
        """Several ENTRY messages in one write, numbered on from the last."""
        first = self._index
        self._index += len(payloads)
        self.publish([(key, first + i, Payloads(*p)) for i, p in enumerate(payloads)])

    def publish_state(self, state: Mapping[str, object]) -> None:
        self.states.append(state)
        self._send(encode_state(state))

    def publish_example(self, lite: bytes) -> None:
        self.examples.append(lite)
        self._send(encode_example(lite))

    def close(self) -> None:
        self._closed = True
        if self._listener is None:
            return
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            peers = list(self._peers)
        for conn in peers:
            with contextlib.suppress(OSError):
                conn.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path or "")
