"""Lenient DER walk of an X.509 certificate into a ``CertInfo``: the pure-Python twin.

Theory of operation
-------------------
Real CT logs hold certificates that strict parsers refuse (bad times, UTF-8 in IA5 text,
x400Address names, duplicate extensions ...).  certstream must still emit such an entry, so
the walk is lenient *per field*: the TBSCertificate is read element by element, and a field
whose bytes cannot be read is left at its empty value while a short text naming it goes to
``problems``.  Only when not even the outer SEQUENCE header can be read is ``DecodeError``
raised.

Every TLV header is bounds-checked against its parent (a length that lies is an error of that
element, never a read past the parent), indefinite lengths are refused (DER has none), and
nothing recurses: the certificate grammar has a fixed depth, so a nesting bomb is just an
element we never open.  Big numbers are bounded where text is made from them (OID arcs), so
no input can hit the int-to-str limit or take quadratic time.

``_der.pyx`` is the compiled twin; it must return an equal ``CertInfo`` for *any* input,
problems texts included.  Change both together (tests/test_der_props.py checks this).
"""

from __future__ import annotations

from certstream.core.derread import FieldError as _FieldError
from certstream.core.derread import header as _header
from certstream.core.derread import oid as _oid
from certstream.core.model import CertInfo, Extension, NameAttr, Policy
from certstream.errors import DecodeError

__all__ = ["parse_certificate", "parse_tbs"]

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

_PSS = "1.2.840.113549.1.1.10"
_SHA1 = "1.3.14.3.2.26"
_CPS = "1.3.6.1.5.5.7.2.1"
_UNOTICE = "1.3.6.1.5.5.7.2.2"
_POISON = "1.3.6.1.4.1.11129.2.4.3"
_SCTS = "1.3.6.1.4.1.11129.2.4.2"


# Extensions we decode, by OID, with the name used in problem texts.
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

_STRING_NAMES = {
    _UTF8: "UTF8String",
    _NUMERIC: "NumericString",
    _PRINTABLE: "PrintableString",
    _IA5: "IA5String",
    _VISIBLE: "VisibleString",
    _BMP: "BMPString",
    _UNIVERSAL: "UniversalString",
}

_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _expect(buf: bytes, pos: int, end: int, want: int) -> tuple[int, int]:
    tag, start, stop = _header(buf, pos, end)
    if tag != want:
        raise _FieldError("unexpected tag")
    return start, stop


def _string(tag: int, raw: bytes) -> tuple[str, str]:
    """Decode a DirectoryString-like value: (text, problem reason or "")."""
    if tag in (_UTF8, _PRINTABLE, _IA5, _NUMERIC, _VISIBLE):
        # The ASCII types decode as UTF-8: CAs that put non-ASCII there meant UTF-8.
        try:
            return raw.decode("utf-8"), ""
        except UnicodeDecodeError:
            return raw.decode("utf-8", "replace"), "bad " + _STRING_NAMES[tag]
    if tag == _T61:
        return raw.decode("latin-1"), ""
    if tag == _BMP:
        codec = "utf-16-be"
    elif tag == _UNIVERSAL:
        codec = "utf-32-be"
    else:
        return "", "unsupported string type"
    try:
        return raw.decode(codec), ""
    except UnicodeDecodeError:
        return raw.decode(codec, "replace"), "bad " + _STRING_NAMES[tag]


def _name(buf: bytes, start: int, end: int, what: str, problems: list[str]) -> tuple[NameAttr, ...]:
    attrs: list[NameAttr] = []
    pos = start
    while pos < end:
        rdn_start, rdn_end = _expect(buf, pos, end, _SET)
        pos = rdn_end
        inner = rdn_start
        while inner < rdn_end:
            atv_start, atv_end = _expect(buf, inner, rdn_end, _SEQUENCE)
            inner = atv_end
            oid_start, oid_end = _expect(buf, atv_start, atv_end, _OID)
            oid = _oid(buf, oid_start, oid_end)
            vtag, vstart, vend = _header(buf, oid_end, atv_end)
            text, bad = _string(vtag, buf[vstart:vend])
            if bad:
                problems.append(f"{what}: {bad}")
            attrs.append(NameAttr(oid, text))
    return tuple(attrs)


