"""What filters are made of: a client's canonical ``FilterSpec`` and a record's ``MatchFields``.

Plain types shared by the filter index (``core.filters``) and the matcher it compiles
(``core.filter_engine``), with the codec of the feed record's filter field: the ingest
builds ``MatchFields`` once per entry, where the names, the issuer and the log are at hand.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from certstream.errors import RemoteProtocolError

__all__ = [
    "FilterSpec",
    "MatchFields",
    "decode_match_fields",
    "encode_match_fields",
    "entry_fields",
    "match_fields",
    "match_fields_of_message",
]

# Names are joined with "\n" for one scan; "\0" separates the fields of the encoded record.
# Neither can be in a DNS name: a certificate that carries one anyway gets U+FFFD there.
_SEPARATORS = str.maketrans({"\n": "\ufffd", "\0": "\ufffd"})


@dataclass(frozen=True, slots=True)
class FilterSpec:
    """One client's filter, canonical: each kind's values lowercased (``domain_re`` as
    written), deduplicated and sorted, so that equal filters are equal (and hash alike)
    whatever the order and case of the query parameters."""

    domains: tuple[str, ...] = ()
    domain_res: tuple[str, ...] = ()
    issuers: tuple[str, ...] = ()
    logs: tuple[str, ...] = ()

    @property
    def patterns(self) -> int:
        return len(self.domains) + len(self.domain_res) + len(self.issuers) + len(self.logs)

    def query(self) -> str:
        """The canonical query string (for logs and for the live page)."""
        pairs = [("domain", v) for v in self.domains]
        pairs += [("domain_re", v) for v in self.domain_res]
        pairs += [("issuer", v) for v in self.issuers]
        pairs += [("log", v) for v in self.logs]
        return urlencode(pairs)


# -- what a record offers the filters ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MatchFields:
    """One record as the filters see it, every field lowercased.

    ``names`` is ``all_domains`` joined with ``"\\n"``; ``issuer`` the issuer's
    ``aggregated``; ``log`` the log's name and URL joined with ``"\\n"``.
    """

    names: str
    issuer: str
    log: str


def match_fields(
    all_domains: Iterable[str], issuer: str, log_name: str, log_url: str
) -> MatchFields:
    """``MatchFields`` from the values the payloads show (``all_domains``, the issuer's
    ``aggregated``, the ``source`` name and URL)."""
    names = "\n".join(name.translate(_SEPARATORS) for name in all_domains).lower()
    log_text = (log_name.translate(_SEPARATORS) + "\n" + log_url.translate(_SEPARATORS)).lower()
    return MatchFields(names, issuer.translate(_SEPARATORS).lower(), log_text)


def match_fields_of_message(message: Mapping[str, Any]) -> MatchFields:
    """``MatchFields`` of a parsed lite or full message (``certificate_update``).

    For records that come without the filter field (and for tests and benchmarks): the
    worker does not parse JSON per record when the feed carries ``encode_match_fields``.
    """
    data = message.get("data") or {}
    leaf = data.get("leaf_cert") or {}
    issuer = leaf.get("issuer") or {}
    source = data.get("source") or {}
    return match_fields(
        [str(name) for name in leaf.get("all_domains") or ()],
        str(issuer.get("aggregated") or ""),
        str(source.get("name") or ""),
        str(source.get("url") or ""),
    )


def encode_match_fields(
    all_domains: Iterable[str], issuer: str, log_name: str, log_url: str
) -> bytes:
    """The feed record's filter field: ``issuer \\0 log-name \\n log-url \\0 names``, UTF-8.

    Built once per entry by the ingest, and only while some worker has a filtered client.
    """
    fields = match_fields(all_domains, issuer, log_name, log_url)
    return "\0".join((fields.issuer, fields.log, fields.names)).encode("utf-8", "replace")


def decode_match_fields(raw: bytes) -> MatchFields:
    """The inverse of ``encode_match_fields``; bad bytes are a ``RemoteProtocolError``."""
    try:
        issuer, log_text, names = raw.decode("utf-8").split("\0")
    except (UnicodeDecodeError, ValueError):
        raise RemoteProtocolError("malformed filter field in a feed record") from None
    return MatchFields(names, issuer, log_text)


def entry_fields(
    fields: bytes | None, lite: bytes | None, full: bytes | None, domains: bytes | None
) -> MatchFields | None:
    """What the filters match in one feed entry: its filter field or, for the few entries
    the ingest built before it learnt that a worker filters, the same values read from a
    payload (a domains payload has no issuer or log: only domain filters can match it).
    ``None`` for a record the filters cannot read (it then matches none of them)."""
    try:
        if fields is not None:
            return decode_match_fields(fields)
        message = lite if lite is not None else full
        if message is not None:
            return match_fields_of_message(json.loads(message))
        if domains is not None:
            names = json.loads(domains).get("data") or ()
            return match_fields([str(name) for name in names], "", "", "")
    except (RemoteProtocolError, ValueError, AttributeError, TypeError):
        pass
    return None
