"""The harness's own reading of the server-side filter parameters, to judge filtered streams.

``python -m conformance run --filter QUERY`` connects, beside each unfiltered client, one
client per stream with ``QUERY`` added to its path, and expects of it exactly the golden
frames this module selects: written from the parameters' definition, on the parsed golden
frame, and independent of the server's own matcher (``certstream.core.filters``), so that a
bug there cannot hide behind the same bug here.

``domain=GLOB``
    any name of ``all_domains`` equals the glob, case-insensitively, where ``*`` stands for
    any run of characters (dots included) and nothing else is special;
``domain_re=REGEX``
    the expression is found in some name, case-insensitively (Python's ``re``: keep to the
    syntax RE2 and Python share; ``^``/``$`` anchor at the name's ends);
``issuer=TEXT``
    the text is in the issuer's ``aggregated``, case-insensitively;
``log=TEXT``
    the text is in the ``source`` name or URL, case-insensitively.

Each may repeat (any value matches); different kinds must all match.  Other parameters
(``stream=``) are left alone.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

__all__ = ["FilterQuery", "with_query"]

_KINDS = ("domain", "domain_re", "issuer", "log")


def _glob(glob: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else re.escape(c) for c in glob.lower()),
                      re.DOTALL)


@dataclass(frozen=True)
class FilterQuery:
    """One query string's filter, ready to judge golden frames."""

    query: str
    globs: tuple[re.Pattern[str], ...]
    regexes: tuple[re.Pattern[str], ...]
    issuers: tuple[str, ...]
    logs: tuple[str, ...]

    @classmethod
    def parse(cls, query: str) -> FilterQuery:
        values: dict[str, list[str]] = {kind: [] for kind in _KINDS}
        for key, value in parse_qsl(query.lstrip("?"), keep_blank_values=True):
            if key in values:
                values[key].append(value)
        if not any(values.values()):
            raise ValueError(f"no filter parameter in {query!r} (domain, domain_re, issuer, log)")
        return cls(
            query.lstrip("?"),
            tuple(_glob(g) for g in values["domain"]),
            tuple(re.compile(r, re.IGNORECASE) for r in values["domain_re"]),
            tuple(v.lower() for v in values["issuer"]),
            tuple(v.lower() for v in values["log"]),
        )

    def matches(self, message: dict[str, Any]) -> bool:
        """Whether a ``certificate_update`` message passes the filter."""
        data = message.get("data") or {}
        leaf = data.get("leaf_cert") or {}
        names = [str(n) for n in leaf.get("all_domains") or ()]
        if self.globs and not any(g.fullmatch(n.lower()) for g in self.globs for n in names):
            return False
        if self.regexes and not any(r.search(n) for r in self.regexes for n in names):
            return False
        issuer = str((leaf.get("issuer") or {}).get("aggregated") or "").lower()
        if self.issuers and not any(text in issuer for text in self.issuers):
            return False
        source = data.get("source") or {}
        where = (str(source.get("name") or "").lower(), str(source.get("url") or "").lower())
        return not self.logs or any(text in part for text in self.logs for part in where)

    def matches_text(self, frame: str) -> bool:
        return self.matches(json.loads(frame))


def with_query(target: str, query: str) -> str:
    """``target`` with ``query``'s parameters added (``/sse?stream=full`` + ``a=b`` ->
    ``/sse?stream=full&a=b``)."""
    return target + ("&" if "?" in target else "?") + query.lstrip("?")