def _digits(buf: bytes, pos: int, count: int, bad: str) -> int:
    value = 0
    for i in range(pos, pos + count):
        digit = buf[i] - 0x30
        if not 0 <= digit <= 9:
            raise _FieldError(bad)
        value = value * 10 + digit
    return value


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    if month <= 2:
        year -= 1
    era = (year if year >= 0 else year - 399) // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _time(tag: int, buf: bytes, start: int, end: int) -> int:
    """UTCTime or GeneralizedTime to Unix seconds.

    Lenient where it costs nothing: seconds may be missing, a "+hhmm" offset is honoured and
    GeneralizedTime fractions are dropped.  A time without a zone is refused (its instant is
    unknown).
    """
    size = end - start
    if tag == _UTCTIME:
        bad = "bad UTCTime"
        if size < 11:
            raise _FieldError(bad)
        year = _digits(buf, start, 2, bad)
        year += 2000 if year < 50 else 1900
        pos = start + 2
    elif tag == _GENTIME:
        bad = "bad GeneralizedTime"
        if size < 13:
            raise _FieldError(bad)
        year = _digits(buf, start, 4, bad)
        pos = start + 4
    else:
        raise _FieldError("not a time")
    month = _digits(buf, pos, 2, bad)
    day = _digits(buf, pos + 2, 2, bad)
    hour = _digits(buf, pos + 4, 2, bad)
    minute = _digits(buf, pos + 6, 2, bad)
    pos += 8
    second = 0
    if end - pos >= 3 and 0x30 <= buf[pos] <= 0x39:
        second = _digits(buf, pos, 2, bad)
        pos += 2
    if tag == _GENTIME and pos < end and buf[pos] in b".,":
        pos += 1
        frac = pos
        while pos < end and 0x30 <= buf[pos] <= 0x39:
            pos += 1
        if pos == frac:
            raise _FieldError(bad)
    offset = 0
    if end - pos == 1 and buf[pos] == 0x5A:  # "Z"
        pass
    elif end - pos == 5 and buf[pos] in b"+-":
        off_h = _digits(buf, pos + 1, 2, bad)
        off_m = _digits(buf, pos + 3, 2, bad)
        if off_h > 23 or off_m > 59:
            raise _FieldError(bad)
        offset = off_h * 3600 + off_m * 60
        if buf[pos] == 0x2D:  # "-"
            offset = -offset
    else:
        raise _FieldError(bad)
    if not 1 <= month <= 12 or hour > 23 or minute > 59 or second > 59:
        raise _FieldError(bad)
    mdays = _DAYS_IN_MONTH[month - 1]
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        mdays = 29
    if not 1 <= day <= mdays:
        raise _FieldError(bad)
    days = _days_from_civil(year, month, day)
    return days * 86400 + hour * 3600 + minute * 60 + second - offset


def _integer(buf: bytes, start: int, end: int) -> int:
    if start >= end:
        raise _FieldError("bad INTEGER")
    return int.from_bytes(buf[start:end], "big", signed=True)


def _general_name(tag: int, raw: bytes) -> tuple[int, str | bytes]:
    if tag & 0xC0 != 0x80:
        raise _FieldError("bad GeneralName")
    number = tag & 0x1F
    if number in (1, 2, 6):
        return number, raw.decode("utf-8", "replace")
    if number == 7:
        return 7, raw
    if number > 8:
        raise _FieldError("bad GeneralName")
    return number, b""


def _general_names(buf: bytes, start: int, end: int) -> list[tuple[int, str | bytes]]:
    names: list[tuple[int, str | bytes]] = []
    pos = start
    while pos < end:
        tag, gstart, gend = _header(buf, pos, end)
        pos = gend
        names.append(_general_name(tag, buf[gstart:gend]))
    return names


