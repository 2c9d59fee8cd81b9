"""A test double of a faulty certstream server: relays a real server's WebSocket streams, with
one entry dropped, one repeated, or two swapped.

It is what the harness must catch, so it is a real server command the harness starts like any
other::

    python -m conformance.faulty_relay --port {port} --drop 2 --repeat 4 --swap 7 -- \\
        certstream --config {config} --port {upstream}

It starts the command after ``--`` (``{upstream}`` replaced by a free port), listens on
``--port``, and for each WebSocket client opens the same path on the upstream server and
forwards its text messages, counting them per connection from 0: message ``--drop N`` is left
out, ``--repeat N`` is sent twice, ``--swap N`` is sent after message N+1.  Every stream of
one broadcast sees the same entry at the same position, so a fault hits the same entry on
every stream.  WebSocket only.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Message,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)

HOST = "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


class _Faults:
    def __init__(self, drop: int | None, repeat: int | None, swap: int | None) -> None:
        self.drop, self.repeat, self.swap = drop, repeat, swap

    def apply(self, n: int, text: str, held: list[str]) -> list[str]:
        """What to send downstream for upstream message ``n``; ``held`` carries a swapped
        message over to the next one."""
        if n == self.drop:
            return []
        if n == self.swap:
            held.append(text)
            return []
        out = [text, text] if n == self.repeat else [text]
        out += held
        held.clear()
        return out


def _read_event(sock: socket.socket, ws: WSConnection, want: tuple[type, ...]) -> object:
    while True:
        for event in ws.events():
            if isinstance(event, want):
                return event
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed during the handshake")
        ws.receive_data(data)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False


def _connect_upstream(port: int, target: str) -> tuple[socket.socket, WSConnection, object]:
    sock = socket.create_connection((HOST, port), timeout=10)
    sock.settimeout(None)
    ws = WSConnection(ConnectionType.CLIENT)
    sock.sendall(ws.send(Request(host=HOST, target=target)))
    event = _read_event(sock, ws, (AcceptConnection, RejectConnection))
    return sock, ws, event


def _serve(conn: socket.socket, upstream_port: int, faults: _Faults) -> None:
    down = WSConnection(ConnectionType.SERVER)
    up_sock: socket.socket | None = None
    try:
        request = _read_event(conn, down, (Request,))
        assert isinstance(request, Request)
        up_sock, up, answer = _connect_upstream(upstream_port, request.target)
        if isinstance(answer, RejectConnection):
            conn.sendall(down.send(RejectConnection(status_code=answer.status_code)))
            return
        conn.sendall(down.send(AcceptConnection()))
        lock = threading.Lock()
        threading.Thread(target=_drain, args=(conn, down, up_sock, lock), daemon=True).start()
        n = 0
        parts: list[str] = []
        held: list[str] = []
        while data := up_sock.recv(65536):
            up.receive_data(data)
            for event in up.events():
                if isinstance(event, Ping):
                    up_sock.sendall(up.send(event.response()))
                elif isinstance(event, TextMessage):
                    parts.append(event.data)
                    if event.message_finished:
                        out = faults.apply(n, "".join(parts), held)
                        n += 1
                        parts.clear()
                        with lock:
                            conn.sendall(b"".join(down.send(Message(data=t)) for t in out))
                elif isinstance(event, CloseConnection):
                    return
    except (OSError, AssertionError):
        return
    finally:
        if up_sock is not None:
            up_sock.close()
        conn.close()


def _drain(conn: socket.socket, down: WSConnection, up_sock: socket.socket,
           lock: threading.Lock) -> None:
    """The client's side: answer pings; when it leaves, drop the upstream connection."""
    try:
        while data := conn.recv(65536):
            down.receive_data(data)
            for event in down.events():
                if isinstance(event, Ping):
                    with lock:
                        conn.sendall(down.send(event.response()))
                elif isinstance(event, CloseConnection):
                    raise ConnectionError
    except (OSError, ConnectionError):
        pass
    with contextlib.suppress(OSError):
        up_sock.shutdown(socket.SHUT_RDWR)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m conformance.faulty_relay", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--drop", type=int)
    ap.add_argument("--repeat", type=int)
    ap.add_argument("--swap", type=int)
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- the upstream server command")
    args = ap.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        ap.error("give the upstream server command after --")
    upstream_port = _free_port()
    argv_up = [a.replace("{upstream}", str(upstream_port)) for a in command]
    print("upstream:", shlex.join(argv_up), flush=True)
    upstream = subprocess.Popen(argv_up)
    faults = _Faults(args.drop, args.repeat, args.swap)
    # Listen only once the upstream does, as a server that is ready.
    while not _accepts(upstream_port):
        if upstream.poll() is not None:
            return 1
        time.sleep(0.1)
    listener = socket.create_server((HOST, args.port))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(
                target=_serve, args=(conn, upstream_port, faults), daemon=True
            ).start()

    threading.Thread(target=accept, daemon=True).start()
    while not done.wait(0.2):
        if upstream.poll() is not None:
            break
    listener.close()
    if upstream.poll() is None:
        upstream.terminate()
    try:
        upstream.wait(15)
    except subprocess.TimeoutExpired:
        upstream.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
