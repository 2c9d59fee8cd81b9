# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Lenient DER walk of an X.509 certificate into a ``CertInfo``: the compiled twin.

Same walk, same results, same problem texts as ``_der_py.py`` (read its docstring for the
theory of operation); any difference is a bug that tests/test_der_props.py looks for.

What is different is only how: the bytes are walked through a ``const unsigned char*``, TLV
headers, digits, times and OID arcs are read by ``noexcept`` C helpers that return an error
code, and Python objects are made only for the results.  A ``_FieldError`` is raised (rarely)
to abandon one field, exactly where the pure twin raises its own.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_DecodeASCII, PyUnicode_DecodeLatin1, PyUnicode_DecodeUTF8

from cpython.object cimport Py_TYPE, PyTypeObject
from libc.string cimport memcmp, memcpy


cdef extern from "Python.h":
    object PyType_GenericAlloc(PyTypeObject* cls, Py_ssize_t nitems)

from certstream._fast._slots import slot_setters
from certstream.core.model import CertInfo, Extension, NameAttr, Policy
from certstream.errors import DecodeError

__all__ = ["parse_certificate", "parse_tbs"]

cdef enum:
    # Universal tags we look at.
    _BOOLEAN = 0x01
    _INTEGER = 0x02
    _BIT_STRING = 0x03
    _OCTET_STRING = 0x04
    _OID = 0x06
    _UTF8 = 0x0C
    _NUMERIC = 0x12
    _PRINTABLE = 0x13
    _T61 = 0x14
    _IA5 = 0x16
    _UTCTIME = 0x17
    _GENTIME = 0x18
    _VISIBLE = 0x1A
    _UNIVERSAL = 0x1C
    _BMP = 0x1E
    _SEQUENCE = 0x30
    _SET = 0x31

cdef enum:
    _MAX_ARC_BYTES = 32
    # Arcs up to this many base-128 digits (63 bits) are formatted in C; longer in Python.
    _FAST_ARC_BYTES = 9
    _OID_BUF = 256

cdef enum:
    # Error codes of the C helpers; the texts are the pure twin's _FieldError messages.
    E_OK = 0
    E_TRUNCATED = 1
    E_TAG = 2
    E_LENGTH = 3
    E_TIME = 4
    E_NOT_TIME = 5

_PSS = "1.2.840.113549.1.1.10"
_SHA1 = "1.3.14.3.2.26"
_CPS = "1.3.6.1.5.5.7.2.1"
_UNOTICE = "1.3.6.1.5.5.7.2.2"
_POISON = "1.3.6.1.4.1.11129.2.4.3"
_SCTS = "1.3.6.1.4.1.11129.2.4.2"

_EXT_NAMES = {
    "2.5.29.19": "basicConstraints",
    "2.5.29.15": "keyUsage",
    "2.5.29.37": "extKeyUsage",
    "2.5.29.17": "subjectAltName",
    "2.5.29.18": "issuerAltName",
    "1.3.6.1.5.5.7.1.1": "authorityInfoAccess",
    "2.5.29.35": "authorityKeyIdentifier",
    "2.5.29.14": "subjectKeyIdentifier",
    "2.5.29.32": "certificatePolicies",
    "2.5.29.31": "crlDistributionPoints",
}

cdef enum:
    X_BASIC_CONSTRAINTS = 1
    X_KEY_USAGE
    X_EKU
    X_SAN
    X_IAN
    X_AIA
    X_AKI
    X_SKI
    X_POLICIES
    X_CRL_DPS

# The same extensions as numbers, to dispatch without string compares.
_EXT_CODES = {
    "2.5.29.19": X_BASIC_CONSTRAINTS,
    "2.5.29.15": X_KEY_USAGE,
    "2.5.29.37": X_EKU,
    "2.5.29.17": X_SAN,
    "2.5.29.18": X_IAN,
    "1.3.6.1.5.5.7.1.1": X_AIA,
    "2.5.29.35": X_AKI,
    "2.5.29.14": X_SKI,
    "2.5.29.32": X_POLICIES,
    "2.5.29.31": X_CRL_DPS,
}

_STRING_NAMES = {
    _UTF8: "UTF8String",
    _NUMERIC: "NumericString",
    _PRINTABLE: "PrintableString",
    _IA5: "IA5String",
    _VISIBLE: "VisibleString",
    _BMP: "BMPString",
    _UNIVERSAL: "UniversalString",
}

cdef tuple _HEADER_ERRORS = (None, "truncated", "bad tag", "bad length")


