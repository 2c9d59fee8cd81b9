"""Byte-exact clients of the server: one HTTP GET, a WebSocket client that returns raw
frames (opcodes, payloads, close codes), and an SSE reader."""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import ssl
from collections.abc import Mapping

from tests.support.wsframes import close_info, encode_frame, next_raw_frame


def http_get(port: int, target: str, *, headers: Mapping[str, str] | None = None,
             raw: bytes | None = None, source: str | None = None,
             timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """One GET on a fresh connection (the server closes after answering), or the ``raw``
    request. From ``source`` if given: any 127.x address is this machine's loopback on Linux,
    so a second client address needs no network."""
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    request = raw or f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                  source_address=(source, 0) if source else None) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


class RawWS:
    """A blocking WebSocket client that exposes frames as ``(opcode, payload bytes)``."""

    def __init__(self, port: int, path: str = "/", *, timeout: float = 5.0,
                 extra_headers: str = "", tls: bool = False) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls:  # a test server's self-signed certificate: no verification
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            self.sock = context.wrap_socket(self.sock, server_hostname="localhost")
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n{extra_headers}\r\n".encode()
        )
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed during handshake: {self.buf!r}")
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        self.status = int(head.split()[1])
        self.head = head

    def recv_frame(self) -> tuple[int, bytes]:
        first, payload = self.recv_raw_frame()
        return first & 0x0F, payload

    def recv_raw_frame(self) -> tuple[int, bytes]:
        """The next frame's first byte (FIN, RSV1 for a compressed message, opcode) and
        its payload as sent."""
        while (frame := next_raw_frame(self.buf)) is None:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        first, payload, used = frame
        self.buf = self.buf[used:]
        return first, payload

    def recv_data(self, *, skip_control: bool = True) -> bytes:
        """The next text frame's payload (pings and pongs are skipped)."""
        while True:
            opcode, payload = self.recv_frame()
            if opcode == 1:
                return payload
            if opcode == 8:
                raise ConnectionError(f"closed by server: {close_info(payload)}")
            if not skip_control:
                raise AssertionError(f"unexpected opcode {opcode}")

    def send_frame(self, opcode: int, payload: bytes = b"", *, mask: bool = True,
                   fin: bool = True) -> None:
        first = (0x80 if fin else 0) | opcode
        self.sock.sendall(encode_frame(first, payload, mask=os.urandom(4) if mask else None))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class SSEClient:
    """A blocking reader of an SSE response: ``next_event()`` returns ``(id, data bytes)``
    (the id as the server wrote it, ``<ms>-<n>``) and ``next_block()`` each raw event."""

    def __init__(self, port: int, target: str = "/sse", *, timeout: float = 5.0,
                 headers: Mapping[str, str] | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        self.sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed before the head")
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        self.head = head.decode("latin-1")
        self.comments: list[bytes] = []

    def next_block(self) -> bytes | None:
        while b"\n\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        block, _, self.buf = self.buf.partition(b"\n\n")
        return block

    def next_event(self) -> tuple[str | None, bytes] | None:
        """The next event with data (comments are collected in ``comments``)."""
        while True:
            block = self.next_block()
            if block is None:
                return None
            event_id: str | None = None
            data: list[bytes] = []
            for line in block.split(b"\n"):
                if line.startswith(b":"):
                    self.comments.append(line)
                elif line.startswith(b"id: "):
                    event_id = line[4:].decode()
                elif line.startswith(b"data: "):
                    data.append(line[6:])
            if data:
                return event_id, b"\n".join(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