def _value_element(buf: bytes, want: int) -> tuple[int, int]:
    """The content bounds of the element an extnValue holds (trailing bytes are ignored)."""
    return _expect(buf, 0, len(buf), want)


def _key_usage(v: bytes) -> int:
    start, end = _value_element(v, _BIT_STRING)
    if start >= end or v[start] > 7:
        raise _FieldError("bad BIT STRING")
    unused = v[start]
    start += 1
    value = 0
    # Named bit i is DER bit i, the MSB of the first byte being bit 0.  No named bit lies
    # beyond 8, so four bytes are plenty (and bound the work).
    for j in range(min(end - start, 4)):
        byte = v[start + j]
        if start + j == end - 1:
            byte &= (0xFF << unused) & 0xFF
        for k in range(8):
            if byte & (0x80 >> k):
                value |= 1 << (j * 8 + k)
    return value


def _basic_constraints(v: bytes) -> tuple[bool, int | None]:
    start, end = _value_element(v, _SEQUENCE)
    is_ca = False
    path_len = None
    pos = start
    if pos < end:
        tag, cstart, cend = _header(v, pos, end)
        if tag == _BOOLEAN:
            # Lenient: any non-zero content is TRUE (DER wants 0xFF).
            is_ca = any(v[cstart:cend])
            pos = cend
    if pos < end:
        istart, iend = _expect(v, pos, end, _INTEGER)
        path_len = _integer(v, istart, iend)
    return is_ca, path_len


def _eku(v: bytes) -> tuple[str, ...]:
    start, end = _value_element(v, _SEQUENCE)
    oids: list[str] = []
    pos = start
    while pos < end:
        ostart, oend = _expect(v, pos, end, _OID)
        pos = oend
        oids.append(_oid(v, ostart, oend))
    return tuple(oids)


def _alt_names(v: bytes) -> tuple[tuple[int, str | bytes], ...]:
    start, end = _value_element(v, _SEQUENCE)
    return tuple(_general_names(v, start, end))


def _aia(v: bytes) -> tuple[tuple[str, str], ...]:
    start, end = _value_element(v, _SEQUENCE)
    pairs: list[tuple[str, str]] = []
    pos = start
    while pos < end:
        dstart, dend = _expect(v, pos, end, _SEQUENCE)
        pos = dend
        ostart, oend = _expect(v, dstart, dend, _OID)
        method = _oid(v, ostart, oend)
        tag, lstart, lend = _header(v, oend, dend)
        number, location = _general_name(tag, v[lstart:lend])
        if number == 6 and isinstance(location, str):
            pairs.append((method, location))
    return tuple(pairs)


def _aki(v: bytes) -> bytes | None:
    start, end = _value_element(v, _SEQUENCE)
    pos = start
    while pos < end:
        tag, kstart, kend = _header(v, pos, end)
        pos = kend
        if tag == 0x80:
            return v[kstart:kend]
    return None


def _ski(v: bytes) -> bytes:
    start, end = _value_element(v, _OCTET_STRING)
    return v[start:end]


def _qualifier(v: bytes, start: int, end: int, problems: list[str]) -> tuple[str, str]:
    ostart, oend = _expect(v, start, end, _OID)
    qid = _oid(v, ostart, oend)
    text = ""
    if qid == _CPS and oend < end:
        tag, tstart, tend = _header(v, oend, end)
        text, bad = _string(tag, v[tstart:tend])
        if bad:
            problems.append("certificatePolicies: " + bad)
    elif qid == _UNOTICE and oend < end:
        nstart, nend = _expect(v, oend, end, _SEQUENCE)
        pos = nstart
        while pos < nend:
            tag, tstart, tend = _header(v, pos, nend)
            pos = tend
            if tag != _SEQUENCE:  # the noticeRef is SEQUENCE, explicitText is a string
                text, bad = _string(tag, v[tstart:tend])
                if bad:
                    problems.append("certificatePolicies: " + bad)
                break
    return qid, text


