# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Server→client WebSocket frames and SSE events: the compiled twin of ``_frames_py.py``.

The hot paths (``ws_frame``, ``join_ws_frames``) write headers and payloads straight into
one preallocated bytes object; the rest mirrors the pure twin line for line.
"""

from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_CheckExact,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from libc.string cimport memcpy

from certstream.errors import LocalProtocolError

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10

_OPCODES = frozenset((OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG))
cdef Py_ssize_t _MAX_CONTROL = 125


cdef inline Py_ssize_t _header_len(Py_ssize_t n) noexcept:
    if n < 126:
        return 2
    if n < 0x10000:
        return 4
    return 10


cdef inline Py_ssize_t _write_header(char *out, Py_ssize_t n, unsigned char opcode) noexcept:
    cdef unsigned char *o = <unsigned char *>out
    cdef int i
    o[0] = 0x80 | opcode  # FIN, no RSV bits
    if n < 126:
        o[1] = <unsigned char>n
        return 2
    if n < 0x10000:
        o[1] = 126
        o[2] = <unsigned char>(n >> 8)
        o[3] = <unsigned char>n
        return 4
    o[1] = 127
    for i in range(8):
        o[2 + i] = <unsigned char>((<unsigned long long>n) >> (8 * (7 - i)))
    return 10


cdef bytes _frame(bytes payload, long opcode):
    # opcode is one of _OPCODES here.
    cdef Py_ssize_t n = PyBytes_GET_SIZE(payload)
    if opcode >= 8 and n > _MAX_CONTROL:
        raise LocalProtocolError(f"control frame payload of {n} bytes is over 125")
    cdef Py_ssize_t h = _header_len(n)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, h + n)
    cdef char *buf = PyBytes_AS_STRING(out)
    _write_header(buf, n, <unsigned char>opcode)
    memcpy(buf + h, PyBytes_AS_STRING(payload), n)
    return out


def ws_frame(payload, opcode=OP_TEXT):
    """One unmasked, final frame (text by default) carrying ``payload``."""
    if not PyBytes_CheckExact(payload):
        payload = bytes(payload)
    if opcode not in _OPCODES:
        raise LocalProtocolError(f"unknown WebSocket opcode {opcode}")
    return _frame(<bytes>payload, opcode)


def ws_compressed_frame(data):
    """One unmasked, final text frame with RSV1 set (RFC 7692): ``data`` is the message
    already compressed by ``core.deflate``."""
    if not PyBytes_CheckExact(data):
        data = bytes(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t h = _header_len(n)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, h + n)
    cdef char *buf = PyBytes_AS_STRING(out)
    _write_header(buf, n, 0x41)  # RSV1 | text; _write_header adds FIN
    memcpy(buf + h, PyBytes_AS_STRING(<bytes>data), n)
    return out


def join_ws_frames(payloads):
    """Text frames for every payload, concatenated into one buffer."""
    cdef list items = [p if PyBytes_CheckExact(p) else bytes(p) for p in payloads]
    cdef Py_ssize_t total = 0
    cdef Py_ssize_t n
    cdef bytes p
    for p in items:
        n = PyBytes_GET_SIZE(p)
        total += _header_len(n) + n
    cdef bytes out = PyBytes_FromStringAndSize(NULL, total)
    cdef char *buf = PyBytes_AS_STRING(out)
    cdef Py_ssize_t pos = 0
    for p in items:
        n = PyBytes_GET_SIZE(p)
        pos += _write_header(buf + pos, n, 1)
        memcpy(buf + pos, PyBytes_AS_STRING(p), n)
        pos += n
    return out


cdef inline bint _valid_close_code(long code) noexcept:
    # 1004-1006 and 1015 must never be sent; 1016-2999 are reserved for future RFCs.
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def ws_close_frame(code=1000, str reason=""):
    """A Close frame; ``reason`` is cut to fit in 125 bytes at a character boundary."""
    if code is None:
        if reason:
            raise LocalProtocolError("a close reason needs a close code")
        return _frame(b"", OP_CLOSE)
    if not (1000 <= code <= 4999 and _valid_close_code(code)):
        raise LocalProtocolError(f"close code {code} may not be sent")
    cdef bytes raw = reason.encode("utf-8")
    if len(raw) > _MAX_CONTROL - 2:
        raw = raw[: _MAX_CONTROL - 2].decode("utf-8", "ignore").encode("utf-8")
    return _frame((<int>code).to_bytes(2, "big") + raw, OP_CLOSE)


def ws_ping_frame(payload=b""):
    return ws_frame(payload, OP_PING)


def ws_pong_frame(payload=b""):
    return ws_frame(payload, OP_PONG)


def sse_event(payload, event_id=None):
    """``id: N\\ndata: <payload>\\n\\n``; a newline inside the payload starts a new data line."""
    if not PyBytes_CheckExact(payload):
        payload = bytes(payload)
    if b"\r" in payload:
        payload = payload.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if payload.endswith(b"\n"):
        payload = payload[: len(payload) - 1]
    if b"\n" in payload:
        payload = payload.replace(b"\n", b"\ndata: ")
    if event_id is None:
        return b"data: " + payload + b"\n\n"
    if isinstance(event_id, bytes):
        return b"id: %b\ndata: %b\n\n" % (event_id, payload)
    return b"id: %d\ndata: %b\n\n" % (event_id, payload)


def sse_comment(bytes text=b""):
    """A comment line (``: text``), used as a keep-alive; clients ignore it."""
    if b"\n" in text or b"\r" in text:
        raise LocalProtocolError("an SSE comment cannot contain a line break")
    return b": " + text + b"\n\n"
