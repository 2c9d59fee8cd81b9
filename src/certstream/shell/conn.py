"""One client connection over a gevent socket: read the request, answer, then read until EOF.

The greenlet gevent's server spawns for an accepted socket runs :func:`serve`: it parses the
request (``core.session``), answers one-shot endpoints, or registers a streaming client with
the hub, sends its response head and hands the connection to a ``shell.reader.StreamReader``
(a read watcher, no greenlet), which answers pings and notices the close from then on; the
greenlet returns.  A TLS client keeps this greenlet, reading until it goes.  Writing the
stream is the hub's job (see ``shell.hub``); replies to the client's input go through the
hub too, so that control frames never cut into a data frame.
"""

from __future__ import annotations

import contextlib
import logging
import socket

import gevent

from certstream.core.clientip import forwarded_ip
from certstream.core.filterfields import FilterSpec
from certstream.core.httpresponse import http_response
from certstream.core.resume import Resume
from certstream.core.session import (
    NEED_DATA,
    ConnectionLost,
    Rejected,
    RequestReceived,
    Session,
)
from certstream.shell.endpoints import (
    ServerContext,
    admit_resume,
    admit_stream,
    answer,
    rate_refusal,
    refuse,
    reserve_place,
)
from certstream.shell.hub import Client, Hub
from certstream.shell.reader import RECV_BYTES, StreamReader, take_input
from certstream.shell.sharedlimits import Place

__all__ = ["serve"]

log = logging.getLogger(__name__)

_RECV = RECV_BYTES
# Answers to one-shot requests are small; a client that does not take them in this long
# is not worth a greenlet.
_ANSWER_TIMEOUT = 10.0


def serve(sock: socket.socket, ctx: ServerContext, ip: str = "", port: int = 0) -> bool:
    """Handle one accepted connection; never raises for client behaviour.  True when a
    streaming connection lives on in its reader (``shell.reader``), which ends it and then
    calls ``ctx.on_end``; False when it ended here.

    ``ip`` and ``port`` are the peer's; with ``ctx.real_ip`` the address a proxy names in
    the request headers replaces them (for the whitelist, the limits and the metrics)."""
    session = Session(
        ctx.routes,
        max_header_bytes=ctx.max_header_bytes,
        max_message_bytes=ctx.max_message_bytes,
    )
    kept = False
    try:
        request = _read_request(sock, session, ctx.request_timeout)
        if not isinstance(request, RequestReceived):
            if isinstance(request, Rejected):
                _reject(sock, session, ctx, request, ip)
            else:
                _send_and_close(sock, session.data_to_send())
            return False
        if ctx.real_ip:
            forwarded = forwarded_ip(request.headers)
            if forwarded is not None:
                ip, port = forwarded, 0
        refused = refuse(ctx, request, ip)
        spec: FilterSpec | None = None
        resume: Resume | None = None
        if refused is None and request.route.kind != "http":
            # Answered before any upgrade: a browser gets the live page, a bad filter or
            # resume point a 400.
            refused, spec = admit_stream(ctx, request)
            if refused is None:
                refused, resume = admit_resume(request)
        if refused is None and request.route.kind != "http":
            place = reserve_place(ctx, ip)
            if isinstance(place, Place):
                connections = ctx.access.connections  # a reload swaps rules, not counts
                try:
                    kept = _start_stream(sock, session, ctx, request, ip, port=port,
                                         spec=spec, place=place, resume=resume)
                finally:
                    if not kept:  # else its reader gives the place back
                        connections.release(place)
                return kept
            refused = place
        status, body, ctype, headers = refused or (*answer(ctx, request), ())
        session.respond(status, body, ctype, headers)
        _send_and_close(sock, session.data_to_send())
        if ctx.on_response is not None:
            ctx.on_response(request.route.name or request.route.kind, status)
    except OSError as exc:  # reset, broken pipe: the client's doing, nothing to report
        log.debug("connection ended: %s", exc)
    except Exception:  # a bug must end this connection only, and be seen
        log.exception("connection handler failed")
    finally:
        # A no-op once a reader holds the connection (it detached the fd from ``sock``).
        with contextlib.suppress(OSError):
            sock.close()
    return kept


