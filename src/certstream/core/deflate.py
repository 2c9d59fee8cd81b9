"""permessage-deflate (RFC 7692), compressed once per message for every client.

Negotiation
-----------
``negotiate_deflate`` reads the client's ``Sec-WebSocket-Extensions`` offers and accepts the
first ``permessage-deflate`` offer it can honour, always with ``server_no_context_takeover``
(each message is compressed on its own, so its bytes do not depend on what this client got
before and can be shared) and ``client_no_context_takeover`` (RFC 7692 §7.1.1.2 lets a
server ask for it even when not offered: we then keep no inflate window per client between
messages).  As the RFC says:

* a parameter given twice, an unknown parameter, a value where none is allowed, or a window
  size outside 8..15 makes that offer unacceptable: the next one is tried;
* ``server_max_window_bits=N`` is honoured by compressing with a window of at most 2^N
  bytes and is echoed in the answer; zlib cannot compress with a 256-byte window, so an
  offer of 8 is declined;
* ``client_max_window_bits`` (with or without a value) only allows us to limit the client's
  window; we do not, so it is not echoed (§7.1.2.2) and the client uses its own.

No acceptable offer (or compression switched off) means plain frames, as before.

Compressing once
----------------
``deflate_message`` compresses a payload with a fresh raw-deflate stream and removes the
trailing ``00 00 ff ff`` (§7.2.1), so every message inflates on its own.  The window used is
the smallest that holds the whole payload (at most the client's limit), which gives the same
bytes as any larger window: clients with different ``server_max_window_bits`` therefore share
one compressed frame whenever the payload fits their window.  ``deflate_key`` is that window
size: a hub keeps one compressed frame per (record, stream, ``deflate_key``) and writes the
same bytes to every client with that key (``compressed_frame`` builds it with RSV1 set).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass

# The module, not the function: ``core.frames`` loads the frames twin on first use, and the
# gunicorn master imports this module (through the hub) without ever building a frame.
from certstream.core import frames

__all__ = [
    "DEFLATE_LEVEL",
    "EXTENSION",
    "DeflateParams",
    "compressed_frame",
    "deflate_key",
    "deflate_message",
    "negotiate_deflate",
    "parse_extensions",
]

EXTENSION = "permessage-deflate"
#: zlib's default level: on live40, 0.526 (lite) and 0.523 (full) of the plain bytes on the
#: wire, against 0.534 at level 1 for ~20 % less CPU; the CPU is spent once per record.
DEFLATE_LEVEL = 6
_MIN_BITS, _MAX_BITS = 8, 15
_ZLIB_MIN_BITS = 9  # raw deflate refuses a 256-byte window
_TAIL = b"\x00\x00\xff\xff"
_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


@dataclass(frozen=True, slots=True)
class DeflateParams:
    """What a client and we agreed on: the most window bits our messages may use, and the
    ``Sec-WebSocket-Extensions`` value of our 101 answer."""

    window_bits: int
    header: bytes


# -- header parsing ------------------------------------------------------------------------


class _UnparsableError(ValueError):
    pass


def _token(text: str, i: int) -> tuple[str, int]:
    start = i
    while i < len(text) and text[i] in _TOKEN_CHARS:
        i += 1
    if i == start:
        raise _UnparsableError(f"token expected at {start}")
    return text[start:i], i


def _quoted(text: str, i: int) -> tuple[str, int]:
    out: list[str] = []
    i += 1  # the opening quote
    while i < len(text):
        c = text[i]
        if c == '"':
            return "".join(out), i + 1
        if c == "\\" and i + 1 < len(text):
            i += 1
            c = text[i]
        out.append(c)
        i += 1
    raise _UnparsableError("unterminated quoted string")


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t":
        i += 1
    return i


def parse_extensions(values: Iterable[bytes]) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """Every extension offered, in order: ``(name, [(param, value or None), ...])``.

    ``values`` are the raw header values (the header may be repeated).  Names and parameter
    names are lowercased; quoted values are unquoted.  Unparsable input yields the offers
    read before it (the rest cannot be trusted to mean anything).
    """
    text = ",".join(v.decode("latin-1") for v in values)
    offers: list[tuple[str, list[tuple[str, str | None]]]] = []
    i = 0
    try:
        while True:
            i = _skip_space(text, i)
            if i >= len(text):
                break
            if text[i] == ",":  # empty list elements are allowed (RFC 7230 #rule)
                i += 1
                continue
            name, i = _token(text, i)
            params: list[tuple[str, str | None]] = []
            i = _skip_space(text, i)
            while i < len(text) and text[i] == ";":
                i = _skip_space(text, i + 1)
                key, i = _token(text, i)
                i = _skip_space(text, i)
                value: str | None = None
                if i < len(text) and text[i] == "=":
                    i = _skip_space(text, i + 1)
                    if i < len(text) and text[i] == '"':
                        value, i = _quoted(text, i)
                    else:
                        value, i = _token(text, i)
                    i = _skip_space(text, i)
                params.append((key.lower(), value))
            offers.append((name.lower(), params))
            if i < len(text) and text[i] != ",":
                raise _UnparsableError(f"unexpected {text[i]!r}")
    except _UnparsableError:
        pass
    return offers


def _window_bits(value: str | None) -> int | None:
    """8..15 as the RFC spells it (no sign, no leading zero), else None."""
    if value is None or not value.isdigit() or value != str(int(value)):
        return None
    bits = int(value)
    return bits if _MIN_BITS <= bits <= _MAX_BITS else None


def _accept(params: list[tuple[str, str | None]]) -> DeflateParams | None:
    seen: set[str] = set()
    server_bits: int | None = None
    for key, value in params:
        if key in seen:
            return None  # §7: a parameter given twice makes the offer invalid
        seen.add(key)
        if key in ("server_no_context_takeover", "client_no_context_takeover"):
            if value is not None:
                return None
        elif key == "server_max_window_bits":
            server_bits = _window_bits(value)
            if server_bits is None:
                return None
        elif key == "client_max_window_bits":
            if value is not None and _window_bits(value) is None:
                return None
        else:
            return None  # an unknown parameter: decline this offer
    if server_bits is not None and server_bits < _ZLIB_MIN_BITS:
        return None  # we cannot compress with a 256-byte window
    header = EXTENSION + "; server_no_context_takeover; client_no_context_takeover"
    if server_bits is not None:
        header += f"; server_max_window_bits={server_bits}"
    return DeflateParams(server_bits or _MAX_BITS, header.encode("ascii"))


def negotiate_deflate(values: Iterable[bytes]) -> DeflateParams | None:
    """Our answer to the ``Sec-WebSocket-Extensions`` header values, or ``None`` for plain
    frames (see the module docstring)."""
    for name, params in parse_extensions(values):
        if name == EXTENSION:
            accepted = _accept(params)
            if accepted is not None:
                return accepted
    return None


# -- compressing ---------------------------------------------------------------------------


def deflate_key(length: int, window_bits: int = _MAX_BITS) -> int:
    """The window a payload of ``length`` bytes is compressed with for a client allowed
    ``window_bits``: equal keys mean equal compressed bytes."""
    needed = max(_ZLIB_MIN_BITS, (length - 1).bit_length())
    return min(needed, window_bits)


def deflate_message(payload: bytes, window_bits: int = _MAX_BITS) -> bytes:
    """``payload`` compressed on its own (no context), as a permessage-deflate message body."""
    bits = deflate_key(len(payload), window_bits)
    comp = zlib.compressobj(DEFLATE_LEVEL, zlib.DEFLATED, -bits)
    data = comp.compress(payload) + comp.flush(zlib.Z_SYNC_FLUSH)
    return data[:-4] if data.endswith(_TAIL) else data


def compressed_frame(payload: bytes, window_bits: int = _MAX_BITS) -> bytes:
    """The whole text frame (FIN, RSV1) carrying ``payload`` compressed: built once, sent to
    every client whose ``deflate_key`` for this payload is the same."""
    return frames.ws_compressed_frame(deflate_message(payload, window_bits))
