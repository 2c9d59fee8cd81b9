"""What a setting's value may be: the checks, and the field metadata that pairs each one with
the words of the error naming what is allowed.

A field of ``certstream.config.schema`` carries one of these as its metadata (``check``,
``allowed``, ``items``); ``certstream.config.convert`` applies it to the converted value.
The predicates are shared with the loaders (``certstream.config.gokeys`` checks the
certstream-server-go keys it reads with them).
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Callable
from typing import Any

__all__ = [
    "BROKER_URL",
    "HTTP_URL",
    "HTTP_URLS",
    "IPS_OR_CIDRS",
    "NON_EMPTY",
    "NON_NEGATIVE",
    "OPTIONAL_INDEX",
    "OPTIONAL_POSITIVE",
    "PORT_OR_ZERO",
    "POSITIVE",
    "POSITIVE_FLOAT",
    "SPKI_KEY",
    "URL_PATH",
    "Check",
    "at_least",
    "between",
    "close_code_ok",
    "is_ip_or_cidr",
    "is_url_path",
    "normalize_path",
    "one_of",
    "rule",
]

Check = Callable[[Any], bool]


def rule(check: Check, allowed: str | Callable[[], str], *, items: bool = False) -> dict[str, Any]:
    # ``items``: the check applies to each element of a tuple, so the error can name the element.
    return {"check": check, "allowed": allowed, "items": items}


def between(lo: int, hi: int) -> dict[str, Any]:
    return rule(lambda v: lo <= v <= hi, f"an integer from {lo} to {hi}")


def at_least(lo: float) -> dict[str, Any]:
    return rule(lambda v: v >= lo, f"a value >= {lo}")


def one_of(*choices: str) -> dict[str, Any]:
    return rule(lambda v: v in choices, "one of " + ", ".join(choices))


def _is_http_url(v: str) -> bool:
    scheme, sep, rest = v.partition("://")
    return bool(sep) and scheme.lower() in ("http", "https") and bool(rest.split("/")[0])


def _is_spki_b64(v: str) -> bool:
    try:
        der = base64.b64decode(v, validate=True)
    except ValueError:
        return False
    return len(der) > 2 and der[0] == 0x30  # an SPKI is a DER SEQUENCE


def is_ip_or_cidr(v: str) -> bool:
    """An IP address or a CIDR range (host bits may be set: ``127.0.0.1/8``, as Go allows)."""
    try:
        ipaddress.ip_network(v.strip(), strict=False)
    except ValueError:
        return False
    return True


_PATH_RE = re.compile(r"^/(?:[A-Za-z0-9._~-]+/?)*$")


def is_url_path(v: str) -> bool:
    """A request path: ``/`` or ``/seg/seg``, one trailing slash allowed."""
    return bool(_PATH_RE.match(v))


def normalize_path(path: str) -> str:
    """The path a request for ``path`` routes by: without its trailing slash (``/`` stays)."""
    return path.rstrip("/") or "/"


def close_code_ok(v: int) -> bool:
    # 1004-1006 and 1015 are reserved: they must never be sent on the wire (RFC 6455 7.4.1).
    return (1000 <= v <= 1014 and v not in (1004, 1005, 1006)) or 3000 <= v <= 4999


POSITIVE = at_least(1)
NON_NEGATIVE = at_least(0)
POSITIVE_FLOAT = rule(lambda v: v > 0, "a number > 0")
NON_EMPTY = rule(bool, "a non-empty string")
HTTP_URL = rule(_is_http_url, "an http:// or https:// URL")
HTTP_URLS = rule(_is_http_url, "http:// or https:// URLs", items=True)
OPTIONAL_POSITIVE = rule(lambda v: v is None or v >= 1, "empty or an integer >= 1")
OPTIONAL_INDEX = rule(lambda v: v is None or v >= 0, "empty or an integer >= 0")
SPKI_KEY = rule(lambda v: v is None or _is_spki_b64(v), "base64 of the log's SPKI DER")
URL_PATH = rule(is_url_path, "a path such as /full-stream (letters, digits, - . _ ~ and /)")
IPS_OR_CIDRS = rule(is_ip_or_cidr, "IP addresses or CIDR ranges", items=True)
PORT_OR_ZERO = rule(lambda v: 0 <= v <= 65535,
                    "0 (on the main listener) or an integer from 1 to 65535")


def _is_broker_url(v: str) -> bool:
    if not v:
        return True  # checked against role in crosschecks.cross_checks
    from certstream.core.brokerurl import parse_broker_url  # noqa: PLC0415 - only when set

    try:
        parse_broker_url(v)
    except ValueError:
        return False
    return True


BROKER_URL = rule(
    _is_broker_url,
    "redis://host:port/db or redis+sentinel://host:port[,host:port]/service_name/db",
)