# The frozen dataclasses are filled through their slots' C setters (see _slots.py).


cdef tuple _CERTINFO_FIELDS = (
    "der", "version", "serial", "signature_oid", "signature_hash_oid", "issuer", "subject",
    "not_before", "not_after", "spki", "extensions", "is_ca", "path_len", "key_usage",
    "ext_key_usage", "san", "ian", "aia", "aki_keyid", "ski", "policies", "crl_dps",
    "has_poison", "sct_list", "problems",
)
cdef tuple _NAMEATTR_FIELDS = ("oid", "value")
cdef tuple _EXTENSION_FIELDS = ("oid", "critical", "value")
cdef tuple _POLICY_FIELDS = ("oid", "qualifiers")
cdef tuple _CERTINFO_SLOTS = slot_setters(CertInfo, _CERTINFO_FIELDS)
cdef tuple _NAMEATTR_SLOTS = slot_setters(NameAttr, _NAMEATTR_FIELDS)
cdef tuple _EXTENSION_SLOTS = slot_setters(Extension, _EXTENSION_FIELDS)
cdef tuple _POLICY_SLOTS = slot_setters(Policy, _POLICY_FIELDS)


cdef object new_frozen(cls, tuple slots, tuple names, tuple values):
    """``cls(**dict(zip(names, values)))`` for a slotted frozen dataclass, minus __init__."""
    cdef Py_ssize_t i
    if slots is None:
        return cls(**dict(zip(names, values)))
    # What object.__new__ does for such a class, without the Python-level call.
    obj = PyType_GenericAlloc(<PyTypeObject*>cls, 0)
    for i in range(len(slots)):
        d = slots[i]
        Py_TYPE(d).tp_descr_set(d, obj, values[i])
    return obj


class _FieldError(Exception):
    """A field could not be read; the message is the reason part of the problem text."""


cdef struct TLV:
    int tag
    Py_ssize_t start
    Py_ssize_t stop


cdef int read_tlv(const unsigned char* b, Py_ssize_t pos, Py_ssize_t end, TLV* t) noexcept nogil:
    cdef int i
    cdef int more
    cdef int count
    cdef unsigned long long length  # up to 2**32 - 1: wider than Py_ssize_t on 32-bit
    if pos >= end:
        return E_TRUNCATED
    t.tag = b[pos]
    pos += 1
    if t.tag & 0x1F == 0x1F:
        more = 1
        for i in range(5):
            if pos >= end:
                return E_TRUNCATED
            more = b[pos] & 0x80
            pos += 1
            if not more:
                break
        if more:
            return E_TAG
    if pos >= end:
        return E_TRUNCATED
    length = b[pos]
    pos += 1
    if length >= 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or count > end - pos:
            return E_LENGTH
        length = 0
        for i in range(count):
            length = (length << 8) | b[pos + i]
        pos += count
    if length > <unsigned long long>(end - pos):
        return E_LENGTH
    t.start = pos
    t.stop = pos + <Py_ssize_t>length
    return E_OK


cdef inline int header(const unsigned char* b, Py_ssize_t pos, Py_ssize_t end, TLV* t) except -1:
    cdef int rc = read_tlv(b, pos, end, t)
    if rc:
        raise _FieldError(_HEADER_ERRORS[rc])
    return 0


cdef inline int expect(
    const unsigned char* b, Py_ssize_t pos, Py_ssize_t end, int want, TLV* t
) except -1:
    header(b, pos, end, t)
    if t.tag != want:
        raise _FieldError("unexpected tag")
    return 0


cdef inline const unsigned char* ptr(bytes buf):
    return <const unsigned char*>PyBytes_AS_STRING(buf)


cdef inline Py_ssize_t put_uint(char* out, Py_ssize_t o, unsigned long long v) noexcept nogil:
    """Write ``v`` in decimal at ``out[o:]`` and return the new end."""
    cdef char tmp[24]
    cdef int n = 0
    while True:
        tmp[n] = <char>(0x30 + v % 10)
        n += 1
        v //= 10
        if v == 0:
            break
    while n:
        n -= 1
        out[o] = tmp[n]
        o += 1
    return o


