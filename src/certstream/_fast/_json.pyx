# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Certificate objects as JSON text: the compiled twin of ``_json_py.py`` (same API).

The plan is the pure twin's (a profile's decisions taken once, at construction); what is
compiled is the per-certificate formatting, written as UTF-8 straight into one reused C
buffer, so a certificate object costs two ``str`` objects, not one per field.  The string
escaper takes ASCII text with at most the short escapes (``\\" \\\\ \\n \\r \\t \\b \\f``), on
which all four JSON writers agree, and hands anything else (non-ASCII, other control
characters, Go's HTML escapes) to the profile's own writer in ``jsontext``.  Hex, colon-hex
and base64 text are C loops.  The extension formatters of the ``go`` profile are written
here; any other formatter, domains rule or string writer is called as the Python function the
profile names, so the two twins share the code of every rare case.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.string cimport memcpy

import hashlib

from certstream._fast._json_py import (
    CERT_KEYS,
    NAME_CACHE_SIZE,
    NO_EXPIRATION,
    join_as_der,
)
from certstream._fast._json_py import all_domains as _all_domains_py
from certstream.core import easyssl as _easyssl
from certstream.core import extformat as _extformat
from certstream.core import oids as _oids
from certstream.core.oids import OID_CN, OID_PSS
from certstream.core.jsontext import FLOAT_WRITERS, STRING_WRITERS

__all__ = ["CertWriter", "all_domains", "b64encode", "colon_hex_upper", "join_as_der"]


cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object o)
    void *PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)


cdef object _sha1 = hashlib.sha1
cdef object _sha256 = hashlib.sha256
cdef object _go_ip = _extformat.go_ip
cdef tuple _GO_KEY_USAGE = _extformat.GO_KEY_USAGE

# The second character of each short escape (0: not a short escape).
cdef unsigned char _SHORT[128]
for _i in range(128):
    _SHORT[_i] = 0
_SHORT[34] = 34   # "
_SHORT[92] = 92   # \
_SHORT[10] = 110  # n
_SHORT[13] = 114  # r
_SHORT[9] = 116   # t
_SHORT[8] = 98    # b
_SHORT[12] = 102  # f

cdef const char *_HEX_UPPER = b"0123456789ABCDEF"
cdef const char *_HEX_LOWER = b"0123456789abcdef"
cdef const char *_B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

# Writers whose rule on ASCII text with only short escapes is the stdlib's (quotes, the seven
# short escapes, nothing else): every writer of jsontext.  go_html also escapes < > &.
cdef frozenset _PLAIN_WRITERS = frozenset(["go", "go_html", "jason", "serde"])


cdef str _colon_hex(bytes data, bint upper):
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    if n == 0:
        return ""
    cdef const unsigned char *d = <const unsigned char *>PyBytes_AS_STRING(data)
    cdef const char *digits = _HEX_UPPER if upper else _HEX_LOWER
    out = PyUnicode_New(3 * n - 1, 127)
    cdef char *o = <char *>PyUnicode_DATA(out)
    cdef Py_ssize_t i
    for i in range(n):
        if i:
            o[0] = 58  # :
            o += 1
        o[0] = digits[d[i] >> 4]
        o[1] = digits[d[i] & 15]
        o += 2
    return out


def colon_hex_upper(bytes digest):
    return _colon_hex(digest, True)


cdef inline char *_b64_write(char *o, const unsigned char *d, Py_ssize_t n) noexcept:
    """Standard base64 of ``d[:n]`` written at ``o`` ((n + 2) // 3 * 4 bytes); returns the end."""
    cdef Py_ssize_t i = 0
    cdef unsigned int v
    while i + 3 <= n:
        v = (d[i] << 16) | (d[i + 1] << 8) | d[i + 2]
        o[0] = _B64[v >> 18]
        o[1] = _B64[(v >> 12) & 63]
        o[2] = _B64[(v >> 6) & 63]
        o[3] = _B64[v & 63]
        o += 4
        i += 3
    if n - i == 1:
        v = d[i] << 16
        o[0] = _B64[v >> 18]
        o[1] = _B64[(v >> 12) & 63]
        o[2] = 61
        o[3] = 61
        o += 4
    elif n - i == 2:
        v = (d[i] << 16) | (d[i + 1] << 8)
        o[0] = _B64[v >> 18]
        o[1] = _B64[(v >> 12) & 63]
        o[2] = _B64[(v >> 6) & 63]
        o[3] = 61
        o += 4
    return o