def _policies(v: bytes, problems: list[str]) -> tuple[Policy, ...]:
    start, end = _value_element(v, _SEQUENCE)
    policies: list[Policy] = []
    pos = start
    while pos < end:
        pstart, pend = _expect(v, pos, end, _SEQUENCE)
        pos = pend
        ostart, oend = _expect(v, pstart, pend, _OID)
        oid = _oid(v, ostart, oend)
        quals: list[tuple[str, str]] = []
        if oend < pend:
            qstart, qend = _expect(v, oend, pend, _SEQUENCE)
            qpos = qstart
            while qpos < qend:
                istart, iend = _expect(v, qpos, qend, _SEQUENCE)
                qpos = iend
                quals.append(_qualifier(v, istart, iend, problems))
        policies.append(Policy(oid, tuple(quals)))
    return tuple(policies)


def _crl_dps(v: bytes) -> tuple[str, ...]:
    start, end = _value_element(v, _SEQUENCE)
    uris: list[str] = []
    pos = start
    while pos < end:
        dstart, dend = _expect(v, pos, end, _SEQUENCE)
        pos = dend
        inner = dstart
        while inner < dend:
            tag, nstart, nend = _header(v, inner, dend)
            inner = nend
            if tag != 0xA0:  # reasons [1] and cRLIssuer [2] are not printed
                continue
            ftag, fstart, fend = _header(v, nstart, nend)
            if ftag != 0xA0:  # nameRelativeToCRLIssuer [1] has no URI
                continue
            for number, value in _general_names(v, fstart, fend):
                if number == 6 and isinstance(value, str):
                    uris.append(value)
    return tuple(uris)


class _Fields:
    """The mutable scratch record a walk fills in before the frozen ``CertInfo`` is built."""

    __slots__ = (
        "aia",
        "aki_keyid",
        "crl_dps",
        "ext_key_usage",
        "extensions",
        "has_poison",
        "ian",
        "is_ca",
        "issuer",
        "key_usage",
        "not_after",
        "not_before",
        "path_len",
        "policies",
        "problems",
        "san",
        "sct_list",
        "seen",
        "serial",
        "signature_hash_oid",
        "signature_oid",
        "ski",
        "spki",
        "subject",
        "version",
    )

    def __init__(self) -> None:
        self.version = 1
        self.serial: int | None = None
        self.signature_oid = ""
        self.signature_hash_oid = ""
        self.issuer: tuple[NameAttr, ...] = ()
        self.subject: tuple[NameAttr, ...] = ()
        self.not_before: int | None = None
        self.not_after: int | None = None
        self.spki = b""
        self.extensions: list[Extension] = []
        self.is_ca: bool | None = None
        self.path_len: int | None = None
        self.key_usage: int | None = None
        self.ext_key_usage: tuple[str, ...] = ()
        self.san: tuple[tuple[int, str | bytes], ...] = ()
        self.ian: tuple[tuple[int, str | bytes], ...] = ()
        self.aia: tuple[tuple[str, str], ...] = ()
        self.aki_keyid: bytes | None = None
        self.ski: bytes | None = None
        self.policies: tuple[Policy, ...] = ()
        self.crl_dps: tuple[str, ...] = ()
        self.has_poison = False
        self.sct_list: bytes | None = None
        self.problems: list[str] = []
        self.seen: set[str] = set()  # extension OIDs decoded so far

    def build(self, der: bytes) -> CertInfo:
        return CertInfo(
            der=der,
            version=self.version,
            serial=self.serial,
            signature_oid=self.signature_oid,
            signature_hash_oid=self.signature_hash_oid,
            issuer=self.issuer,
            subject=self.subject,
            not_before=self.not_before,
            not_after=self.not_after,
            spki=self.spki,
            extensions=tuple(self.extensions),
            is_ca=self.is_ca,
            path_len=self.path_len,
            key_usage=self.key_usage,
            ext_key_usage=self.ext_key_usage,
            san=self.san,
            ian=self.ian,
            aia=self.aia,
            aki_keyid=self.aki_keyid,
            ski=self.ski,
            policies=self.policies,
            crl_dps=self.crl_dps,
            has_poison=self.has_poison,
            sct_list=self.sct_list,
            problems=tuple(self.problems),
        )


