"""The ``calidog`` profile on certificates built for each case EasySSL prints in its own way.

The shared goldens hold few policies and no non-ASCII names, so these certificates (made with
``cryptography``; raw DER where an encoding must be exact) pin down what EasySSL
(CaliDog/EasySSL ``lib/easy_ssl.ex``) writes on top of Erlang's ``public_key``:

* certificatePolicies: a CPS qualifier is its DER read as UTF-8 without two code points (a
  URI of 128 bytes or more makes EasySSL raise; we write the URI); a User Notice skips 8
  bytes of its DER and keeps what ``String.printable?`` accepts, for every DisplayText
  encoding and with a noticeRef;
* crlDistributionPoints: several points, and points EasySSL skips;
* names and domains: UTF8String as is, byte strings (PrintableString, TeletexString, a
  dNSName) as Latin-1, BMPString as ``""``; IDN names as U-labels and A-labels, in CN and SAN,
  into ``all_domains`` and the domains frame.

Each expected text is worked out by hand from EasySSL's code (see the comments), and both
twins of the certificate writer must give it.
"""

from __future__ import annotations

import datetime
import importlib
import json
from types import ModuleType
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from certstream._fast import NO_EXTENSIONS, _json_py
from certstream.core import easyssl, profiles
from certstream.core.x509 import parse_certificate

KEY = ec.derive_private_key(0x1234567, ec.SECP256R1())
TWINS: list[ModuleType] = [_json_py]
if not NO_EXTENSIONS:
    TWINS.append(importlib.import_module("certstream._fast._json"))


# --- building certificates -----------------------------------------------------------------


def tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def _oid_der(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray([arcs[0] * 40 + arcs[1]])
    for arc in arcs[2:]:
        digits = [arc & 0x7F]
        rest = arc >> 7
        while rest:
            digits.append(0x80 | (rest & 0x7F))
            rest >>= 7
        body += bytes(reversed(digits))
    return tlv(0x06, bytes(body))


def seq(*items: bytes) -> bytes:
    return tlv(0x30, b"".join(items))


CPS, UNOTICE = "1.3.6.1.5.5.7.2.1", "1.3.6.1.5.5.7.2.2"
IA5, VISIBLE, BMP, UTF8 = 0x16, 0x1A, 0x1E, 0x0C


def policy(dotted: str, *qualifiers: bytes) -> bytes:
    return seq(_oid_der(dotted), seq(*qualifiers)) if qualifiers else seq(_oid_der(dotted))


def cps(uri: str) -> bytes:
    return seq(_oid_der(CPS), tlv(IA5, uri.encode()))


def notice(explicit: bytes | None, ref: bytes | None = None) -> bytes:
    return seq(_oid_der(UNOTICE), seq(*(x for x in (ref, explicit) if x is not None)))


def build(
    *,
    cn: tuple[str, _ASN1Type] | None = ("leaf.example", _ASN1Type.UTF8String),
    sans: list[str] | None = None,
    extensions: list[x509.ExtensionType] = (),  # type: ignore[assignment]
    patch: tuple[bytes, bytes] | None = None,
) -> bytes:
    """A self-signed certificate; ``patch`` replaces bytes of the DER (same length), to put
    bytes in a string that ``cryptography`` would refuse to encode."""
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test Org")]
    if cn is not None:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn[0], _type=cn[1]))
    name = x509.Name(attrs)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(KEY.public_key())
        .serial_number(0x1234)
        .not_valid_before(datetime.datetime(2025, 1, 1))
        .not_valid_after(datetime.datetime(2026, 1, 1))
    )
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False
        )
    for ext in extensions:
        builder = builder.add_extension(ext, critical=False)
    der = builder.sign(KEY, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    if patch is not None:
        old, new = patch
        assert len(old) == len(new) and der.count(old) >= 1
        der = der.replace(old, new)
    return der


def raw_ext(dotted: str, value: bytes) -> x509.UnrecognizedExtension:
    return x509.UnrecognizedExtension(x509.ObjectIdentifier(dotted), value)


def calidog(der: bytes) -> list[dict[str, Any]]:
    """The calidog leaf object and domains frame from each twin (they must agree)."""
    info = parse_certificate(der)
    outs = []
    for twin in TWINS:
        writer = twin.CertWriter(profiles.CALIDOG, profiles.CALIDOG.leaf_keys)
        head, tail = writer.parts(info, der, False, None)
        domains = json.loads(writer.domains_payload(writer.domains(info)))
        outs.append({"leaf": json.loads(head + tail), "domains": domains, "text": head + tail})
    assert all(o["text"] == outs[0]["text"] for o in outs), "the twins disagree"
    return outs


def policies_text(*policies: bytes) -> str:
    out = calidog(build(extensions=[raw_ext("2.5.29.32", seq(*policies))]))[0]
    text: str = out["leaf"]["extensions"]["certificatePolicies"]
    return text


# --- certificatePolicies -------------------------------------------------------------------


def test_cps_uri_short_is_printed_whole() -> None:
    # 16 1A "http://...": the tag and the one-byte length are the two code points dropped.
    assert policies_text(policy("2.23.140.1.2.1", cps("https://cps.example/a"))) == (
        "Policy: 2.23.140.1.2.1\n  CPS: https://cps.example/a"
    )


@pytest.mark.parametrize("size", [127, 128, 300])
def test_cps_uri_over_127_bytes(size: int) -> None:
    uri = "https://cps.example/" + "p" * (size - 20)
    assert len(uri) == size
    # At 128 bytes the length is 81 80: not UTF-8, EasySSL raises (the CaliDog server loses
    # the entry, calidog-1). We send the entry with the URI.
    assert policies_text(policy("1.2.3.4", cps(uri))) == f"Policy: 1.2.3.4\n  CPS: {uri}"


def test_cps_qualifier_is_read_as_utf8_code_points() -> None:
    # Non-ASCII bytes in the IA5String: valid UTF-8, so to_charlist keeps them whole.
    q = seq(_oid_der(CPS), tlv(IA5, "https://cps.example/ü".encode()))
    assert policies_text(policy("1.2.3.4", q)).endswith("  CPS: https://cps.example/ü")


def test_user_notice_short_loses_the_first_four_characters() -> None:
    # 30 14 0C 12 "Hello, User Notice": skipping 8 bytes drops the two headers and "Hell".
    text = policies_text(policy("1.2.3.4", notice(tlv(UTF8, b"Hello, User Notice"))))
    assert text == "Policy: 1.2.3.4\n  User Notice: o, User Notice"


@pytest.mark.parametrize(
    ("tag", "encode"),
    [(IA5, "ascii"), (VISIBLE, "ascii"), (UTF8, "utf-8")],
    ids=["IA5String", "VisibleString", "UTF8String"],
)
def test_user_notice_one_byte_strings_of_each_encoding(tag: int, encode: str) -> None:
    # 130 characters: 30 81 86 | TT 81 82 | text. Eight bytes are six of header and "No".
    body = "Notice " + "x" * 123
    text = policies_text(policy("1.2.3.4", notice(tlv(tag, body.encode(encode)))))
    assert text == "Policy: 1.2.3.4\n  User Notice: " + body[2:]


def test_user_notice_utf8_keeps_what_elixir_calls_printable() -> None:
    # Long enough for both lengths to take 3 bytes: 30 82 LL LL 0C 82 LL LL is exactly 8.
    # String.printable? keeps DEL, \a, \e, NBSP and U+FFFD; drops \x01, NEL (U+0085), U+FFFE.
    body = ("Prüfung\x7f\x07\x1b\xa0\ufffd\x01\x85\ufffe " * 30).encode()
    assert len(body) > 255
    text = policies_text(policy("1.2.3.4", notice(tlv(UTF8, body))))
    assert text == "Policy: 1.2.3.4\n  User Notice: " + "Prüfung\x7f\x07\x1b\xa0\ufffd " * 30


def test_user_notice_bmpstring_keeps_ascii_and_what_happens_to_be_utf8() -> None:
    # UTF-16BE: each ASCII character is 00 XX (00 is dropped, XX kept); "ó" is 00 F3, where
    # F3 starts no valid sequence; U+C3A9 is C3 A9, which *is* UTF-8 for "é".
    body = "Autoridad de Certificación Raíz \uc3a9 " * 5
    text = policies_text(policy("2.5.29.32.0", notice(tlv(BMP, body.encode("utf-16-be")))))
    assert text == "Policy: 2.5.29.32.0\n  User Notice: " + "Autoridad de Certificacin Raz é " * 5


def test_user_notice_with_a_notice_reference() -> None:
    # 30 15 | 30 0D 0C 03 "Org" 30 06 02 01 01 02 01 02 | 0C 04 "Text". Skipping 8 bytes
    # leaves "g" 30 06 02 01 01 02 01 02 0C 04 "Text": printable are "g", "0", \f and "Text".
    ref = seq(tlv(UTF8, b"Org"), seq(tlv(0x02, b"\x01"), tlv(0x02, b"\x02")))
    text = policies_text(policy("1.2.3.4", notice(tlv(UTF8, b"Text"), ref)))
    assert text == "Policy: 1.2.3.4\n  User Notice: g0\fText"


def test_policy_order_as_easyssl_accumulates_it() -> None:
    # No qualifiers: prepended. With qualifiers: replaces what was collected.
    text = policies_text(
        policy("1.1"), policy("1.2"), policy("1.3", cps("http://a.example/")), policy("1.4")
    )
    assert text == "Policy: 1.4\nPolicy: 1.3\n  CPS: http://a.example/"


def test_cps_and_notice_in_one_policy_keep_their_order() -> None:
    body = "Notice " + "y" * 300
    text = policies_text(
        policy("1.2.3.4", notice(tlv(UTF8, body.encode())), cps("http://b.example/cps"))
    )
    assert text == f"Policy: 1.2.3.4\n  User Notice: {body}\n  CPS: http://b.example/cps"


# --- crlDistributionPoints -----------------------------------------------------------------


def _dp(*uris: str, reasons: bool = False) -> x509.DistributionPoint:
    return x509.DistributionPoint(
        full_name=[x509.UniformResourceIdentifier(u) for u in uris],
        relative_name=None,
        reasons=frozenset([x509.ReasonFlags.key_compromise]) if reasons else None,
        crl_issuer=None,
    )


def _crldp(*points: x509.DistributionPoint) -> str:
    out = calidog(build(extensions=[x509.CRLDistributionPoints(list(points))]))[0]
    text: str = out["leaf"]["extensions"]["crlDistributionPoints"]
    return text


def test_one_crl_distribution_point() -> None:
    assert _crldp(_dp("http://crl.example/a.crl")) == "Full Name:\n URI:http://crl.example/a.crl"


def test_several_crl_distribution_points_interleave_as_easyssl_reverses_them() -> None:
    # Per point: ["Full Name:" | acc] then [names | that], reversed.  a: [F, a].
    # b: [b, F, F, a] reversed = [a, F, F, b].  d: [d, F, a, F, F, b] reversed.
    assert _crldp(_dp("http://a"), _dp("http://b", "http://c"), _dp("http://d")) == (
        " URI:http://b\n URI:http://c\nFull Name:\nFull Name:\n URI:http://a\nFull Name:\n"
        " URI:http://d"
    )


def test_a_point_with_reasons_is_skipped() -> None:
    assert _crldp(_dp("http://a"), _dp("http://x", reasons=True), _dp("http://b")) == (
        " URI:http://a\nFull Name:\nFull Name:\n URI:http://b"
    )


# --- names and domains ---------------------------------------------------------------------

U_LABEL = "bücher.example"
A_LABEL = "xn--bcher-kva.example"
MOJIBAKE = "bÃ¼cher.example"  # its UTF-8 bytes read as Latin-1


def _names(der: bytes) -> tuple[dict[str, Any], list[str], list[str], str]:
    out = calidog(der)[0]
    leaf = out["leaf"]
    assert out["domains"]["message_type"] == "dns_entries"
    return leaf["subject"], leaf["all_domains"], out["domains"]["data"], out["text"]


def test_utf8string_cn_u_label_is_kept() -> None:
    subject, domains, stream, _ = _names(build(cn=(U_LABEL, _ASN1Type.UTF8String)))
    assert subject["CN"] == U_LABEL
    assert subject["aggregated"] == f"/CN={U_LABEL}/O=Test Org"
    assert domains == stream == [U_LABEL]


def test_a_label_cn_and_san_are_plain_ascii() -> None:
    subject, domains, stream, _ = _names(
        build(cn=(A_LABEL, _ASN1Type.PrintableString), sans=[A_LABEL, "www." + A_LABEL])
    )
    assert subject["CN"] == A_LABEL
    # A set: the CN and the equal SAN count once; bytewise order puts "www." before "xn--".
    assert domains == stream == ["www." + A_LABEL, A_LABEL]


def test_printablestring_cn_with_utf8_bytes_is_read_as_latin1() -> None:
    # A PrintableString cannot hold "ü"; CAs that put UTF-8 bytes there get them back as
    # Latin-1 from Erlang's byte list, and the set keeps both spellings apart.
    der = build(cn=("bXXcher.example", _ASN1Type.PrintableString), sans=[U_LABEL.replace("ü", "u")],
                patch=(b"bXXcher", U_LABEL.encode()[:7]))
    subject, domains, stream, text = _names(der)
    assert subject["CN"] == MOJIBAKE
    assert domains == stream == ["bucher.example", MOJIBAKE]
    assert MOJIBAKE in text  # raw UTF-8 in the frame, as Jason writes it


def test_teletexstring_cn_is_latin1() -> None:
    der = build(cn=("bXcher.example", _ASN1Type.T61String), patch=(b"bXcher", b"b\xfccher"))
    subject, domains, stream, _ = _names(der)
    assert subject["CN"] == U_LABEL
    assert domains == stream == [U_LABEL]


def test_bmpstring_cn_is_an_empty_string_and_an_empty_domain() -> None:
    # coerce_to_string has no BMPString clause: nil, which to_string writes as "".
    subject, domains, stream, _ = _names(
        build(cn=(U_LABEL, _ASN1Type.BMPString), sans=[A_LABEL])
    )
    assert subject["CN"] == ""
    assert subject["aggregated"] == "/CN=/O=Test Org"
    assert domains == stream == ["", A_LABEL]


def test_san_u_label_bytes_are_latin1_in_domains_and_in_the_extension() -> None:
    der = build(cn=(A_LABEL, _ASN1Type.UTF8String), sans=["bXXcher.example", "zz.example"],
                patch=(b"bXXcher", U_LABEL.encode()[:7]))
    out = calidog(der)[0]
    assert out["leaf"]["extensions"]["subjectAltName"] == f"DNS:zz.example, DNS:{MOJIBAKE}"
    # Erlang term order is bytewise: "b\xc3\x83..." < "x" < "z".
    assert out["leaf"]["all_domains"] == out["domains"]["data"] == [
        MOJIBAKE, A_LABEL, "zz.example"
    ]


def test_no_cn_leaves_the_san_names_only() -> None:
    subject, domains, _, _ = _names(build(cn=None, sans=["b.example", "a.example", "b.example"]))
    assert subject["CN"] is None
    assert subject["aggregated"] == "/O=Test Org"
    assert domains == ["a.example", "b.example"]


def test_printable_is_elixirs_definition() -> None:
    kept = "\n\r\t\v\b\f\x1b\x7f\x07 ~\xa0\ud7ff\ue000\ufffd\U00010000"
    dropped = "\x00\x01\x1f\x80\x9f\ufffe\uffff"
    assert all(easyssl.printable(c) for c in kept)
    assert not any(easyssl.printable(c) for c in dropped)
