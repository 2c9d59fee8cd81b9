"""certstream: follow every trusted Certificate Transparency log and stream each new
certificate to WebSocket and SSE clients, frame-compatible with certstream-server-go,
the CaliDog server and certstream-server-rust.

This module is the public API of the sans-IO core (h11 style: everything else is an
implementation detail).  Decode CT data into ``LogEntry`` objects, build each stream's
payload bytes with ``MessageBuilder``, deduplicate with ``DedupRing``, frame them with
``ws_frame``/``sse_event``; the server itself is ``certstream.shell`` and the ``certstream``
command.

The names are loaded on first use (PEP 562): importing any module of the package runs this
one first, and a process that needs only ``certstream.config`` (the gunicorn master) must
not pay for the certificate parser, the decoders and cryptography.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from certstream._version import __version__
from certstream.errors import (
    CertstreamError,
    ConfigError,
    DecodeError,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
)

if TYPE_CHECKING:
    from certstream.core.checkpoint import Checkpoint, parse_checkpoint, verify_checkpoint
    from certstream.core.dedup import DedupRing
    from certstream.core.frames import sse_event, ws_close_frame, ws_frame, ws_ping_frame
    from certstream.core.leaves import decode_entry, decode_get_entries
    from certstream.core.loglist import LogInfo, parse_log_list, select_logs, verify_google_list
    from certstream.core.messages import MessageBuilder, Payloads
    from certstream.core.model import CertInfo, LogEntry, LogSource
    from certstream.core.profiles import PROFILES
    from certstream.core.sth import verify_sth
    from certstream.core.streams import STREAM_ALL, STREAM_DOMAINS, STREAM_FULL, STREAM_LITE
    from certstream.core.tiles import TileLeaf, maybe_gunzip, parse_data_tile, tile_path
    from certstream.core.x509 import parse_certificate, parse_tbs

__all__ = [
    "PROFILES",
    "STREAM_ALL",
    "STREAM_DOMAINS",
    "STREAM_FULL",
    "STREAM_LITE",
    "CertInfo",
    "CertstreamError",
    "Checkpoint",
    "ConfigError",
    "DecodeError",
    "DedupRing",
    "LocalProtocolError",
    "LogEntry",
    "LogInfo",
    "LogSource",
    "MessageBuilder",
    "Payloads",
    "ProtocolError",
    "RemoteProtocolError",
    "TileLeaf",
    "__version__",
    "decode_entry",
    "decode_get_entries",
    "maybe_gunzip",
    "parse_certificate",
    "parse_checkpoint",
    "parse_data_tile",
    "parse_log_list",
    "parse_tbs",
    "select_logs",
    "sse_event",
    "tile_path",
    "verify_checkpoint",
    "verify_google_list",
    "verify_sth",
    "ws_close_frame",
    "ws_frame",
    "ws_ping_frame",
]

# Public name -> the module that defines it (the same pairs as the imports above).
_LAZY = {
    "Checkpoint": "certstream.core.checkpoint",
    "parse_checkpoint": "certstream.core.checkpoint",
    "verify_checkpoint": "certstream.core.checkpoint",
    "DedupRing": "certstream.core.dedup",
    "sse_event": "certstream.core.frames",
    "ws_close_frame": "certstream.core.frames",
    "ws_frame": "certstream.core.frames",
    "ws_ping_frame": "certstream.core.frames",
    "decode_entry": "certstream.core.leaves",
    "decode_get_entries": "certstream.core.leaves",
    "LogInfo": "certstream.core.loglist",
    "parse_log_list": "certstream.core.loglist",
    "select_logs": "certstream.core.loglist",
    "verify_google_list": "certstream.core.loglist",
    "MessageBuilder": "certstream.core.messages",
    "Payloads": "certstream.core.messages",
    "CertInfo": "certstream.core.model",
    "LogEntry": "certstream.core.model",
    "LogSource": "certstream.core.model",
    "PROFILES": "certstream.core.profiles",
    "verify_sth": "certstream.core.sth",
    "STREAM_ALL": "certstream.core.streams",
    "STREAM_DOMAINS": "certstream.core.streams",
    "STREAM_FULL": "certstream.core.streams",
    "STREAM_LITE": "certstream.core.streams",
    "TileLeaf": "certstream.core.tiles",
    "maybe_gunzip": "certstream.core.tiles",
    "parse_data_tile": "certstream.core.tiles",
    "tile_path": "certstream.core.tiles",
    "parse_certificate": "certstream.core.x509",
    "parse_tbs": "certstream.core.x509",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
