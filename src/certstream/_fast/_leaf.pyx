# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""CT leaf and data-tile decoders: the compiled twin of ``_leaf_py.py``.

Same checks in the same order and the same error messages as the pure twin (the tests
compare them); lengths are read through a C pointer and only the pieces we keep are copied
out as bytes.  ``TileLeaf`` is the pure twin's dataclass, so both twins return equal objects.
"""

from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_CheckExact,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from cpython.object cimport Py_TYPE, PyTypeObject
from cpython.unicode cimport PyUnicode_DecodeASCII
from libc.stdint cimport uint64_t
from libc.string cimport memcmp, memcpy

import binascii
from certstream._fast._slots import slot_setters

from certstream._fast._leaf_py import BadLeaf, TileLeaf, TileRead, leaf_span
from certstream.core.model import LogEntry
from certstream.errors import DecodeError, LocalProtocolError

__all__ = [
    "BadLeaf",
    "TileLeaf",
    "TileRead",
    "b64decode",
    "decode_entry",
    "decode_get_entries_fast",
    "leaf_span",
    "parse_data_tile",
    "read_data_tile",
]


cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object o)
    void *PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    object PyType_GenericAlloc(PyTypeObject *t, Py_ssize_t n)


# --- base64 ----------------------------------------------------------------------------------
# binascii.a2b_base64 walks the text one character at a time through a state machine.  Log
# responses are canonical base64 (alphabet only, padding only at the end), which decodes four
# characters at a time through a table.  Anything else, and a final group whose unused bits
# are not zero, is handed to binascii itself, so the result and every error are binascii's.

cdef object _a2b = binascii.a2b_base64
cdef unsigned char _B64[256]
for _i in range(256):
    _B64[_i] = 0x80
for _i, _c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"):
    _B64[ord(_c)] = _i


cdef object _b64_span(const unsigned char *d, Py_ssize_t n):
    """The bytes of canonical base64 ``d[:n]``, or None: not canonical, ask binascii."""
    if n == 0 or n % 4:
        return None
    cdef int pad = 0
    if d[n - 1] == 61:  # =
        pad = 2 if d[n - 2] == 61 else 1
    cdef Py_ssize_t groups = n // 4 - (1 if pad else 0)
    out = PyBytes_FromStringAndSize(NULL, n // 4 * 3 - pad)
    cdef unsigned char *o = <unsigned char *>PyBytes_AS_STRING(out)
    cdef unsigned int a, b, c, e
    cdef Py_ssize_t g
    for g in range(groups):
        a = _B64[d[0]]
        b = _B64[d[1]]
        c = _B64[d[2]]
        e = _B64[d[3]]
        if (a | b | c | e) & 0x80:
            return None
        o[0] = <unsigned char>((a << 2) | (b >> 4))
        o[1] = <unsigned char>((b << 4) | (c >> 2))
        o[2] = <unsigned char>((c << 6) | e)
        d += 4
        o += 3
    if pad == 1:
        a = _B64[d[0]]
        b = _B64[d[1]]
        c = _B64[d[2]]
        if (a | b | c) & 0x80 or c & 3:
            return None
        o[0] = <unsigned char>((a << 2) | (b >> 4))
        o[1] = <unsigned char>((b << 4) | (c >> 2))
    elif pad == 2:
        a = _B64[d[0]]
        b = _B64[d[1]]
        if (a | b) & 0x80 or b & 15:
            return None
        o[0] = <unsigned char>((a << 2) | (b >> 4))
    return out


def b64decode(str text):
    """Strict base64 (``binascii.Error`` on anything but the alphabet and final padding)."""
    if PyUnicode_IS_ASCII(text):
        out = _b64_span(<const unsigned char *>PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text))
        if out is not None:
            return out
    return _a2b(text, strict_mode=True)


# --- get-entries bodies ------------------------------------------------------------------------
# Logs answer get-entries with one shape: {"entries":[{"leaf_input":"..","extra_data":".."},..]}
# whose strings are base64, so they hold no escapes.  That shape is read here straight from the
# body's bytes, base64 included, without building the JSON document.  Anything else (escapes,
# other keys, a duplicate key, non-ASCII, an error anywhere) returns None before any entry is
# decoded, and the caller parses the body with json as before.

cdef inline Py_ssize_t _ws(const unsigned char *b, Py_ssize_t pos, Py_ssize_t end) noexcept:
    while pos < end and (b[pos] == 32 or b[pos] == 10 or b[pos] == 13 or b[pos] == 9):
        pos += 1
    return pos


cdef inline bint _at(
    const unsigned char *b, Py_ssize_t pos, Py_ssize_t end, const char *text, Py_ssize_t n
) noexcept:
    return pos + n <= end and memcmp(b + pos, text, n) == 0


cdef Py_ssize_t _plain_string(
    const unsigned char *b, Py_ssize_t pos, Py_ssize_t end, Py_ssize_t *stop
) noexcept:
    """Start of the contents of the JSON string at ``pos`` (stop: its closing quote), or -1
    when it is not a string of printable ASCII without escapes."""
    if pos >= end or b[pos] != 34:
        return -1
    cdef Py_ssize_t i = pos + 1
    cdef unsigned char c
    while i < end:
        c = b[i]
        if c == 34:
            stop[0] = i
            return pos + 1
        if c == 92 or c < 0x20 or c >= 0x80:
            return -1
        i += 1
    return -1


cdef bytes _span_b64(
    const unsigned char *b, Py_ssize_t start, Py_ssize_t stop, str what, object index
):
    out = _b64_span(b + start, stop - start)
    if out is not None:
        return out
    text = PyUnicode_DecodeASCII(<const char *>b + start, stop - start, NULL)
    try:
        return _a2b(text, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        msg = f"index {index}: {what} is not valid base64: {exc}"
        raise DecodeError(msg, index=index) from None


def decode_get_entries_fast(body, start):
    """``(entries, errors)`` of a get-entries body in the plain shape, else None."""
    if not PyBytes_CheckExact(body):
        return None
    cdef const unsigned char *b = <const unsigned char *>PyBytes_AS_STRING(body)
    cdef Py_ssize_t end = PyBytes_GET_SIZE(body)
    cdef Py_ssize_t pos = _ws(b, 0, end)
    cdef Py_ssize_t s, stop, k
    cdef int which
    cdef bint seen[2]
    cdef list spans = []  # per entry: leaf_input start, stop, extra_data start, stop
    cdef Py_ssize_t item[4]
    if not _at(b, pos, end, b"{", 1):
        return None
    pos = _ws(b, pos + 1, end)
    if not _at(b, pos, end, b'"entries"', 9):
        return None
    pos = _ws(b, pos + 9, end)
    if not _at(b, pos, end, b":", 1):
        return None
    pos = _ws(b, pos + 1, end)
    if not _at(b, pos, end, b"[", 1):
        return None
    pos = _ws(b, pos + 1, end)
    if _at(b, pos, end, b"]", 1):
        pos += 1
    else:
        while True:
            if not _at(b, pos, end, b"{", 1):
                return None
            pos = _ws(b, pos + 1, end)
            seen[0] = seen[1] = False
            for k in range(2):
                if _at(b, pos, end, b'"leaf_input"', 12):
                    which = 0
                elif _at(b, pos, end, b'"extra_data"', 12):
                    which = 1
                else:
                    return None
                if seen[which]:
                    return None
                seen[which] = True
                pos = _ws(b, pos + 12, end)
                if not _at(b, pos, end, b":", 1):
                    return None
                s = _plain_string(b, _ws(b, pos + 1, end), end, &stop)
                if s < 0:
                    return None
                item[2 * which] = s
                item[2 * which + 1] = stop
                pos = _ws(b, stop + 1, end)
                if k == 0:
                    if not _at(b, pos, end, b",", 1):
                        return None
                    pos = _ws(b, pos + 1, end)
            if not _at(b, pos, end, b"}", 1):
                return None
            spans.append((item[0], item[1], item[2], item[3]))
            pos = _ws(b, pos + 1, end)
            if _at(b, pos, end, b",", 1):
                pos = _ws(b, pos + 1, end)
                continue
            if _at(b, pos, end, b"]", 1):
                pos += 1
                break
            return None
    pos = _ws(b, pos, end)
    if not _at(b, pos, end, b"}", 1) or _ws(b, pos + 1, end) != end:
        return None

    cdef list entries = []
    cdef list errors = []
    cdef Py_ssize_t i
    for i in range(len(spans)):
        index = start + i
        a0, a1, e0, e1 = spans[i]
        try:
            leaf_input = _span_b64(b, a0, a1, "leaf_input", index)
            extra_data = _span_b64(b, e0, e1, "extra_data", index)
            entries.append(decode_entry(index, leaf_input, extra_data))
        except DecodeError as exc:
            errors.append(exc)
    return entries, errors


# --- LogEntry without its generated __init__ ---------------------------------------------------
# The frozen dataclass's __init__ sets each of its eight fields through object.__setattr__,
# a Python-level call per field: more than the rest of decode_entry.  As in _der (see _slots.py), the slots are
# filled through their member descriptors' C setter, which gives an identical object, and only
# when every field is a plain slot and nothing else runs at construction.

cdef tuple _ENTRY_FIELDS = (
    "index", "timestamp", "entry_type", "cert_der", "tbs_der", "issuer_key_hash", "chain",
    "merkle_leaf",
)




cdef tuple _ENTRY_SLOTS = slot_setters(LogEntry, _ENTRY_FIELDS)


cdef object _new_entry(tuple values):
    cdef Py_ssize_t i
    if _ENTRY_SLOTS is None:
        return LogEntry(**dict(zip(_ENTRY_FIELDS, values)))
    obj = PyType_GenericAlloc(<PyTypeObject *>LogEntry, 0)
    for i in range(len(_ENTRY_SLOTS)):
        d = _ENTRY_SLOTS[i]
        Py_TYPE(d).tp_descr_set(d, obj, values[i])
    return obj

cdef enum:
    X509 = 0
    PRECERT = 1


cdef object _fail(object index, str what):
    return DecodeError(f"index {index}: {what}", index=index)


cdef inline Py_ssize_t _u16(const unsigned char *b, Py_ssize_t pos) noexcept:
    return (b[pos] << 8) | b[pos + 1]


cdef inline Py_ssize_t _u24(const unsigned char *b, Py_ssize_t pos) noexcept:
    return (b[pos] << 16) | (b[pos + 1] << 8) | b[pos + 2]


cdef inline uint64_t _uint(const unsigned char *b, Py_ssize_t pos, int n) noexcept:
    cdef uint64_t v = 0
    cdef int i
    for i in range(n):
        v = (v << 8) | b[pos + i]
    return v


cdef inline bytes _slice(const unsigned char *b, Py_ssize_t start, Py_ssize_t n):
    return PyBytes_FromStringAndSize(<const char *>b + start, n)


cdef Py_ssize_t _opaque24(
    const unsigned char *b, Py_ssize_t pos, Py_ssize_t end, str what, object index
) except -1:
    """Check ``uint24 length ‖ bytes`` at pos; return the position after the length."""
    if pos + 3 > end:
        raise _fail(index, f"{what}: length truncated")
    cdef Py_ssize_t n = _u24(b, pos)
    if n == 0:
        raise _fail(index, f"{what}: empty")
    if pos + 3 + n > end:
        raise _fail(index, f"{what}: length {n} overruns the data")
    return pos + 3


cdef tuple _chain24(
    const unsigned char *b, Py_ssize_t pos, Py_ssize_t end, str what, object index,
    Py_ssize_t *out_pos,
):
    if pos + 3 > end:
        raise _fail(index, f"{what}: length truncated")
    cdef Py_ssize_t total = _u24(b, pos)
    pos += 3
    cdef Py_ssize_t stop = pos + total
    if stop > end:
        raise _fail(index, f"{what}: length {total} overruns the data")
    cdef list certs = []
    cdef Py_ssize_t body
    while pos < stop:
        body = _opaque24(b, pos, stop, f"{what}[{len(certs)}]", index)
        certs.append(_slice(b, body, _u24(b, pos)))
        pos = body + _u24(b, pos)
    out_pos[0] = pos
    return tuple(certs)


cdef Py_ssize_t _timestamped_entry(
    const unsigned char *b, Py_ssize_t pos, Py_ssize_t end, str what, object index,
    uint64_t *ts, int *entry_type, Py_ssize_t *body, Py_ssize_t *body_len,
) except -1:
    """Read a TimestampedEntry up to its extensions; the issuer_key_hash, if any, is
    the 32 bytes before the body's length prefix.  Returns the position after the body."""
    if pos + 10 > end:
        raise _fail(index, f"{what}: truncated header")
    ts[0] = _uint(b, pos, 8)
    cdef int et = <int>_u16(b, pos + 8)
    entry_type[0] = et
    pos += 10
    if et == X509:
        body[0] = _opaque24(b, pos, end, f"{what}: certificate", index)
    elif et == PRECERT:
        if pos + 32 > end:
            raise _fail(index, f"{what}: issuer_key_hash truncated")
        body[0] = _opaque24(b, pos + 32, end, f"{what}: tbs_certificate", index)
    else:
        raise _fail(index, f"{what}: unknown entry_type {et}")
    body_len[0] = _u24(b, body[0] - 3)
    return body[0] + body_len[0]