cdef str oid_slow(const unsigned char* b, Py_ssize_t start, Py_ssize_t end):
    """The pure twin's algorithm on Python ints, for OIDs with arcs too big for C."""
    cdef list parts = []
    cdef object value = 0
    cdef int ndigits = 0
    cdef Py_ssize_t i
    cdef unsigned char byte
    for i in range(start, end):
        byte = b[i]
        value = (value << 7) | (byte & 0x7F)
        ndigits += 1
        if ndigits > _MAX_ARC_BYTES:
            raise _FieldError("bad OID")
        if byte & 0x80:
            continue
        if parts:
            parts.append(str(value))
        elif value < 40:
            parts += ("0", str(value))
        elif value < 80:
            parts += ("1", str(value - 40))
        else:
            parts += ("2", str(value - 80))
        value = 0
        ndigits = 0
    return ".".join(parts)


cdef str format_oid(const unsigned char* b, Py_ssize_t start, Py_ssize_t end):
    cdef char out[_OID_BUF]
    cdef Py_ssize_t o = 0
    cdef Py_ssize_t i
    cdef unsigned long long value = 0
    cdef int ndigits = 0
    cdef bint first = True
    cdef unsigned char byte
    if start >= end or b[end - 1] & 0x80:
        raise _FieldError("bad OID")
    for i in range(start, end):
        byte = b[i]
        ndigits += 1
        if ndigits > _FAST_ARC_BYTES or o > _OID_BUF - 48:
            return oid_slow(b, start, end)
        value = (value << 7) | (byte & 0x7F)
        if byte & 0x80:
            continue
        if not first:
            out[o] = 0x2E  # "."
            o = put_uint(out, o + 1, value)
        else:
            first = False
            if value < 40:
                out[0] = 0x30
            elif value < 80:
                out[0] = 0x31
                value -= 40
            else:
                out[0] = 0x32
                value -= 80
            out[1] = 0x2E
            o = put_uint(out, 2, value)
        value = 0
        ndigits = 0
    return PyUnicode_DecodeASCII(out, o, NULL)


# A certificate repeats a few dozen well-known OIDs (attribute types, extensions, policies),
# so their text is cached: a direct-mapped table keyed by the encoded bytes.  A hit costs a
# hash and a memcmp instead of formatting and a new str, and equal OIDs share one str.
cdef enum:
    _CACHE_SLOTS = 1024
    _CACHE_MAX_OID = 24  # encoded bytes; longer OIDs are formatted every time

cdef unsigned char _cache_raw[_CACHE_SLOTS][_CACHE_MAX_OID]
cdef Py_ssize_t _cache_len[_CACHE_SLOTS]
cdef list _cache_text = [None] * _CACHE_SLOTS


cdef str oid(const unsigned char* b, Py_ssize_t start, Py_ssize_t end):
    cdef Py_ssize_t n = end - start
    cdef Py_ssize_t i
    cdef unsigned int h = 2166136261u
    if n <= 0 or n > _CACHE_MAX_OID:
        return format_oid(b, start, end)
    for i in range(start, end):
        h = (h ^ b[i]) * 16777619u
    h &= _CACHE_SLOTS - 1
    if _cache_len[h] == n and memcmp(_cache_raw[h], b + start, n) == 0:
        return <str>_cache_text[h]
    text = format_oid(b, start, end)  # raises on a bad OID: nothing is cached then
    memcpy(_cache_raw[h], b + start, n)
    _cache_len[h] = n
    _cache_text[h] = text
    return text


cdef tuple decode_string(int tag, const unsigned char* b, Py_ssize_t start, Py_ssize_t end):
    """(text, problem reason or "") as the pure twin's ``_string``."""
    cdef const char* s = <const char*>(b + start)
    cdef Py_ssize_t n = end - start
    if tag == _UTF8 or tag == _PRINTABLE or tag == _IA5 or tag == _NUMERIC or tag == _VISIBLE:
        try:
            return PyUnicode_DecodeUTF8(s, n, NULL), ""
        except UnicodeDecodeError:
            return PyUnicode_DecodeUTF8(s, n, "replace"), "bad " + _STRING_NAMES[tag]
    if tag == _T61:
        return PyUnicode_DecodeLatin1(s, n, NULL), ""
    if tag == _BMP:
        codec = "utf-16-be"
    elif tag == _UNIVERSAL:
        codec = "utf-32-be"
    else:
        return "", "unsupported string type"
    raw = PyBytes_FromStringAndSize(s, n)
    try:
        return raw.decode(codec), ""
    except UnicodeDecodeError:
        return raw.decode(codec, "replace"), "bad " + _STRING_NAMES[tag]


cdef inline int digits(const unsigned char* b, Py_ssize_t pos, int count, int* out) noexcept nogil:
    cdef int value = 0
    cdef int d
    cdef int i
    for i in range(count):
        d = <int>b[pos + i] - 0x30
        if d < 0 or d > 9:
            return E_TIME
        value = value * 10 + d
    out[0] = value
    return E_OK


