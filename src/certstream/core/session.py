"""One client connection as a sans-IO state machine: bytes in, events and bytes out.

Theory of operation
-------------------
A connection starts by sending an HTTP/1.1 request, parsed by h11.  The request line is
routed (``core.routes``) and handed to the shell as ``RequestReceived``; the shell answers
with exactly one of ``accept_websocket()``, ``start_sse()`` or ``respond()``.  Bad requests
never reach the shell: the session answers them itself (400 with h11's status hint, 431 for
oversized headers, 404, 405, 400/426 for a bad WebSocket upgrade) and reports ``Rejected``.

After the upgrade, wsproto parses the client's frames.  The session answers what needs an
answer (Pong for Ping, the closing handshake) and turns everything that must end the
connection into ``ClientClosed`` or ``ProtocolViolation`` with the close frame already
queued: unmasked frames (1002), invalid UTF-8 (1007), messages larger than
``max_message_bytes`` (1009), bad opcodes or fragmentation (1002).  Client data frames are
otherwise ignored: clients like certstream-dotnet send ``"ping"`` as text.

wsproto's frame-level connection (its frame and message decoders, buffer and parsing
generator: ~0.9 KiB) is held only while the client has sent part of a frame or of a
fragmented message.  ``core.wsconn.FrameBounds``, fed the same bytes, says when all of them
ended; the connection is then dropped, and the client's next bytes get a fresh one, made
as the upgrade made the first (nothing of a finished message is needed later, not even by
the inflater: see ``core.wsconn.BoundedInflate``).  An idle client sends nothing but a pong
now and then, so it holds no parser between them.  Once wsproto reports a violation or a
close, or we sent our own Close, the connection is kept to the end.

What the session does NOT do is build data frames.  Server-to-client frames are unmasked,
so a frame's bytes are the same for every client: the hub builds each one once
(``core.frames``) and writes it to every socket, bypassing this object.

permessage-deflate keeps that true.  ``accept_websocket(compression=True)`` negotiates it
(``core.deflate.negotiate_deflate``) only without context takeover on our side, so each
message is compressed on its own and its compressed frame is shared by every client with
the same window (``Session.deflate`` tells the hub which frames this client gets; ``None``
means plain frames).  Compressing with context takeover would make every frame unique to
its client and multiply the CPU cost by the number of clients, so an offer we cannot
answer that way is declined and the client gets plain frames.  A client may compress what
it sends us; it is inflated with a bound (``max_message_bytes``), so a small compressed
frame cannot expand into a large buffer.

Output is collected, h2-style, and drained with ``data_to_send()``.  ``should_close`` turns
true once the connection must end after that output is flushed.  The responses are built by
``core.httpresponse``; the wsproto connection and the frame bounds are ``core.wsconn``'s.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import h11
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection, ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    TextMessage,
)
from wsproto.utilities import RemoteProtocolError as WSRemoteProtocolError

from certstream.core.deflate import DeflateParams, negotiate_deflate
from certstream.core.httpresponse import SSE_HEAD, http_response
from certstream.core.routes import Route, RouteTable
from certstream.core.wsconn import FrameBounds, frame_connection
from certstream.errors import LocalProtocolError

__all__ = [
    "NEED_DATA",
    "ClientClosed",
    "ConnectionLost",
    "Event",
    "PingReceived",
    "ProtocolViolation",
    "Rejected",
    "RequestReceived",
    "Session",
]

#: WebSocket close codes we send (RFC 6455 §7.4.1).
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TOO_BIG = 1009

_NOT_FOUND = b'{"error":"Not Found"}'


class _NeedData:
    """Sentinel: ``next_event()`` has nothing until more bytes arrive."""

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = _NeedData()


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A routed request; the shell must answer it (accept, start SSE or respond)."""

    route: Route
    method: str
    target: str
    headers: tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True, slots=True)
