"""certstream: follow every trusted Certificate Transparency log and stream each new
certificate to WebSocket and SSE clients, frame-compatible with certstream-server-go,
the CaliDog server and certstream-server-rust.

This module is the public API of the sans-IO core (h11 style: everything else is an
implementation detail).  Decode CT data into ``LogEntry`` objects, build each stream's
payload bytes with ``MessageBuilder``, deduplicate with ``DedupRing``, frame them with
``ws_frame``/``sse_event``; the server itself is ``certstream.shell`` and the ``certstream``
command.
"""

from __future__ import annotations

from certstream.core.checkpoint import Checkpoint, parse_checkpoint, verify_checkpoint
from certstream.core.dedup import DedupRing
from certstream.core.frames import sse_event, ws_close_frame, ws_frame, ws_ping_frame
from certstream.core.leaves import decode_entry, decode_get_entries
from certstream.core.loglist import LogInfo, parse_log_list, select_logs, verify_google_list
from certstream.core.messages import (
    STREAM_ALL,
    STREAM_DOMAINS,
    STREAM_FULL,
    STREAM_LITE,
    MessageBuilder,
    Payloads,
)
from certstream.core.model import CertInfo, LogEntry, LogSource
from certstream.core.profiles import PROFILES
from certstream.core.sth import verify_sth
from certstream.core.tiles import TileLeaf, maybe_gunzip, parse_data_tile, tile_path
from certstream.core.x509 import parse_certificate, parse_tbs
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