cdef inline long long days_from_civil(long long year, int month, int day) noexcept nogil:
    if month <= 2:
        year -= 1
    cdef long long era = (year if year >= 0 else year - 399) // 400
    cdef long long yoe = year - era * 400
    cdef long long doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    cdef long long doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


cdef int parse_time(
    int tag, const unsigned char* b, Py_ssize_t start, Py_ssize_t end, long long* out
) noexcept nogil:
    cdef Py_ssize_t size = end - start
    cdef Py_ssize_t pos
    cdef Py_ssize_t frac
    cdef int year, month, day, hour, minute
    cdef int second = 0
    cdef int off_h, off_m
    cdef int mdays
    cdef long long offset = 0
    if tag == _UTCTIME:
        if size < 11 or digits(b, start, 2, &year):
            return E_TIME
        year += 2000 if year < 50 else 1900
        pos = start + 2
    elif tag == _GENTIME:
        if size < 13 or digits(b, start, 4, &year):
            return E_TIME
        pos = start + 4
    else:
        return E_NOT_TIME
    if (
        digits(b, pos, 2, &month)
        or digits(b, pos + 2, 2, &day)
        or digits(b, pos + 4, 2, &hour)
        or digits(b, pos + 6, 2, &minute)
    ):
        return E_TIME
    pos += 8
    if end - pos >= 3 and 0x30 <= b[pos] <= 0x39:
        if digits(b, pos, 2, &second):
            return E_TIME
        pos += 2
    if tag == _GENTIME and pos < end and (b[pos] == 0x2E or b[pos] == 0x2C):
        pos += 1
        frac = pos
        while pos < end and 0x30 <= b[pos] <= 0x39:
            pos += 1
        if pos == frac:
            return E_TIME
    if end - pos == 1 and b[pos] == 0x5A:  # "Z"
        pass
    elif end - pos == 5 and (b[pos] == 0x2B or b[pos] == 0x2D):
        if digits(b, pos + 1, 2, &off_h) or digits(b, pos + 3, 2, &off_m):
            return E_TIME
        if off_h > 23 or off_m > 59:
            return E_TIME
        offset = off_h * 3600 + off_m * 60
        if b[pos] == 0x2D:
            offset = -offset
    else:
        return E_TIME
    if month < 1 or month > 12 or hour > 23 or minute > 59 or second > 59:
        return E_TIME
    if month == 2:
        mdays = 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    elif month == 4 or month == 6 or month == 9 or month == 11:
        mdays = 30
    else:
        mdays = 31
    if day < 1 or day > mdays:
        return E_TIME
    out[0] = (
        days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset
    )
    return E_OK


cdef object time_value(int tag, const unsigned char* b, Py_ssize_t start, Py_ssize_t end):
    cdef long long value = 0
    cdef int rc = parse_time(tag, b, start, end, &value)
    if rc == E_NOT_TIME:
        raise _FieldError("not a time")
    if rc:
        raise _FieldError("bad UTCTime" if tag == _UTCTIME else "bad GeneralizedTime")
    return value


cdef object integer(const unsigned char* b, Py_ssize_t start, Py_ssize_t end):
    cdef Py_ssize_t n = end - start
    cdef unsigned long long u = 0
    cdef Py_ssize_t i
    if n <= 0:
        raise _FieldError("bad INTEGER")
    if n > 8:
        return int.from_bytes(PyBytes_FromStringAndSize(<const char*>(b + start), n), "big", signed=True)
    for i in range(start, end):
        u = (u << 8) | b[i]
    if n < 8 and b[start] & 0x80:
        u |= (~0ULL) << (8 * n)
    return <long long>u


cdef tuple name(const unsigned char* b, Py_ssize_t start, Py_ssize_t end, str what, list problems):
    cdef list attrs = []
    cdef TLV rdn, atv, o, v
    cdef Py_ssize_t pos = start
    cdef Py_ssize_t inner
    while pos < end:
        expect(b, pos, end, _SET, &rdn)
        pos = rdn.stop
        inner = rdn.start
        while inner < rdn.stop:
            expect(b, inner, rdn.stop, _SEQUENCE, &atv)
            inner = atv.stop
            expect(b, atv.start, atv.stop, _OID, &o)
            attr_oid = oid(b, o.start, o.stop)
            header(b, o.stop, atv.stop, &v)
            text, bad = decode_string(v.tag, b, v.start, v.stop)
            if bad:
                problems.append(f"{what}: {bad}")
            attrs.append(new_frozen(NameAttr, _NAMEATTR_SLOTS, _NAMEATTR_FIELDS, (attr_oid, text)))
    return tuple(attrs)


