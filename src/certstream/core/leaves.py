"""RFC 6962 get-entries responses → ``LogEntry`` objects.

The binary decoding (``decode_entry``) comes from ``certstream._fast`` (the compiled ``_leaf``
or its pure twin); this module adds the JSON and base64 layer, which
is C code in the standard library either way, except where the compiled ``_leaf`` is faster:
it reads bodies of the one shape logs send (``decode_get_entries_fast``) and canonical base64
itself and leaves anything else to ``json`` and ``binascii``, so results and errors are theirs.

One bad entry must not cost the batch: ``decode_get_entries`` returns the entries it could
decode and, separately, one ``DecodeError`` (with ``index`` set) per entry it could not.
Only a response that is not the get-entries JSON shape at all raises.
"""

from __future__ import annotations

import binascii
import json

from certstream._fast import b64decode, decode_entry, decode_get_entries_fast
from certstream.core.model import LogEntry
from certstream.errors import DecodeError

__all__ = ["decode_entry", "decode_get_entries"]


def _b64(value: object, what: str, index: int) -> bytes:
    if not isinstance(value, str):
        raise DecodeError(f"index {index}: {what} is not a string", index=index)
    try:
        # Strict: a log that sends junk between base64 characters is sending junk.
        return b64decode(value)
    except (binascii.Error, ValueError) as exc:
        msg = f"index {index}: {what} is not valid base64: {exc}"
        raise DecodeError(msg, index=index) from None


def decode_get_entries(body: bytes, start: int) -> tuple[list[LogEntry], list[DecodeError]]:
    """Decode a get-entries response whose first entry has log index ``start``.

    Returns (entries, errors): entry ``i`` of the response has index ``start + i``; each
    entry that cannot be decoded is left out of ``entries`` and appears in ``errors``.
    Raises ``DecodeError`` if ``body`` is not ``{"entries": [...]}`` JSON.
    """
    fast = decode_get_entries_fast(body, start)
    if fast is not None:
        return fast
    return _decode_with_json(body, start)


def _decode_with_json(body: bytes, start: int) -> tuple[list[LogEntry], list[DecodeError]]:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:
        # ValueError covers bad JSON and bad UTF-8; deep nesting raises RecursionError.
        raise DecodeError(f"get-entries: response is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise DecodeError("get-entries: response is not a JSON object")
    items = doc.get("entries")
    if not isinstance(items, list):
        raise DecodeError('get-entries: response has no "entries" list')
    entries: list[LogEntry] = []
    errors: list[DecodeError] = []
    for i, item in enumerate(items):
        index = start + i
        try:
            if not isinstance(item, dict):
                raise DecodeError(f"index {index}: entry is not a JSON object", index=index)
            leaf_input = _b64(item.get("leaf_input"), "leaf_input", index)
            extra_data = _b64(item.get("extra_data"), "extra_data", index)
            entries.append(decode_entry(index, leaf_input, extra_data))
        except DecodeError as exc:
            errors.append(exc)
    return entries, errors
