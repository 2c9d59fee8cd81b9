"""Object identifiers and GeneralName tags that the output formatters key on.

Dotted-decimal text, as ``model.CertInfo`` and ``model.NameAttr`` carry them.  Only the
identifiers some peer's output depends on are here; the signature-algorithm identifiers live
with their labels in ``signatures.py``.
"""

from __future__ import annotations

__all__ = [
    "GN_DIRNAME",
    "GN_DNS",
    "GN_EMAIL",
    "GN_IP",
    "GN_URI",
    "OID_AIA",
    "OID_AKI",
    "OID_BC",
    "OID_C",
    "OID_CA_ISSUERS",
    "OID_CN",
    "OID_CP",
    "OID_CPS",
    "OID_CRLDP",
    "OID_EKU",
    "OID_EMAIL",
    "OID_IAN",
    "OID_KU",
    "OID_L",
    "OID_O",
    "OID_OCSP",
    "OID_OU",
    "OID_POISON",
    "OID_PSS",
    "OID_SAN",
    "OID_SCT",
    "OID_SKI",
    "OID_ST",
    "OID_STREET",
    "OID_USER_NOTICE",
]

# RSASSA-PSS: its hash is in the AlgorithmIdentifier parameters, not the OID.
OID_PSS = "1.2.840.113549.1.1.10"

# Name attributes.
OID_CN = "2.5.4.3"
OID_C = "2.5.4.6"
OID_L = "2.5.4.7"
OID_ST = "2.5.4.8"
OID_STREET = "2.5.4.9"
OID_O = "2.5.4.10"
OID_OU = "2.5.4.11"
OID_EMAIL = "1.2.840.113549.1.9.1"

# Extensions.
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

# AIA access methods and policy qualifiers.
OID_OCSP = "1.3.6.1.5.5.7.48.1"
OID_CA_ISSUERS = "1.3.6.1.5.5.7.48.2"
OID_CPS = "1.3.6.1.5.5.7.2.1"
OID_USER_NOTICE = "1.3.6.1.5.5.7.2.2"

# GeneralName CHOICE tags (see model.CertInfo).
GN_EMAIL, GN_DNS, GN_DIRNAME, GN_URI, GN_IP = 1, 2, 4, 6, 7
