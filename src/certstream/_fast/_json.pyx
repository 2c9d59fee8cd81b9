# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Certificate objects as JSON text: the compiled twin of ``_json_py.py`` (same API).

The plan is the pure twin's (a profile's decisions taken once, at construction); what is
compiled is the per-certificate formatting.  The string escaper takes ASCII text with at
most the short escapes (``\\" \\\\ \\n \\r \\t \\b \\f``), on which all four JSON writers
agree, and hands anything else (non-ASCII, other control characters, Go's HTML escapes) to
the profile's own writer in ``jsontext``.  Hex, colon-hex and base64 text are C loops.  The
extension formatters of the ``go`` profile are written here; any other formatter, domains
rule or string writer is called as the Python function the profile names, so the two twins
share the code of every rare case.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.string cimport memcpy

import hashlib

from certstream._fast._json_py import (
    CERT_KEYS,
    NAME_CACHE_SIZE,
    NO_EXPIRATION,
    OID_CN,
    OID_PSS,
    join_as_der,
)
from certstream._fast._json_py import all_domains as _all_domains_py
from certstream.core import profiles as _profiles
from certstream.core.jsontext import STRING_WRITERS

__all__ = ["CertWriter", "all_domains", "b64encode", "colon_hex_upper", "join_as_der"]


cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object o)
    void *PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)


cdef object _sha1 = hashlib.sha1
cdef object _sha256 = hashlib.sha256
cdef object _go_ip = _profiles.go_ip
cdef tuple _GO_KEY_USAGE = _profiles.GO_KEY_USAGE

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


cdef object _quote(str text, bint html):
    """The quoted JSON text of ``text``, or None when the writer's own rules are needed."""
    if not PyUnicode_IS_ASCII(text):
        return None
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text)
    cdef const unsigned char *d = <const unsigned char *>PyUnicode_DATA(text)
    cdef Py_ssize_t i, j, extra = 0
    cdef unsigned char c
    for i in range(n):
        c = d[i]
        if c < 0x20 or c == 34 or c == 92:
            if _SHORT[c] == 0:
                return None
            extra += 1
        elif html and (c == 60 or c == 62 or c == 38):
            return None
    out = PyUnicode_New(n + 2 + extra, 127)
    cdef unsigned char *o = <unsigned char *>PyUnicode_DATA(out)
    o[0] = 34
    if extra == 0:
        memcpy(o + 1, d, n)
    else:
        j = 1
        for i in range(n):
            c = d[i]
            if c < 0x20 or c == 34 or c == 92:
                o[j] = 92
                o[j + 1] = _SHORT[c]
                j += 2
            else:
                o[j] = c
                j += 1
    o[n + 1 + extra] = 34
    return out


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


cdef str _b64(bytes data):
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef const unsigned char *d = <const unsigned char *>PyBytes_AS_STRING(data)
    out = PyUnicode_New((n + 2) // 3 * 4, 127)
    cdef char *o = <char *>PyUnicode_DATA(out)
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
    elif n - i == 2:
        v = (d[i] << 16) | (d[i + 1] << 8)
        o[0] = _B64[v >> 18]
        o[1] = _B64[(v >> 12) & 63]
        o[2] = _B64[(v >> 6) & 63]
        o[3] = 61
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
    _profiles.never: X_NEVER,
    _profiles.poison: X_POISON,
    _profiles.aia_uris_issuers_first: X_AIA_ISSUERS_FIRST,
    _profiles.aki_keyid_lower: X_AKI_LOWER,
    _profiles.ski_keyid_lower: X_SKI_LOWER,
    _profiles.basic_constraints: X_BASIC_CONSTRAINTS,
    _profiles.policies_lines: X_POLICIES_LINES,
    _profiles.key_usage_go: X_KEY_USAGE_GO,
    _profiles.san_grouped: X_SAN_GROUPED,
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
    _profiles.OID_AIA: B_AIA,
    _profiles.OID_AKI: B_AKI,
    _profiles.OID_SKI: B_SKI,
    _profiles.OID_BC: B_BC,
    _profiles.OID_CP: B_CP,
    _profiles.OID_KU: B_KU,
    _profiles.OID_SAN: B_SAN,
    _profiles.OID_POISON: B_POISON,
}

