"""JSON text writers that reproduce the peers' encoders byte for byte.

Three encoders wrote the golden frames, and they disagree on details a client can see:

- Go ``encoding/json`` (certstream-server-go): ``\\b \\f \\n \\r \\t`` short escapes (Go >= 1.22),
  other control characters as ``\\u00xx`` (lowercase hex), U+2028/U+2029 always escaped, and
  with HTML escaping on (the domains frame, written by ``json.Marshal``) also ``< > &``.
  Floats: the shortest repr, in plain notation for 1e-6 <= |x| < 1e21, without ``.0``.
- Jason (CaliDog): the same short escapes, ``\\u00XX`` in uppercase hex, nothing else escaped.
  Floats: Erlang's shortest ``fwrite_g``, which picks plain or exponent notation by length.
- serde_json (certstream-server-rust): like Go without the U+2028 and HTML rules.  Floats:
  ryu, plain notation with ``.0`` on whole numbers.

All three write non-ASCII text as raw UTF-8.  Each writer here takes a ``str`` and returns the
quoted JSON text as ``str``; the message builder encodes the finished frame once.
"""

from __future__ import annotations

import json.encoder
import math
import re
from collections.abc import Callable, Iterable

__all__ = [
    "FLOAT_WRITERS",
    "STRING_WRITERS",
    "go_float",
    "go_string",
    "go_string_html",
    "jason_float",
    "jason_string",
    "ryu_float",
    "serde_string",
    "string_array",
]

StringWriter = Callable[[str], str]
FloatWriter = Callable[[float], str]

# The C accelerated encoder of the stdlib: quotes, escapes '"' and '\\', the short escapes
# \b \f \n \r \t and every other C0 control as \u00xx in lowercase hex, leaves the rest raw.
# That is exactly serde_json's rule, and the base of Go's and Jason's.
_encode_basestring: Callable[[str], str] = json.encoder.encode_basestring

# Characters that need a second look after the stdlib pass: lone surrogates (cannot be
# encoded as UTF-8), U+2028/U+2029 (Go escapes them), and the HTML-sensitive three.
_SURROGATE = re.compile("[\ud800-\udfff]")
_GO_EXTRA = re.compile("[\u2028\u2029\ud800-\udfff]")
_GO_HTML_EXTRA = re.compile("[<>&\u2028\u2029\ud800-\udfff]")
# An escaped backslash is matched as a pair first, so "\\\\u00ab" (a literal backslash before
# "u00ab") is left alone; only real \u00xx escapes are upper-cased.
_JASON_UNICODE_ESCAPE = re.compile(r"\\\\|\\u00[0-9a-f]{2}")


def _go_sub(match: re.Match[str]) -> str:
    char = match.group()
    if "\ud800" <= char <= "\udfff":
        # Go writes an invalid UTF-8 sequence as the escape \ufffd; a lone surrogate is what
        # an undecodable byte becomes on our side, so it gets the same treatment.
        return "\\ufffd"
    return f"\\u{ord(char):04x}"


def serde_string(text: str) -> str:
    """serde_json: the stdlib rule, except that lone surrogates become U+FFFD."""
    out = _encode_basestring(text)
    if not text.isascii() and _SURROGATE.search(out):
        out = _SURROGATE.sub("\ufffd", out)
    return out


def go_string(text: str) -> str:
    """Go encoding/json with SetEscapeHTML(false): the full and lite frames."""
    out = _encode_basestring(text)
    if not text.isascii():
        out = _GO_EXTRA.sub(_go_sub, out)
    return out


def go_string_html(text: str) -> str:
    """Go json.Marshal (HTML escaping on): the domains frame."""
    out = _encode_basestring(text)
    if not text.isascii() or "<" in text or ">" in text or "&" in text:
        out = _GO_HTML_EXTRA.sub(_go_sub, out)
    return out


def _jason_upper(match: re.Match[str]) -> str:
    text = match.group()
    return text if text == "\\\\" else "\\u00" + text[4:].upper()


def jason_string(text: str) -> str:
    """Jason (escape: :json): like the stdlib, but \\u00XX in uppercase hex."""
    out = _encode_basestring(text)
    if "\\u00" in out:
        out = _JASON_UNICODE_ESCAPE.sub(_jason_upper, out)
    if not text.isascii() and _SURROGATE.search(out):
        out = _SURROGATE.sub("\ufffd", out)
    return out


