"""Who a client is: its address behind a proxy (``real_ip``) and the allow list
(``whitelist``) that address is checked against.

Both follow certstream-server-go, which uses chi's ``RealIP`` middleware and an IP/CIDR
whitelist: the headers are read in chi's order (``True-Client-IP``, ``X-Real-IP``, then the
first entry of ``X-Forwarded-For``), and they are trusted as they come, so ``real_ip``
belongs behind a proxy that sets them.  A header that does not hold an IP address is
ignored (the socket's address stays), so that a malformed header cannot make up a name.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

__all__ = ["AllowList", "forwarded_ip"]

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_SINGLE = (b"true-client-ip", b"x-real-ip")


def _parse(text: str) -> _Address | None:
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:192.0.2.1 is 192.0.2.1 for every rule
    return address


def forwarded_ip(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    """The client address a proxy put in the request headers (names lower-case, as h11
    gives them), or None when none holds an IP address."""
    found: dict[bytes, bytes] = {}
    for name, value in headers:
        if name in _SINGLE or name == b"x-forwarded-for":
            found.setdefault(name, value)
    for name in (*_SINGLE, b"x-forwarded-for"):
        text = found.get(name)
        if text is None:
            continue
        # X-Forwarded-For is "client, proxy1, proxy2": the client is the first.
        address = _parse(text.decode("latin-1").split(",", 1)[0])
        if address is not None:
            return str(address)
    return None


class AllowList:
    """IP addresses and CIDR ranges (``127.0.0.1/8`` is taken as ``127.0.0.0/8``, as Go
    does).  An empty list allows everyone."""

    __slots__ = ("networks",)

    def __init__(self, entries: Iterable[str] = ()) -> None:
        self.networks: tuple[_Network, ...] = tuple(
            ipaddress.ip_network(entry.strip(), strict=False) for entry in entries
        )

    def __bool__(self) -> bool:
        return bool(self.networks)

    def allows(self, ip: str) -> bool:
        if not self.networks:
            return True
        address = _parse(ip)
        if address is None:
            return False  # no address (a Unix socket, say) cannot be on the list
        return any(address in network for network in self.networks)
