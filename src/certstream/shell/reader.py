"""A streaming client's input once its response head is out: a libev read watcher whose
callback runs in the gevent hub and never blocks, where a greenlet used to wait in ``recv``.

Why: an idle client's greenlet cost ~9 KiB (the C stack saved while it waits, its
``Greenlet``, the frame data stack CPython gives each greenlet); a watcher and this object
cost a few hundred bytes (``bench/README.md``, "Where the memory goes").  A streaming
client's input is small and rare (pings, the closing handshake, EOF), and everything it
triggers is non-blocking: replies go through the hub's write path, which hands whatever the
kernel does not take at once to a writer greenlet of that client.

The handler greenlet (``shell.conn``) reads the request, answers, registers the client with
the hub and hands the connection to a :class:`StreamReader`, then returns.  From then on the
reader owns the connection: its end gives back everything the handler held (the hub's
cursor, the connection's place in the shared limits, the Go per-client label, the worker's
count of open connections) and closes the socket.

TLS clients keep their handler greenlet (``shell.conn._read_until_closed``): their bytes come
through the SSL object, whose reads may have to write.  Both paths handle input with
:func:`take_input`.
"""

from __future__ import annotations

import _socket
import logging
import os

import gevent

from certstream.core.session import (
    NEED_DATA,
    ClientClosed,
    ConnectionLost,
    PingReceived,
    ProtocolViolation,
)
from certstream.shell.endpoints import ServerContext
from certstream.shell.hub import Client, Hub
from certstream.shell.sharedlimits import Place

__all__ = ["RECV_BYTES", "StreamReader", "take_input"]

log = logging.getLogger(__name__)

#: The most one read takes (the rest waits for the next wake-up).
RECV_BYTES = 65536
_READ = 1  # libev's EV_READ


def take_input(hub: Hub, client: Client, data: bytes) -> bool:
    """Feed ``data`` from ``client`` (``b""``: its EOF) to its session and act on what it
    says; True when the connection is over and its socket should be closed now."""
    session = client.session
    session.receive_data(data)
    while (event := session.next_event()) is not NEED_DATA:
        if isinstance(event, PingReceived):
            hub.send(client, session.data_to_send())
        elif isinstance(event, ClientClosed | ProtocolViolation):
            # The session queued our reply / our Close; the hub sends it in order and
            # half-closes once it is out.
            hub.close_client(client, 1000, "")
            if isinstance(event, ClientClosed) and not client.busy:
                # Both Close frames are out: the server closes the TCP connection first
                # (RFC 6455 §7.1.1), now.
                return True
        elif isinstance(event, ConnectionLost):
            return True
    return False


def detached(sock: _socket.socket) -> _socket.socket:
    """The connection of gevent socket ``sock`` as a bare (unpatched) socket object that
    owns its file descriptor: ``sock`` lets go of it and of its two event watchers, so
    closing ``sock`` (as gevent's server does when the handler returns) no longer closes
    the connection."""
    fd = sock.detach()
    os.set_blocking(fd, False)  # it is, as gevent made it; reads must never block the hub
    return _socket.socket(fileno=fd)


class StreamReader:
    """Reads one streaming client from a watcher in the hub until its connection ends (see
    the module docstring).  The watcher keeps it alive: nothing else refers to it."""

    __slots__ = ("client", "ctx", "place", "watcher")

    def __init__(self, ctx: ServerContext, client: Client, place: Place) -> None:
        self.ctx = ctx
        self.client = client
        self.place = place
        client.sock = detached(client.sock)  # the same fd: client.fd stays valid
        self.watcher = gevent.get_hub().loop.io(client.fd, _READ)
        self.watcher.start(self._readable)

    def _readable(self) -> None:
        client = self.client
        if client.fd < 0:
            self.end()  # removed from the hub meanwhile: nothing more to read
            return
        try:
            data = os.read(client.fd, RECV_BYTES)
        except BlockingIOError:
            return  # woken for nothing
        except OSError:  # reset: the same as EOF
            data = b""
        try:
            over = take_input(self.ctx.hub, client, data)
        except Exception:  # a bug must end this connection only, and be seen
            log.exception("stream reader failed")
            over = True
        if over:
            self.end()

    def end(self) -> None:
        """Stop reading and give back everything the connection held; closes the socket.
        Idempotent."""
        watcher = self.watcher
        if watcher is None:
            return
        self.watcher = None
        watcher.stop()
        watcher.close()
        ctx, client = self.ctx, self.client
        killed_writer = client.writer is not None
        try:
            ctx.hub.remove(client)
            if ctx.peers is not None:
                ctx.peers.pop(client, None)
        finally:
            # A hot reload replaces ctx.access but keeps its connection counts.
            ctx.access.connections.release(self.place)
            sock = client.sock
            if killed_writer:
                # The writer greenlet still waits on this fd until the kill the hub queued
                # reaches it (in the hub's next round of callbacks): close after that, so
                # no watcher is left on a number the kernel may give to a new connection.
                gevent.get_hub().loop.run_callback(sock.close)
            else:
                sock.close()
            if ctx.on_end is not None:
                ctx.on_end()
