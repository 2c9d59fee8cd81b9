"""EasySSL's texts from a certificate's own bytes: names, domains, policies, CRL points, SANs.

The CaliDog server formats certificates with EasySSL (CaliDog/EasySSL ``lib/easy_ssl.ex``),
which prints what Erlang's ``public_key`` decodes.  What it prints depends on the ASN.1 string
type and on raw DER bytes that our ``CertInfo`` no longer carries (it holds decoded text), so
the ``calidog`` profile reads them again from the DER here:

* **Strings.**  Erlang decodes PrintableString, TeletexString, IA5String (and the other
  byte-string types) to a list of bytes, which Elixir's ``to_string`` turns into one code
  point per byte: Latin-1.  UTF8String stays UTF-8.  A BMPString or UniversalString name
  attribute has no clause in EasySSL's ``coerce_to_string``: it becomes nil, written ``""``.
  ``countryName`` and ``emailAddress`` in UTF8String are decoded properly (public_key has a
  workaround for those two).
* **Domains.**  ``all_domains`` is a MapSet of the subject's CN (the last one; ``""`` counts)
  and every dNSName of every subjectAltName extension, each Latin-1 as above; the list is in
  Erlang term order, which for binaries is bytewise.
* **Policies.**  A qualifier is the DER of its value, header included.  CPS: the whole TLV is
  read as UTF-8 code points and the first two dropped (the tag and a one-byte length), so a
  URI of 128 bytes or more, whose length takes more bytes that are not UTF-8, makes EasySSL
  raise.  User Notice: the first 8 bytes are skipped whatever they are (the UserNotice and
  explicitText headers when both lengths are long-form, else part of the text or of the
  noticeRef), then the code points Elixir's ``String.printable?`` accepts are kept; a byte
  that is not UTF-8 is its own non-printable code point.  Policies without qualifiers are
  prepended to the lines collected so far; a policy with qualifiers replaces them.
* **CRL distribution points.**  Only a point with a fullName and neither reasons nor
  cRLIssuer is printed; per point the accumulated lines get ``Full Name:`` and its names
  prepended and are then reversed (so several points interleave oddly, as EasySSL does).

Where EasySSL raises (the CaliDog server then loses the entry; ``ALLOWED-DEVIATIONS``
calidog-1 lets us send it), these functions return the natural text instead.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterator

from certstream.core.derread import FieldError as _FieldError
from certstream.core.derread import header as _header
from certstream.core.derread import oid as _oid
from certstream.core.model import CertInfo, NameAttr
from certstream.core.oids import (
    OID_C,
    OID_CN,
    OID_CP,
    OID_CPS,
    OID_CRLDP,
    OID_EMAIL,
    OID_SAN,
    OID_USER_NOTICE,
)

__all__ = [
    "all_domains",
    "alt_names",
    "attribute_text",
    "cps_text",
    "crl_distribution_points",
    "name_attrs",
    "policies",
    "printable",
    "user_notice_text",
]

_SEQUENCE = 0x30
_OID = 0x06
_UTF8 = 0x0C
_WIDE = frozenset([0x1E, 0x1C])  # BMPString, UniversalString: no EasySSL clause
_GN_DNS, _GN_EMAIL, _GN_URI, _GN_DIRECTORY = 0x82, 0x81, 0x86, 0xA4


def _items(buf: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """The TLVs inside ``[start, end)``: (tag, content start, content end)."""
    pos = start
    while pos < end:
        tag, cstart, cend = _header(buf, pos, end)
        yield tag, cstart, cend
        pos = cend


def _latin1(raw: bytes) -> str:
    return raw.decode("latin-1")


def attribute_text(oid: str, tag: int, raw: bytes) -> str:
    """What EasySSL writes for a name attribute value of ASN.1 string ``tag``."""
    if tag == _UTF8:
        return raw.decode("utf-8", "replace")
    if tag in _WIDE:
        if oid in (OID_C, OID_EMAIL):
            # public_key raises on these two (calidog-1): we write the text.
            return raw.decode("utf-16-be" if tag == 0x1E else "utf-32-be", "replace")
        return ""  # DirectoryString: no clause in coerce_to_string, nil -> ""
    return _latin1(raw)


# --- names ---------------------------------------------------------------------------------


def _name_spans(der: bytes) -> tuple[tuple[int, int], tuple[int, int]]:
    """Where the issuer's and the subject's Name content are in a (TBS)Certificate."""
    tag, start, end = _header(der, 0, len(der))
    if tag != _SEQUENCE:
        raise _FieldError("not a SEQUENCE")
    tag, cstart, cend = _header(der, start, end)
    if tag == _SEQUENCE:  # a Certificate: its first element is the TBSCertificate
        start, end = cstart, cend
    fields = _items(der, start, end)
    first = next(fields)
    # [0] version?, serialNumber, signature, issuer, validity, subject
    issuer_at = 2 + (first[0] == 0xA0)
    issuer = (0, 0)
    for index, (_tag, nstart, nend) in enumerate(fields, 1):
        if index == issuer_at:
            issuer = (nstart, nend)
        elif index == issuer_at + 2:
            return issuer, (nstart, nend)
    raise _FieldError("no subject")


def _name(der: bytes, start: int, end: int) -> tuple[NameAttr, ...]:
    raw = der[start:end]
    cached = _NAMES.get(raw)
    if cached is not None:
        return cached
    attrs: list[NameAttr] = []
    for _set_tag, sstart, send in _items(der, start, end):
        for _seq_tag, astart, aend in _items(der, sstart, send):
            otag, ostart, oend = _header(der, astart, aend)
            if otag != _OID:
                raise _FieldError("no attribute type")
            oid = _oid(der, ostart, oend)
            vtag, vstart, vend = _header(der, oend, aend)
            attrs.append(NameAttr(oid, attribute_text(oid, vtag, der[vstart:vend])))
    if len(_NAMES) >= CACHE_SIZE:
        _NAMES.clear()
    result = _NAMES[raw] = tuple(attrs)
    return result


#: Bounded caches, each dropped whole when full: EasySSL names by the Name's DER (issuers
#: repeat across entries), both names of the certificates seen last (a leaf's subject is
#: read for its object and for all_domains), policy and CRL texts by extension value.
CACHE_SIZE = 4096
_NAMES: dict[bytes, tuple[NameAttr, ...]] = {}
_LAST: dict[int, tuple[bytes, tuple[NameAttr, ...], tuple[NameAttr, ...]]] = {}
_TEXTS: dict[tuple[str, bytes], str | None] = {}


def name_attrs(info: CertInfo, which: str) -> tuple[NameAttr, ...]:
    """The subject's or issuer's attributes with EasySSL's text for each value (the
    parser's decoded attributes when the DER cannot be walked again)."""
    der = info.der
    last = _LAST.get(id(der))
    if last is None or last[0] is not der:
        try:
            (istart, iend), (sstart, send) = _name_spans(der)
            last = (der, _name(der, istart, iend), _name(der, sstart, send))
        except (_FieldError, StopIteration):
            return info.subject if which == "subject" else info.issuer
        if len(_LAST) >= 64:
            _LAST.clear()
        _LAST[id(der)] = last
    return last[2] if which == "subject" else last[1]


