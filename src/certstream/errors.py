"""The error hierarchy, modelled on h11: who is at fault, and what the caller should do.

``LocalProtocolError``
    We misused an API (a bug in certstream, or a bad argument).  Never caused by remote bytes.
``RemoteProtocolError``
    A remote party sent bytes we cannot accept: a CT log, a client.  Each carries a hint
    of the proper answer: an HTTP status for a request, a WebSocket close code for a frame.
``DecodeError``
    A CT response, leaf, tile or certificate could not be decoded.  The right reaction is to
    count it, log it with its log and index, and skip that entry alone.
``FilterError``
    A client's filter query parameters are unusable (too many patterns, a pattern too long,
    a regular expression RE2 refuses).  It is answered with 400 and ``json_body()`` before
    any upgrade, so the client learns why and nothing else happens.
``ConfigError``
    A configuration value is invalid.  ``str(err)`` is the one line printed before exiting;
    it names the key, the value and what is allowed.
"""

from __future__ import annotations

import json

__all__ = [
    "CertstreamError",
    "ConfigError",
    "DecodeError",
    "FilterError",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
]


class CertstreamError(Exception):
    """Base class of every error certstream raises on purpose."""


class ProtocolError(CertstreamError):
    """Something broke a protocol rule; see the subclasses for who did."""

    def __init__(self, msg: str, *, status_hint: int = 400, close_code: int = 1002) -> None:
        super().__init__(msg)
        self.status_hint = status_hint
        self.close_code = close_code


class LocalProtocolError(ProtocolError):
    """We tried to do something the protocol forbids."""


class RemoteProtocolError(ProtocolError):
    """The remote side sent something the protocol forbids."""


class DecodeError(RemoteProtocolError):
    """A CT entry, tile, response or certificate could not be decoded.

    ``index`` is the log index of the entry when known, so that the caller can report
    exactly which entry was skipped.
    """

    def __init__(self, msg: str, *, index: int | None = None) -> None:
        super().__init__(msg, status_hint=502, close_code=1011)
        self.index = index


class FilterError(RemoteProtocolError):
    """A bad filter query parameter: ``param`` names it, the message says what is allowed."""

    def __init__(self, msg: str, *, param: str = "") -> None:
        super().__init__(msg, status_hint=400, close_code=1008)
        self.param = param

    def json_body(self) -> bytes:
        """``{"error":"bad filter","param":...,"reason":...}``: the body of the 400."""
        return json.dumps(
            {"error": "bad filter", "param": self.param, "reason": str(self)},
            separators=(",", ":"),
        ).encode()


class ConfigError(CertstreamError):
    """An invalid configuration value: the message is the one line shown to the user."""

    def __init__(self, key: str, value: object, allowed: str) -> None:
        super().__init__(f"config error: {key}={value!r}: {allowed}")
        self.key = key
        self.value = value
        self.allowed = allowed
