"""Server sessions as the hub gets them: :func:`ws_session`, a WebSocket session past its
handshake, ready to stream (for tests that add clients to a real hub over socket pairs);
:func:`open_ws`, one with the wsproto client that opened it, and :func:`session_events`."""

from __future__ import annotations

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request
from wsproto.extensions import PerMessageDeflate

from certstream.core.routes import RouteTable
from certstream.core.session import NEED_DATA, RequestReceived, Session

__all__ = ["open_ws", "session_events", "ws_session"]

_ALL = RouteTable(api=True)


def session_events(session: Session) -> list[object]:
    """Every event the session has now, in order."""
    out: list[object] = []
    while (event := session.next_event()) is not NEED_DATA:
        out.append(event)
    return out


def open_ws(target: str = "/", *, compression: bool = False,
            **kwargs: int) -> tuple[Session, WSConnection]:
    """A session of ``target`` past its upgrade (``kwargs`` are the session's limits) and the
    wsproto client that sent it, which has read our 101.  With ``compression`` the client
    offers permessage-deflate and the session accepts what it can."""
    session = Session(_ALL, **kwargs)
    client = WSConnection(ConnectionType.CLIENT)
    extensions = [PerMessageDeflate()] if compression else []
    session.receive_data(client.send(Request(host="x", target=target, extensions=extensions)))
    (event,) = session_events(session)
    assert isinstance(event, RequestReceived) and event.route.kind == "ws"
    session.accept_websocket(compression=compression)
    client.receive_data(session.data_to_send())
    assert isinstance(next(client.events()), AcceptConnection)
    return session, client


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