def _algorithm(buf: bytes, start: int, end: int, f: _Fields) -> None:
    ostart, oend = _expect(buf, start, end, _OID)
    f.signature_oid = _oid(buf, ostart, oend)
    if f.signature_oid != _PSS:
        return
    try:
        hash_oid = _SHA1
        if oend < end:
            tag, pstart, pend = _header(buf, oend, end)
            if tag == _SEQUENCE:
                pos = pstart
                while pos < pend:
                    tag, fstart, fend = _header(buf, pos, pend)
                    pos = fend
                    if tag == 0xA0:
                        hstart, hend = _expect(buf, fstart, fend, _SEQUENCE)
                        hostart, hoend = _expect(buf, hstart, hend, _OID)
                        hash_oid = _oid(buf, hostart, hoend)
                        break
        f.signature_hash_oid = hash_oid
    except _FieldError as exc:
        f.problems.append(f"signature: PSS parameters: {exc}")


def _validity(buf: bytes, start: int, end: int, f: _Fields) -> None:
    tag, tstart, tend = _header(buf, start, end)
    try:
        f.not_before = _time(tag, buf, tstart, tend)
    except _FieldError as exc:
        f.problems.append(f"not_before: {exc}")
    tag, tstart, tend = _header(buf, tend, end)
    try:
        f.not_after = _time(tag, buf, tstart, tend)
    except _FieldError as exc:
        f.problems.append(f"not_after: {exc}")


def _extensions(buf: bytes, start: int, end: int, f: _Fields) -> None:
    lstart, lend = _expect(buf, start, end, _SEQUENCE)
    pos = lstart
    while pos < lend:
        try:
            tag, estart, eend = _header(buf, pos, lend)
        except _FieldError as exc:
            f.problems.append(f"extensions: {exc}")
            return
        pos = eend
        try:
            if tag != _SEQUENCE:
                raise _FieldError("unexpected tag")
            ostart, oend = _expect(buf, estart, eend, _OID)
            oid = _oid(buf, ostart, oend)
            tag, vstart, vend = _header(buf, oend, eend)
            critical = False
            if tag == _BOOLEAN:
                critical = any(buf[vstart:vend])
                tag, vstart, vend = _header(buf, vend, eend)
            if tag != _OCTET_STRING:
                raise _FieldError("unexpected tag")
        except _FieldError as exc:
            f.problems.append(f"extensions: {exc}")
            continue
        value = buf[vstart:vend]
        f.extensions.append(Extension(oid, critical, value))
        _decode_extension(f, oid, value)


def _decode_extension(f: _Fields, oid: str, v: bytes) -> None:
    """Fill the decoded fields from one extension just read."""
    if oid == _POISON:
        f.has_poison = True
        return
    if oid in f.seen:
        return  # duplicates stay raw in ``extensions``; the first one is decoded
    f.seen.add(oid)
    if oid == _SCTS:
        f.sct_list = v
        return
    name = _EXT_NAMES.get(oid)
    if name is None:
        return
    try:
        if name == "basicConstraints":
            f.is_ca, f.path_len = _basic_constraints(v)
        elif name == "keyUsage":
            f.key_usage = _key_usage(v)
        elif name == "extKeyUsage":
            f.ext_key_usage = _eku(v)
        elif name == "subjectAltName":
            f.san = _alt_names(v)
        elif name == "issuerAltName":
            f.ian = _alt_names(v)
        elif name == "authorityInfoAccess":
            f.aia = _aia(v)
        elif name == "authorityKeyIdentifier":
            f.aki_keyid = _aki(v)
        elif name == "subjectKeyIdentifier":
            f.ski = _ski(v)
        elif name == "certificatePolicies":
            f.policies = _policies(v, f.problems)
        else:
            f.crl_dps = _crl_dps(v)
    except _FieldError as exc:
        f.problems.append(f"{name}: {exc}")


