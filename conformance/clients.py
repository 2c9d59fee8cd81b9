"""The harness's stream clients: one WebSocket (wsproto) or SSE (h11) reader per stream.

Each client runs in a thread of its own and appends the text of every message it receives
to ``frames``, untouched: a WebSocket text message's payload, or an SSE event's data lines
joined by ``"\\n"`` (an SSE data line cannot end in a newline, so a frame's own trailing
newline is not carried; the comparison knows).  The handshake happens in the constructor,
so a server that refuses a stream path fails there with the status it answered.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import h11
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

__all__ = ["SSE_TARGETS", "WS_PATHS", "ClientError", "SSEReader", "StreamReader", "WSReader"]

#: stream -> the path of each transport (the paths every certstream server serves).
WS_PATHS = {"lite": "/", "full": "/full-stream", "domains": "/domains-only"}
SSE_TARGETS = {"lite": "/sse", "full": "/sse?stream=full", "domains": "/sse?stream=domains"}


class ClientError(Exception):
    """A stream could not be opened (refused connection, rejected handshake)."""


class StreamReader:
    """What both transports share: the socket, the reader thread and what it collected."""

    label = ""

    def __init__(self, host: str, port: int, target: str, timeout: float) -> None:
        self.target = target
        self.frames: list[str] = []
        self.last_frame = 0.0  # monotonic time of the latest frame
        self.closed_why = ""  # set when the server ended the stream
        self._lock = threading.Lock()
        self._stop = False
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise ClientError(f"{self.label} {target}: cannot connect: {exc}") from exc
        try:
            self._handshake(host)
        except (OSError, ClientError, h11.ProtocolError) as exc:
            self.sock.close()
            if isinstance(exc, ClientError):
                raise
            raise ClientError(f"{self.label} {target}: handshake failed: {exc}") from exc
        self.sock.settimeout(0.5)
        self._thread = threading.Thread(target=self._run, name=f"harness {target}", daemon=True)
        self._thread.start()

    def _handshake(self, host: str) -> None:
        raise NotImplementedError

    def _feed(self, data: bytes) -> None:
        raise NotImplementedError

    def _add(self, text: str) -> None:
        with self._lock:
            self.frames.append(text)
            self.last_frame = time.monotonic()

    def count(self) -> int:
        with self._lock:
            return len(self.frames)

    def _run(self) -> None:
        try:
            while not self._stop:
                try:
                    data = self.sock.recv(1 << 16)
                except TimeoutError:
                    continue
                if not data:
                    self.closed_why = self.closed_why or "the server closed the connection"
                    return
                self._feed(data)
        except (OSError, h11.ProtocolError) as exc:
            if not self._stop:
                self.closed_why = f"{type(exc).__name__}: {exc}"

    def close(self) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=2)
        self.sock.close()


class WSReader(StreamReader):
    label = "WebSocket"

    def _handshake(self, host: str) -> None:
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.sock.sendall(self.ws.send(Request(host=host, target=self.target)))
        self._text: list[str] = []
        while True:
            data = self.sock.recv(1 << 16)
            if not data:
                raise ClientError(f"{self.label} {self.target}: closed during the handshake")
            self.ws.receive_data(data)
            for event in self.ws.events():
                if isinstance(event, AcceptConnection):
                    return
                if isinstance(event, RejectConnection):
                    raise ClientError(
                        f"{self.label} {self.target}: the server answered HTTP "
                        f"{event.status_code} instead of switching to WebSocket"
                    )
                if isinstance(event, RejectData):
                    continue

    def _feed(self, data: bytes) -> None:
        self.ws.receive_data(data)
        for event in self.ws.events():
            if isinstance(event, TextMessage):
                self._text.append(event.data)
                if event.message_finished:
                    self._add("".join(self._text))
                    self._text.clear()
            elif isinstance(event, Ping):
                self.sock.sendall(self.ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                self.closed_why = f"closed by the server: {event.code} {event.reason}".strip()
                with contextlib.suppress(Exception):
                    self.sock.sendall(self.ws.send(event.response()))
                self._stop = True


class SSEReader(StreamReader):
    label = "SSE"

    def _handshake(self, host: str) -> None:
        self.http = h11.Connection(h11.CLIENT)
        request = h11.Request(
            method="GET",
            target=self.target,
            headers=[("Host", host), ("Accept", "text/event-stream")],
        )
        self.sock.sendall(self.http.send(request) + self.http.send(h11.EndOfMessage()))
        self._pending = b""
        self._data: list[str] = []
        while True:
            event = self.http.next_event()
            if event is h11.NEED_DATA:
                data = self.sock.recv(1 << 16)
                if not data:
                    raise ClientError(f"{self.label} {self.target}: closed before a response")
                self.http.receive_data(data)
                continue
            if isinstance(event, h11.Response):
                if event.status_code != 200:
                    raise ClientError(
                        f"{self.label} {self.target}: the server answered HTTP {event.status_code}"
                    )
                self._drain()
                return

    def _feed(self, data: bytes) -> None:
        self.http.receive_data(data)
        self._drain()

    def _drain(self) -> None:
        while True:
            event = self.http.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Data):
                self._lines(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                self.closed_why = "the server ended the event stream"
                self._stop = True
                return

    def _lines(self, chunk: bytes) -> None:
        """The event-stream format: ``data:`` lines (one optional space after the colon)
        accumulate; an empty line dispatches the event; comments and other fields pass."""
        self._pending += chunk
        *lines, self._pending = self._pending.split(b"\n")
        for raw in lines:
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if not line:
                if self._data:
                    self._add("\n".join(self._data))
                    self._data = []
                continue
            field, _, value = line.partition(b":")
            if field == b"data":
                text = value.decode("utf-8")
                self._data.append(text[1:] if text.startswith(" ") else text)
