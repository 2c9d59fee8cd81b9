"""Plain data that flows through the core: decoded log entries and certificate fields.

These are frozen, slotted dataclasses (as h11's events are).  Decoders produce them;
message builders consume them.  Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = [
    "PRECERT_ENTRY",
    "X509_ENTRY",
    "CertInfo",
    "Extension",
    "LogEntry",
    "LogSource",
    "NameAttr",
    "Policy",
]

X509_ENTRY = 0
PRECERT_ENTRY = 1


@dataclass(frozen=True, slots=True)
class LogSource:
    """A CT log as the message builder needs it.

    ``url`` is the log's URL as configured or listed: for RFC 6962 logs the log URL, for
    static-ct-api logs the monitoring prefix; with or without a trailing slash (each output
    profile normalizes it its own way).  ``kind`` is ``"rfc6962"`` or ``"static"``.
    """

    name: str
    url: str
    kind: str = "rfc6962"
    operator: str = ""


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One decoded CT log entry, from get-entries or from a data tile.

    ``cert_der``
        x509 entries: the leaf certificate.  Precert entries: the ``pre_certificate`` (the
        full, signed precertificate with the poison extension), which is what the peers
        display and hash.
    ``tbs_der``
        Precert entries only: the TBSCertificate from the leaf (poison removed, issuer
        possibly rewritten).  ``None`` for x509 entries.
    ``chain``
        The issuer certificates' DER, leaf excluded, in log order; may be empty.
    ``merkle_leaf``
        The RFC 6962 MerkleTreeLeaf bytes (the ``leaf_input``); ``leaf_hash()`` hashes it.
    ``timestamp``
        The leaf's timestamp, milliseconds since the epoch.
    """

    index: int
    timestamp: int
    entry_type: int
    cert_der: bytes
    tbs_der: bytes | None
    issuer_key_hash: bytes | None
    chain: tuple[bytes, ...]
    merkle_leaf: bytes

    @property
    def is_precert(self) -> bool:
        return self.entry_type == PRECERT_ENTRY

    def leaf_hash(self) -> bytes:
        """RFC 6962 leaf hash: SHA-256(0x00 || MerkleTreeLeaf)."""
        return hashlib.sha256(b"\x00" + self.merkle_leaf).digest()


@dataclass(frozen=True, slots=True)
class NameAttr:
    """One attribute of a distinguished name, in DER order (RDNs flattened).

    ``oid`` is dotted text (``"2.5.4.3"``); ``value`` is the decoded string, ``""`` when its
    string type could not be decoded (and the problem is recorded on the ``CertInfo``).
    """

    oid: str
    value: str


@dataclass(frozen=True, slots=True)
class Extension:
    """One X.509v3 extension, undecoded: OID, critical flag and the extnValue contents."""

    oid: str
    critical: bool
    value: bytes


@dataclass(frozen=True, slots=True)
class Policy:
    """A certificatePolicies entry: the policy OID and its qualifiers in order.

    Each qualifier is ``(qualifier_oid, text)``: for CPS (1.3.6.1.5.5.7.2.1) the URI, for
    User Notice (1.3.6.1.5.5.7.2.2) the explicitText (``""`` if none).
    """

    oid: str
    qualifiers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class CertInfo:
    """Every field of a certificate (or a precert's TBSCertificate) that any profile prints.

    Produced by ``certstream.core.x509.parse_certificate`` / ``parse_tbs`` from a lenient DER
    walk.  A field that cannot be read is left at its empty value and a short text naming it
    is appended to ``problems``; the entry is still emitted.

    GeneralNames (``san``, ``ian``) are ``(tag, value)`` pairs in certificate order, with the
    context tag of the CHOICE: 1 rfc822Name, 2 dNSName and 6 URI carry ``str`` (IA5 text,
    decoded as UTF-8 with replacement), 7 iPAddress carries the raw 4 or 16 ``bytes``, other
    tags (otherName 0, x400Address 3, directoryName 4, ediPartyName 5, registeredID 8) carry
    ``b""``.
    """

    der: bytes
    version: int = 1  # 1, 2 or 3 (the DER value plus one)
    serial: int | None = None  # signed, as encoded
    signature_oid: str = ""  # TBSCertificate.signature algorithm OID
    signature_hash_oid: str = ""  # RSASSA-PSS: the hashAlgorithm OID of its parameters
    issuer: tuple[NameAttr, ...] = ()
    subject: tuple[NameAttr, ...] = ()
    not_before: int | None = None  # Unix seconds
    not_after: int | None = None
    spki: bytes = b""  # the SubjectPublicKeyInfo element, DER (tag and length included)
    extensions: tuple[Extension, ...] = ()
    # Decoded extension contents; empty when the extension is absent or unreadable.
    is_ca: bool | None = None  # basicConstraints cA; None when there is no basicConstraints
    path_len: int | None = None
    key_usage: int | None = None  # bit i set <=> named bit i (0 digitalSignature ... 8)
    ext_key_usage: tuple[str, ...] = ()  # KeyPurposeId OIDs in certificate order
    san: tuple[tuple[int, str | bytes], ...] = ()
    ian: tuple[tuple[int, str | bytes], ...] = ()
    aia: tuple[tuple[str, str], ...] = ()  # (accessMethod OID, URI) in certificate order
    aki_keyid: bytes | None = None
    ski: bytes | None = None
    policies: tuple[Policy, ...] = ()
    crl_dps: tuple[str, ...] = ()  # fullName URIs of every distribution point, in order
    has_poison: bool = False  # CT poison extension 1.3.6.1.4.1.11129.2.4.3 present
    sct_list: bytes | None = None  # extnValue contents of 1.3.6.1.4.1.11129.2.4.2
    problems: tuple[str, ...] = ()
