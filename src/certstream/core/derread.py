"""Reading DER by hand: TLV headers and object identifiers, for the lenient walks over bytes.

The pure-Python certificate walker (``certstream._fast._der_py``) and the EasySSL text of
the ``calidog`` profile (``core.easyssl``) both read DER this way; the compiled walker has
its own C versions of the same two functions.  Both raise ``FieldError`` with the reason
part of the problem text, never anything else, on any input.
"""

from __future__ import annotations

__all__ = ["FieldError", "header", "oid"]

# An OID arc longer than this many base-128 digits is refused: 2.25.<UUID> needs 19, and a
# bound keeps int-to-str cheap (and below Python's digit limit) for hostile input.
_MAX_ARC_BYTES = 32


class FieldError(Exception):
    """A field could not be read; the message is the reason part of the problem text."""


def header(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Read the TLV at ``pos`` inside ``[pos, end)``: (first tag byte, content start, end).

    High tag numbers are skipped over and reported by their first byte (number 31), which
    matches none of the tags the walk expects.
    """
    if pos >= end:
        raise FieldError("truncated")
    tag = buf[pos]
    pos += 1
    if tag & 0x1F == 0x1F:
        for _ in range(5):
            if pos >= end:
                raise FieldError("truncated")
            more = buf[pos] & 0x80
            pos += 1
            if not more:
                break
        else:
            raise FieldError("bad tag")
    if pos >= end:
        raise FieldError("truncated")
    first = buf[pos]
    pos += 1
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or count > end - pos:
            raise FieldError("bad length")
        length = 0
        for i in range(pos, pos + count):
            length = (length << 8) | buf[i]
        pos += count
    if length > end - pos:
        raise FieldError("bad length")
    return tag, pos, pos + length


def oid(buf: bytes, start: int, end: int) -> str:
    if start >= end or buf[end - 1] & 0x80:
        raise FieldError("bad OID")
    parts: list[str] = []
    value = 0
    ndigits = 0
    for i in range(start, end):
        byte = buf[i]
        value = (value << 7) | (byte & 0x7F)
        ndigits += 1
        if ndigits > _MAX_ARC_BYTES:
            raise FieldError("bad OID")
        if byte & 0x80:
            continue
        if parts:
            parts.append(str(value))
        elif value < 40:
            parts += ("0", str(value))
        elif value < 80:
            parts += ("1", str(value - 40))
        else:
            parts += ("2", str(value - 80))
        value = 0
        ndigits = 0
    return ".".join(parts)
