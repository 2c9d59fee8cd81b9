"""Server sessions as the hub gets them: :func:`ws_session`, a WebSocket session past its
handshake, ready to stream (for tests that add clients to a real hub over socket pairs)."""

from __future__ import annotations

from wsproto import ConnectionType, WSConnection
from wsproto.events import Request

from certstream.core.routes import RouteTable
from certstream.core.session import NEED_DATA, Session

__all__ = ["ws_session"]


def ws_session() -> Session:
    """A server session of ``/`` whose WebSocket upgrade is accepted and sent."""
    session = Session(RouteTable())
    client = WSConnection(ConnectionType.CLIENT)
    session.receive_data(client.send(Request(host="x", target="/")))
    while session.next_event() is not NEED_DATA:
        pass
    session.accept_websocket()
    session.data_to_send()
    return session