cdef tuple general_name(int tag, const unsigned char* b, Py_ssize_t start, Py_ssize_t end):
    cdef int number
    if tag & 0xC0 != 0x80:
        raise _FieldError("bad GeneralName")
    number = tag & 0x1F
    if number == 1 or number == 2 or number == 6:
        return number, PyUnicode_DecodeUTF8(<const char*>(b + start), end - start, "replace")
    if number == 7:
        return 7, PyBytes_FromStringAndSize(<const char*>(b + start), end - start)
    if number > 8:
        raise _FieldError("bad GeneralName")
    return number, b""


cdef list general_names(const unsigned char* b, Py_ssize_t start, Py_ssize_t end):
    cdef list names = []
    cdef TLV g
    cdef Py_ssize_t pos = start
    while pos < end:
        header(b, pos, end, &g)
        pos = g.stop
        names.append(general_name(g.tag, b, g.start, g.stop))
    return names


cdef object key_usage(bytes v):
    cdef const unsigned char* b = ptr(v)
    cdef TLV t
    cdef Py_ssize_t start, end, j
    cdef int unused, k
    cdef unsigned char byte
    cdef unsigned long value = 0
    expect(b, 0, PyBytes_GET_SIZE(v), _BIT_STRING, &t)
    start = t.start
    end = t.stop
    if start >= end or b[start] > 7:
        raise _FieldError("bad BIT STRING")
    unused = b[start]
    start += 1
    for j in range(min(end - start, 4)):
        byte = b[start + j]
        if start + j == end - 1:
            byte &= (0xFF << unused) & 0xFF
        for k in range(8):
            if byte & (0x80 >> k):
                value |= (<unsigned long>1) << (j * 8 + k)
    return value


cdef tuple basic_constraints(bytes v):
    cdef const unsigned char* b = ptr(v)
    cdef TLV t, c
    cdef Py_ssize_t pos, i, end
    cdef bint is_ca = False
    path_len = None
    expect(b, 0, PyBytes_GET_SIZE(v), _SEQUENCE, &t)
    pos = t.start
    end = t.stop
    if pos < end:
        header(b, pos, end, &c)
        if c.tag == _BOOLEAN:
            for i in range(c.start, c.stop):
                if b[i]:
                    is_ca = True
                    break
            pos = c.stop
    if pos < end:
        expect(b, pos, end, _INTEGER, &c)
        path_len = integer(b, c.start, c.stop)
    return is_ca, path_len


cdef tuple eku(bytes v):
    cdef const unsigned char* b = ptr(v)
    cdef TLV t, o
    cdef list oids = []
    cdef Py_ssize_t pos
    expect(b, 0, PyBytes_GET_SIZE(v), _SEQUENCE, &t)
    pos = t.start
    while pos < t.stop:
        expect(b, pos, t.stop, _OID, &o)
        pos = o.stop
        oids.append(oid(b, o.start, o.stop))
    return tuple(oids)


cdef tuple alt_names(bytes v):
    cdef const unsigned char* b = ptr(v)
    cdef TLV t
    expect(b, 0, PyBytes_GET_SIZE(v), _SEQUENCE, &t)
    return tuple(general_names(b, t.start, t.stop))


cdef tuple aia(bytes v):
    cdef const unsigned char* b = ptr(v)
    cdef TLV t, d, o, loc
    cdef list pairs = []
    cdef Py_ssize_t pos
    expect(b, 0, PyBytes_GET_SIZE(v), _SEQUENCE, &t)
    pos = t.start
    while pos < t.stop:
        expect(b, pos, t.stop, _SEQUENCE, &d)
        pos = d.stop
        expect(b, d.start, d.stop, _OID, &o)
        method = oid(b, o.start, o.stop)
        header(b, o.stop, d.stop, &loc)
        number, location = general_name(loc.tag, b, loc.start, loc.stop)
        if number == 6:
            pairs.append((method, location))
    return tuple(pairs)


cdef object aki(bytes v):
    cdef const unsigned char* b = ptr(v)
    cdef TLV t, k
    cdef Py_ssize_t pos
    expect(b, 0, PyBytes_GET_SIZE(v), _SEQUENCE, &t)
    pos = t.start
    while pos < t.stop:
        header(b, pos, t.stop, &k)
        pos = k.stop
        if k.tag == 0x80:
            return PyBytes_FromStringAndSize(<const char*>(b + k.start), k.stop - k.start)
    return None