cdef str _OID_OCSP = _profiles.OID_OCSP
cdef str _OID_CA_ISSUERS = _profiles.OID_CA_ISSUERS
cdef frozenset _POISON_SET = frozenset([_profiles.OID_POISON])

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
        self._prefixes = ['"' + key + '":' for key in keys]
        self._ext_prefixes = []
        self._ext_codes = []
        self._ext_funcs = []
        for key, fmt in profile.extensions:
            func = _profiles.FIELD_FORMATTERS[fmt]
            self._ext_prefixes.append(self._write(key) + ":")
            self._ext_codes.append(_EXT_CODES.get(func, X_PYTHON))
            self._ext_funcs.append(func)
        self._names = {}
        self._domains_rule = profile.domains
        self._domains_code = D_SAN_THEN_CN if profile.domains == "san_then_cn" else D_PYTHON
        self._serial_rule = profile.serial
        self._no_expiration = profile.no_expiration
        self._signatures = profile.signatures
        self._pss = profile.pss_signatures
        self._plan_names(profile.names)

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
        # (slot or -1 for "aggregated", '"key":')
        self._name_out = [
            (-1 if key == "aggregated" else slots[key], '"' + key + '":') for key in rule.keys
        ]
        self._agg = [(slots[key], "/" + key + "=") for key in rule.aggregated]
        self._agg_empty = rule.aggregated_empty

    # --- strings -------------------------------------------------------------------------

    cdef str _w(self, str text):
        if self._fast:
            out = _quote(text, self._html)
            if out is not None:
                return <str>out
        return self._write(text)

    cdef str _wd(self, str text):
        if self._fast_domain:
            out = _quote(text, self._html_domain)
            if out is not None:
                return <str>out
        return self._write_domain(text)

    cdef str _array(self, list names):
        cdef list parts = [self._w(name) for name in names]
        return "[" + ",".join(parts) + "]"

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
        cdef list parts = [self._wd(name) for name in names]
        return "[" + ",".join(parts) + "]"

    def name_object(self, tuple attrs):
        return self._cached_name(attrs)

    cdef str _cached_name(self, tuple attrs):
        # Keyed by the attribute strings: hashing NameAttr objects would run a Python
        # __hash__ per attribute.
        cdef list flat = []
        for attr in attrs:
            flat.append(attr.oid)
            flat.append(attr.value)
        key = tuple(flat)
        cached = self._names.get(key)
        if cached is not None:
            return <str>cached
        text = self._format_name(attrs)
        if len(self._names) >= NAME_CACHE_SIZE:
            self._names.clear()
        self._names[key] = text
        return text

    cdef str _format_name(self, tuple attrs):
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
        cdef list parts = []
        cdef list agg
        for slot, prefix in self._name_out:
            if slot < 0:
                agg = []
                for agg_slot, agg_prefix in self._agg:
                    value = values[<Py_ssize_t>agg_slot]
                    if value is not None:
                        agg.append(agg_prefix + value)
                parts.append('"aggregated":' + self._w("".join(agg) if agg else self._agg_empty))
                continue
            value = values[slot]
            if value is not None:
                parts.append(prefix + self._w(value))
            elif self._name_null:
                parts.append(prefix + "null")
        return "{" + ",".join(parts) + "}"

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

    cdef str _time(self, value):
        if value is None:
            return "0"
        if value == NO_EXPIRATION and self._no_expiration:
            return '"no_expiration"'
        return str(value)

    cdef str _signature(self, info):
        if info.signature_oid == OID_PSS:
            name = self._pss.get(info.signature_hash_oid, "unknown")
        else:
            name = self._signatures.get(info.signature_oid, "unknown")
        return self._w(name)

    # --- extensions ----------------------------------------------------------------------

    def extensions_object(self, info, frozenset present):
        cdef int bits = 0
        for oid in present:
            bits |= <int>_OID_BITS.get(oid, 0)
        return self._extensions(info, bits, present)

    cdef str _extensions(self, info, int bits, object present):
        cdef list parts = []
        cdef Py_ssize_t i, n = len(self._ext_codes)
        cdef int code
        for i in range(n):
            code = <int>self._ext_codes[i]
            if code == X_NEVER:
                continue
            if code == X_PYTHON:
                if present is None:
                    present = frozenset([ext.oid for ext in info.extensions])
                    if bits & B_POISON:
                        present = present | _POISON_SET
                value = self._ext_funcs[i](info, present)
                if value is None:
                    continue
                parts.append(self._ext_prefixes[i] + self._value(value))
                continue
            text = self._go_extension(code, info, bits)
            if text is not None:
                parts.append(self._ext_prefixes[i] + text)
        return "{" + ",".join(parts) + "}"

    cdef str _value(self, value):
        if value is True:
            return "true"
        if value is False:
            return "false"
        if isinstance(value, list):
            return self._array(value)
        return self._w(value)

    cdef object _go_extension(self, int code, info, int bits):
        """The JSON value of one formatter of the go set, or None to leave the key out."""
        cdef list items
        cdef int i
        if code == X_POISON:
            return "true" if info.has_poison or bits & B_POISON else None
        if code == X_AIA_ISSUERS_FIRST:
            if not bits & B_AIA:
                return None
            items = []
            for method, uri in info.aia:
                if method == _OID_CA_ISSUERS:
                    items.append("URI:" + uri)
            for method, uri in info.aia:
                if method == _OID_OCSP:
                    items.append("URI:" + uri)
            return self._w(", ".join(items))
        if code == X_AKI_LOWER:
            if not bits & B_AKI:
                return None
            return '"keyid:' + _colon_hex(info.aki_keyid or b"", False) + '"'
        if code == X_SKI_LOWER:
            if not bits & B_SKI:
                return None
            return '"keyid:' + _colon_hex(info.ski or b"", False) + '"'
        if code == X_BASIC_CONSTRAINTS:
            if not bits & B_BC:
                return None
            return '"CA:TRUE"' if info.is_ca else '"CA:FALSE"'
        if code == X_POLICIES_LINES:
            if not bits & B_CP:
                return None
            items = ["Policy: " + policy.oid + "\n" for policy in info.policies]
            return self._w("".join(items))
        if code == X_KEY_USAGE_GO:
            if not bits & B_KU:
                return None
            usage = info.key_usage or 0
            items = []
            for i in range(9):
                if usage & (1 << i):
                    items.append(_GO_KEY_USAGE[i])
            return self._w(", ".join(items))
        # X_SAN_GROUPED: every DNS name, then every email, then every IP; URIs dropped.
        if not bits & B_SAN:
            return None
        items = []
        for tag, value in info.san:
            if tag == 2:
                items.append("DNS:" + _text(value))
        for tag, value in info.san:
            if tag == 1:
                items.append("email:" + _text(value))
        for tag, value in info.san:
            if tag == 7:
                items.append("IP Address:" + _go_ip(value))
        return self._w(", ".join(items))

    # --- the object ----------------------------------------------------------------------

    def parts(self, info, bytes der, bint poison, domains):
        """The certificate object split around ``as_der``: (text before, text after)."""
        cdef int bits = B_POISON if poison else 0
        for ext in info.extensions:
            bits |= <int>_OID_BITS.get(ext.oid, 0)
        cdef list head = []
        cdef list tail = []
        cdef list target = head
        cdef str sha1 = None
        cdef str value
        cdef int code
        cdef Py_ssize_t i, n = len(self._codes)
        for i in range(n):
            code = <int>self._codes[i]
            if code == K_AS_DER:
                target = tail
                continue
            if code == K_SUBJECT:
                value = self._format_name(info.subject)
            elif code == K_ISSUER:
                value = self._cached_name(info.issuer)
            elif code == K_EXTENSIONS:
                value = self._extensions(info, bits, None)
            elif code == K_ALL_DOMAINS:
                value = self._array(domains if domains is not None else self._domains(info))
            elif code == K_SHA1:
                if sha1 is None:
                    sha1 = '"' + _colon_hex(_sha1(der).digest(), True) + '"'
                value = sha1
            elif code == K_SHA256:
                value = '"' + _colon_hex(_sha256(der).digest(), True) + '"'
            elif code == K_NOT_AFTER:
                value = self._time(info.not_after)
            elif code == K_NOT_BEFORE:
                value = self._time(info.not_before)
            elif code == K_SERIAL:
                value = self._serial(info.serial)
            elif code == K_SIGNATURE:
                value = self._signature(info)
            else:  # K_IS_CA
                value = "true" if info.is_ca else "false"
            target.append(<str>self._prefixes[i] + value)
        head_text = "{" + ",".join(head)
        tail_text = ("," if head and tail else "") + ",".join(tail) + "}"
        return head_text, tail_text

    def whole(self, info, bytes der):
        """The complete object (a chain certificate's), ``as_der`` included if in the keys."""
        head, tail = self.parts(info, der, False, None)
        if K_AS_DER in self._codes:
            return join_as_der(head, _b64(der), tail)
        return head + tail
