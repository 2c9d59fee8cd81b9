"""The client address behind a proxy (real_ip) and the whitelist, as certstream-server-go
reads them (chi's RealIP order, IPs and CIDR ranges)."""

from __future__ import annotations

import pytest

from certstream.core.clientip import AllowList, forwarded_ip


@pytest.mark.parametrize(("headers", "ip"), [
    ([(b"x-forwarded-for", b"192.0.2.1, 10.0.0.1")], "192.0.2.1"),
    ([(b"x-real-ip", b"192.0.2.2"), (b"x-forwarded-for", b"192.0.2.1")], "192.0.2.2"),
    ([(b"x-forwarded-for", b"192.0.2.1"), (b"true-client-ip", b"192.0.2.3"),
      (b"x-real-ip", b"192.0.2.2")], "192.0.2.3"),
    ([(b"x-real-ip", b"not an ip"), (b"x-forwarded-for", b"2001:db8::1")], "2001:db8::1"),
    ([(b"x-real-ip", b"::ffff:192.0.2.4")], "192.0.2.4"),
    ([(b"x-forwarded-for", b"unknown")], None),
    ([(b"host", b"example")], None),
])
def test_forwarded_ip(headers: list[tuple[bytes, bytes]], ip: str | None) -> None:
    assert forwarded_ip(headers) == ip


def test_allow_list() -> None:
    allow = AllowList(["127.0.0.1/8", "192.0.2.7", "2001:db8::/32"])
    assert allow
    assert allow.allows("127.9.9.9") and allow.allows("192.0.2.7")
    assert allow.allows("::ffff:127.0.0.1") and allow.allows("2001:db8::5")
    assert not allow.allows("192.0.2.8") and not allow.allows("::1")
    assert not allow.allows("") and not allow.allows("garbage")
    everyone = AllowList()
    assert not everyone and everyone.allows("203.0.113.1") and everyone.allows("")
