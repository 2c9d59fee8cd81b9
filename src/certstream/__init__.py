"""certstream: follow every trusted Certificate Transparency log and stream each new
certificate to WebSocket and SSE clients, frame-compatible with certstream-server-go,
the CaliDog server and certstream-server-rust."""

from __future__ import annotations

from certstream.errors import (
    CertstreamError,
    ConfigError,
    DecodeError,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
)

__version__ = "0.1.0"

__all__ = [
    "CertstreamError",
    "ConfigError",
    "DecodeError",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "__version__",
]
