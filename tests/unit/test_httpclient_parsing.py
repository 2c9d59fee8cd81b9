"""The HTTP client's pure parts: Retry-After values and bounded gunzip (the client over real
sockets is tests/integration/test_httpclient.py)."""

from __future__ import annotations

import email.utils
import gzip

import pytest

from certstream.shell.httpclient import (
    BodyTooLargeError,
    HTTPProtocolError,
    gunzip,
    parse_retry_after,
)


def test_parse_retry_after() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("30", now) == 30.0
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("soon", now) is None
    date = email.utils.formatdate(now + 90, usegmt=True)
    got = parse_retry_after(date, now)
    assert got is not None and abs(got - 90) < 1.01
    assert parse_retry_after(email.utils.formatdate(now - 90, usegmt=True), now) == 0.0


def test_gunzip_multi_member_and_limits() -> None:
    data = gzip.compress(b"ab") + gzip.compress(b"cd")
    assert gunzip(data, 10) == b"abcd"
    with pytest.raises(BodyTooLargeError):
        gunzip(gzip.compress(b"x" * 100), 50)
    with pytest.raises(HTTPProtocolError):
        gunzip(gzip.compress(b"x" * 100)[:-10], 1000)