cdef str _b64(bytes data):
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    out = PyUnicode_New((n + 2) // 3 * 4, 127)
    _b64_write(<char *>PyUnicode_DATA(out),
               <const unsigned char *>PyBytes_AS_STRING(data), n)
    return out


def b64encode(bytes data):
    return _b64(data)


def all_domains(info, str rule):
    return _all_domains_py(info, rule)


# --- the plan's codes ------------------------------------------------------------------------

cdef enum:
    K_AS_DER = 0
    K_ALL_DOMAINS = 1
    K_EXTENSIONS = 2
    K_SHA1 = 3
    K_SHA256 = 4
    K_NOT_AFTER = 5
    K_NOT_BEFORE = 6
    K_SERIAL = 7
    K_SIGNATURE = 8
    K_SUBJECT = 9
    K_ISSUER = 10
    K_IS_CA = 11

cdef dict _KEY_CODES = {
    "as_der": K_AS_DER,
    "all_domains": K_ALL_DOMAINS,
    "extensions": K_EXTENSIONS,
    "fingerprint": K_SHA1,
    "sha1": K_SHA1,
    "sha256": K_SHA256,
    "not_after": K_NOT_AFTER,
    "not_before": K_NOT_BEFORE,
    "serial_number": K_SERIAL,
    "signature_algorithm": K_SIGNATURE,
    "subject": K_SUBJECT,
    "issuer": K_ISSUER,
    "is_ca": K_IS_CA,
}

# Extension formatters written here, by function (not name: a profile variant that maps a
# name to another function gets that function called).
cdef enum:
    X_PYTHON = 0
    X_NEVER = 1
    X_POISON = 2
    X_AIA_ISSUERS_FIRST = 3
    X_AKI_LOWER = 4
    X_SKI_LOWER = 5
    X_BASIC_CONSTRAINTS = 6
    X_POLICIES_LINES = 7
    X_KEY_USAGE_GO = 8
    X_SAN_GROUPED = 9

cdef dict _EXT_CODES = {
    _extformat.never: X_NEVER,
    _extformat.poison: X_POISON,
    _extformat.aia_uris_issuers_first: X_AIA_ISSUERS_FIRST,
    _extformat.aki_keyid_lower: X_AKI_LOWER,
    _extformat.ski_keyid_lower: X_SKI_LOWER,
    _extformat.basic_constraints: X_BASIC_CONSTRAINTS,
    _extformat.policies_lines: X_POLICIES_LINES,
    _extformat.key_usage_go: X_KEY_USAGE_GO,
    _extformat.san_grouped: X_SAN_GROUPED,
}

# Presence bits of the extensions those formatters look at.
cdef enum:
    B_AIA = 1
    B_AKI = 2
    B_SKI = 4
    B_BC = 8
    B_CP = 16
    B_KU = 32
    B_SAN = 64
    B_POISON = 128

cdef dict _OID_BITS = {
    _oids.OID_AIA: B_AIA,
    _oids.OID_AKI: B_AKI,
    _oids.OID_SKI: B_SKI,
    _oids.OID_BC: B_BC,
    _oids.OID_CP: B_CP,
    _oids.OID_KU: B_KU,
    _oids.OID_SAN: B_SAN,
    _oids.OID_POISON: B_POISON,
}

cdef str _OID_OCSP = _oids.OID_OCSP
cdef str _OID_CA_ISSUERS = _oids.OID_CA_ISSUERS
cdef frozenset _POISON_SET = frozenset([_oids.OID_POISON])

cdef enum:
    F_CERT_INDEX = 0
    F_CERT_LINK = 1
    F_CHAIN = 2
    F_LEAF_CERT = 3
    F_SEEN = 4
    F_SOURCE = 5
    F_UPDATE_TYPE = 6
    F_SUBMISSION_TIMESTAMP = 7

cdef dict _DATA_CODES = {
    "cert_index": F_CERT_INDEX,
    "cert_link": F_CERT_LINK,
    "chain": F_CHAIN,
    "leaf_cert": F_LEAF_CERT,
    "seen": F_SEEN,
    "source": F_SOURCE,
    "update_type": F_UPDATE_TYPE,
    "submission_timestamp": F_SUBMISSION_TIMESTAMP,
}

# Below this many milliseconds, t / 1000 as a double is closer to the 3-decimal number than
# any other 3-decimal number is (the gap between doubles stays under 0.0005), so its shortest
# round-trip text is that number with trailing zeros cut: Go's 'f' -1 format, done in C.
cdef long long _GO_MS_EXACT = 1LL << 42

cdef enum:
    D_PYTHON = 0
    D_SAN_THEN_CN = 1


cdef str _text(object value):
    return value if isinstance(value, str) else ""


cdef class CertWriter:
    """Formats certificate objects of one profile with one key list (leaf or chain)."""

    cdef readonly object profile
    cdef readonly tuple keys
    cdef object _write
    cdef object _write_domain
    cdef bint _fast
    cdef bint _html
    cdef bint _fast_domain
    cdef bint _html_domain
    cdef list _codes
    cdef list _prefixes
    cdef list _ext_prefixes
    cdef list _ext_codes
    cdef list _ext_funcs
    cdef dict _names
    cdef bint _easyssl_names
    cdef str _domains_rule
    cdef int _domains_code
    cdef str _serial_rule
    cdef bint _no_expiration
    cdef dict _signatures
    cdef dict _pss
    # The name rule, as indexes into one value slot per key.
    cdef dict _name_index
    cdef Py_ssize_t _name_slots
    cdef list _name_single
    cdef bint _name_join
    cdef bint _name_null
    cdef Py_ssize_t _cn_slot
    cdef list _name_out
    cdef list _agg
    cdef str _agg_empty
    # The output buffer: UTF-8, reused by every call; _wide once a non-ASCII byte went in.
    cdef char *_buf
    cdef Py_ssize_t _len
    cdef Py_ssize_t _cap
    cdef bint _wide
    cdef Py_ssize_t _split  # where as_der goes, after _parts
    # The frames around the data object.
    cdef object _float
    cdef bint _go_float
    cdef bytes _cert_open
    cdef bytes _cert_close
    cdef bytes _dns_open
    cdef bytes _dns_close
    cdef list _data_codes
    cdef list _data_prefixes
    cdef bint _chain_when_empty

    def __cinit__(self):
        self._cap = 8192
        self._buf = <char *>PyMem_Malloc(self._cap)
        if self._buf == NULL:
            raise MemoryError()
        self._len = 0

    def __dealloc__(self):
        PyMem_Free(self._buf)

    def __init__(self, profile, tuple keys):
        unknown = set(keys) - CERT_KEYS
        if unknown:
            raise ValueError(f"unknown certificate keys: {sorted(unknown)}")
        self.profile = profile
        self.keys = keys
        self._write = STRING_WRITERS[profile.string_writer]
        self._write_domain = STRING_WRITERS[profile.domains_string_writer]
        self._fast = profile.string_writer in _PLAIN_WRITERS
        self._html = profile.string_writer == "go_html"
        self._fast_domain = profile.domains_string_writer in _PLAIN_WRITERS
        self._html_domain = profile.domains_string_writer == "go_html"
        self._codes = [_KEY_CODES[key] for key in keys]
        self._prefixes = [('"' + key + '":').encode() for key in keys]
        self._ext_prefixes = []
        self._ext_codes = []
        self._ext_funcs = []
        for key, fmt in profile.extensions:
            func = _extformat.FIELD_FORMATTERS[fmt]
            self._ext_prefixes.append((self._write(key) + ":").encode("utf-8", "replace"))
            self._ext_codes.append(_EXT_CODES.get(func, X_PYTHON))
            self._ext_funcs.append(func)
        self._names = {}
        self._easyssl_names = profile.names.strings == "easyssl"
        self._domains_rule = profile.domains
        self._domains_code = D_SAN_THEN_CN if profile.domains == "san_then_cn" else D_PYTHON
        self._serial_rule = profile.serial
        self._no_expiration = profile.no_expiration
        self._signatures = profile.signatures
        self._pss = profile.pss_signatures
        self._plan_names(profile.names)
        self._float = FLOAT_WRITERS[profile.float_writer]
        self._go_float = profile.float_writer == "go"
        if profile.message_type_first:
            self._cert_open = b'{"message_type":"certificate_update","data":'
            self._cert_close = b"}" + profile.newline.encode()
            self._dns_open = b'{"message_type":"dns_entries","data":'
            self._dns_close = b"}"
        else:
            self._cert_open = b'{"data":'
            self._cert_close = b',"message_type":"certificate_update"}' + profile.newline.encode()
            self._dns_open = b'{"data":'
            self._dns_close = b',"message_type":"dns_entries"}'
        self._data_codes = [_DATA_CODES[key] for key in profile.data_keys]
        self._data_prefixes = [('"' + key + '":').encode() for key in profile.data_keys]
        self._chain_when_empty = profile.chain_when_empty

    cdef _plan_names(self, rule):
        cdef dict slots = {}
        for key in [*rule.keys, *[k for k, _ in rule.oids], *rule.aggregated, "CN"]:
            if key != "aggregated" and key not in slots:
                slots[key] = len(slots)
        self._name_slots = len(slots)
        self._name_index = {oid: slots[key] for key, oid in rule.oids}
        self._name_single = [key in rule.single for key in slots]
        self._name_join = rule.multi == "join"
        self._name_null = rule.absent == "null"
        self._cn_slot = slots["CN"] if rule.cn_always else -1
        # (slot or -1 for "aggregated", '"key":' as bytes)
        self._name_out = [
            (-1 if key == "aggregated" else slots[key], ('"' + key + '":').encode())
            for key in rule.keys
        ]
        self._agg = [(slots[key], "/" + key + "=") for key in rule.aggregated]
        self._agg_empty = rule.aggregated_empty

    # --- the buffer ----------------------------------------------------------------------

    cdef int _reserve(self, Py_ssize_t n) except -1:
        cdef Py_ssize_t cap
        cdef char *grown
        if self._len + n <= self._cap:
            return 0
        cap = max(self._cap * 2, self._len + n)
        grown = <char *>PyMem_Realloc(self._buf, cap)
        if grown == NULL:
            raise MemoryError()
        self._buf = grown
        self._cap = cap
        return 0

    cdef inline int _raw(self, const char *data, Py_ssize_t n) except -1:
        self._reserve(n)
        memcpy(self._buf + self._len, data, n)
        self._len += n
        return 0

    cdef inline int _byte(self, char c) except -1:
        self._reserve(1)
        self._buf[self._len] = c
        self._len += 1
        return 0

    cdef int _bytes(self, bytes data) except -1:
        cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
        cdef const unsigned char *d = <const unsigned char *>PyBytes_AS_STRING(data)
        cdef Py_ssize_t i
        if not self._wide:
            for i in range(n):
                if d[i] >= 0x80:
                    self._wide = True
                    break
        return self._raw(<const char *>d, n)

    cdef int _ascii(self, str text) except -1:
        """Text known to need no escaping (digits, fixed words)."""
        if PyUnicode_IS_ASCII(text):
            return self._raw(<const char *>PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text))
        return self._bytes(text.encode("utf-8", "replace"))

    cdef bint _body(self, str text, bint html) except -1:
        """Write ``text`` escaped, without quotes; False (buffer half written) when the fast
        rule does not apply and the caller must roll back and use the profile's writer."""
        if not PyUnicode_IS_ASCII(text):
            return False
        cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text)
        cdef const unsigned char *d = <const unsigned char *>PyUnicode_DATA(text)
        self._reserve(2 * n)
        cdef unsigned char *o = <unsigned char *>self._buf + self._len
        cdef Py_ssize_t i
        cdef unsigned char c
        for i in range(n):
            c = d[i]
            if c < 0x20 or c == 34 or c == 92:
                if _SHORT[c] == 0:
                    return False
                o[0] = 92
                o[1] = _SHORT[c]
                o += 2
            elif html and (c == 60 or c == 62 or c == 38):
                return False
            else:
                o[0] = c
                o += 1
        self._len = <Py_ssize_t>(<char *>o - self._buf)
        return True

    cdef int _str(self, str text) except -1:
        """A JSON string in the profile's string writer."""
        cdef Py_ssize_t mark = self._len
        if self._fast:
            self._byte(34)
            if self._body(text, self._html):
                return self._byte(34)
            self._len = mark
        return self._bytes((<str>self._write(text)).encode("utf-8", "replace"))

    cdef int _str_domain(self, str text) except -1:
        cdef Py_ssize_t mark = self._len
        if self._fast_domain:
            self._byte(34)
            if self._body(text, self._html_domain):
                return self._byte(34)
            self._len = mark
        return self._bytes((<str>self._write_domain(text)).encode("utf-8", "replace"))

    cdef int _hex(self, bytes data, bint upper) except -1:
        cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
        cdef const unsigned char *d = <const unsigned char *>PyBytes_AS_STRING(data)
        cdef const char *digits = _HEX_UPPER if upper else _HEX_LOWER
        if n == 0:
            return 0
        self._reserve(3 * n)
        cdef char *o = self._buf + self._len
        cdef Py_ssize_t i
        for i in range(n):
            if i:
                o[0] = 58  # :
                o += 1
            o[0] = digits[d[i] >> 4]
            o[1] = digits[d[i] & 15]
            o += 2
        self._len = <Py_ssize_t>(o - self._buf)
        return 0

    cdef str _take(self, Py_ssize_t start, Py_ssize_t stop):
        cdef Py_ssize_t n = stop - start
        if self._wide:
            return PyUnicode_DecodeUTF8(self._buf + start, n, "strict")
        out = PyUnicode_New(n, 127)
        memcpy(PyUnicode_DATA(out), self._buf + start, n)
        return out

    cdef inline void _reset(self) noexcept:
        self._len = 0
        self._wide = False

    # --- pieces --------------------------------------------------------------------------

    def domains(self, info):
        return self._domains(info)

    cdef list _domains(self, info):
        if self._domains_code != D_SAN_THEN_CN:
            return _all_domains_py(info, self._domains_rule)
        cdef list dns = []
        for tag, value in info.san:
            if tag == 2 and isinstance(value, str):
                dns.append(value)
        cn = None
        for attr in info.subject:
            if attr.oid == OID_CN:
                cn = attr.value
        # Go: SAN order, no dedup; the CN goes last unless empty, a CA, or already there.
        if cn and not info.is_ca and cn not in dns:
            dns.append(cn)
        return dns

    def domains_array(self, list names):
        self._reset()
        self._byte(91)
        cdef Py_ssize_t i
        for i in range(len(names)):
            if i:
                self._byte(44)
            self._str_domain(names[i])
        self._byte(93)
        return self._take(0, self._len)

    cdef int _array(self, list names) except -1:
        self._byte(91)
        cdef Py_ssize_t i
        for i in range(len(names)):
            if i:
                self._byte(44)
            self._str(names[i])
        return self._byte(93)

    def name_attrs(self, info, str which):
        if self._easyssl_names:
            return _easyssl.name_attrs(info, which)
        return info.subject if which == "subject" else info.issuer

    def name_object(self, tuple attrs):
        self._reset()
        self._cached_name(attrs)
        return self._take(0, self._len)

    cdef int _cached_name(self, tuple attrs) except -1:
        # Keyed by the attribute strings: hashing NameAttr objects would run a Python
        # __hash__ per attribute.
        cdef list flat = []
        for attr in attrs:
            flat.append(attr.oid)
            flat.append(attr.value)
        key = tuple(flat)
        cached = self._names.get(key)
        if cached is not None:
            return self._bytes(<bytes>cached)
        cdef Py_ssize_t start = self._len
        self._name(attrs)
        if len(self._names) >= NAME_CACHE_SIZE:
            self._names.clear()
        self._names[key] = (<bytes>self._buf[start:self._len])
        return 0

    cdef int _name(self, tuple attrs) except -1:
        cdef list values = [None] * self._name_slots
        cdef Py_ssize_t slot
        for attr in attrs:
            found = self._name_index.get(attr.oid)
            if found is None:
                continue
            slot = <Py_ssize_t>found
            current = values[slot]
            if current is None or not self._name_join or self._name_single[slot]:
                values[slot] = attr.value
            else:
                values[slot] = current + "," + attr.value
        if self._cn_slot >= 0 and values[self._cn_slot] is None:
            values[self._cn_slot] = ""
        cdef list agg
        cdef bint first = True
        self._byte(123)
        for slot, prefix in self._name_out:
            if slot < 0:
                agg = []
                for agg_slot, agg_prefix in self._agg:
                    value = values[<Py_ssize_t>agg_slot]
                    if value is not None:
                        agg.append(agg_prefix + value)
                if not first:
                    self._byte(44)
                first = False
                self._raw(b'"aggregated":', 13)
                self._str("".join(agg) if agg else self._agg_empty)
                continue
            value = values[slot]
            if value is not None:
                if not first:
                    self._byte(44)
                first = False
                self._bytes(<bytes>prefix)
                self._str(<str>value)
            elif self._name_null:
                if not first:
                    self._byte(44)
                first = False
                self._bytes(<bytes>prefix)
                self._raw(b"null", 4)
        return self._byte(125)

    def serial(self, serial):
        return self._serial(serial)

    cdef str _serial(self, serial):
        if serial is None:
            return '""'
        rule = self._serial_rule
        if rule == "der" and serial < 0:
            size = (serial.bit_length() + 8) // 8  # two's complement, minimal length
            return '"' + serial.to_bytes(size, "big", signed=True).hex().upper() + '"'
        cdef str text = format(serial, "X")
        if rule != "plain" and len(text) % 2:
            text = "0" + text
        return '"' + text + '"'

    cdef int _time(self, value) except -1:
        if value is None:
            return self._byte(48)
        if value == NO_EXPIRATION and self._no_expiration:
            return self._raw(b'"no_expiration"', 15)
        return self._ascii(str(value))

    cdef int _signature(self, info) except -1:
        if info.signature_oid == OID_PSS:
            name = self._pss.get(info.signature_hash_oid, "unknown")
        else:
            name = self._signatures.get(info.signature_oid, "unknown")
        return self._str(name)

    # --- extensions ----------------------------------------------------------------------

    def extensions_object(self, info, frozenset present):
        cdef int bits = 0
        for oid in present:
            bits |= <int>_OID_BITS.get(oid, 0)
        self._reset()
        self._extensions(info, bits, present)
        return self._take(0, self._len)

    cdef int _extensions(self, info, int bits, object present) except -1:
        cdef Py_ssize_t i, n = len(self._ext_codes)
        cdef Py_ssize_t mark
        cdef int code
        cdef bint first = True
        self._byte(123)
        for i in range(n):
            code = <int>self._ext_codes[i]
            if code == X_NEVER:
                continue
            mark = self._len
            if not first:
                self._byte(44)
            self._bytes(<bytes>self._ext_prefixes[i])
            if code == X_PYTHON:
                if present is None:
                    present = frozenset([ext.oid for ext in info.extensions])
                    if bits & B_POISON:
                        present = present | _POISON_SET
                value = self._ext_funcs[i](info, present)
                if value is None:
                    self._len = mark
                    continue
                self._value(value)
            elif not self._go_extension(code, info, bits):
                self._len = mark
                continue
            first = False
        return self._byte(125)

    cdef int _value(self, value) except -1:
        if value is True:
            return self._raw(b"true", 4)
        if value is False:
            return self._raw(b"false", 5)
        if isinstance(value, list):
            return self._array(value)
        return self._str(value)

    cdef bint _go_extension(self, int code, info, int bits) except -1:
        """Write the JSON value of one formatter of the go set; False to leave the key out."""
        cdef list items
        cdef int i
        if code == X_POISON:
            if info.has_poison or bits & B_POISON:
                self._raw(b"true", 4)
                return True
            return False
        if code == X_AKI_LOWER or code == X_SKI_LOWER:
            if not bits & (B_AKI if code == X_AKI_LOWER else B_SKI):
                return False
            keyid = info.aki_keyid if code == X_AKI_LOWER else info.ski
            self._raw(b'"keyid:', 7)
            self._hex(keyid or b"", False)
            self._byte(34)
            return True
        if code == X_BASIC_CONSTRAINTS:
            if not bits & B_BC:
                return False
            if info.is_ca:
                self._raw(b'"CA:TRUE"', 9)
            else:
                self._raw(b'"CA:FALSE"', 10)
            return True
        if code == X_KEY_USAGE_GO:
            if not bits & B_KU:
                return False
            usage = info.key_usage or 0
            items = []
            for i in range(9):
                if usage & (1 << i):
                    items.append(_GO_KEY_USAGE[i])
            self._str(", ".join(items))
            return True
        if code == X_AIA_ISSUERS_FIRST:
            if not bits & B_AIA:
                return False
            items = []
            for method, uri in info.aia:
                if method == _OID_CA_ISSUERS:
                    items.append("URI:" + uri)
            for method, uri in info.aia:
                if method == _OID_OCSP:
                    items.append("URI:" + uri)
            self._str(", ".join(items))
            return True
        if code == X_POLICIES_LINES:
            if not bits & B_CP:
                return False
            items = ["Policy: " + policy.oid + "\n" for policy in info.policies]
            self._str("".join(items))
            return True
        # X_SAN_GROUPED: every DNS name, then every email, then every IP; URIs dropped.
        if not bits & B_SAN:
            return False
        return self._san_grouped(info)

    cdef bint _san_grouped(self, info) except -1:
        # The common case, ASCII DNS names only, is escaped straight into the buffer; the
        # rest (emails, IPs, text the fast rule cannot take) builds the text first.
        cdef Py_ssize_t mark = self._len
        cdef bint first = True
        if self._fast:
            self._byte(34)
            for tag, value in info.san:
                if tag != 2:
                    if tag == 1 or tag == 7:
                        break
                    continue
                if not first:
                    self._raw(b", ", 2)
                first = False
                self._raw(b"DNS:", 4)
                if not self._body(_text(value), self._html):
                    break
            else:
                self._byte(34)
                return True
            self._len = mark
        cdef list items = []
        for tag, value in info.san:
            if tag == 2:
                items.append("DNS:" + _text(value))
        for tag, value in info.san:
            if tag == 1:
                items.append("email:" + _text(value))
        for tag, value in info.san:
            if tag == 7:
                items.append("IP Address:" + _go_ip(value))
        self._str(", ".join(items))
        return True

    # --- the object ----------------------------------------------------------------------

    def parts(self, info, bytes der, bint poison, domains):
        """The certificate object split around ``as_der``: (text before, text after)."""
        self._reset()
        self._parts(info, der, poison, domains)
        cdef Py_ssize_t split = self._split
        return self._take(0, split), self._take(split, self._len)

    cdef int _parts(self, info, bytes der, bint poison, domains) except -1:
        cdef int bits = B_POISON if poison else 0
        for ext in info.extensions:
            bits |= <int>_OID_BITS.get(ext.oid, 0)
        cdef bytes sha1 = None
        cdef int code
        cdef Py_ssize_t i, n = len(self._codes)
        cdef bint in_tail = False
        cdef bint first = True
        self._split = -1
        self._byte(123)
        for i in range(n):
            code = <int>self._codes[i]
            if code == K_AS_DER:
                in_tail = True
                self._split = self._len
                continue
            if not first:
                self._byte(44)
            first = False
            self._bytes(<bytes>self._prefixes[i])
            if code == K_SUBJECT:
                self._name(_easyssl.name_attrs(info, "subject") if self._easyssl_names
                           else info.subject)
            elif code == K_ISSUER:
                self._cached_name(_easyssl.name_attrs(info, "issuer") if self._easyssl_names
                                  else info.issuer)
            elif code == K_EXTENSIONS:
                self._extensions(info, bits, None)
            elif code == K_ALL_DOMAINS:
                self._array(domains if domains is not None else self._domains(info))
            elif code == K_SHA1:
                if sha1 is None:
                    sha1 = _sha1(der).digest()
                self._byte(34)
                self._hex(sha1, True)
                self._byte(34)
            elif code == K_SHA256:
                self._byte(34)
                self._hex(_sha256(der).digest(), True)
                self._byte(34)
            elif code == K_NOT_AFTER:
                self._time(info.not_after)
            elif code == K_NOT_BEFORE:
                self._time(info.not_before)
            elif code == K_SERIAL:
                self._ascii(self._serial(info.serial))
            elif code == K_SIGNATURE:
                self._signature(info)
            elif info.is_ca:  # K_IS_CA
                self._raw(b"true", 4)
            else:
                self._raw(b"false", 5)
        self._byte(125)
        if self._split < 0:
            self._split = self._len - 1
        return 0

    def whole(self, info, bytes der):
        """The complete object (a chain certificate's), ``as_der`` included if in the keys."""
        head, tail = self.parts(info, der, False, None)
        if K_AS_DER in self._codes:
            return join_as_der(head, _b64(der), tail)
        return head + tail

    # --- the frames ----------------------------------------------------------------------

    def domains_payload(self, list names):
        """The whole ``dns_entries`` frame payload."""
        self._reset()
        self._bytes(self._dns_open)
        self._byte(91)
        cdef Py_ssize_t i
        for i in range(len(names)):
            if i:
                self._byte(44)
            self._str_domain(names[i])
        self._byte(93)
        self._bytes(self._dns_close)
        return <bytes>self._buf[:self._len]

    def timestamp_text(self, milliseconds):
        """A log timestamp (ms) as the profile writes seconds: ``source.timestamp``."""
        cdef long long ms, whole, frac
        cdef char digits[4]
        cdef int n
        if self._go_float and type(milliseconds) is int and 0 < milliseconds < _GO_MS_EXACT:
            ms = milliseconds
            whole = ms // 1000
            frac = ms % 1000
            if frac == 0:
                return str(whole)
            digits[0] = <char>(48 + frac // 100)
            digits[1] = <char>(48 + frac // 10 % 10)
            digits[2] = <char>(48 + frac % 10)
            n = 3
            while digits[n - 1] == 48:
                n -= 1
            return str(whole) + "." + (<bytes>digits[:n]).decode("ascii")
        return self._float(milliseconds / 1000)

    def payloads(
        self, info, entry, bint poison, domains, str link, str seen, str source,
        str timestamp, chain, bint lite, bint full,
    ):
        """The lite and full ``certificate_update`` payloads (None where not wanted)."""
        cdef bytes der = entry.cert_der
        self._reset()
        self._parts(info, der, poison, domains)
        cdef Py_ssize_t split = self._split
        cdef Py_ssize_t leaf_end = self._len
        lite_out = full_out = None
        # Each frame is written after the leaf object, copied out, and its space reused.
        if lite:
            lite_out = self._frame(entry, link, seen, source, timestamp, None, split, leaf_end)
            self._len = leaf_end
        if full:
            full_out = self._frame(
                entry, link, seen, source, timestamp,
                chain if chain is not None else "[]", split, leaf_end,
            )
            self._len = leaf_end
        return lite_out, full_out

    cdef int _copy_within(self, Py_ssize_t start, Py_ssize_t stop) except -1:
        cdef Py_ssize_t n = stop - start
        self._reserve(n)  # may move the buffer: offsets, not pointers, until here
        memcpy(self._buf + self._len, self._buf + start, n)
        self._len += n
        return 0

    cdef int _b64_into(self, bytes data) except -1:
        cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
        self._reserve((n + 2) // 3 * 4)
        cdef char *end = _b64_write(self._buf + self._len,
                                    <const unsigned char *>PyBytes_AS_STRING(data), n)
        self._len = <Py_ssize_t>(end - self._buf)
        return 0

    cdef bytes _frame(
        self, entry, str link, str seen, str source, str timestamp, object chain,
        Py_ssize_t split, Py_ssize_t leaf_end,
    ):
        """One certificate_update frame, ``chain`` None for lite; the leaf object is
        buf[0:leaf_end], split at ``split`` where a full frame's as_der goes."""
        cdef Py_ssize_t start = self._len
        cdef Py_ssize_t i, n = len(self._data_codes)
        cdef int code
        cdef bint first = True
        self._bytes(self._cert_open)
        self._byte(123)
        for i in range(n):
            code = <int>self._data_codes[i]
            if code == F_CHAIN and (
                chain is None or (chain == "[]" and not self._chain_when_empty)
            ):
                continue
            if not first:
                self._byte(44)
            first = False
            self._bytes(<bytes>self._data_prefixes[i])
            if code == F_CERT_INDEX:
                self._ascii(str(entry.index))
            elif code == F_CERT_LINK:
                self._str(link)
            elif code == F_CHAIN:
                self._ascii(chain)
            elif code == F_LEAF_CERT:
                if chain is None:
                    self._copy_within(0, leaf_end)
                elif split == 1:  # the head is only "{"
                    self._raw(b'{"as_der":"', 11)
                    self._b64_into(entry.cert_der)
                    self._byte(34)
                    if leaf_end - split == 1:  # the tail is only "}"
                        self._byte(125)
                    else:
                        self._byte(44)
                        self._copy_within(split, leaf_end)
                else:
                    self._copy_within(0, split)
                    self._raw(b',"as_der":"', 11)
                    self._b64_into(entry.cert_der)
                    self._byte(34)
                    self._copy_within(split, leaf_end)
            elif code == F_SEEN:
                self._ascii(seen)
            elif code == F_SOURCE:
                self._ascii(source)
            elif code == F_UPDATE_TYPE:
                if entry.entry_type == 1:
                    self._raw(b'"PrecertLogEntry"', 17)
                else:
                    self._raw(b'"X509LogEntry"', 14)
            else:  # F_SUBMISSION_TIMESTAMP
                self._ascii(timestamp)
        self._byte(125)
        self._bytes(self._cert_close)
        return <bytes>self._buf[start:self._len]
