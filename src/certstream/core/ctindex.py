"""certstream-server-go's ``ct_index.json``: what it holds, read and written byte for byte
as Go does.

The file is a JSON object mapping each log's normalized URL (no scheme, no trailing slash,
``ct.googleapis.com/logs/us1/argon2026h2``) to an index.  Go writes it with
``json.MarshalIndent(m, "", " ")``: keys sorted, one space of indent, no final newline.

What the index means depends on who wrote it, and every reader here takes it the safe way:

* Go's running server saves the index of the last certificate it broadcast, and resumes an
  RFC 6962 log *at* it (one repeat) and a tiled log after it.
* Go's ``create-index`` saves each log's tree size, the index of the next entry.

So a log resumes *at* the saved index, never after it (a repeat of one entry is better than
a gap; see ``certstream.core.logspec.start_position``), and the index written back for a
log is the last one sent (``next_index - 1``), which Go resumes from without a gap.
"""

from __future__ import annotations

import json

from certstream.errors import DecodeError

__all__ = ["format_index", "index_key", "index_value", "parse_index"]


def index_key(url: str) -> str:
    """Go's key for a log URL: without ``https://`` or ``http://`` and the trailing slash."""
    for scheme in ("https://", "http://"):
        if url.startswith(scheme):
            url = url[len(scheme):]
            break
    return url.rstrip("/")


def index_value(next_index: int) -> int:
    """The index to save for a log whose entries below ``next_index`` were sent: the last
    one sent, as Go saves it (0 when none was)."""
    return max(0, next_index - 1)


def parse_index(data: bytes) -> dict[str, int]:
    """The file's entries by normalized key.  Raises ``DecodeError`` naming what is wrong."""
    try:
        doc = json.loads(data) if data.strip() else {}
    except ValueError as exc:
        raise DecodeError(f"ct_index.json is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise DecodeError("ct_index.json: not a JSON object of log URL -> index")
    out: dict[str, int] = {}
    for key, value in doc.items():
        # Go writes uint64s; a float or a negative number is not an index.
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise DecodeError(f"ct_index.json: {key!r} has no index (got {value!r})")
        out[index_key(str(key))] = value
    return out


def format_index(entries: dict[str, int]) -> bytes:
    """The file as Go writes it."""
    return json.dumps(dict(sorted(entries.items())), indent=1).encode()
