"""Output profiles: every choice that makes our frames byte-identical to one peer's.

A profile is data.  The message builder (``messages.py``) runs the same code for every
profile and looks up here: key orders, which fields each object has, how names, serials,
dates, domains and each extension are written, which JSON encoder rules apply, and how the
log URL becomes ``source.url`` and ``cert_link``.  The field formatters
(``extformat.py``) are small pure functions of a ``CertInfo``; a profile picks them by name
from ``FIELD_FORMATTERS`` and its signature labels from the tables in ``signatures.py``, so a
new profile is a new table entry, not a fork of the builder.

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

from dataclasses import dataclass

# FIELD_FORMATTERS, ExtensionValue and NameRule moved to their own modules; they stay
# importable from here because callers have always found them in this module.
from certstream.core.extformat import FIELD_FORMATTERS, ExtensionValue
from certstream.core.names import NameRule
from certstream.core.oids import OID_C, OID_CN, OID_EMAIL, OID_L, OID_O, OID_OU, OID_ST
from certstream.core.signatures import (
    CALIDOG_PSS,
    CALIDOG_SIGNATURES,
    GO_PSS,
    GO_SIGNATURES,
    RUST_PSS,
    RUST_SIGNATURES,
)
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


# --- name rules ---------------------------------------------------------------------------

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
    strings="easyssl",
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