def decode_entry(index, leaf_input, extra_data):
    """Decode one RFC 6962 get-entries item into a ``LogEntry`` (``index`` is its log index)."""
    if not PyBytes_CheckExact(leaf_input):
        leaf_input = bytes(leaf_input)
    if not PyBytes_CheckExact(extra_data):
        extra_data = bytes(extra_data)
    cdef const unsigned char *b = <const unsigned char *>PyBytes_AS_STRING(leaf_input)
    cdef Py_ssize_t end = len(leaf_input)
    if end < 2:
        raise _fail(index, "leaf_input: truncated header")
    if b[0] != 0:
        raise _fail(index, f"leaf_input: unknown version {<int>b[0]}")
    if b[1] != 0:
        raise _fail(index, f"leaf_input: unknown leaf_type {<int>b[1]}")
    cdef uint64_t ts
    cdef int entry_type
    cdef Py_ssize_t body, body_len
    cdef Py_ssize_t pos = _timestamped_entry(
        b, 2, end, "leaf_input", index, &ts, &entry_type, &body, &body_len
    )
    if pos + 2 > end:
        raise _fail(index, "leaf_input: extensions length truncated")
    cdef Py_ssize_t ext_len = _u16(b, pos)
    pos += 2 + ext_len
    if pos > end:
        raise _fail(index, f"leaf_input: extensions length {ext_len} overruns the data")
    if pos != end:
        raise _fail(index, f"leaf_input: {end - pos} trailing bytes")

    cdef const unsigned char *x = <const unsigned char *>PyBytes_AS_STRING(extra_data)
    cdef Py_ssize_t xend = len(extra_data)
    cdef Py_ssize_t xpos, cbody
    cdef bytes cert
    cdef object tbs, ikh
    cdef tuple chain
    if entry_type == PRECERT:
        cbody = _opaque24(x, 0, xend, "extra_data: pre_certificate", index)
        cert = _slice(x, cbody, _u24(x, 0))
        chain = _chain24(
            x, cbody + _u24(x, 0), xend, "extra_data: precertificate_chain", index, &xpos
        )
        tbs = _slice(b, body, body_len)
        ikh = _slice(b, body - 35, 32)
    else:
        cert = _slice(b, body, body_len)
        tbs = None
        ikh = None
        chain = _chain24(x, 0, xend, "extra_data: certificate_chain", index, &xpos)
    if xpos != xend:
        raise _fail(index, f"extra_data: {xend - xpos} trailing bytes")
    return _new_entry((index, ts, entry_type, cert, tbs, ikh, chain, leaf_input))