def _cached_text(kind: str, value: bytes, make: Callable[[bytes], str | None]) -> str | None:
    key = (kind, value)
    if key in _TEXTS:
        return _TEXTS[key]
    if len(_TEXTS) >= CACHE_SIZE:
        _TEXTS.clear()
    text = _TEXTS[key] = make(value)
    return text


# --- domains and subjectAltName ------------------------------------------------------------


def _extension_values(info: CertInfo, oid: str) -> list[bytes]:
    return [ext.value for ext in info.extensions if ext.oid == oid]


def _general_names(value: bytes) -> list[tuple[int, bytes]] | None:
    """GeneralNames as (tag byte, raw value) pairs; None when they cannot be read."""
    try:
        tag, start, end = _header(value, 0, len(value))
        if tag != _SEQUENCE:
            return None
        return [(t, value[s:e]) for t, s, e in _items(value, start, end)]
    except _FieldError:
        return None


def all_domains(info: CertInfo) -> list[str]:
    """EasySSL's ``get_all_domain_names``: a set of the CN and every dNSName, in Erlang's
    term order (bytewise for binaries).  Above 32 names the real MapSet order differs
    (ALLOWED-DEVIATIONS calidog-2)."""
    names: set[str] = set()
    cn = None
    for attr in name_attrs(info, "subject"):
        if attr.oid == OID_CN:
            cn = attr.value
    if cn is not None:
        names.add(cn)
    for value in _extension_values(info, OID_SAN):
        entries = _general_names(value)
        if entries is not None:
            names.update(_latin1(raw) for tag, raw in entries if tag == _GN_DNS)
        else:  # unreadable: what the parser made of it
            names.update(v for t, v in info.san if t == 2 and isinstance(v, str))
    return sorted(names, key=lambda s: s.encode("utf-8", "surrogatepass"))


