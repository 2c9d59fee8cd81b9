"""Signature-algorithm labels: the ``signature_algorithm`` text of each peer, by OID.

A profile takes one table for the plain algorithms and one for RSASSA-PSS, which is keyed by
the hash OID of its parameters (``""`` when the parser found none).
"""

from __future__ import annotations

__all__ = [
    "CALIDOG_PSS",
    "CALIDOG_SIGNATURES",
    "GO_PSS",
    "GO_SIGNATURES",
    "RUST_PSS",
    "RUST_SIGNATURES",
]

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
