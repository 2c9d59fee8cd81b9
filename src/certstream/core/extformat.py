"""Extension formatters: how each peer writes a certificate extension as JSON text.

Each formatter is a small pure function of a ``CertInfo`` and the set of its extension OIDs.
A profile names the formatter of every extension key it writes; ``FIELD_FORMATTERS`` maps
those names to the functions, so a new profile picks from here instead of forking the
builder.  The compiled twin (``_fast/_json.pyx``) recognises some of these functions by
identity and runs C code for them; everything else it calls here.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

from certstream.core import easyssl
from certstream.core.model import CertInfo, Policy
from certstream.core.oids import (
    GN_DNS,
    GN_EMAIL,
    GN_IP,
    GN_URI,
    OID_AIA,
    OID_AKI,
    OID_BC,
    OID_CA_ISSUERS,
    OID_CP,
    OID_CPS,
    OID_CRLDP,
    OID_EKU,
    OID_IAN,
    OID_KU,
    OID_OCSP,
    OID_POISON,
    OID_SAN,
    OID_SCT,
    OID_SKI,
    OID_USER_NOTICE,
)

__all__ = [
    "FIELD_FORMATTERS",
    "GO_KEY_USAGE",
    "ExtensionValue",
    "Formatter",
    "colon_hex",
    "go_ip",
]

#: A formatted extension: text, the JSON ``true`` of ctlPoisonByte, or calidog's OID list.
ExtensionValue = str | bool | list[str]
#: A field formatter gets the certificate and the set of its extension OIDs (computed once
#: per certificate; a precert's forced poison is added to it by the builder).
Formatter = Callable[[CertInfo, frozenset[str]], ExtensionValue | None]

# --- small text helpers --------------------------------------------------------------------


def colon_hex(data: bytes, *, upper: bool) -> str:
    text = data.hex(":")
    return text.upper() if upper else text


def _ipv4(raw: bytes) -> str:
    return ".".join(str(b) for b in raw)


def go_ip(raw: str | bytes) -> str:
    """Go net.IP.String(): dotted IPv4 (also for IPv4-mapped IPv6), RFC 5952 IPv6."""
    if not isinstance(raw, bytes):
        return ""
    if len(raw) == 4:
        return _ipv4(raw)
    if len(raw) == 16:
        if raw[:12] == b"\x00" * 10 + b"\xff\xff":
            return _ipv4(raw[12:])
        import ipaddress  # noqa: PLC0415 - rare path, keep the import cost off the hot start

        return str(ipaddress.IPv6Address(raw))
    # Go keeps the raw bytes and String() writes "?" followed by their hex.
    return "?" + raw.hex()


def _text(value: str | bytes) -> str:
    """A text GeneralName's value (the parser gives ``bytes`` only for other tags)."""
    return value if isinstance(value, str) else ""


def _policy_lines(policies: tuple[Policy, ...]) -> str:
    return "".join(f"Policy: {p.oid}\n" for p in policies)


# --- extension formatters ------------------------------------------------------------------
# Each returns the value to write, or None to leave the key out.  "Present" follows the peer:
# Go and Rust key on the extension being there, EasySSL on what Erlang decoded.


def aia_uris_issuers_first(info: CertInfo, present: frozenset[str]) -> ExtensionValue | None:
    if OID_AIA not in present:
        return None
    issuers = [f"URI:{uri}" for method, uri in info.aia if method == OID_CA_ISSUERS]
    ocsp = [f"URI:{uri}" for method, uri in info.aia if method == OID_OCSP]
    return ", ".join(issuers + ocsp)


def aia_uris_cert_order(info: CertInfo, present: frozenset[str]) -> ExtensionValue | None:
    if OID_AIA not in present:
        return None
    return ", ".join(f"URI:{uri}" for _method, uri in info.aia)


_AIA_LABELS = {OID_OCSP: "OCSP - URI", OID_CA_ISSUERS: "CA Issuers - URI"}


def aia_labelled_reversed(info: CertInfo, present: frozenset[str]) -> ExtensionValue | None:
    if OID_AIA not in present:
        return None
    lines = [f"{_AIA_LABELS.get(method, '')}:{uri}" for method, uri in reversed(info.aia)]
    return "\n".join(lines) + "\n"


def keyid_lower(value: bytes | None) -> str:
    return "keyid:" + colon_hex(value or b"", upper=False)


def aki_keyid_lower(info: CertInfo, present: frozenset[str]) -> ExtensionValue | None:
    return keyid_lower(info.aki_keyid) if OID_AKI in present else None


def ski_keyid_lower(info: CertInfo, present: frozenset[str]) -> ExtensionValue | None:
    return keyid_lower(info.ski) if OID_SKI in present else None


def aki_keyid_upper_nl(info: CertInfo, present: frozenset[str]) -> ExtensionValue | None:
    if info.aki_keyid is None:
        return None  # EasySSL skips an AKI without keyIdentifier
    return "keyid:" + colon_hex(info.aki_keyid, upper=True) + "\n"


