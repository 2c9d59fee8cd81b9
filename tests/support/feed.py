"""The ingest side of the feed socket, for tests that run real workers without the ingest."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Mapping

from tests.support.wait import wait_until

from certstream.shell.feed import (
    FeedDecoder,
    encode_entry,
    encode_example,
    encode_state,
)

LITE, FULL, DOMAINS = 1, 2, 4


class FakeFeed:
    """The ingest side of the feed socket, driven by the test."""

    def __init__(self, path: str) -> None:
        self.path = path
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(path)
        self._listener.listen(16)
        self._lock = threading.Lock()
        self._peers: dict[socket.socket, int] = {}
        self._closed = False
        self._index = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._listener.accept()
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
                    if kind == 3:  # WANT
                        with self._lock:
                            self._peers[conn] = value
        except OSError:
            pass
        with self._lock:
            self._peers.pop(conn, None)
        conn.close()

    @property
    def workers(self) -> int:
        with self._lock:
            return len(self._peers)

    def masks(self) -> list[int]:
        with self._lock:
            return list(self._peers.values())

    def wait_workers(self, n: int, timeout: float = 15.0) -> None:
        assert wait_until(lambda: self.workers >= n, timeout), f"{self.workers} of {n} workers"

    def wait_wanted(self, mask: int, *, all_workers: bool = False, timeout: float = 10.0) -> None:
        def ok() -> bool:
            masks = self.masks()
            if all_workers:
                return bool(masks) and all(m & mask == mask for m in masks)
            combined = 0
            for m in masks:
                combined |= m
            return combined & mask == mask

        assert wait_until(ok, timeout), f"wanted {mask}, have {self.masks()}"

    def _send(self, data: bytes) -> None:
        with self._lock:
            peers = list(self._peers)
        for conn in peers:
            with contextlib.suppress(OSError):
                conn.sendall(data)

    def publish(self, lite: bytes | None = None, full: bytes | None = None,
                domains: bytes | None = None, *, key: str = "test-log") -> int:
        """Send one ENTRY to every worker; returns its index."""
        index = self._index
        self._index += 1
        self._send(encode_entry(key, index, lite, full, domains))
        return index

    def publish_many(self, items: list[tuple[bytes | None, bytes | None, bytes | None]],
                     *, key: str = "test-log") -> None:
        """Several ENTRY messages in one write (as the ingest sends a batch)."""
        parts = []
        for lite, full, domains in items:
            parts.append(encode_entry(key, self._index, lite, full, domains))
            self._index += 1
        self._send(b"".join(parts))

    def state(self, state: Mapping[str, object]) -> None:
        self._send(encode_state(state))

    def example(self, lite: bytes) -> None:
        self._send(encode_example(lite))

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            peers = list(self._peers)
        for conn in peers:
            with contextlib.suppress(OSError):
                conn.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