cdef bytes ski(bytes v):
    cdef const unsigned char* b = ptr(v)
    cdef TLV t
    expect(b, 0, PyBytes_GET_SIZE(v), _OCTET_STRING, &t)
    return PyBytes_FromStringAndSize(<const char*>(b + t.start), t.stop - t.start)


cdef tuple qualifier(const unsigned char* b, Py_ssize_t start, Py_ssize_t end, list problems):
    cdef TLV o, t, n
    cdef Py_ssize_t pos
    expect(b, start, end, _OID, &o)
    qid = oid(b, o.start, o.stop)
    text = ""
    if qid == _CPS and o.stop < end:
        header(b, o.stop, end, &t)
        text, bad = decode_string(t.tag, b, t.start, t.stop)
        if bad:
            problems.append("certificatePolicies: " + bad)
    elif qid == _UNOTICE and o.stop < end:
        expect(b, o.stop, end, _SEQUENCE, &n)
        pos = n.start
        while pos < n.stop:
            header(b, pos, n.stop, &t)
            pos = t.stop
            if t.tag != _SEQUENCE:
                text, bad = decode_string(t.tag, b, t.start, t.stop)
                if bad:
                    problems.append("certificatePolicies: " + bad)
                break
    return qid, text


cdef tuple policies(bytes v, list problems):
    cdef const unsigned char* b = ptr(v)
    cdef TLV t, p, o, q, i
    cdef list out = []
    cdef list quals
    cdef Py_ssize_t pos, qpos
    expect(b, 0, PyBytes_GET_SIZE(v), _SEQUENCE, &t)
    pos = t.start
    while pos < t.stop:
        expect(b, pos, t.stop, _SEQUENCE, &p)
        pos = p.stop
        expect(b, p.start, p.stop, _OID, &o)
        policy_oid = oid(b, o.start, o.stop)
        quals = []
        if o.stop < p.stop:
            expect(b, o.stop, p.stop, _SEQUENCE, &q)
            qpos = q.start
            while qpos < q.stop:
                expect(b, qpos, q.stop, _SEQUENCE, &i)
                qpos = i.stop
                quals.append(qualifier(b, i.start, i.stop, problems))
        out.append(new_frozen(Policy, _POLICY_SLOTS, _POLICY_FIELDS, (policy_oid, tuple(quals))))
    return tuple(out)


cdef tuple crl_dps(bytes v):
    cdef const unsigned char* b = ptr(v)
    cdef TLV t, d, n, f
    cdef list uris = []
    cdef Py_ssize_t pos, inner
    expect(b, 0, PyBytes_GET_SIZE(v), _SEQUENCE, &t)
    pos = t.start
    while pos < t.stop:
        expect(b, pos, t.stop, _SEQUENCE, &d)
        pos = d.stop
        inner = d.start
        while inner < d.stop:
            header(b, inner, d.stop, &n)
            inner = n.stop
            if n.tag != 0xA0:
                continue
            header(b, n.start, n.stop, &f)
            if f.tag != 0xA0:
                continue
            for number, value in general_names(b, f.start, f.stop):
                if number == 6:
                    uris.append(value)
    return tuple(uris)


cdef class _Fields:
    """The scratch record a walk fills in before the frozen ``CertInfo`` is built."""

    cdef object version, serial, signature_oid, signature_hash_oid, issuer, subject
    cdef object not_before, not_after, spki, is_ca, path_len, key_usage, ext_key_usage
    cdef object san, ian, aia, aki_keyid, ski, policies, crl_dps, sct_list
    cdef bint has_poison
    cdef list extensions, problems
    cdef set seen

    def __cinit__(self):
        self.version = 1
        self.serial = None
        self.signature_oid = ""
        self.signature_hash_oid = ""
        self.issuer = ()
        self.subject = ()
        self.not_before = None
        self.not_after = None
        self.spki = b""
        self.extensions = []
        self.is_ca = None
        self.path_len = None
        self.key_usage = None
        self.ext_key_usage = ()
        self.san = ()
        self.ian = ()
        self.aia = ()
        self.aki_keyid = None
        self.ski = None
        self.policies = ()
        self.crl_dps = ()
        self.has_poison = False
        self.sct_list = None
        self.problems = []
        self.seen = set()

    cdef object build(self, bytes der):
        return new_frozen(CertInfo, _CERTINFO_SLOTS, _CERTINFO_FIELDS, (
            der,
            self.version,
            self.serial,
            self.signature_oid,
            self.signature_hash_oid,
            self.issuer,
            self.subject,
            self.not_before,
            self.not_after,
            self.spki,
            tuple(self.extensions),
            self.is_ca,
            self.path_len,
            self.key_usage,
            self.ext_key_usage,
            self.san,
            self.ian,
            self.aia,
            self.aki_keyid,
            self.ski,
            self.policies,
            self.crl_dps,
            self.has_poison,
            self.sct_list,
            tuple(self.problems),
        ))


