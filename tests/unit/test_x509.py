"""The DER walker (both twins) against ``cryptography`` and against hand-built DER.

Every certificate fixture is parsed; where ``cryptography`` can read a field, ours must agree
with it.  The odd certificates (which ``cryptography`` refuses in part) are checked for the
documented lenient behaviour, and small TBSCertificates built here byte by byte pin down the
rules ``cryptography`` cannot judge (time forms, string types, key usage bits, bad input).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import json
import re
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.support.data import ROOT
from tests.support.twins import load_twin

from certstream import _fast
from certstream.core import x509 as facade
from certstream.core.model import CertInfo, NameAttr, Policy
from certstream.errors import DecodeError

HERE = ROOT / "tests"
CERTS = HERE / "fixtures" / "ct" / "certs"
ARGON = HERE / "fixtures" / "ct" / "rfc6962" / "argon2026h2"

CPS = "1.3.6.1.5.5.7.2.1"
UNOTICE = "1.3.6.1.5.5.7.2.2"
POISON = "1.3.6.1.4.1.11129.2.4.3"
SCTS = "1.3.6.1.4.1.11129.2.4.2"
HASH_OIDS = {
    "sha1": "1.3.14.3.2.26",
    "sha224": "2.16.840.1.101.3.4.2.4",
    "sha256": "2.16.840.1.101.3.4.2.1",
    "sha384": "2.16.840.1.101.3.4.2.2",
    "sha512": "2.16.840.1.101.3.4.2.3",
}


@pytest.fixture
def der(fast_impl: str) -> ModuleType:
    """``_der`` (compiled) or ``_der_py``; ``fast_impl`` comes from conftest."""
    return load_twin("_der", fast_impl)


_PEM = re.compile(rb"-----BEGIN [A-Z0-9 ]*CERTIFICATE-----(.*?)-----END", re.S)


def _pem_blocks(text: bytes) -> list[bytes]:
    return [base64.b64decode(b"".join(m.split())) for m in _PEM.findall(text)]


def _fixture_ders() -> list[tuple[str, bytes]]:
    """(id, DER) of every certificate under certs/: PEM files may hold several."""
    found: list[tuple[str, bytes]] = []
    for path in sorted(CERTS.rglob("*")):
        name = str(path.relative_to(CERTS))
        if path.suffix == ".pem":
            blocks = _pem_blocks(path.read_bytes())
            found += [(f"{name}#{i}" if i else name, b) for i, b in enumerate(blocks)]
        elif path.suffix == ".der" and "tbs" not in path.name:
            found.append((name, path.read_bytes()))
    return found


FIXTURE_DERS = _fixture_ders()


def _cert(name: str) -> bytes:
    for fid, data in FIXTURE_DERS:
        if fid == name:
            return data
    raise KeyError(name)


def test_fixture_list_is_complete() -> None:
    # Guard the glob above: a rename must not quietly drop certificates from the tests.
    index = json.loads((CERTS / "index.json").read_text())
    assert {e["file"] for e in index if "tbs" not in e["file"]} <= {f for f, _ in FIXTURE_DERS}
    assert len(FIXTURE_DERS) >= 55


# --- against cryptography -------------------------------------------------------------


def _try(fn: Callable[[], Any]) -> Any:
    """``fn()``, or the sentinel ``_SKIP`` when cryptography refuses that field."""
    try:
        return fn()
    except Exception:
        return _SKIP


_SKIP = object()


def _ext(c: x509.Certificate, cls: type[x509.ExtensionType]) -> Any:
    try:
        return c.extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None


def _key_usage_bits(ku: x509.KeyUsage) -> int:
    names = [
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
    ]
    bits = sum(1 << i for i, n in enumerate(names) if getattr(ku, n))
    if ku.key_agreement:
        bits |= (ku.encipher_only << 7) | (ku.decipher_only << 8)
    return bits


def _policy(p: x509.PolicyInformation) -> Policy:
    quals = []
    for q in p.policy_qualifiers or ():
        if isinstance(q, str):
            quals.append((CPS, q))
        else:
            quals.append((UNOTICE, q.explicit_text or ""))
    return Policy(p.policy_identifier.dotted_string, tuple(quals))


def _names(n: x509.Name) -> list[tuple[str, str | None]]:
    # Non-string values (a BIT STRING x500UniqueIdentifier) are ours to blank: compare OIDs.
    return [(a.oid.dotted_string, a.value if isinstance(a.value, str) else None) for a in n]


def _ours(attrs: tuple[NameAttr, ...], theirs: list[tuple[str, str | None]]) -> list[Any]:
    return [
        (a.oid, a.value if t[1] is not None else None) for a, t in zip(attrs, theirs, strict=True)
    ]


def _oracle(c: x509.Certificate) -> dict[str, Any]:
    """Each field as cryptography sees it, in our representation (or ``_SKIP``)."""

    def san(cls: type[x509.ExtensionType]) -> Any:
        v = _ext(c, cls)
        if v is None:
            return ()
        out: list[tuple[int, str | bytes]] = []
        for g in v:
            if isinstance(g, x509.RFC822Name):
                out.append((1, g.value))
            elif isinstance(g, x509.DNSName):
                out.append((2, g.value))
            elif isinstance(g, x509.UniformResourceIdentifier):
                out.append((6, g.value))
            elif isinstance(g, x509.IPAddress):
                address = g.value
                assert isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address)
                out.append((7, address.packed))
            elif isinstance(g, x509.DirectoryName):
                out.append((4, b""))
            elif isinstance(g, x509.OtherName):
                out.append((0, b""))
            elif isinstance(g, x509.RegisteredID):
                out.append((8, b""))
        return tuple(out)

    def bc() -> Any:
        v = _ext(c, x509.BasicConstraints)
        return (None, None) if v is None else (v.ca, v.path_length)

    def aia() -> Any:
        v = _ext(c, x509.AuthorityInformationAccess) or ()
        return tuple(
            (d.access_method.dotted_string, d.access_location.value)
            for d in v
            if isinstance(d.access_location, x509.UniformResourceIdentifier)
        )

    def crl() -> Any:
        v = _ext(c, x509.CRLDistributionPoints) or ()
        return tuple(
            g.value
            for dp in v
            for g in dp.full_name or ()
            if isinstance(g, x509.UniformResourceIdentifier)
        )

    def pss_hash() -> Any:
        if c.signature_algorithm_oid.dotted_string != "1.2.840.113549.1.1.10":
            return ""
        h = c.signature_hash_algorithm
        return HASH_OIDS[h.name] if h else _SKIP

    def spki() -> Any:
        return _normal_spki(c.public_key())

    return {
        "version": _try(lambda: c.version.value + 1),
        "serial": _try(lambda: c.serial_number),
        "not_before": _try(lambda: int(c.not_valid_before_utc.timestamp())),
        "not_after": _try(lambda: int(c.not_valid_after_utc.timestamp())),
        "signature_oid": _try(lambda: c.signature_algorithm_oid.dotted_string),
        "signature_hash_oid": _try(pss_hash),
        "subject": _try(lambda: _names(c.subject)),
        "issuer": _try(lambda: _names(c.issuer)),
        "ext_oids": _try(lambda: [(e.oid.dotted_string, e.critical) for e in c.extensions]),
        "san": _try(lambda: san(x509.SubjectAlternativeName)),
        "ian": _try(lambda: san(x509.IssuerAlternativeName)),
        "bc": _try(bc),
        "key_usage": _try(lambda: (v := _ext(c, x509.KeyUsage)) and _key_usage_bits(v)),
        "eku": _try(lambda: tuple(o.dotted_string for o in _ext(c, x509.ExtendedKeyUsage) or ())),
        "aki": _try(lambda: (v := _ext(c, x509.AuthorityKeyIdentifier)) and v.key_identifier),
        "ski": _try(lambda: (v := _ext(c, x509.SubjectKeyIdentifier)) and v.digest),
        "aia": _try(aia),
        "policies": _try(
            lambda: tuple(_policy(p) for p in _ext(c, x509.CertificatePolicies) or ())
        ),
        "crl": _try(crl),
        "spki": _try(spki),
    }


def _normal_spki(key: Any) -> bytes:
    # cryptography re-encodes keys (PSS parameters, explicit curves), so compare both
    # sides after a round trip through it.
    out: bytes = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return out


def _mine(info: CertInfo, oracle: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": info.version,
        "serial": info.serial,
        "not_before": info.not_before,
        "not_after": info.not_after,
        "signature_oid": info.signature_oid,
        "signature_hash_oid": info.signature_hash_oid,
        "subject": _ours(info.subject, oracle["subject"])
        if oracle["subject"] is not _SKIP
        else None,
        "issuer": _ours(info.issuer, oracle["issuer"]) if oracle["issuer"] is not _SKIP else None,
        "ext_oids": [(e.oid, e.critical) for e in info.extensions],
        # cryptography drops x400Address/ediPartyName entries it cannot type: so do we here
        "san": tuple(n for n in info.san if n[0] not in (3, 5)),
        "ian": tuple(n for n in info.ian if n[0] not in (3, 5)),
        "bc": (info.is_ca, info.path_len),
        "key_usage": info.key_usage,
        "eku": info.ext_key_usage,
        "aki": info.aki_keyid,
        "ski": info.ski,
        "aia": info.aia,
        "policies": info.policies,
        "crl": info.crl_dps,
        "spki": _try(lambda: _normal_spki(serialization.load_der_public_key(info.spki))),
    }


@pytest.mark.parametrize(("name", "data"), FIXTURE_DERS, ids=[f for f, _ in FIXTURE_DERS])
def test_fixture_matches_cryptography(der: ModuleType, name: str, data: bytes) -> None:
    info = der.parse_certificate(data)
    assert isinstance(info, CertInfo)
    assert info.der == data
    try:
        cert = x509.load_der_x509_certificate(data)
    except (ValueError, x509.InvalidVersion):
        pytest.skip("cryptography cannot load it (checked in the odd-ones tests)")
    oracle = _oracle(cert)
    # Ours is the TBS signature field, cryptography's the outer one: they differ in a few
    # old certificates (v1_cert.pem), so compare only when the outer OID is in the TBS.
    if oracle["signature_oid"] is not _SKIP and oid(oracle["signature_oid"]) not in (
        cert.tbs_certificate_bytes
    ):
        oracle["signature_oid"] = _SKIP
    mine = _mine(info, oracle)
    compared = 0
    for key, want in oracle.items():
        if want is _SKIP:
            continue
        assert mine[key] == want, key
        compared += 1
    assert compared >= 8
    # Fields cryptography reads without raising on these certificates must not be problems.
    assert all(p.startswith(("subject", "issuer")) for p in info.problems), info.problems


@pytest.mark.parametrize(("name", "data"), FIXTURE_DERS, ids=[f for f, _ in FIXTURE_DERS])
def test_poison_and_scts(der: ModuleType, name: str, data: bytes) -> None:
    info = der.parse_certificate(data)
    oids = [e.oid for e in info.extensions]
    assert info.has_poison == (POISON in oids)
    if SCTS in oids:
        assert info.sct_list == next(e.value for e in info.extensions if e.oid == SCTS)
        assert info.sct_list[:1] == b"\x04"  # the extnValue holds an OCTET STRING
    else:
        assert info.sct_list is None


# --- the odd ones -----------------------------------------------------------------------


def test_bad_utctime_is_a_problem_not_a_failure(der: ModuleType) -> None:
    info = der.parse_certificate(_cert("pyca-real/badasn1time.pem"))
    assert "not_after: bad UTCTime" in info.problems
    assert info.not_after is None
    assert info.not_before == int(dt.datetime(2011, 3, 21, 9, 25, 52, tzinfo=dt.UTC).timestamp())
    assert info.serial and info.subject and info.issuer and info.spki and info.extensions


@pytest.mark.parametrize(("name", "tag"), [("san_x400address.der", 3), ("san_edipartyname.der", 5)])
def test_exotic_general_names_are_kept(der: ModuleType, name: str, tag: int) -> None:
    info = der.parse_certificate(_cert(f"pyca-real/{name}"))
    assert (tag, b"") in info.san
    assert not info.problems


def test_utf8_dns_name_is_kept_raw(der: ModuleType) -> None:
    data = _cert("pyca-real/utf8-dnsname.pem")
    info = der.parse_certificate(data)
    assert (2, "*.biztosítás.hu") in info.san
    assert "*.biztosítás.hu".encode() in data  # the name really is raw UTF-8 in an IA5String


def test_negative_serial(der: ModuleType) -> None:
    info = der.parse_certificate(_cert("pyca-synthetic/negative_serial.pem"))
    assert info.serial is not None and info.serial < 0


def test_numeric_string(der: ModuleType) -> None:
    info = der.parse_certificate(_cert("pyca-real/e-trust.ru.der"))
    assert NameAttr("1.2.643.100.1", "1047702026701") in info.subject
    assert NameAttr("2.5.4.3", "Головной удостоверяющий центр") in info.subject


def test_bit_string_attribute_is_blank_with_a_problem(der: ModuleType) -> None:
    info = der.parse_certificate(_cert("pyca-real/scottishpower-bitstring-dn.pem"))
    assert NameAttr("2.5.4.45", "") in info.subject
    assert info.problems == ("subject: unsupported string type",)


def test_invalid_utf8_is_replaced_and_reported(der: ModuleType) -> None:
    info = der.parse_certificate(_cert("pyca-synthetic/invalid_utf8_common_name.pem"))
    cn = [a.value for a in info.subject if a.oid == "2.5.4.3"]
    assert cn and "\ufffd" in cn[0]
    assert "subject: bad UTF8String" in info.problems


def test_long_form_tag_value(der: ModuleType) -> None:
    info = der.parse_certificate(_cert("pyca-synthetic/long-form-name-attribute.pem"))
    assert "subject: unsupported string type" in info.problems
    assert info.subject and info.ext_key_usage == ("1.3.6.1.5.5.7.3.1",)


def test_invalid_version_and_duplicates(der: ModuleType) -> None:
    assert der.parse_certificate(_cert("pyca-synthetic/invalid_version.pem")).version == 8
    info = der.parse_certificate(_cert("pyca-synthetic/two_basic_constraints.pem"))
    bcs = [e for e in info.extensions if e.oid == "2.5.29.19"]
    assert len(bcs) == 2
    assert info.is_ca is True  # the first one, whose cA is TRUE
    assert bcs[0].value.startswith(b"\x30\x03\x01\x01\xff")


def test_v1_and_big_oid(der: ModuleType) -> None:
    info = der.parse_certificate(_cert("pyca-real/v1_cert.pem"))
    assert info.version == 1 and info.extensions == () and info.is_ca is None
    big = der.parse_certificate(_cert("pyca-real/bigoid.pem"))
    assert "1.3.6.1.4.1.311.21.8.8950086.10656446.2706058.12775672.480128.147.7130143.4405632" in {
        e.oid for e in big.extensions
    } | {p.oid for p in big.policies} | {
        _template(big.der).template_id.dotted_string
    }
    assert all(len(p.oid) > 40 for p in big.policies)


def _template(der: bytes) -> x509.MSCertificateTemplate:
    template = x509.load_der_x509_certificate(der).extensions.get_extension_for_oid(
        x509.ObjectIdentifier("1.3.6.1.4.1.311.21.7")).value
    assert isinstance(template, x509.MSCertificateTemplate)
    return template


def test_tbs_of_signed_precert(der: ModuleType) -> None:
    # cryptography-scts-tbs-precert.der is cryptography-scts.pem's TBS minus the SCT list.
    tbs = (CERTS / "pyca-real" / "cryptography-scts-tbs-precert.der").read_bytes()
    full = der.parse_certificate(_cert("pyca-real/cryptography-scts.pem"))
    info = der.parse_tbs(tbs)
    assert info.der == tbs and not info.problems
    assert (info.subject, info.san, info.serial) == (full.subject, full.san, full.serial)
    assert [e for e in full.extensions if e.oid != SCTS] == list(info.extensions)
    assert info.sct_list is None and full.sct_list is not None


def _precert_entries() -> list[tuple[bytes, bytes, bytes, bytes]]:
    """(issuer_key_hash, TBS, pre_certificate, chain[0]) of every precert entry."""
    path = next(ARGON.glob("get-entries_*.json"))
    out = []
    for entry in json.loads(path.read_text())["entries"]:
        leaf = base64.b64decode(entry["leaf_input"])
        if int.from_bytes(leaf[10:12], "big") != 1:
            continue
        ikh = leaf[12:44]
        size = int.from_bytes(leaf[44:47], "big")
        tbs = leaf[47 : 47 + size]
        extra = base64.b64decode(entry["extra_data"])
        psize = int.from_bytes(extra[:3], "big")
        pre = extra[3 : 3 + psize]
        first = 3 + psize + 3  # skip the chain's total length
        isize = int.from_bytes(extra[first : first + 3], "big")
        out.append((ikh, tbs, pre, extra[first + 3 : first + 3 + isize]))
    return out


def test_precert_leaf_tbs(der: ModuleType) -> None:
    entries = _precert_entries()
    assert len(entries) >= 5
    for ikh, tbs, pre, issuer in entries:
        leaf = der.parse_tbs(tbs)
        signed = der.parse_certificate(pre)
        assert not leaf.problems and not signed.problems
        assert leaf.der == tbs
        assert signed.has_poison and not leaf.has_poison
        assert (leaf.subject, leaf.san, leaf.serial) == (signed.subject, signed.san, signed.serial)
        assert list(leaf.extensions) == [e for e in signed.extensions if e.oid != POISON]
        # spki is the whole element: the issuer's hashes to the leaf's issuer_key_hash
        assert hashlib.sha256(der.parse_certificate(issuer).spki).digest() == ikh


def test_parse_tbs_refuses_a_certificate(der: ModuleType) -> None:
    # A full certificate's first element is the TBS SEQUENCE, not a version or INTEGER:
    # parse_tbs must report that rather than invent fields.
    info = der.parse_tbs(_cert("real/google_argon2026h2_001_x509_ecdsa-p384.der"))
    assert info.serial is None and info.problems


# --- hand-built DER -----------------------------------------------------------------------


def tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        rest = arc >> 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        body += bytes(reversed(chunk))
    return tlv(0x06, bytes(body))


def name(*attrs: tuple[str, int, bytes]) -> bytes:
    return tlv(0x30, b"".join(tlv(0x31, tlv(0x30, oid(o) + tlv(t, v))) for o, t, v in attrs))


def ext(dotted: str, value: bytes, critical: bool = False) -> bytes:
    crit = tlv(0x01, b"\xff") if critical else b""
    return tlv(0x30, oid(dotted) + crit + tlv(0x04, value))


def utc(text: str) -> bytes:
    return tlv(0x17, text.encode())


def make_tbs(
    *,
    version: bytes = tlv(0xA0, tlv(0x02, b"\x02")),
    serial: bytes = tlv(0x02, b"\x01\x00"),
    algorithm: bytes = tlv(0x30, oid("1.2.840.10045.4.3.2")),
    issuer: bytes = name(("2.5.4.3", 0x0C, b"Issuer")),
    validity: bytes = tlv(0x30, utc("240101000000Z") + utc("250101000000Z")),
    subject: bytes = name(("2.5.4.3", 0x0C, b"Subject")),
    spki: bytes = tlv(0x30, tlv(0x30, oid("1.3.101.112")) + tlv(0x03, b"\x00" + b"k" * 32)),
    exts: list[bytes] | None = None,
) -> bytes:
    tail = tlv(0xA3, tlv(0x30, b"".join(exts))) if exts is not None else b""
    return tlv(0x30, version + serial + algorithm + issuer + validity + subject + spki + tail)


def ts(*fields: int) -> int:
    """Seconds since the epoch of a UTC time given as year, month, day[, hour, minute, second]."""
    year, month, day, *rest = fields
    hour, minute, second = (*rest, 0, 0, 0)[:3]
    return int(dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC).timestamp())


def test_hand_built_baseline(der: ModuleType) -> None:
    info = der.parse_tbs(make_tbs())
    assert info.problems == ()
    assert (info.version, info.serial) == (3, 256)
    assert info.subject == (NameAttr("2.5.4.3", "Subject"),)
    assert (info.not_before, info.not_after) == (ts(2024, 1, 1), ts(2025, 1, 1))


@pytest.mark.parametrize(
    ("tag", "text", "want"),
    [
        (0x17, "491231235959Z", ts(2049, 12, 31, 23, 59, 59)),
        (0x17, "500101000000Z", ts(1950, 1, 1)),
        (0x17, "2402291230Z", ts(2024, 2, 29, 12, 30)),  # no seconds
        (0x17, "240101120000+0130", ts(2024, 1, 1, 10, 30)),
        (0x17, "2401011200-0800", ts(2024, 1, 1, 20, 0)),
        (0x18, "20500101000000Z", ts(2050, 1, 1)),
        (0x18, "99991231235959Z", ts(9999, 12, 31, 23, 59, 59)),
        (0x18, "20240101000000.123Z", ts(2024, 1, 1)),
        (0x18, "19000301000000Z", ts(1900, 3, 1)),
    ],
)
def test_times(der: ModuleType, tag: int, text: str, want: int) -> None:
    validity = tlv(0x30, tlv(tag, text.encode()) + tlv(tag, text.encode()))
    info = der.parse_tbs(make_tbs(validity=validity))
    assert (info.not_before, info.not_after, info.problems) == (want, want, ())


@pytest.mark.parametrize(
    ("tag", "text"),
    [
        (0x17, "230229000000Z"),  # not a leap year
        (0x18, "19000229000000Z"),
        (0x17, "241301000000Z"),
        (0x17, "240101240000Z"),
        (0x17, "240101000060Z"),
        (0x17, "240101000000"),  # no zone
        (0x17, "2401010000Z0"),
        (0x18, "20240101000000.Z"),
        (0x17, "24010100000"),
        (0x17, "24O101000000Z"),
        (0x04, "240101000000Z"),
    ],
)
def test_bad_times(der: ModuleType, tag: int, text: str) -> None:
    good = utc("250101000000Z")
    info = der.parse_tbs(make_tbs(validity=tlv(0x30, tlv(tag, text.encode()) + good)))
    assert info.not_before is None and info.not_after == ts(2025, 1, 1)
    assert len(info.problems) == 1 and info.problems[0].startswith("not_before: ")
    assert info.subject  # the fields after it are still read


@pytest.mark.parametrize(
    ("tag", "raw", "want", "problem"),
    [
        (0x13, b"Print", "Print", False),
        (0x16, b"ia5@x", "ia5@x", False),
        (0x12, b"0123", "0123", False),
        (0x1A, "visible é".encode(), "visible é", False),
        (0x14, b"caf\xe9", "café", False),
        (0x1E, "Ωmega".encode("utf-16-be"), "Ωmega", False),
        (0x1C, "𝄞 clef".encode("utf-32-be"), "𝄞 clef", False),
        (0x0C, b"ok\xff", "ok\ufffd", True),
        (0x1E, b"\x00A\x00", "A\ufffd", True),
        (0x1C, b"\x00\x11\x00\x00", "\ufffd", True),
        (0x04, b"octets", "", True),
    ],
)
def test_string_types(der: ModuleType, tag: int, raw: bytes, want: str, problem: bool) -> None:
    info = der.parse_tbs(make_tbs(subject=name(("2.5.4.10", tag, raw), ("2.5.4.3", 0x13, b"x"))))
    assert info.subject == (NameAttr("2.5.4.10", want), NameAttr("2.5.4.3", "x"))
    assert bool(info.problems) == problem
    assert all(p.startswith("subject: ") for p in info.problems)


@pytest.mark.parametrize(
    ("bits", "want"),
    [
        (b"\x07\x80", 1),  # digitalSignature
        (b"\x01\x06", (1 << 5) | (1 << 6)),  # keyCertSign, cRLSign
        (b"\x07\x00\x80", 1 << 8),  # decipherOnly
        (b"\x00", 0),
        (b"\x04\xff", 0xF),  # unused bits are masked off
    ],
)
def test_key_usage_bits(der: ModuleType, bits: bytes, want: int) -> None:
    info = der.parse_tbs(make_tbs(exts=[ext("2.5.29.15", tlv(0x03, bits), critical=True)]))
    assert info.key_usage == want and info.problems == ()
    assert info.extensions[0].critical


def test_pss_parameters(der: ModuleType) -> None:
    pss = "1.2.840.113549.1.1.10"
    sha384 = tlv(0xA0, tlv(0x30, oid("2.16.840.1.101.3.4.2.2") + b"\x05\x00"))
    explicit = der.parse_tbs(make_tbs(algorithm=tlv(0x30, oid(pss) + tlv(0x30, sha384))))
    assert (explicit.signature_oid, explicit.signature_hash_oid) == (pss, HASH_OIDS["sha384"])
    default = der.parse_tbs(make_tbs(algorithm=tlv(0x30, oid(pss) + tlv(0x30, b""))))
    assert default.signature_hash_oid == HASH_OIDS["sha1"]
    broken = der.parse_tbs(make_tbs(algorithm=tlv(0x30, oid(pss) + b"\x30\x05\xa0")))
    assert broken.signature_hash_oid == "" and broken.signature_oid == pss
    assert broken.problems and broken.problems[0].startswith("signature: ")


def test_huge_oid_arc(der: ModuleType) -> None:
    uuid_oid = "2.25.329800735698586629295641978511506172918"
    info = der.parse_tbs(make_tbs(exts=[ext(uuid_oid, b"\x05\x00")]))
    assert info.extensions[0].oid == uuid_oid
    bomb = der.parse_tbs(make_tbs(exts=[tlv(0x30, tlv(0x06, b"\x81" * 5000 + b"\x01"))]))
    assert bomb.extensions == () and bomb.problems == ("extensions: bad OID",)


@pytest.mark.parametrize(
    "dotted",
    [
        "2.999",  # first byte 0x88 0x37: the first two arcs share one big number
        "1.2." + str(2**63 - 1),  # the largest arc of nine base-128 digits
        "1.2." + str(2**63),  # one digit more
        "1.2." + ".".join([str(2**60)] * 30),  # long text
        "0.0",
        "2.25." + str(2**128 - 1),
    ],
)
def test_oid_text(der: ModuleType, dotted: str) -> None:
    info = der.parse_tbs(make_tbs(exts=[ext(dotted, b"\x05\x00")] * 2))
    assert [e.oid for e in info.extensions] == [dotted, dotted] and info.problems == ()


def test_extension_decoders(der: ModuleType) -> None:
    uri = tlv(0x86, b"http://ocsp.example/")
    policy = tlv(
        0x30,
        oid("2.23.140.1.2.1")
        + tlv(
            0x30,
            tlv(0x30, oid(CPS) + tlv(0x16, b"http://cps/"))
            + tlv(
                0x30, oid(UNOTICE) + tlv(0x30, tlv(0x30, b"") + tlv(0x1E, "hé".encode("utf-16-be")))
            ),
        ),
    )
    info = der.parse_tbs(
        make_tbs(
            exts=[
                ext("2.5.29.19", tlv(0x30, tlv(0x01, b"\xff") + tlv(0x02, b"\x00"))),
                ext(
                    "2.5.29.17",
                    tlv(
                        0x30,
                        tlv(0x82, b"a.example")
                        + tlv(0x87, b"\x0a\x00\x00\x01")
                        + tlv(0xA4, name(("2.5.4.3", 0x0C, b"d")))
                        + tlv(0x88, b"\x2a"),
                    ),
                ),
                ext("2.5.29.18", tlv(0x30, tlv(0x81, b"ca@example"))),
                ext(
                    "1.3.6.1.5.5.7.1.1",
                    tlv(
                        0x30,
                        tlv(0x30, oid("1.3.6.1.5.5.7.48.1") + uri)
                        + tlv(0x30, oid("1.3.6.1.5.5.7.48.2") + tlv(0x82, b"dns")),
                    ),
                ),
                ext("2.5.29.35", tlv(0x30, tlv(0x80, b"\x01\x02") + tlv(0x82, b"\x05"))),
                ext("2.5.29.14", tlv(0x04, b"\x03\x04")),
                ext("2.5.29.32", tlv(0x30, policy + tlv(0x30, oid("2.23.140.1.2.2")))),
                ext(
                    "2.5.29.31",
                    tlv(
                        0x30,
                        tlv(0x30, tlv(0xA0, tlv(0xA0, uri + tlv(0x82, b"x"))))
                        + tlv(0x30, tlv(0xA1, b"") + tlv(0xA2, b"")),
                    ),
                ),
                ext("2.5.29.37", tlv(0x30, oid("1.3.6.1.5.5.7.3.1") + oid("1.3.6.1.5.5.7.3.2"))),
                ext(POISON, b"\x05\x00", critical=True),
                ext(SCTS, tlv(0x04, b"\x00\x00")),
            ]
        )
    )
    assert info.problems == ()
    assert (info.is_ca, info.path_len) == (True, 0)
    assert info.san == ((2, "a.example"), (7, b"\x0a\x00\x00\x01"), (4, b""), (8, b""))
    assert info.ian == ((1, "ca@example"),)
    assert info.aia == (("1.3.6.1.5.5.7.48.1", "http://ocsp.example/"),)
    assert (info.aki_keyid, info.ski) == (b"\x01\x02", b"\x03\x04")
    assert info.policies == (
        Policy("2.23.140.1.2.1", ((CPS, "http://cps/"), (UNOTICE, "hé"))),
        Policy("2.23.140.1.2.2"),
    )
    assert info.crl_dps == ("http://ocsp.example/",)
    assert info.ext_key_usage == ("1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2")
    assert info.has_poison and info.sct_list == b"\x04\x02\x00\x00"


def test_basic_constraints_default_false(der: ModuleType) -> None:
    info = der.parse_tbs(make_tbs(exts=[ext("2.5.29.19", tlv(0x30, b""))]))
    assert (info.is_ca, info.path_len) == (False, None)


def test_bad_extension_stays_raw(der: ModuleType) -> None:
    bad_san = tlv(0x30, tlv(0x82, b"ok") + b"\x82\x09short")
    info = der.parse_tbs(make_tbs(exts=[ext("2.5.29.17", bad_san), ext("2.5.29.14", b"\x04\x01")]))
    assert info.san == () and info.ski is None
    assert [e.value for e in info.extensions] == [bad_san, b"\x04\x01"]
    assert info.problems == ("subjectAltName: bad length", "subjectKeyIdentifier: bad length")


# --- hostile input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x30",
        b"\x31\x00",
        b"\x30\x80\x00\x00",
        b"\x30\x85\x01\x02\x03\x04\x05",
        b"\x02\x01\x00",
    ],
)
def test_unreadable_outer_header(der: ModuleType, data: bytes) -> None:
    with pytest.raises(DecodeError):
        der.parse_tbs(data)
    with pytest.raises(DecodeError):
        der.parse_certificate(data)


def test_certificate_without_tbs_sequence(der: ModuleType) -> None:
    with pytest.raises(DecodeError):
        der.parse_certificate(b"\x30\x03\x02\x01\x00")
    with pytest.raises(DecodeError):
        der.parse_certificate(make_tbs())  # a bare TBS starts with [0], not a SEQUENCE


def test_lying_outer_length_is_cut(der: ModuleType) -> None:
    tbs = make_tbs()
    assert tbs[1] == 0x81  # one length byte follows
    cut = b"\x30\x84\x7f\xff\xff\xff" + tbs[3:]
    info = der.parse_tbs(cut)
    assert info.problems == ("tbs: truncated",)
    assert info.subject == (NameAttr("2.5.4.3", "Subject"),)


@pytest.mark.parametrize("size", [0, 3, 10, 40, 80, 120])
def test_truncated_tbs(der: ModuleType, size: int) -> None:
    tbs = make_tbs()[:size]
    if size < 2:
        with pytest.raises(DecodeError):
            der.parse_tbs(tbs)
        return
    info = der.parse_tbs(tbs)
    assert info.problems and info.spki == b""  # the last field is cut at any size
    assert info.problems[0] == "tbs: truncated"


def test_deep_nesting_and_indefinite_lengths(der: ModuleType) -> None:
    nest = b"\x30\x80" * 10000
    info = der.parse_tbs(make_tbs(subject=nest, spki=b""))
    assert info.subject == () and info.problems
    deep = b""
    for _ in range(2000):
        deep = tlv(0x30, deep)
    info = der.parse_tbs(make_tbs(exts=[ext("2.5.29.17", deep)]))
    assert info.problems == ("subjectAltName: bad GeneralName",)


def test_cryptography_built_certificate(der: ModuleType) -> None:
    # BMPString/UniversalString attributes and far-future GeneralizedTime, written by a
    # different encoder than ours.
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "bmp Ω", x509.name._ASN1Type.BMPString),
            x509.NameAttribute(
                NameOID.ORGANIZATION_NAME, "univ 𝄞", x509.name._ASN1Type.UniversalString
            ),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(2**159 - 1)
        .not_valid_before(dt.datetime(1950, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2150, 6, 30, 1, 2, 3, tzinfo=dt.UTC))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("a.example"), x509.IPAddress(ipaddress.ip_address("2001:db8::1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    info = der.parse_certificate(cert.public_bytes(serialization.Encoding.DER))
    assert info.problems == ()
    assert [a.value for a in info.subject] == ["bmp Ω", "univ 𝄞"]
    assert info.serial == 2**159 - 1
    assert (info.not_before, info.not_after) == (ts(1950, 1, 1), ts(2150, 6, 30, 1, 2, 3))
    assert info.san == ((2, "a.example"), (7, ipaddress.ip_address("2001:db8::1").packed))


def test_facade_records_the_twin_in_use() -> None:
    assert "_der" in _fast.COMPILED
    want = "certstream._fast._der_py" if not _fast.COMPILED["_der"] else "certstream._fast._der"
    assert facade.parse_certificate.__module__ == want
    if not _fast.NO_EXTENSIONS:
        assert _fast.COMPILED["_der"], "the compiled _der did not load"
    data = _cert("real/google_argon2026h2_001_x509_ecdsa-p384.der")
    assert facade.parse_certificate(data).san == ((2, "www.dallasmediaproductions.com"),)