def ski_upper(info: CertInfo, present: frozenset[str]) -> ExtensionValue | None:
    if OID_SKI not in present:
        return None
    return colon_hex(info.ski or b"", upper=True)


def basic_constraints(info: CertInfo, present: frozenset[str]) -> ExtensionValue | None:
    if OID_BC not in present:
        return None
    return "CA:TRUE" if info.is_ca else "CA:FALSE"


def policies_lines(info: CertInfo, present: frozenset[str]) -> ExtensionValue | None:
    if OID_CP not in present:
        return None
    return _policy_lines(info.policies)


def policies_easyssl(info: CertInfo, present: frozenset[str]) -> ExtensionValue | None:
    """EasySSL's text from the extension's DER (``easyssl.policies``).  If that cannot be
    walked, EasySSL would raise (calidog-1): then the parsed policies in its layout."""
    if OID_CP not in present:
        return None
    text = easyssl.policies(info)
    if text is not None:
        return text
    acc: list[str] = []
    for policy in info.policies:
        if not policy.qualifiers:
            acc.insert(0, f"Policy: {policy.oid}")
            continue
        acc = [f"Policy: {policy.oid}"]
        for qual_oid, qual_text in policy.qualifiers:
            if qual_oid == OID_CPS:
                acc.append(f"  CPS: {qual_text}")
            elif qual_oid == OID_USER_NOTICE:
                acc.append(f"  User Notice: {qual_text}")
    return "\n".join(acc)


GO_KEY_USAGE = (
    "Digital Signature",
    "Content Commitment",
    "Key Encipherment",
    "Data Encipherment",
    "Key Agreement",
    "Certificate Signing",
    "CRL Signing",
    "Encipher Only",
    "Decipher Only",
)

# Erlang's atoms digitalSignature ... decipherOnly split at capitals and capitalized.
EASYSSL_KEY_USAGE = (
    "Digital Signature",
    "Non Repudiation",
    "Key Encipherment",
    "Data Encipherment",
    "Key Agreement",
    "Key Cert Sign",
    "C R L Sign",
    "Encipher Only",
    "Decipher Only",
)


def _key_usage(
    info: CertInfo, present: frozenset[str], names: tuple[str, ...]
) -> ExtensionValue | None:
    if OID_KU not in present:
        return None
    bits = info.key_usage or 0
    return ", ".join(name for i, name in enumerate(names) if bits & (1 << i))


def key_usage_go(info: CertInfo, present: frozenset[str]) -> ExtensionValue | None:
    return _key_usage(info, present, GO_KEY_USAGE)


def key_usage_easyssl(info: CertInfo, present: frozenset[str]) -> ExtensionValue | None:
    return _key_usage(info, present, EASYSSL_KEY_USAGE)


_EKU_PREFIX = "1.3.6.1.5.5.7.3."
RUST_EKU_ORDER = (
    (_EKU_PREFIX + "1", "serverAuth"),
    (_EKU_PREFIX + "2", "clientAuth"),
    (_EKU_PREFIX + "3", "codeSigning"),
    (_EKU_PREFIX + "4", "emailProtection"),
    (_EKU_PREFIX + "8", "timeStamping"),
    (_EKU_PREFIX + "9", "OCSPSigning"),
    ("2.5.29.37.0", "anyExtendedKeyUsage"),
)

EASYSSL_EKU = {
    _EKU_PREFIX + "1": "TLS Web server authentication",
    _EKU_PREFIX + "2": "TLS Web client authentication",
    _EKU_PREFIX + "3": "Code signing",
    _EKU_PREFIX + "4": "E-mail protection",
    _EKU_PREFIX + "8": "Timestamping",
    _EKU_PREFIX + "9": "OCSPstamping",
    _EKU_PREFIX + "5": "IP security end system",
    _EKU_PREFIX + "6": "IP security tunnel termination",
    _EKU_PREFIX + "7": "IP security user",
}


def eku_fixed_order(info: CertInfo, present: frozenset[str]) -> ExtensionValue | None:
    if OID_EKU not in present:
        return None
    purposes = set(info.ext_key_usage)
    return ", ".join(name for oid, name in RUST_EKU_ORDER if oid in purposes)


def eku_easyssl(info: CertInfo, present: frozenset[str]) -> ExtensionValue | None:
    if OID_EKU not in present:
        return None
    # An unknown purpose maps to nil, which Enum.join writes as an empty item.
    return ", ".join(EASYSSL_EKU.get(oid, "") for oid in info.ext_key_usage)


def san_grouped(info: CertInfo, present: frozenset[str]) -> ExtensionValue | None:
    """Go: every DNS name, then every email, then every IP; URIs dropped."""
    if OID_SAN not in present:
        return None
    dns = [f"DNS:{_text(v)}" for tag, v in info.san if tag == GN_DNS]
    mail = [f"email:{_text(v)}" for tag, v in info.san if tag == GN_EMAIL]
    ips = [f"IP Address:{go_ip(v)}" for tag, v in info.san if tag == GN_IP]
    return ", ".join(dns + mail + ips)