cdef uint64_t _leaf_index(
    const unsigned char *b, Py_ssize_t pos, Py_ssize_t end, object index
) except? 0xFFFFFFFFFFFFFFFF:
    """Find the one leaf_index extension in the CtExtensions bytes ``b[pos:end]``."""
    cdef bint found = False
    cdef uint64_t value = 0
    cdef int ext_type
    cdef Py_ssize_t n
    while pos < end:
        if pos + 3 > end:
            raise _fail(index, "tile leaf: extension header truncated")
        ext_type = b[pos]
        n = _u16(b, pos + 1)
        pos += 3
        if pos + n > end:
            raise _fail(index, f"tile leaf: extension {ext_type} length {n} overruns")
        if ext_type == 0:
            if n != 5:
                raise _fail(index, f"tile leaf: leaf_index extension has length {n}, not 5")
            if found:
                raise _fail(index, "tile leaf: duplicate leaf_index extension")
            found = True
            value = _uint(b, pos, 5)
        pos += n
    if not found:
        raise _fail(index, "tile leaf: no leaf_index extension")
    return value


cdef object _tile_leaf(
    const unsigned char *b, Py_ssize_t pos, Py_ssize_t end, object index, Py_ssize_t *out_pos
):
    """Decode the TileLeaf at ``pos``, strictly; ``out_pos`` gets the position after it."""
    cdef Py_ssize_t start = pos
    cdef Py_ssize_t ext_len, chain_len, cbody, body, body_len, p
    cdef uint64_t ts, leaf_index
    cdef int entry_type
    cdef bytes merkle_leaf, cert
    cdef object tbs, ikh
    cdef char *ml
    pos = _timestamped_entry(b, pos, end, "tile leaf", index, &ts, &entry_type, &body, &body_len)
    if pos + 2 > end:
        raise _fail(index, "tile leaf: extensions length truncated")
    ext_len = _u16(b, pos)
    pos += 2
    if pos + ext_len > end:
        raise _fail(index, f"tile leaf: extensions length {ext_len} overruns the data")
    leaf_index = _leaf_index(b, pos, pos + ext_len, index)
    pos += ext_len
    # merkle_leaf = 00 (version) ‖ 00 (leaf_type) ‖ TimestampedEntry
    merkle_leaf = PyBytes_FromStringAndSize(NULL, pos - start + 2)
    ml = PyBytes_AS_STRING(merkle_leaf)
    ml[0] = 0
    ml[1] = 0
    memcpy(ml + 2, b + start, pos - start)
    if entry_type == PRECERT:
        cbody = _opaque24(b, pos, end, "tile leaf: pre_certificate", index)
        cert = _slice(b, cbody, _u24(b, pos))
        pos = cbody + _u24(b, pos)
        tbs = _slice(b, body, body_len)
        ikh = _slice(b, body - 35, 32)
    else:
        cert = _slice(b, body, body_len)
        tbs = None
        ikh = None
    if pos + 2 > end:
        raise _fail(index, "tile leaf: chain length truncated")
    chain_len = _u16(b, pos)
    pos += 2
    if chain_len % 32:
        raise _fail(index, f"tile leaf: chain length {chain_len} is not a multiple of 32")
    if pos + chain_len > end:
        raise _fail(index, f"tile leaf: chain length {chain_len} overruns the data")
    fps = tuple([_slice(b, p, 32) for p in range(pos, pos + chain_len, 32)])
    pos += chain_len
    if leaf_index != index:
        raise _fail(index, f"tile leaf: leaf_index {leaf_index} at position of {index}")
    out_pos[0] = pos
    return TileLeaf(
        index=index,
        timestamp=ts,
        entry_type=entry_type,
        cert_der=cert,
        tbs_der=tbs,
        issuer_key_hash=ikh,
        fingerprints=fps,
        merkle_leaf=merkle_leaf,
    )