_GN_PREFIX = {_GN_DNS: "DNS:", _GN_URI: "URI:", _GN_EMAIL: "RFC 822Name:"}
_GN_IP = 0x87


def alt_names(info: CertInfo, oid: str) -> str | None:
    """EasySSL's subjectAltName / issuerAltName text (the last such extension wins): the
    names in reverse order, text names Latin-1, an IP address as its bytes in decimal
    joined by dots (IPv6 too).  None when the extension cannot be read."""
    values = _extension_values(info, oid)
    if not values:
        return None
    names = _general_names(values[-1])
    if names is None:
        return None
    items: list[str] = []
    for tag, raw in reversed(names):
        if tag == _GN_IP:
            items.append("IP:" + ".".join(str(b) for b in raw))
        elif tag in _GN_PREFIX:
            items.append(_GN_PREFIX[tag] + _latin1(raw))
        # directoryName and otherName are skipped; the others are logged and skipped.
    return ", ".join(items)


# --- certificatePolicies -------------------------------------------------------------------

# Elixir's String.printable?: these controls, ASCII 0x20-0x7E and DEL, and the code points
# from U+00A0 up, surrogates and U+FFFE/U+FFFF excepted.
_PRINTABLE_CONTROLS = frozenset("\n\r\t\v\b\f\x1b\x7f\x07")


def printable(ch: str) -> bool:
    """``String.printable?`` of one code point."""
    cp = ord(ch)
    return (
        0x20 <= cp <= 0x7E
        or ch in _PRINTABLE_CONTROLS
        or 0xA0 <= cp <= 0xD7FF
        or 0xE000 <= cp <= 0xFFFD
        or 0x10000 <= cp <= 0x10FFFF
    )


def _codepoints(raw: bytes) -> Iterator[str | None]:
    """Elixir's ``String.codepoints``: each UTF-8 sequence as its character, each byte that
    does not start one as itself (None here: no such byte is printable)."""
    pos, n = 0, len(raw)
    while pos < n:
        lead = raw[pos]
        size = 1 if lead < 0x80 else 2 if lead >> 5 == 6 else 3 if lead >> 4 == 14 else (
            4 if lead >> 3 == 30 else 0
        )
        if size:
            try:
                text, used = codecs.utf_8_decode(raw[pos : pos + size], "strict", True)
            except UnicodeDecodeError:
                text, used = "", 0
            if used == size:
                yield text
                pos += size
                continue
        yield None
        pos += 1


def user_notice_text(qualifier: bytes) -> str:
    """EasySSL's User Notice: skip 8 bytes of the qualifier's DER, keep the printable code
    points of the rest."""
    return "".join(ch for ch in _codepoints(qualifier[8:]) if ch is not None and printable(ch))


