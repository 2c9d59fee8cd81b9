"""A tiny real WebSocket server for permessage-deflate: the core session does the handshake
(``Session.accept_websocket(compression=True)``) and every client gets the same frames the
hub will send, built once: compressed (``core.deflate.compressed_frame``) for a client that
negotiated it, plain (``core.frames.ws_frame``) otherwise.  Then a normal close.

It stands in for the worker until the hub sends compressed frames, so that real clients
(Python ``websockets``, node ``ws``) can be checked against our handshake and our frames.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType

from certstream.core.deflate import compressed_frame
from certstream.core.frames import ws_frame
from certstream.core.routes import RouteTable
from certstream.core.session import NEED_DATA, RequestReceived, Session

__all__ = ["DeflateServer"]


class DeflateServer:
    """``with DeflateServer(payloads) as server:`` then connect to ``server.url``;
    ``server.negotiated`` lists each connection's ``Session.deflate``."""

    def __init__(self, payloads: list[bytes], *, compression: bool = True) -> None:
        self.payloads = payloads
        self.compression = compression
        self.negotiated: list[object] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._cache: dict[int, bytes] = {}  # window bits -> the joined compressed frames

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._listener.getsockname()[1]}/"

    def __enter__(self) -> DeflateServer:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() below
        self._listener.close()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _frames(self, session: Session) -> bytes:
        if session.deflate is None:
            return b"".join(ws_frame(p) for p in self.payloads)
        bits = session.deflate.window_bits
        if bits not in self._cache:  # built once, whatever the number of clients
            self._cache[bits] = b"".join(compressed_frame(p, bits) for p in self.payloads)
        return self._cache[bits]

    def _client(self, conn: socket.socket) -> None:
        session = Session(RouteTable())
        with conn:
            conn.settimeout(10)
            while True:
                data = conn.recv(65536)
                session.receive_data(data)
                event = session.next_event()
                if isinstance(event, RequestReceived):
                    break
                if event is not NEED_DATA or not data:
                    return
            session.accept_websocket(compression=self.compression)
            self.negotiated.append(session.deflate)
            conn.sendall(session.data_to_send() + self._frames(session))
            session.close_websocket(1000, "done")
            conn.sendall(session.data_to_send())
            try:
                # Wait for the client's Close; then the server closes the TCP connection
                # first, as RFC 6455 §7.1.1 asks.
                while data := conn.recv(65536):
                    session.receive_data(data)
                    if session.next_event() is not NEED_DATA:
                        break
            except OSError:
                pass