def _walk_tbs(buf: bytes, start: int, end: int, f: _Fields) -> None:
    """Fill ``f`` from the TBSCertificate content ``[start, end)``, field by field."""
    pos = start
    field = "version"
    try:
        if pos < end and buf[pos] == 0xA0:
            _, vstart, vend = _header(buf, pos, end)
            pos = vend
            try:
                istart, iend = _expect(buf, vstart, vend, _INTEGER)
                f.version = _integer(buf, istart, iend) + 1
            except _FieldError as exc:
                f.problems.append(f"version: {exc}")
        # Each required field: read its TLV (a failure here loses the position, so the walk
        # stops), then decode it (a failure here loses only that field).
        for field in ("serial", "signature", "issuer", "validity", "subject", "spki"):
            if pos >= end:
                f.problems.append(f"{field}: missing")
                return
            tag, cstart, cend = _header(buf, pos, end)
            tlv_start = pos
            pos = cend
            try:
                if tag != (_INTEGER if field == "serial" else _SEQUENCE):
                    raise _FieldError("unexpected tag")
                if field == "serial":
                    f.serial = _integer(buf, cstart, cend)
                elif field == "signature":
                    _algorithm(buf, cstart, cend, f)
                elif field == "issuer":
                    f.issuer = _name(buf, cstart, cend, field, f.problems)
                elif field == "validity":
                    _validity(buf, cstart, cend, f)
                elif field == "subject":
                    f.subject = _name(buf, cstart, cend, field, f.problems)
                else:
                    f.spki = buf[tlv_start:cend]
            except _FieldError as exc:
                f.problems.append(f"{field}: {exc}")
        field = "extensions"
        while pos < end:
            tag, cstart, cend = _header(buf, pos, end)
            pos = cend
            if tag == 0xA3:
                try:
                    _extensions(buf, cstart, cend, f)
                except _FieldError as exc:
                    f.problems.append(f"extensions: {exc}")
            elif tag not in (0x81, 0x82, 0xA1, 0xA2):  # the unique IDs are skipped
                f.problems.append("tbs: unexpected element")
    except _FieldError as exc:
        f.problems.append(f"{field}: {exc}")


def _outer(buf: bytes, pos: int, end: int, what: str, f: _Fields) -> tuple[int, int]:
    """Read a SEQUENCE header that must be there; a length running past the data is cut."""
    if pos >= end or buf[pos] != _SEQUENCE:
        raise DecodeError(f"{what}: not a SEQUENCE")
    pos += 1
    if pos >= end:
        raise DecodeError(f"{what}: truncated")
    first = buf[pos]
    pos += 1
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or count > end - pos:
            raise DecodeError(f"{what}: bad length")
        length = 0
        for i in range(pos, pos + count):
            length = (length << 8) | buf[i]
        pos += count
    if length > end - pos:
        f.problems.append(f"{what}: truncated")
        return pos, end
    return pos, pos + length


def parse_tbs(tbs: bytes) -> CertInfo:
    """Decode a bare TBSCertificate (a precert leaf's).  ``der`` is ``tbs`` itself."""
    tbs = bytes(tbs)
    f = _Fields()
    start, end = _outer(tbs, 0, len(tbs), "tbs", f)
    _walk_tbs(tbs, start, end, f)
    return f.build(tbs)


def parse_certificate(der: bytes) -> CertInfo:
    """Decode a Certificate (SEQUENCE {tbsCertificate, signatureAlgorithm, signature})."""
    der = bytes(der)
    f = _Fields()
    start, end = _outer(der, 0, len(der), "certificate", f)
    tstart, tend = _outer(der, start, end, "tbs", f)
    _walk_tbs(der, tstart, tend, f)
    return f.build(der)