def cps_text(qualifier: bytes, content: bytes) -> str:
    """EasySSL's CPS: the qualifier's DER as UTF-8 code points without the first two.  When
    that DER is not UTF-8 (a length of 128 or more) EasySSL raises; we write the URI."""
    try:
        return qualifier.decode("utf-8")[2:]
    except UnicodeDecodeError:
        return content.decode("utf-8", "replace")


def _qualifier_lines(value: bytes, start: int, end: int) -> list[str]:
    lines: list[str] = []
    for _tag, qstart, qend in _items(value, start, end):
        otag, ostart, oend = _header(value, qstart, qend)
        if otag != _OID:
            raise _FieldError("no qualifier id")
        qid = _oid(value, ostart, oend)
        if oend >= qend:
            raise _FieldError("no qualifier")
        _vtag, vstart, vend = _header(value, oend, qend)
        raw = value[oend:vend]
        if qid == OID_CPS:
            lines.append("  CPS: " + cps_text(raw, value[vstart:vend]))
        elif qid == OID_USER_NOTICE:
            lines.append("  User Notice: " + user_notice_text(raw))
        # Any other qualifier makes EasySSL raise (calidog-1); we leave it out.
    return lines


def policies(info: CertInfo) -> str | None:
    """EasySSL's certificatePolicies text, or None to use the parser's policies."""
    values = _extension_values(info, OID_CP)
    # Map.put: the last extension of a type wins.
    return _cached_text("cp", values[-1], _policies) if values else None


def _policies(value: bytes) -> str | None:
    try:
        tag, start, end = _header(value, 0, len(value))
        if tag != _SEQUENCE:
            return None
        acc: list[str] = []
        for _ptag, pstart, pend in _items(value, start, end):
            otag, ostart, oend = _header(value, pstart, pend)
            if otag != _OID:
                return None
            line = "Policy: " + _oid(value, ostart, oend)
            if oend >= pend:
                acc.insert(0, line)
                continue
            _qtag, qstart, qend = _header(value, oend, pend)
            acc = [line, *_qualifier_lines(value, qstart, qend)]
    except _FieldError:
        return None
    return "\n".join(acc)


# --- crlDistributionPoints -----------------------------------------------------------------


def _full_name(value: bytes, start: int, end: int) -> str:
    parts: list[str] = []
    for tag, nstart, nend in _items(value, start, end):
        raw = value[nstart:nend]
        if tag == _GN_URI:
            parts.append(" URI:" + _latin1(raw))
        elif tag == _GN_EMAIL:
            parts.append(" RFC 822 Name: " + _latin1(raw))
        elif tag == _GN_DIRECTORY:
            parts.append("")
        # Other name forms make EasySSL raise (calidog-1); we leave them out.
    return "\n".join(parts)


def crl_distribution_points(info: CertInfo) -> str | None:
    """EasySSL's crlDistributionPoints text, or None to use the parser's URIs."""
    values = _extension_values(info, OID_CRLDP)
    return _cached_text("crldp", values[-1], _crl_points) if values else None


def _crl_points(value: bytes) -> str | None:
    try:
        tag, start, end = _header(value, 0, len(value))
        if tag != _SEQUENCE:
            return None
        output: list[str] = []
        for _dtag, dstart, dend in _items(value, start, end):
            fields = list(_items(value, dstart, dend))
            # Printed only as {fullName, no reasons, no cRLIssuer}; else logged and skipped.
            if len(fields) != 1 or fields[0][0] != 0xA0:
                continue
            ntag, nstart, nend = _header(value, fields[0][1], fields[0][2])
            if ntag != 0xA0:  # nameRelativeToCRLIssuer
                continue
            output = [_full_name(value, nstart, nend), "Full Name:", *output]
            output.reverse()
    except _FieldError:
        return None
    return "\n".join(output)