def string_array(items: Iterable[str], write: StringWriter) -> str:
    """A JSON array of strings, without spaces, as all three peers write it."""
    return "[" + ",".join([write(item) for item in items]) + "]"


def _digits_exponent(value: float) -> tuple[str, int]:
    """The shortest round-trip digits of a finite non-zero |value| and its decimal point.

    Returns ``(digits, point)`` with value == 0.<digits> * 10**point, digits without
    trailing zeros.  Python's repr is the shortest round-trip form, as Go's and ryu's are;
    it is read as text ("123.45", "1e-07", "1.5e+22"), so no decimal module is loaded.
    """
    mantissa, _, exp_text = repr(abs(value)).partition("e")
    whole, _, frac = mantissa.partition(".")
    # value = int(whole + frac) * 10**(exp - len(frac))
    significant = (whole + frac).lstrip("0")
    point = len(significant) + (int(exp_text) if exp_text else 0) - len(frac)
    return significant.rstrip("0") or "0", point


def go_float(value: float) -> str:
    """Go encoding/json float64: strconv 'f' -1 for 1e-6 <= |x| < 1e21, else 'e' with a
    two-digit-minimum exponent trimmed to one ("1e-07" is written "1e-7")."""
    if not math.isfinite(value):
        # Go refuses to encode these (UnsupportedValueError); we never produce them, but a
        # bad timestamp must not crash the builder.
        return "0"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    text = repr(value)
    absval = abs(value)
    if 1e-6 <= absval < 1e21:
        if "e" not in text:
            return text[:-2] if text.endswith(".0") else text
        digits, point = _digits_exponent(value)
        sign = "-" if value < 0 else ""
        if point <= 0:
            return sign + "0." + "0" * (-point) + digits
        if point >= len(digits):
            return sign + digits + "0" * (point - len(digits))
        return sign + digits[:point] + "." + digits[point:]
    digits, point = _digits_exponent(value)
    sign = "-" if value < 0 else ""
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    exp = point - 1
    if exp < 0:
        # strconv writes "e-07"; encoding/json trims that one leading zero, and only there.
        return f"{sign}{mantissa}e-{-exp}"
    return f"{sign}{mantissa}e+{exp:02d}"


def ryu_float(value: float) -> str:
    """serde_json (ryu) f64: shortest digits; plain notation keeps ``.0`` on whole numbers.

    ryu switches to exponent notation outside 1e-5 <= |x| < 1e16 and writes it as ``1e16`` /
    ``1.5e-7``.
    """
    if not math.isfinite(value):
        return "null"  # serde_json writes NaN and infinities as null
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    digits, point = _digits_exponent(value)
    sign = "-" if value < 0 else ""
    if -5 < point <= 16:
        if point <= 0:
            return sign + "0." + "0" * (-point) + digits
        if point >= len(digits):
            return sign + digits + "0" * (point - len(digits)) + ".0"
        return sign + digits[:point] + "." + digits[point:]
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{mantissa}e{point - 1}"


def jason_float(value: float) -> str:
    """Jason floats: Erlang ``io_lib_format:fwrite_g``, shortest digits, and plain or
    exponent notation, whichever is shorter (``1700000000.0`` is written ``1.7e9``)."""
    if not math.isfinite(value):
        return "null"  # Erlang floats cannot be non-finite; never produced by us
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    digits, place = _digits_exponent(value)
    sign = "-" if value < 0 else ""
    length = len(digits)
    if 0 < place < length:
        return sign + digits[:place] + "." + digits[place:]
    if place == 0:
        return sign + "0." + digits
    exp_text = str(place - 1)
    exp_dot = 2 if length == 1 else 1
    exp_cost = len(exp_text) + 1 + exp_dot
    if place < 0:
        if 2 - place <= exp_cost:
            return sign + "0." + "0" * (-place) + digits
    elif place - length + 2 <= exp_cost:
        return sign + digits + "0" * (place - length) + ".0"
    if length == 1:
        return sign + digits + ".0e" + exp_text
    return sign + digits[0] + "." + digits[1:] + "e" + exp_text


STRING_WRITERS: dict[str, StringWriter] = {
    "go": go_string,
    "go_html": go_string_html,
    "jason": jason_string,
    "serde": serde_string,
}

FLOAT_WRITERS: dict[str, FloatWriter] = {
    "go": go_float,
    "jason": jason_float,
    "ryu": ryu_float,
}