class Rejected:
    """The request was answered with an error by the session; close after flushing."""

    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class PingReceived:
    """A WebSocket Ping; its Pong is already queued."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class ClientClosed:
    """The client started the closing handshake; our reply is queued."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class ProtocolViolation:
    """The client broke the WebSocket protocol; our close frame (``code``) is queued."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class ConnectionLost:
    """The client closed its side of the TCP connection."""


Event = (
    RequestReceived | Rejected | PingReceived | ClientClosed | ProtocolViolation | ConnectionLost
)

# Connection phases.  Anything not listed for a phase is ignored (input) or a
# LocalProtocolError (a shell calling the wrong method).
_REQUEST = "request"
_ROUTED = "routed"  # RequestReceived returned, the shell has not answered yet
_WEBSOCKET = "websocket"
_SSE = "sse"
_CLOSING = "closing"  # we sent our WebSocket Close: waiting for the client's
_DONE = "done"  # answered (HTTP), rejected, or closing: only EOF is still reported


# Stands in for the h11 connection once the request is answered, so that it can be freed.
_SPENT = h11.Connection(h11.SERVER)


class Session:
    """The sans-IO state of one client connection (see the module docstring)."""

    __slots__ = (
        "_bounds",
        "_eof",
        "_h11",
        "_max_message_bytes",
        "_message_bytes",
        "_out",
        "_pending",
        "_phase",
        "_request",
        "_routes",
        "_ws",
        "deflate",
        "should_close",
    )

    def __init__(
        self,
        routes: RouteTable,
        *,
        max_header_bytes: int = 16384,
        max_message_bytes: int = 65536,
    ) -> None:
        self._routes = routes
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=max_header_bytes)
        # After the upgrade only wsproto's frame-level Connection is kept, and only while
        # a frame or message is unfinished (``_bounds`` says when): the handshake objects
        # (two h11 connections) would cost kilobytes per idle client, the parser ~0.9 KiB.
        self._ws: Connection | None = None
        self._bounds: FrameBounds | None = None
        self._phase = _REQUEST
        # Output and events are rare once a connection streams (a pong now and then): no
        # list is kept while there is nothing in it.
        self._out: list[bytes] | None = None
        self._pending: list[Event] | None = None
        self._request: h11.Request | None = None
        self._max_message_bytes = max_message_bytes
        self._message_bytes = 0
        self._eof = False
        self.should_close = False
        #: The permessage-deflate parameters agreed with this client, or None (plain frames).
        self.deflate: DeflateParams | None = None

    # -- input ---------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the client; ``b""`` means it closed its side (EOF)."""
        if self._phase == _REQUEST:
            self._h11.receive_data(data)  # h11 itself turns EOF into an event or an error
        elif not data:
            if not self._eof:
                self._lost()
        elif self._phase in (_WEBSOCKET, _CLOSING):
            ws = self._frame_parser()
            if self._bounds is not None:
                self._bounds.feed(data)
            ws.receive_data(data)
            self._pump_websocket()
            self._rest()
        # Otherwise (SSE, answered, closing) the client has nothing more to say that we read.

    def next_event(self) -> Event | _NeedData:
        """The next event, or ``NEED_DATA``."""
        if self._pending:
            return self._pop()
        if self._phase == _REQUEST:
            return self._next_request_event()
        return NEED_DATA

    def data_to_send(self) -> bytes:
        """Everything queued for the client since the last call."""
        out, self._out = self._out, None
        return b"".join(out) if out else b""

    @property
    def is_websocket(self) -> bool:
        return self._phase == _WEBSOCKET

    @property
    def holds_frame_parser(self) -> bool:
        """Whether wsproto's frame parser is held: only while the client's bytes end inside
        a frame or a fragmented message, or once the connection is closing."""
        return self._ws is not None

    # -- answering a request ---------------------------------------------------------------

    def accept_websocket(self, *, compression: bool = False) -> None:
        """Answer the routed upgrade request with 101, or reject a bad upgrade (400/426).

        With ``compression``, a permessage-deflate offer we can honour is accepted (see the
        module docstring) and ``deflate`` says with which parameters.
        """
        request = self._take_request()
        ws = WSConnection(ConnectionType.SERVER)
        try:
            ws.initiate_upgrade_connection(list(request.headers), request.target)
            for _request in ws.events():  # the wsproto Request event: nothing to decide
                pass
        except WSRemoteProtocolError as exc:
            hint = exc.event_hint
            status = hint.status_code if isinstance(hint, RejectConnection) else 400
            extra = list(hint.headers) if isinstance(hint, RejectConnection) else []
            self._reject(status, str(exc), extra)
            return
        except h11.ProtocolError as exc:
            # wsproto re-serializes the request with h11 as a client would send it, which is
            # stricter than what h11 accepts from one (an HTTP/1.0 request without Host).
            self._reject(400, f"bad upgrade request: {exc}")
            return
        # wsproto itself accepts no extension (it would compress per client); ours is
        # negotiated here and its inbound side handed to the frame-level connection.
        offer = (
            negotiate_deflate(v for n, v in request.headers if n == b"sec-websocket-extensions")
            if compression
            else None
        )
        extra = [(b"Sec-WebSocket-Extensions", offer.header)] if offer is not None else []
        self._emit(ws.send(AcceptConnection(extra_headers=extra)))
        # The frame parser is made when the client's first frame arrives (``_frame_parser``),
        # the same one the handshake made and we drop here with it.
        self.deflate = offer
        self._phase = _WEBSOCKET
        trailing, _closed = self._h11.trailing_data
        self._h11 = _SPENT
        if trailing:  # frames the client sent without waiting for our 101
            self.receive_data(bytes(trailing))

    def start_sse(self) -> None:
        """Answer the routed SSE request with the event-stream head."""
        self._take_request()
        self._emit(SSE_HEAD)
        self._phase = _SSE
        self._h11 = _SPENT

    def respond(
        self,
        status: int,
        body: bytes,
        content_type: bytes = b"application/json",
        headers: Iterable[tuple[bytes, bytes]] = (),
    ) -> None:
        """Answer the routed request with one response; the connection then ends."""
        request = self._take_request()
        self._emit(
            http_response(status, body, content_type, headers, head=request.method == b"HEAD")
        )
        self._phase = _DONE
        self.should_close = True

    # -- server-initiated WebSocket close ----------------------------------------------------

    def close_websocket(self, code: int, reason: str = "") -> None:
        """Queue our Close frame (shutdown, slow client); the connection then ends."""
        # Between frames no parser is held: a fresh one sends our Close and then reads the
        # client's answer, and is kept from now on.
        ws = self._frame_parser() if self._phase == _WEBSOCKET else self._ws
        self.should_close = True
        if ws is not None and ws.state is ConnectionState.OPEN and self._phase == _WEBSOCKET:
            self._emit(ws.send(CloseConnection(code=code, reason=reason)))
            self._phase = _CLOSING  # the client's Close reply is still reported
            self._bounds = None  # no longer asked
            return
        if ws is not None and ws.state is ConnectionState.REMOTE_CLOSING:
            self._emit(ws.send(CloseConnection(code=code, reason=reason)))
        if self._phase != _CLOSING:
            self._phase = _DONE

    # -- internals ---------------------------------------------------------------------------

    def _emit(self, data: bytes) -> None:
        if self._out is None:
            self._out = []
        self._out.append(data)

    def _queue(self, event: Event) -> None:
        if self._pending is None:
            self._pending = []
        self._pending.append(event)

    def _pop(self) -> Event:
        pending = self._pending
        assert pending
        event = pending.pop(0)
        if not pending:
            self._pending = None
        return event

    def _take_request(self) -> h11.Request:
        if self._phase != _ROUTED or self._request is None:
            raise LocalProtocolError(f"no request to answer in phase {self._phase}")
        request = self._request
        self._request = None
        return request

    def _lost(self) -> None:
        self._eof = True
        self._phase = _DONE
        self.should_close = True
        self._queue(ConnectionLost())

    def _reject(
        self, status: int, reason: str, headers: Iterable[tuple[bytes, bytes]] = ()
    ) -> None:
        body = _NOT_FOUND if status == 404 else (reason.encode("utf-8", "replace") + b"\n")
        ctype = b"application/json" if status == 404 else b"text/plain; charset=utf-8"
        self._emit(http_response(status, body, ctype, headers))
        self._phase = _DONE
        self.should_close = True
        self._queue(Rejected(status, reason))

    def _next_request_event(self) -> Event | _NeedData:
        try:
            event = self._h11.next_event()
        except h11.RemoteProtocolError as exc:
            self._reject(exc.error_status_hint, str(exc) or "bad request")
            return self._pop()
        if event is h11.NEED_DATA or event is h11.PAUSED:
            return NEED_DATA
        if isinstance(event, h11.ConnectionClosed):
            self._lost()
            return self._pop()
        if not isinstance(event, h11.Request):  # pragma: no cover - h11 gives Request first
            return NEED_DATA
        return self._route(event)

    def _route(self, request: h11.Request) -> Event:
        method = request.method
        upgrade = any(
            name == b"upgrade" and b"websocket" in value.lower()
            for name, value in request.headers
        )
        route = self._routes.resolve(request.target, upgrade=upgrade)
        if route is None:
            self._reject(404, "not found")
            return self._pop()
        if method not in (b"GET", b"HEAD") or (method == b"HEAD" and route.kind != "http"):
            self._reject(405, "method not allowed", [(b"Allow", b"GET")])
            return self._pop()
        self._request = request
        self._phase = _ROUTED
        return RequestReceived(
            route,
            method.decode("ascii"),
            request.target.decode("ascii", "replace"),
            tuple((bytes(n), bytes(v)) for n, v in request.headers),
        )

    def _frame_parser(self) -> Connection:
        """wsproto's frame-level connection for the client's next bytes: the one held, or a
        fresh one (a fresh one is what a connection that read only whole frames and
        messages has become; see the module docstring)."""
        ws = self._ws
        if ws is None:
            ws = self._ws = frame_connection(
                self._max_message_bytes if self.deflate is not None else None
            )
            self._bounds = FrameBounds()
        return ws

    def _rest(self) -> None:
        """Drop the frame parser if every byte the client sent ended a frame and a message
        and nothing ended the connection.  (A message that ended reset its count, so the
        count is checked only so that no byte of one is ever forgotten.)"""
        bounds, ws = self._bounds, self._ws
        if (
            self._phase == _WEBSOCKET
            and bounds is not None
            and bounds.at_rest
            and self._message_bytes == 0
            and ws is not None
            and ws.state is ConnectionState.OPEN
        ):
            self._ws = self._bounds = None

    def _pump_websocket(self) -> None:
        ws = self._ws
        assert ws is not None
        for event in ws.events():
            if self._phase not in (_WEBSOCKET, _CLOSING):
                break
            if self._phase == _CLOSING and not isinstance(event, CloseConnection):
                continue  # after our Close only the client's Close matters
            if isinstance(event, Ping):
                self._emit(ws.send(event.response()))
                self._queue(PingReceived(bytes(event.payload)))
            elif isinstance(event, TextMessage | BytesMessage):
                data = event.data
                self._message_bytes += len(
                    data.encode("utf-8") if isinstance(data, str) else data
                )
                if self._message_bytes > self._max_message_bytes:
                    self._violation(CLOSE_TOO_BIG, "message too big")
                elif event.message_finished:
                    self._message_bytes = 0
            elif isinstance(event, CloseConnection):
                # wsproto reports a parse failure as a Close it "received" without moving the
                # state on; a real Close frame moves it to REMOTE_CLOSING (or CLOSED when it
                # answers ours).
                state = ws.state
                if state is ConnectionState.OPEN:
                    self._violation(event.code, event.reason or "protocol error")
                    continue
                if state is ConnectionState.REMOTE_CLOSING:
                    self._emit(ws.send(event.response()))
                self._phase = _DONE
                self.should_close = True
                if state is ConnectionState.LOCAL_CLOSING:  # garbage after our Close
                    self._queue(ProtocolViolation(event.code, event.reason or ""))
                else:
                    self._queue(ClientClosed(event.code, event.reason or ""))
            # Pong and anything else: nothing to do.

    def _violation(self, code: int, reason: str) -> None:
        ws = self._ws
        assert ws is not None
        self._emit(ws.send(CloseConnection(code=code, reason=reason)))
        self._phase = _DONE
        self.should_close = True
        self._queue(ProtocolViolation(code, reason))
