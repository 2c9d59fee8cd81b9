"""Helpers for tests that run the real server: start it, feed it, and talk to it.

* :class:`FakeFeed` stands in for the ingest: it listens on the feed socket the workers
  connect to and speaks the real feed codec (``certstream.core.feedcodec``), from plain threads
  so that tests need no gevent loop.
* :func:`run_server` starts the real ``certstream`` command as a subprocess on a free port,
  with a temporary config (no log lists, so nothing goes to the network) and that feed
  socket; a ``gunicorn.conf.py`` in its working directory turns off the ingest hook.
* :class:`RawWS` is a minimal blocking WebSocket client that returns frames as raw bytes, so
  tests can check byte-exact payloads, opcodes and close codes.
* :func:`golden_payloads` reads real payloads (the Go server's frames) from the conformance data.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from certstream.core.feedcodec import (
    FeedDecoder,
    encode_entry,
    encode_example,
    encode_state,
)

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "conformance" / "data" / "golden" / "go" / "live40"

LITE, FULL, DOMAINS = 1, 2, 4


def golden_payloads(stream: str) -> list[bytes]:
    """The exact text-frame payloads certstream-server-go sent for the live40 set."""
    path = GOLDEN / f"{stream}.jsonl"
    return [json.loads(line).encode("utf-8") for line in path.read_text().splitlines() if line]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


# -- the feed --------------------------------------------------------------------------------


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


# -- the server ------------------------------------------------------------------------------


@dataclass
class Server:
    port: int
    proc: subprocess.Popen[bytes]
    fake_feed: FakeFeed | None
    workdir: Path
    log_path: Path

    @property
    def feed(self) -> FakeFeed:
        """The fake ingest (servers started with ``ingest=True`` have the real one)."""
        assert self.fake_feed is not None, "this server runs the real ingest"
        return self.fake_feed

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def worker_pids(self) -> list[int]:
        """The master's children that serve clients (the ingest process is left out)."""
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True,
                             text=True, check=False)
        pids = []
        for pid in (int(p) for p in out.stdout.split()):
            with contextlib.suppress(OSError):
                if b"certstream.shell.ingest" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                    pids.append(pid)
        return pids


def sockets_on_port(pid: int, port: int) -> int:
    """Established TCP connections on local ``port`` that process ``pid`` holds (/proc)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                # fields[3] == "01" is ESTABLISHED; fields[9] is the socket inode.
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                    inodes.add(f"socket:[{fields[9]}]")
    held = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            held += os.readlink(fd) in inodes
    return held


# Read by the ``certstream`` command from its working directory, after its own options.
GUNICORN_CONF = """\
# The test's FakeFeed listens on the feed socket in place of the ingest.
def when_ready(server):
    pass

graceful_timeout = {graceful}
"""


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


@contextlib.contextmanager
def run_server(config: Mapping[str, Any] | None = None, *, workers: int = 1,
               graceful: int = 10, ingest: bool = False,
               gunicorn: bool = False) -> Iterator[Server]:
    """The ``certstream`` command on a free port, fed by a :class:`FakeFeed`, or with
    ``ingest=True`` by its own ingest process (configure ``custom_logs`` then).

    ``gunicorn=True`` starts ``gunicorn -c gunicorn.conf.py`` (the repository's file)
    instead of the ``certstream`` command; it needs ``ingest=True``, since the fake feed
    relies on a ``gunicorn.conf.py`` of the test's own."""
    assert ingest or not gunicorn, "gunicorn.conf.py always starts the real ingest"
    with tempfile.TemporaryDirectory(prefix="certstream-test-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        feed_path = str(workdir / "feed.sock")
        settings = _deep_merge(
            {
                "host": "127.0.0.1",
                "port": port,
                "workers": workers,
                "feed_socket": feed_path,
                "ct_log": {"log_list_urls": [], "state_file": str(workdir / "state.json")},
            },
            config or {},
        )
        (workdir / "config.yaml").write_text(yaml.safe_dump(settings))
        (workdir / "gunicorn.conf.py").write_text(
            GUNICORN_CONF.format(graceful=graceful) if not ingest
            else f"graceful_timeout = {graceful}\n"
        )
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("CERTSTREAM_") and k != "PROMETHEUS_MULTIPROC_DIR"}
        env.update({"CERTSTREAM_CONFIG": str(workdir / "config.yaml"), "PYTHONUNBUFFERED": "1"})
        feed = FakeFeed(feed_path) if not ingest else None
        log_path = workdir / "server.log"
        with open(log_path, "wb") as log_file:
            # The real entry point: the console script next to this interpreter.
            bin_dir = Path(sys.executable).parent
            argv = ([str(bin_dir / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py")]
                    if gunicorn else [str(bin_dir / "certstream")])
            proc = subprocess.Popen(
                argv,
                cwd=workdir, env=env, stdout=log_file, stderr=subprocess.STDOUT,
            )
        server = Server(port, proc, feed, workdir, log_path)
        try:
            if feed is not None:
                feed.wait_workers(workers)
            assert wait_until(lambda: _accepts(port), 15), server.log()
            yield server
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGQUIT)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if feed is not None:
                feed.close()
        # Reached only when the test passed: the server must not have logged a crash.
        assert "Traceback" not in server.log(), server.log()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


# -- clients ---------------------------------------------------------------------------------


def http_get(port: int, target: str, *, raw: bytes | None = None,
             timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection; the server closes after answering."""
    request = raw or f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
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

    def _need(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_frame(self) -> tuple[int, bytes]:
        b0, b1 = self._need(2)
        assert b0 & 0x80, "server frames are never fragmented"
        assert not b1 & 0x80, "server frames are never masked"
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(self._need(2), "big")
        elif n == 127:
            n = int.from_bytes(self._need(8), "big")
        return b0 & 0x0F, self._need(n)

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
        header = bytes(((0x80 if fin else 0) | opcode,))
        n = len(payload)
        mbit = 0x80 if mask else 0
        if n < 126:
            header += bytes((mbit | n,))
        elif n < 65536:
            header += bytes((mbit | 126,)) + n.to_bytes(2, "big")
        else:
            header += bytes((mbit | 127,)) + n.to_bytes(8, "big")
        if mask:
            key = os.urandom(4)
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            header += key
        self.sock.sendall(header + payload)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def close_info(payload: bytes) -> tuple[int, str]:
    if len(payload) < 2:
        return 1005, ""
    return int.from_bytes(payload[:2], "big"), payload[2:].decode("utf-8", "replace")


class SSEClient:
    """A blocking reader of an SSE response: ``events()`` yields ``(id, data bytes)``."""

    def __init__(self, port: int, target: str = "/sse", *, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
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

    def next_event(self) -> tuple[int | None, bytes] | None:
        """The next event with data (comments are collected in ``comments``)."""
        while True:
            block = self.next_block()
            if block is None:
                return None
            event_id, data = None, []
            for line in block.split(b"\n"):
                if line.startswith(b":"):
                    self.comments.append(line)
                elif line.startswith(b"id: "):
                    event_id = int(line[4:])
                elif line.startswith(b"data: "):
                    data.append(line[6:])
            if data:
                return event_id, b"\n".join(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