def parse_data_tile(data, first_index, expected):
    """Decode a static-ct-api data tile holding exactly ``expected`` leaves, strictly."""
    if not 1 <= expected <= 256:
        raise LocalProtocolError(f"a data tile holds 1..256 leaves, not {expected}")
    if not PyBytes_CheckExact(data):
        data = bytes(data)
    cdef const unsigned char *b = <const unsigned char *>PyBytes_AS_STRING(data)
    cdef Py_ssize_t end = len(data)
    cdef Py_ssize_t pos = 0
    cdef int i
    cdef int count = expected
    cdef list leaves = []
    cdef object index
    for i in range(count):
        index = first_index + i
        if pos >= end:
            raise _fail(index, f"data tile: ends after {i} of {expected} leaves")
        leaves.append(_tile_leaf(b, pos, end, index, &pos))
    if pos != end:
        last = first_index + expected - 1
        raise _fail(last, f"data tile: {end - pos} trailing bytes after {expected} leaves")
    return leaves


def read_data_tile(data, first_index, expected):
    """Decode a data tile leaf by leaf (see the pure twin); a leaf that fails goes to the
    pure twin's ``leaf_span``, so both twins skip exactly the same bytes."""
    if not 1 <= expected <= 256:
        raise LocalProtocolError(f"a data tile holds 1..256 leaves, not {expected}")
    if not PyBytes_CheckExact(data):
        data = bytes(data)
    cdef const unsigned char *b = <const unsigned char *>PyBytes_AS_STRING(data)
    cdef Py_ssize_t end = len(data)
    cdef Py_ssize_t pos = 0
    cdef Py_ssize_t start
    cdef int i
    cdef int count = expected
    cdef list leaves = []
    cdef list bad = []
    cdef object index, span
    for i in range(count):
        index = first_index + i
        if pos >= end:
            return TileRead(leaves, bad, i, _fail(
                index, f"data tile: ends after {i} of {expected} leaves"))
        start = pos
        try:
            leaves.append(_tile_leaf(b, pos, end, index, &pos))
        except DecodeError as exc:
            span = leaf_span(data, start, end, index, i == count - 1)
            if span is None:
                return TileRead(leaves, bad, i, exc)
            bad.append(BadLeaf(index, exc, b"\x00\x00" + data[start : span[0]]))
            pos = span[1]
    if pos != end:
        last = first_index + expected - 1
        return TileRead(leaves, bad, expected, _fail(
            last, f"data tile: {end - pos} trailing bytes after {expected} leaves"))
    return TileRead(leaves, bad, expected, None)