_RUST_SAN_PREFIX = {GN_DNS: "DNS:", GN_EMAIL: "email:"}


def san_cert_order(info: CertInfo, present: frozenset[str]) -> ExtensionValue | None:
    if OID_SAN not in present:
        return None
    items: list[str] = []
    for tag, value in info.san:
        if tag == GN_IP:
            items.append(f"IP Address:{go_ip(value)}")
        elif tag in _RUST_SAN_PREFIX:
            items.append(f"{_RUST_SAN_PREFIX[tag]}{_text(value)}")
    return ", ".join(items)


_EASYSSL_GN_PREFIX = {GN_DNS: "DNS:", GN_URI: "URI:", GN_EMAIL: "RFC 822Name:"}


def _general_names_easyssl(names: tuple[tuple[int, str | bytes], ...]) -> str:
    items: list[str] = []
    for tag, value in reversed(names):
        if tag == GN_IP:
            # Erlang's iPAddress is a byte list: written as dotted decimal, IPv6 too.
            items.append("IP:" + (_ipv4(value) if isinstance(value, bytes) else ""))
        elif tag in _EASYSSL_GN_PREFIX:
            items.append(f"{_EASYSSL_GN_PREFIX[tag]}{_text(value)}")
    return ", ".join(items)


def san_easyssl(info: CertInfo, present: frozenset[str]) -> ExtensionValue | None:
    if OID_SAN not in present:
        return None
    text = easyssl.alt_names(info, OID_SAN)
    return text if text is not None else _general_names_easyssl(info.san)


def ian_easyssl(info: CertInfo, present: frozenset[str]) -> ExtensionValue | None:
    if OID_IAN not in present:
        return None
    text = easyssl.alt_names(info, OID_IAN)
    return text if text is not None else _general_names_easyssl(info.ian)


def crldp_easyssl(info: CertInfo, present: frozenset[str]) -> ExtensionValue | None:
    """EasySSL's text from the extension's DER (``easyssl.crl_distribution_points``); the
    parsed URIs as one point if that cannot be walked (EasySSL would raise, calidog-1)."""
    if OID_CRLDP not in present:
        return None
    text = easyssl.crl_distribution_points(info)
    if text is not None:
        return text
    return "\n".join(["Full Name:", *(f" URI:{uri}" for uri in info.crl_dps)])


def sct_urlsafe_b64(info: CertInfo, present: frozenset[str]) -> ExtensionValue | None:
    if info.sct_list is None:
        return None
    return base64.urlsafe_b64encode(info.sct_list).decode("ascii")


def poison(info: CertInfo, present: frozenset[str]) -> ExtensionValue | None:
    return True if info.has_poison or OID_POISON in present else None


def never(info: CertInfo, present: frozenset[str]) -> ExtensionValue | None:
    """Go declares extendedKeyUsage and ctlSignedCertificateTimestamp but never fills them."""
    return None


_EASYSSL_KNOWN = frozenset(
    {
        OID_AIA,
        OID_SCT,
        OID_POISON,
        OID_SKI,
        OID_KU,
        OID_SAN,
        OID_IAN,
        OID_BC,
        OID_CRLDP,
        OID_CP,
        OID_AKI,
        OID_EKU,
    }
)


def extra_oids_reversed(info: CertInfo, present: frozenset[str]) -> ExtensionValue | None:
    oids = [ext.oid for ext in info.extensions if ext.oid not in _EASYSSL_KNOWN]
    return oids[::-1] if oids else None


FIELD_FORMATTERS: dict[str, Formatter] = {
    "aia_uris_issuers_first": aia_uris_issuers_first,
    "aia_uris_cert_order": aia_uris_cert_order,
    "aia_labelled_reversed": aia_labelled_reversed,
    "aki_keyid_lower": aki_keyid_lower,
    "aki_keyid_upper_nl": aki_keyid_upper_nl,
    "ski_keyid_lower": ski_keyid_lower,
    "ski_upper": ski_upper,
    "basic_constraints": basic_constraints,
    "policies_lines": policies_lines,
    "policies_easyssl": policies_easyssl,
    "key_usage_go": key_usage_go,
    "key_usage_easyssl": key_usage_easyssl,
    "eku_fixed_order": eku_fixed_order,
    "eku_easyssl": eku_easyssl,
    "san_grouped": san_grouped,
    "san_cert_order": san_cert_order,
    "san_easyssl": san_easyssl,
    "ian_easyssl": ian_easyssl,
    "crldp_easyssl": crldp_easyssl,
    "sct_urlsafe_b64": sct_urlsafe_b64,
    "poison": poison,
    "never": never,
    "extra_oids_reversed": extra_oids_reversed,
}
