"""Whole HTTP/1.1 responses built by hand: a ``Connection: close`` response with its body,
and the head of an SSE stream.

``certstream.core.session`` answers with these (bad requests, one-shot endpoints, the start
of an SSE stream); the shell uses :func:`http_response` where it answers in the session's
place (an address over its rate limit gets 429 instead of the session's error).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["SSE_HEAD", "http_response"]

_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    401: b"Unauthorized",
    404: b"Not Found",
    405: b"Method Not Allowed",
    426: b"Upgrade Required",
    429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
}


def http_response(
    status: int,
    body: bytes = b"",
    content_type: bytes = b"text/plain; charset=utf-8",
    headers: Iterable[tuple[bytes, bytes]] = (),
    *,
    head: bool = False,
) -> bytes:
    """A complete ``Connection: close`` HTTP/1.1 response.

    Built by hand rather than with h11 because it is also the answer to requests h11 could
    not parse (then h11 has no request to respond to) and because every response here ends
    the connection anyway.
    """
    lines = [
        b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, b"Unknown")),
        b"Content-Type: " + content_type,
        b"Content-Length: %d" % len(body),
        b"Connection: close",
    ]
    lines.extend(name + b": " + value for name, value in headers)
    return b"\r\n".join(lines) + b"\r\n\r\n" + (b"" if head else body)


SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/event-stream\r\n"
    b"Cache-Control: no-cache\r\n"
    # The body is delimited by closing the connection, not chunked: each event's bytes are
    # then identical for every client and written as built (see ``core.session``).
    b"Connection: close\r\n"
    b"X-Accel-Buffering: no\r\n"
    b"Access-Control-Allow-Origin: *\r\n"
    b"\r\n"
)
