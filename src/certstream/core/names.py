"""Subject and issuer names: the ``NameRule`` a profile picks, and the text it gives.

A certificate's name arrives flattened (``model.NameAttr`` in RDN order); ``name_values``
keeps the attributes a rule knows and resolves repeats the way that rule's peer does, and
``aggregated`` writes the ``/K=V`` string.  The rules themselves are profile data and live in
``profiles.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from certstream.core.model import NameAttr

__all__ = ["NameRule", "aggregated", "name_values"]


@dataclass(frozen=True, slots=True)
class NameRule:
    """How a subject or issuer object is written.

    ``keys`` is the output order, ``"aggregated"`` included; every other key maps to an
    attribute OID in ``oids``.  ``multi`` is ``"join"`` (all values joined with ``","``,
    Go) or ``"last"`` (the last value wins); keys in ``single`` take the last value even when
    joining (Go's CommonName is one string).  ``absent`` is ``"null"`` or ``"omit"``.
    ``cn_always`` makes CN ``""`` instead of absent (Go's CommonName is a plain string).
    ``aggregated`` lists the keys of the ``/K=V`` string, in order; ``aggregated_empty``
    is what an empty one is written as.  ``strings`` is ``"decoded"`` (the parser's text of
    each value) or ``"easyssl"`` (EasySSL's text, read again from the DER by
    ``easyssl.name_attrs``: byte strings as Latin-1, BMPString as ``""``).
    """

    keys: tuple[str, ...]
    oids: tuple[tuple[str, str], ...]
    multi: str
    single: tuple[str, ...]
    absent: str
    cn_always: bool
    aggregated: tuple[str, ...]
    aggregated_empty: str
    strings: str = "decoded"


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
    """The ``/K=V`` string of ``rule.aggregated``'s present keys, in that order."""
    parts = [f"/{key}={values[key]}" for key in rule.aggregated if key in values]
    return "".join(parts) if parts else rule.aggregated_empty