def _start_stream(sock: socket.socket, session: Session, ctx: ServerContext,
                  request: RequestReceived, ip: str, *, port: int,
                  spec: FilterSpec | None, place: Place,
                  resume: Resume | None = None) -> bool:
    if request.route.kind == "ws":
        session.accept_websocket(compression=ctx.compression)
        if not session.is_websocket:  # a bad upgrade: 400 or 426 is queued
            rejected = session.next_event()
            _send_and_close(sock, session.data_to_send())
            if ctx.on_response is not None and isinstance(rejected, Rejected):
                ctx.on_response("websocket", rejected.status)
            return False
    else:
        session.start_sse()
    return _stream(sock, session, ctx, request, ip, port=port, spec=spec, place=place,
                   resume=resume)


def _reject(sock: socket.socket, session: Session, ctx: ServerContext, rejected: Rejected,
            ip: str) -> None:
    """Send the session's error answer (400/404/405/431), or 429 instead when the address is
    over its rate limit: requests for unknown paths count like any other."""
    data = session.data_to_send()
    status = rejected.status
    refused = rate_refusal(ctx, ip)
    if refused is not None:
        status, body, ctype, headers = refused
        data = http_response(status, body, ctype, headers)
    _send_and_close(sock, data)
    if ctx.on_response is not None:
        # One bounded label, never the raw path.
        ctx.on_response("not_found" if rejected.status == 404 else "invalid", status)


def _read_request(sock: socket.socket, session: Session,
                  timeout: float) -> RequestReceived | Rejected | None:
    """The routed request, ``Rejected`` when the session answered it with an error, or
    ``None`` when the client left or took too long.

    The whole request must arrive within ``timeout``: a client that trickles headers
    (slowloris) would otherwise hold a greenlet forever.
    """
    with gevent.Timeout(timeout, False):
        while True:
            event = session.next_event()
            if event is NEED_DATA:
                session.receive_data(sock.recv(_RECV))
                continue
            if isinstance(event, RequestReceived | Rejected):
                return event
            if isinstance(event, ConnectionLost):
                return None
    return None  # timed out: just close


def _send_and_close(sock: socket.socket, data: bytes) -> None:
    if data:
        with gevent.Timeout(_ANSWER_TIMEOUT, False), contextlib.suppress(OSError):
            sock.sendall(data)
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
    # Read (and drop) what the client still sends until it closes, briefly, so that closing
    # with unread input does not reset the connection before it read our answer.
    with gevent.Timeout(2.0, False), contextlib.suppress(OSError):
        while sock.recv(_RECV):
            pass


def _peer_name(ip: str, port: int) -> str:
    """``ip:port`` as Go's RemoteAddr writes it; the bare address when a proxy named it."""
    if not port:
        return ip
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _stream(sock: socket.socket, session: Session, ctx: ServerContext,
            request: RequestReceived, ip: str, *, port: int,
            spec: FilterSpec | None, place: Place,
            resume: Resume | None = None) -> bool:
    hub = ctx.hub
    head = session.data_to_send()  # 101 or the SSE head, plus any pong already due
    with gevent.Timeout(_ANSWER_TIMEOUT, False), contextlib.suppress(OSError):
        sock.sendall(head)
        head = b""
    if head:
        return False  # the client did not even take the response head
    stream = request.route.stream
    if (resume is not None and resume.key is not None and ctx.locate is not None
            and hub.needs_number(stream, resume.key)):
        # From before every record held: how many it lost takes its record's number.
        resume = Resume(key=resume.key, number=ctx.locate(resume.key))
    client = hub.add(sock, session, stream, is_ws=session.is_websocket, spec=spec,
                     resume=resume)
    peers = ctx.peers
    handed = False
    try:
        if peers is not None:
            peers[client] = _peer_name(ip, port)
        if ctx.on_response is not None:
            ctx.on_response("websocket" if client.is_ws else "sse", 101 if client.is_ws else 200)
        if not hasattr(sock, "do_handshake"):  # not TLS: a reader owns it from here
            StreamReader(ctx, client, place)
            handed = True
            return True
        _read_until_closed(sock, hub, client)
    finally:
        if not handed:
            hub.remove(client)
            if peers is not None:
                peers.pop(client, None)
    return False


def _read_until_closed(sock: socket.socket, hub: Hub, client: Client) -> None:
    """A TLS client's input, in its handler greenlet (see ``shell.reader``)."""
    while True:
        try:
            data = sock.recv(_RECV)
        except OSError:
            data = b""
        if take_input(hub, client, data):
            return