cdef int algorithm(const unsigned char* b, Py_ssize_t start, Py_ssize_t end, _Fields f) except -1:
    cdef TLV o, p, e, h, ho
    cdef Py_ssize_t pos
    expect(b, start, end, _OID, &o)
    f.signature_oid = oid(b, o.start, o.stop)
    if f.signature_oid != _PSS:
        return 0
    try:
        hash_oid = _SHA1
        if o.stop < end:
            header(b, o.stop, end, &p)
            if p.tag == _SEQUENCE:
                pos = p.start
                while pos < p.stop:
                    header(b, pos, p.stop, &e)
                    pos = e.stop
                    if e.tag == 0xA0:
                        expect(b, e.start, e.stop, _SEQUENCE, &h)
                        expect(b, h.start, h.stop, _OID, &ho)
                        hash_oid = oid(b, ho.start, ho.stop)
                        break
        f.signature_hash_oid = hash_oid
    except _FieldError as exc:
        f.problems.append(f"signature: PSS parameters: {exc}")
    return 0


cdef int validity(const unsigned char* b, Py_ssize_t start, Py_ssize_t end, _Fields f) except -1:
    cdef TLV t
    header(b, start, end, &t)
    try:
        f.not_before = time_value(t.tag, b, t.start, t.stop)
    except _FieldError as exc:
        f.problems.append(f"not_before: {exc}")
    header(b, t.stop, end, &t)
    try:
        f.not_after = time_value(t.tag, b, t.start, t.stop)
    except _FieldError as exc:
        f.problems.append(f"not_after: {exc}")
    return 0


cdef int extensions(const unsigned char* b, Py_ssize_t start, Py_ssize_t end, _Fields f) except -1:
    cdef TLV lst, e, o, v
    cdef Py_ssize_t pos, i
    cdef int rc
    cdef bint critical
    expect(b, start, end, _SEQUENCE, &lst)
    pos = lst.start
    while pos < lst.stop:
        rc = read_tlv(b, pos, lst.stop, &e)
        if rc:
            f.problems.append(f"extensions: {_HEADER_ERRORS[rc]}")
            return 0
        pos = e.stop
        try:
            if e.tag != _SEQUENCE:
                raise _FieldError("unexpected tag")
            expect(b, e.start, e.stop, _OID, &o)
            ext_oid = oid(b, o.start, o.stop)
            header(b, o.stop, e.stop, &v)
            critical = False
            if v.tag == _BOOLEAN:
                for i in range(v.start, v.stop):
                    if b[i]:
                        critical = True
                        break
                header(b, v.stop, e.stop, &v)
            if v.tag != _OCTET_STRING:
                raise _FieldError("unexpected tag")
        except _FieldError as exc:
            f.problems.append(f"extensions: {exc}")
            continue
        value = PyBytes_FromStringAndSize(<const char*>(b + v.start), v.stop - v.start)
        f.extensions.append(
            new_frozen(Extension, _EXTENSION_SLOTS, _EXTENSION_FIELDS, (ext_oid, critical, value))
        )
        decode_extension(f, ext_oid, value)
    return 0


cdef int decode_extension(_Fields f, str ext_oid, bytes v) except -1:
    """Fill the decoded fields from one extension just read."""
    cdef int code
    if ext_oid == _POISON:
        f.has_poison = True
        return 0
    if ext_oid in f.seen:
        return 0  # duplicates stay raw in ``extensions``; the first one is decoded
    f.seen.add(ext_oid)
    if ext_oid == _SCTS:
        f.sct_list = v
        return 0
    found = _EXT_CODES.get(ext_oid)
    if found is None:
        return 0
    code = found
    try:
        if code == X_BASIC_CONSTRAINTS:
            f.is_ca, f.path_len = basic_constraints(v)
        elif code == X_KEY_USAGE:
            f.key_usage = key_usage(v)
        elif code == X_EKU:
            f.ext_key_usage = eku(v)
        elif code == X_SAN:
            f.san = alt_names(v)
        elif code == X_IAN:
            f.ian = alt_names(v)
        elif code == X_AIA:
            f.aia = aia(v)
        elif code == X_AKI:
            f.aki_keyid = aki(v)
        elif code == X_SKI:
            f.ski = ski(v)
        elif code == X_POLICIES:
            f.policies = policies(v, f.problems)
        else:
            f.crl_dps = crl_dps(v)
    except _FieldError as exc:
        f.problems.append(f"{_EXT_NAMES[ext_oid]}: {exc}")
    return 0


