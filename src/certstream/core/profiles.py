"""Output profiles: every choice that makes our frames byte-identical to one peer's.

A profile is data.  The message builder (``messages.py``) runs the same code for every
profile and looks up here: key orders, which fields each object has, how names, serials,
dates, domains and each extension are written, which JSON encoder rules apply, and how the
log URL becomes ``source.url`` and ``cert_link``.  The field formatters below are small pure
functions of a ``CertInfo``; a profile picks them by name from ``FIELD_FORMATTERS``, so a new
profile is a new table entry, not a fork of the builder.

The three profiles and where their rules come from:

``go`` (default)
    certstream-server-go's frames, except four of its bugs we fix (conformance/DEVIATIONS.md):
    ``ST`` from stateOrProvinceName (Go reads streetAddress), ``email_address`` filled (Go
    always sends null), tiled entries with real hashes, ``as_der`` and chain, and entries that
    Go's parser rejects are sent.  That is why the ``go`` name rule maps ST to 2.5.4.8 and
    email_address to 1.2.840.113549.1.9.1.
``calidog``
    The CaliDog Elixir server with EasySSL: alphabetical keys (Jason sorts), reversed SAN and
    AIA lists, OpenSSL-style texts and an ``extra`` array of unknown extension OIDs.
``rust``
    certstream-server-rust: its struct order, ``submission_timestamp``, fixed-order EKU names.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass

from certstream.core.model import CertInfo, NameAttr, Policy
from certstream.errors import LocalProtocolError

__all__ = [
    "DEFAULT_PROFILE",
    "FIELD_FORMATTERS",
    "PROFILES",
    "ExtensionValue",
    "NameRule",
    "Profile",
    "UnknownProfileError",
    "get_profile",
]

OID_CN = "2.5.4.3"
OID_C = "2.5.4.6"
OID_L = "2.5.4.7"
OID_ST = "2.5.4.8"
OID_STREET = "2.5.4.9"
OID_O = "2.5.4.10"
OID_OU = "2.5.4.11"
OID_EMAIL = "1.2.840.113549.1.9.1"

OID_AIA = "1.3.6.1.5.5.7.1.1"
OID_SCT = "1.3.6.1.4.1.11129.2.4.2"
OID_POISON = "1.3.6.1.4.1.11129.2.4.3"
OID_SKI = "2.5.29.14"
OID_KU = "2.5.29.15"
OID_SAN = "2.5.29.17"
OID_IAN = "2.5.29.18"
OID_BC = "2.5.29.19"
OID_CRLDP = "2.5.29.31"
OID_CP = "2.5.29.32"
OID_AKI = "2.5.29.35"
OID_EKU = "2.5.29.37"

OID_OCSP = "1.3.6.1.5.5.7.48.1"
OID_CA_ISSUERS = "1.3.6.1.5.5.7.48.2"
OID_CPS = "1.3.6.1.5.5.7.2.1"
OID_USER_NOTICE = "1.3.6.1.5.5.7.2.2"

# GeneralName CHOICE tags (see model.CertInfo).
GN_EMAIL, GN_DNS, GN_DIRNAME, GN_URI, GN_IP = 1, 2, 4, 6, 7

#: A formatted extension: text, the JSON ``true`` of ctlPoisonByte, or calidog's OID list.
ExtensionValue = str | bool | list[str]
#: A field formatter gets the certificate and the set of its extension OIDs (computed once
#: per certificate; a precert's forced poison is added to it by the builder).
Formatter = Callable[[CertInfo, frozenset[str]], ExtensionValue | None]


# --- names ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NameRule:
    """How a subject or issuer object is written.

    ``keys`` is the output order, ``"aggregated"`` included; every other key maps to an
    attribute OID in ``oids``.  ``multi`` is ``"join"`` (all values joined with ``","``,
    Go) or ``"last"`` (the last value wins); keys in ``single`` take the last value even when
    joining (Go's CommonName is one string).  ``absent`` is ``"null"`` or ``"omit"``.
    ``cn_always`` makes CN ``""`` instead of absent (Go's CommonName is a plain string).
    ``aggregated`` lists the keys of the ``/K=V`` string, in order; ``aggregated_empty``
    is what an empty one is written as.
    """

    keys: tuple[str, ...]
    oids: tuple[tuple[str, str], ...]
    multi: str
    single: tuple[str, ...]
    absent: str
    cn_always: bool
    aggregated: tuple[str, ...]
    aggregated_empty: str


_BASE_OIDS = (
    ("C", OID_C),
    ("CN", OID_CN),
    ("L", OID_L),
    ("O", OID_O),
    ("OU", OID_OU),
    ("ST", OID_ST),
)

GO_NAMES = NameRule(
    keys=("C", "CN", "L", "O", "OU", "ST", "aggregated", "email_address"),
    # ST from stateOrProvinceName and a filled email_address: Go deviations 1 and 2.
    oids=(*_BASE_OIDS, ("email_address", OID_EMAIL)),
    multi="join",
    single=("CN",),
    absent="null",
    cn_always=True,
    aggregated=("C", "CN", "L", "O", "OU", "ST"),
    aggregated_empty="",
)

CALIDOG_NAMES = NameRule(
    keys=("C", "CN", "L", "O", "OU", "ST", "aggregated", "emailAddress"),
    oids=(*_BASE_OIDS, ("emailAddress", OID_EMAIL)),
    multi="last",
    single=(),
    absent="null",
    cn_always=False,
    aggregated=("C", "CN", "L", "O", "OU", "ST", "emailAddress"),
    aggregated_empty="/",
)

RUST_NAMES = NameRule(
    keys=("C", "CN", "L", "O", "OU", "ST", "aggregated", "email_address"),
    oids=(*_BASE_OIDS, ("email_address", OID_EMAIL)),
    multi="last",
    single=(),
    absent="omit",
    cn_always=False,
    aggregated=("C", "CN", "L", "O", "OU", "ST"),
    aggregated_empty="",
)


def name_values(attrs: tuple[NameAttr, ...], rule: NameRule) -> dict[str, str]:
    """The present name keys of ``rule`` and their text, from flattened NameAttrs."""
    by_oid = {oid: key for key, oid in rule.oids}
    found: dict[str, list[str]] = {}
    for attr in attrs:
        key = by_oid.get(attr.oid)
        if key is not None:
            found.setdefault(key, []).append(attr.value)
    if rule.multi == "join":
        values = {
            key: vals[-1] if key in rule.single else ",".join(vals) for key, vals in found.items()
        }
    else:
        values = {key: vals[-1] for key, vals in found.items()}
    if rule.cn_always and "CN" not in values:
        values["CN"] = ""
    return values


def aggregated(values: dict[str, str], rule: NameRule) -> str:
    parts = [f"/{key}={values[key]}" for key in rule.aggregated if key in values]
    return "".join(parts) if parts else rule.aggregated_empty


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


def _printable(text: str) -> str:
    # Elixir's String.printable? drops control characters and the replacement character that
    # an undecodable byte becomes.
    return "".join(ch for ch in text if ch.isprintable() and ch != "\ufffd")


def _easyssl_notice(info: CertInfo, text: str) -> str:
    """EasySSL prints the explicitText's raw bytes as if they were UTF-8.  For a BMPString
    that leaves the ASCII characters (their 0x00 high bytes are unprintable and dropped) and
    drops the rest; a UTF8String survives whole.  The parser hands us decoded text, so the
    encoding is recovered by finding the text's UTF-16 form among the extension's bytes."""
    if text.isascii():
        return text
    raw = b"".join(ext.value for ext in info.extensions if ext.oid == OID_CP)
    try:
        bmp = text.encode("utf-16-be")
    except UnicodeEncodeError:
        return text
    if bmp in raw:
        return "".join(ch for ch in text if ch.isascii())
    return text


def policies_easyssl(info: CertInfo, present: frozenset[str]) -> ExtensionValue | None:
    """EasySSL: policies without qualifiers are prepended (so come out reversed); a policy
    with qualifiers replaces everything collected so far with itself and its qualifiers."""
    if OID_CP not in present:
        return None
    acc: list[str] = []
    for policy in info.policies:
        if not policy.qualifiers:
            acc.insert(0, f"Policy: {policy.oid}")
            continue
        block = [f"Policy: {policy.oid}"]
        for qual_oid, text in policy.qualifiers:
            if qual_oid == OID_CPS:
                block.append(f"  CPS: {text}")
            elif qual_oid == OID_USER_NOTICE:
                block.append(f"  User Notice: {_printable(_easyssl_notice(info, text))}")
        acc = block
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
    return _general_names_easyssl(info.san) if OID_SAN in present else None


def ian_easyssl(info: CertInfo, present: frozenset[str]) -> ExtensionValue | None:
    return _general_names_easyssl(info.ian) if OID_IAN in present else None


def crldp_easyssl(info: CertInfo, present: frozenset[str]) -> ExtensionValue | None:
    if OID_CRLDP not in present:
        return None
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


# --- signature algorithms ------------------------------------------------------------------

_RSA = "1.2.840.113549.1.1."
_ECDSA = "1.2.840.10045.4."
_PSS = _RSA + "10"
_SHA1 = "1.3.14.3.2.26"
_SHA2 = "2.16.840.1.101.3.4.2."

GO_SIGNATURES = {
    _RSA + "2": "md2, rsa",
    _RSA + "4": "md5, rsa",
    _RSA + "5": "sha1, rsa",
    "1.3.14.3.2.29": "sha1, rsa",
    _RSA + "11": "sha256, rsa",
    _RSA + "12": "sha384, rsa",
    _RSA + "13": "sha512, rsa",
    "1.2.840.10040.4.3": "dsa, sha1",
    "2.16.840.1.101.3.4.3.2": "dsa, sha256",
    _ECDSA + "1": "ecdsa, sha1",
    _ECDSA + "3.2": "ecdsa, sha256",
    _ECDSA + "3.3": "ecdsa, sha384",
    _ECDSA + "3.4": "ecdsa, sha512",
    "1.3.101.112": "ed25519",
}
GO_PSS = {
    _SHA2 + "1": "sha256, rsa-pss",
    _SHA2 + "2": "sha384, rsa-pss",
    _SHA2 + "3": "sha512, rsa-pss",
}

RUST_SIGNATURES = dict(GO_SIGNATURES)
RUST_SIGNATURES.pop("1.3.14.3.2.29")
# certstream-server-rust writes every RSASSA-PSS signature as sha256 (its own label).
RUST_PSS = dict.fromkeys((_SHA1, _SHA2 + "1", _SHA2 + "2", _SHA2 + "3", ""), "sha256, rsa-pss")

# Erlang public_key:pkix_sign_types/1 gives {Hash, Alg}; EasySSL joins them with ", ".
CALIDOG_SIGNATURES = {
    _RSA + "2": "md2, rsa",
    _RSA + "4": "md5, rsa",
    _RSA + "5": "sha, rsa",
    "1.3.14.3.2.29": "sha, rsa",
    _RSA + "14": "sha224, rsa",
    _RSA + "11": "sha256, rsa",
    _RSA + "12": "sha384, rsa",
    _RSA + "13": "sha512, rsa",
    "1.2.840.10040.4.3": "sha, dsa",
    "2.16.840.1.101.3.4.3.1": "sha224, dsa",
    "2.16.840.1.101.3.4.3.2": "sha256, dsa",
    _ECDSA + "1": "sha, ecdsa",
    _ECDSA + "3.1": "sha224, ecdsa",
    _ECDSA + "3.2": "sha256, ecdsa",
    _ECDSA + "3.3": "sha384, ecdsa",
    _ECDSA + "3.4": "sha512, ecdsa",
    "1.3.101.112": "none, eddsa",
    "1.3.101.113": "none, eddsa",
}
# pkix_sign_types raises on RSASSA-PSS, so EasySSL never wrote one (calidog deviation 1);
# we write the shape it uses for the others.
CALIDOG_PSS = {
    _SHA1: "sha, rsassa_pss",
    _SHA2 + "1": "sha256, rsassa_pss",
    _SHA2 + "2": "sha384, rsassa_pss",
    _SHA2 + "3": "sha512, rsassa_pss",
}


# --- profiles ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Profile:
    """Every choice of one output format.  See the module docstring."""

    name: str
    # Frame layout
    message_type_first: bool  # rust writes "message_type" before "data"
    data_keys: tuple[str, ...]  # cert_index, cert_link, chain, leaf_cert, seen, source, ...
    chain_when_empty: bool  # calidog writes "chain":[]; go and rust leave the key out
    leaf_keys: tuple[str, ...]  # "as_der" is dropped from lite frames
    chain_keys: tuple[str, ...]
    source_keys: tuple[str, ...]  # name, url, timestamp, type
    newline: str  # terminator of lite and full frames
    # Encoders (names in jsontext.STRING_WRITERS / FLOAT_WRITERS)
    string_writer: str
    domains_string_writer: str
    float_writer: str
    seen_scale: int  # the peer truncates its clock to this many parts per second
    # URLs
    url_trailing_slash: bool
    static_cert_link: str  # "empty" or "tile"
    # Certificate fields
    names: NameRule
    # "go": %X of the integer, "0" prepended when the text has odd length (sign included);
    # "der": hex of the DER INTEGER bytes without a leading 00 (Rust); "plain": EasySSL's
    # Integer.to_string(n, 16), unpadded.  All three agree on positive even-length serials.
    serial: str
    no_expiration: bool  # EasySSL writes 9999-12-31T23:59:59Z as "no_expiration"
    signatures: dict[str, str]
    pss_signatures: dict[str, str]
    domains: str  # "san_then_cn" (Go), "cn_then_san" (Rust), "sorted_set" (EasySSL)
    extensions: tuple[tuple[str, str], ...]  # (JSON key, formatter name) in output order
    # Precertificates
    precert_from_tbs: bool  # Go shows the TBSCertificate's fields, others the precert's
    force_poison: bool  # Go sets ctlPoisonByte on every precert


GO = Profile(
    name="go",
    message_type_first=False,
    data_keys=("cert_index", "cert_link", "chain", "leaf_cert", "seen", "source", "update_type"),
    chain_when_empty=False,
    leaf_keys=(
        "all_domains",
        "as_der",
        "extensions",
        "fingerprint",
        "sha1",
        "sha256",
        "not_after",
        "not_before",
        "serial_number",
        "signature_algorithm",
        "subject",
        "issuer",
        "is_ca",
    ),
    chain_keys=(
        "all_domains",
        "as_der",
        "extensions",
        "fingerprint",
        "sha1",
        "sha256",
        "not_after",
        "not_before",
        "serial_number",
        "signature_algorithm",
        "subject",
        "issuer",
        "is_ca",
    ),
    source_keys=("name", "url", "timestamp", "type"),
    newline="\n",
    string_writer="go",
    domains_string_writer="go_html",
    float_writer="go",
    seen_scale=1000,
    url_trailing_slash=False,
    static_cert_link="empty",
    names=GO_NAMES,
    serial="go",
    no_expiration=False,
    signatures=GO_SIGNATURES,
    pss_signatures=GO_PSS,
    domains="san_then_cn",
    extensions=(
        ("authorityInfoAccess", "aia_uris_issuers_first"),
        ("authorityKeyIdentifier", "aki_keyid_lower"),
        ("basicConstraints", "basic_constraints"),
        ("certificatePolicies", "policies_lines"),
        ("ctlSignedCertificateTimestamp", "never"),
        ("extendedKeyUsage", "never"),
        ("keyUsage", "key_usage_go"),
        ("subjectAltName", "san_grouped"),
        ("subjectKeyIdentifier", "ski_keyid_lower"),
        ("ctlPoisonByte", "poison"),
    ),
    precert_from_tbs=True,
    force_poison=True,
)

CALIDOG = Profile(
    name="calidog",
    message_type_first=False,
    data_keys=("cert_index", "cert_link", "chain", "leaf_cert", "seen", "source", "update_type"),
    chain_when_empty=True,
    leaf_keys=(
        "all_domains",
        "as_der",
        "extensions",
        "fingerprint",
        "issuer",
        "not_after",
        "not_before",
        "serial_number",
        "signature_algorithm",
        "subject",
    ),
    chain_keys=(
        "as_der",
        "extensions",
        "fingerprint",
        "issuer",
        "not_after",
        "not_before",
        "serial_number",
        "signature_algorithm",
        "subject",
    ),
    source_keys=("name", "url"),
    newline="",
    string_writer="jason",
    domains_string_writer="jason",
    float_writer="jason",
    seen_scale=1_000_000,
    url_trailing_slash=True,
    static_cert_link="tile",
    names=CALIDOG_NAMES,
    serial="plain",
    no_expiration=True,
    signatures=CALIDOG_SIGNATURES,
    pss_signatures=CALIDOG_PSS,
    domains="sorted_set",
    # Jason writes map keys sorted, so this is alphabetical.
    extensions=(
        ("authorityInfoAccess", "aia_labelled_reversed"),
        ("authorityKeyIdentifier", "aki_keyid_upper_nl"),
        ("basicConstraints", "basic_constraints"),
        ("certificatePolicies", "policies_easyssl"),
        ("crlDistributionPoints", "crldp_easyssl"),
        ("ctlPoisonByte", "poison"),
        ("ctlSignedCertificateTimestamp", "sct_urlsafe_b64"),
        ("extendedKeyUsage", "eku_easyssl"),
        ("extra", "extra_oids_reversed"),
        ("issuerAltName", "ian_easyssl"),
        ("keyUsage", "key_usage_easyssl"),
        ("subjectAltName", "san_easyssl"),
        ("subjectKeyIdentifier", "ski_upper"),
    ),
    precert_from_tbs=False,
    force_poison=False,
)

RUST = Profile(
    name="rust",
    message_type_first=True,
    data_keys=(
        "update_type",
        "leaf_cert",
        "chain",
        "cert_index",
        "cert_link",
        "seen",
        "submission_timestamp",
        "source",
    ),
    chain_when_empty=False,
    leaf_keys=(
        "subject",
        "issuer",
        "serial_number",
        "not_before",
        "not_after",
        "fingerprint",
        "sha1",
        "sha256",
        "signature_algorithm",
        "is_ca",
        "all_domains",
        "as_der",
        "extensions",
    ),
    # Chain certificates: no all_domains and never as_der.
    chain_keys=(
        "subject",
        "issuer",
        "serial_number",
        "not_before",
        "not_after",
        "fingerprint",
        "sha1",
        "sha256",
        "signature_algorithm",
        "is_ca",
        "extensions",
    ),
    source_keys=("name", "url"),
    newline="",
    string_writer="serde",
    domains_string_writer="serde",
    float_writer="ryu",
    seen_scale=1000,
    url_trailing_slash=True,
    static_cert_link="tile",
    names=RUST_NAMES,
    serial="der",
    no_expiration=False,
    signatures=RUST_SIGNATURES,
    pss_signatures=RUST_PSS,
    domains="cn_then_san",
    extensions=(
        ("authorityInfoAccess", "aia_uris_cert_order"),
        ("authorityKeyIdentifier", "aki_keyid_lower"),
        ("basicConstraints", "basic_constraints"),
        ("certificatePolicies", "policies_lines"),
        ("extendedKeyUsage", "eku_fixed_order"),
        ("keyUsage", "key_usage_go"),
        ("subjectAltName", "san_cert_order"),
        ("subjectKeyIdentifier", "ski_keyid_lower"),
        ("ctlPoisonByte", "poison"),
    ),
    precert_from_tbs=False,
    force_poison=False,
)

#: Profile name -> profile.  Config validation lists ``sorted(PROFILES)`` as the allowed values.
PROFILES: dict[str, Profile] = {p.name: p for p in (GO, CALIDOG, RUST)}
DEFAULT_PROFILE = "go"


class UnknownProfileError(LocalProtocolError, ValueError):
    """A profile name that is not in ``PROFILES`` (a caller's mistake, hence Local)."""


def get_profile(name: str) -> Profile:
    """The profile called ``name``; UnknownProfileError naming the allowed ones otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        allowed = ", ".join(sorted(PROFILES))
        msg = f"unknown output profile {name!r}: allowed are {allowed}"
        raise UnknownProfileError(msg) from None