_FIELDS = ("serial", "signature", "issuer", "validity", "subject", "spki")


cdef int walk_tbs(const unsigned char* b, Py_ssize_t start, Py_ssize_t end, _Fields f) except -1:
    cdef TLV t, i
    cdef Py_ssize_t pos = start
    cdef Py_ssize_t tlv_start
    field = "version"
    try:
        if pos < end and b[pos] == 0xA0:
            header(b, pos, end, &t)
            pos = t.stop
            try:
                expect(b, t.start, t.stop, _INTEGER, &i)
                f.version = integer(b, i.start, i.stop) + 1
            except _FieldError as exc:
                f.problems.append(f"version: {exc}")
        for field in _FIELDS:
            if pos >= end:
                f.problems.append(f"{field}: missing")
                return 0
            header(b, pos, end, &t)
            tlv_start = pos
            pos = t.stop
            try:
                if t.tag != (_INTEGER if field == "serial" else _SEQUENCE):
                    raise _FieldError("unexpected tag")
                if field == "serial":
                    f.serial = integer(b, t.start, t.stop)
                elif field == "signature":
                    algorithm(b, t.start, t.stop, f)
                elif field == "issuer":
                    f.issuer = name(b, t.start, t.stop, field, f.problems)
                elif field == "validity":
                    validity(b, t.start, t.stop, f)
                elif field == "subject":
                    f.subject = name(b, t.start, t.stop, field, f.problems)
                else:
                    f.spki = PyBytes_FromStringAndSize(<const char*>(b + tlv_start), t.stop - tlv_start)
            except _FieldError as exc:
                f.problems.append(f"{field}: {exc}")
        field = "extensions"
        while pos < end:
            header(b, pos, end, &t)
            pos = t.stop
            if t.tag == 0xA3:
                try:
                    extensions(b, t.start, t.stop, f)
                except _FieldError as exc:
                    f.problems.append(f"extensions: {exc}")
            elif t.tag != 0x81 and t.tag != 0x82 and t.tag != 0xA1 and t.tag != 0xA2:
                f.problems.append("tbs: unexpected element")
    except _FieldError as exc:
        f.problems.append(f"{field}: {exc}")
    return 0


cdef int outer(
    const unsigned char* b, Py_ssize_t pos, Py_ssize_t end, str what, _Fields f, TLV* t
) except -1:
    cdef int count, i
    cdef unsigned long long length  # up to 2**32 - 1: wider than Py_ssize_t on 32-bit
    if pos >= end or b[pos] != _SEQUENCE:
        raise DecodeError(f"{what}: not a SEQUENCE")
    pos += 1
    if pos >= end:
        raise DecodeError(f"{what}: truncated")
    length = b[pos]
    pos += 1
    if length >= 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or count > end - pos:
            raise DecodeError(f"{what}: bad length")
        length = 0
        for i in range(count):
            length = (length << 8) | b[pos + i]
        pos += count
    t.start = pos
    if length > <unsigned long long>(end - pos):
        f.problems.append(f"{what}: truncated")
        t.stop = end
    else:
        t.stop = pos + <Py_ssize_t>length
    return 0


def parse_tbs(tbs):
    """Decode a bare TBSCertificate (a precert leaf's).  ``der`` is ``tbs`` itself."""
    cdef bytes buf = bytes(tbs)
    cdef _Fields f = _Fields()
    cdef TLV t
    cdef const unsigned char* b = ptr(buf)
    outer(b, 0, PyBytes_GET_SIZE(buf), "tbs", f, &t)
    walk_tbs(b, t.start, t.stop, f)
    return f.build(buf)


def parse_certificate(der):
    """Decode a Certificate (SEQUENCE {tbsCertificate, signatureAlgorithm, signature})."""
    cdef bytes buf = bytes(der)
    cdef _Fields f = _Fields()
    cdef TLV c, t
    cdef const unsigned char* b = ptr(buf)
    outer(b, 0, PyBytes_GET_SIZE(buf), "certificate", f, &c)
    outer(b, c.start, c.stop, "tbs", f, &t)
    walk_tbs(b, t.start, t.stop, f)
    return f.build(buf)
