"""Certificate objects as JSON text, one output profile: the pure-Python twin of ``_json.pyx``.

``CertWriter(profile, keys)`` formats the certificate object of a leaf (``keys`` =
``profile.leaf_keys``) or of a chain certificate (``profile.chain_keys``) from a ``CertInfo``.
Every decision that depends only on the profile (which key comes where, which formatter
writes each extension, how a name object looks) is taken once here, at construction, so
that the per-certificate work is formatting only.  The compiled twin runs the same plan with
C loops for the string escapes, the hex and base64 text and the formatters of the ``go``
profile; anything it has no C code for it hands to the functions of this module, so the
two twins cannot disagree about a rare case.

``parts`` returns the object split around ``as_der`` (text before, text after): the lite
object is ``head + tail`` and the full one ``join_as_der(head, base64, tail)``, so the two
share every byte but ``as_der``.  ``payloads`` goes on to the finished lite and full frame
bytes around that object, ``domains_payload`` to the domains frame.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

from certstream.core import easyssl
from certstream.core.extformat import FIELD_FORMATTERS, ExtensionValue, Formatter
from certstream.core.jsontext import FLOAT_WRITERS, STRING_WRITERS
from certstream.core.model import CertInfo, LogEntry, NameAttr
from certstream.core.names import NameRule, aggregated, name_values
from certstream.core.oids import GN_DNS, OID_CN, OID_POISON, OID_PSS
from certstream.core.profiles import Profile

__all__ = ["CertWriter", "all_domains", "b64encode", "colon_hex_upper", "join_as_der"]

# EasySSL's sentinel: GeneralizedTime 99991231235959Z, RFC 5280's "no well-defined expiry".
NO_EXPIRATION = 253402300799
_POISON = frozenset([OID_POISON])
# Issuer names repeat across nearly every entry (a few CAs issue most certificates), so each
# distinct name's JSON object is kept; the cache is dropped whole when it fills.
NAME_CACHE_SIZE = 8192
CERT_KEYS = frozenset(
    [
        "all_domains",
        "as_der",
        "extensions",
        "fingerprint",
        "sha1",
        "sha256",
        "not_after",
        "not_before",
        "serial_number",
        "signature_algorithm",
        "subject",
        "issuer",
        "is_ca",
    ]
)


def colon_hex_upper(digest: bytes) -> str:
    return digest.hex(":").upper()


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def join_as_der(head: str, as_der: str, tail: str) -> str:
    """The full certificate object: ``"as_der"`` spliced between ``parts``' two halves."""
    field = '"as_der":"' + as_der + '"'
    if head == "{":
        return head + field + ("}" if tail == "}" else "," + tail)
    return head + "," + field + tail


def all_domains(info: CertInfo, rule: str) -> list[str]:
    """``all_domains`` of a certificate under a profile's domains rule."""
    if rule == "sorted_set":
        # EasySSL's MapSet of the CN and the DNS names, from the DER's own strings.
        return easyssl.all_domains(info)
    dns = [v for tag, v in info.san if tag == GN_DNS and isinstance(v, str)]
    cn = None
    for attr in info.subject:
        if attr.oid == OID_CN:
            cn = attr.value  # every peer keeps the last CN
    if rule == "san_then_cn":
        # Go: SAN order, no dedup; the CN goes last unless empty, a CA, or already there.
        if cn and not info.is_ca and cn not in dns:
            dns.append(cn)
        return dns
    # cn_then_san
    names = [cn, *dns] if cn and not info.is_ca else dns
    return list(dict.fromkeys(names))


def format_name(attrs: tuple[NameAttr, ...], rule: NameRule, write: Callable[[str], str]) -> str:
    values = name_values(attrs, rule)
    parts: list[str] = []
    for key in rule.keys:
        if key == "aggregated":
            parts.append('"aggregated":' + write(aggregated(values, rule)))
            continue
        value = values.get(key)
        if value is not None:
            parts.append(f'"{key}":' + write(value))
        elif rule.absent == "null":
            parts.append(f'"{key}":null')
    return "{" + ",".join(parts) + "}"


def serial_text(serial: int | None, rule: str) -> str:
    if serial is None:
        return '""'
    if rule == "der" and serial < 0:
        size = (serial.bit_length() + 8) // 8  # two's complement, minimal length
        return '"' + serial.to_bytes(size, "big", signed=True).hex().upper() + '"'
    text = format(serial, "X")
    if rule != "plain" and len(text) % 2:
        text = "0" + text
    return '"' + text + '"'


class CertWriter:
    """Formats certificate objects of one profile with one key list (leaf or chain)."""

    def __init__(self, profile: Profile, keys: tuple[str, ...]) -> None:
        unknown = set(keys) - CERT_KEYS
        if unknown:
            raise ValueError(f"unknown certificate keys: {sorted(unknown)}")
        self.profile = profile
        self.keys = keys
        self._write: Callable[[str], str] = STRING_WRITERS[profile.string_writer]
        self._write_domain: Callable[[str], str] = STRING_WRITERS[profile.domains_string_writer]
        # (key prefix text, formatter) per extension, in output order.
        self._extensions: tuple[tuple[str, Formatter], ...] = tuple(
            (self._write(key) + ":", FIELD_FORMATTERS[fmt]) for key, fmt in profile.extensions
        )
        self._names: dict[tuple[NameAttr, ...], str] = {}
        self._easyssl_names = profile.names.strings == "easyssl"
        self._float: Callable[[float], str] = FLOAT_WRITERS[profile.float_writer]
        # The frame around the data object, and its keys with their JSON prefixes.
        if profile.message_type_first:
            self._cert_open = '{"message_type":"certificate_update","data":'
            self._cert_close = "}" + profile.newline
            self._dns_open = '{"message_type":"dns_entries","data":'
            self._dns_close = "}"
        else:
            self._cert_open = '{"data":'
            self._cert_close = ',"message_type":"certificate_update"}' + profile.newline
            self._dns_open = '{"data":'
            self._dns_close = ',"message_type":"dns_entries"}'
        self._lite_keys = tuple((f'"{k}":', k) for k in profile.data_keys if k != "chain")
        self._full_keys = tuple((f'"{k}":', k) for k in profile.data_keys)

    # --- pieces, also used by the message builder ----------------------------------------

    def domains(self, info: CertInfo) -> list[str]:
        return all_domains(info, self.profile.domains)

    def domains_array(self, names: list[str]) -> str:
        """The ``dns_entries`` data array (the domains frame has its own string writer)."""
        return "[" + ",".join([self._write_domain(name) for name in names]) + "]"

    def domains_payload(self, names: list[str]) -> bytes:
        """The whole ``dns_entries`` frame payload."""
        text = self._dns_open + self.domains_array(names) + self._dns_close
        return text.encode("utf-8", "replace")

    def timestamp_text(self, milliseconds: int) -> str:
        """A log timestamp (ms) as the profile writes seconds: ``source.timestamp``."""
        return self._float(milliseconds / 1000)

    def name_attrs(self, info: CertInfo, which: str) -> tuple[NameAttr, ...]:
        """The subject's or issuer's attributes with the text the profile's rule reads."""
        if self._easyssl_names:
            return easyssl.name_attrs(info, which)
        return info.subject if which == "subject" else info.issuer

    def name_object(self, attrs: tuple[NameAttr, ...]) -> str:
        cached = self._names.get(attrs)
        if cached is not None:
            return cached
        text = format_name(attrs, self.profile.names, self._write)
        if len(self._names) >= NAME_CACHE_SIZE:
            self._names.clear()
        self._names[attrs] = text
        return text

    def serial(self, serial: int | None) -> str:
        return serial_text(serial, self.profile.serial)

    def extensions_object(self, info: CertInfo, present: frozenset[str]) -> str:
        parts: list[str] = []
        for prefix, formatter in self._extensions:
            value = formatter(info, present)
            if value is not None:
                parts.append(prefix + self._value(value))
        return "{" + ",".join(parts) + "}"

    def _value(self, value: ExtensionValue) -> str:
        if value is True:
            return "true"
        if value is False:
            return "false"
        if isinstance(value, list):
            return "[" + ",".join([self._write(item) for item in value]) + "]"
        return self._write(value)

    def _time(self, value: int | None) -> str:
        if value is None:
            return "0"
        if value == NO_EXPIRATION and self.profile.no_expiration:
            return '"no_expiration"'
        return str(value)

    def _signature(self, info: CertInfo) -> str:
        p = self.profile
        if info.signature_oid == OID_PSS:
            name = p.pss_signatures.get(info.signature_hash_oid, "unknown")
        else:
            name = p.signatures.get(info.signature_oid, "unknown")
        return self._write(name)

    # --- the object ----------------------------------------------------------------------

    def parts(
        self, info: CertInfo, der: bytes, poison: bool, domains: list[str] | None
    ) -> tuple[str, str]:
        """The certificate object split around ``as_der``: (text before, text after).

        ``der`` is what the hashes are of; ``poison`` adds the CT poison extension to the
        ones present (Go marks every precert, whose TBSCertificate has none); ``domains`` is
        ``all_domains`` when the caller already has it.  The head ends with ``{`` or a field
        and the tail starts with ``,`` or ``}``.
        """
        write = self._write
        present = frozenset([ext.oid for ext in info.extensions])
        if poison:
            present |= _POISON
        sha1 = '"' + colon_hex_upper(hashlib.sha1(der).digest()) + '"'
        head: list[str] = []
        tail: list[str] = []
        target = head
        for key in self.keys:
            if key == "as_der":
                target = tail
                continue
            if key == "subject":
                value = self.name_object(self.name_attrs(info, "subject"))
            elif key == "issuer":
                value = self.name_object(self.name_attrs(info, "issuer"))
            elif key == "extensions":
                value = self.extensions_object(info, present)
            elif key == "all_domains":
                names = domains if domains is not None else self.domains(info)
                value = "[" + ",".join([write(name) for name in names]) + "]"
            elif key == "fingerprint" or key == "sha1":  # noqa: PLR1714 - hot path, no tuple
                value = sha1
            elif key == "sha256":
                value = '"' + colon_hex_upper(hashlib.sha256(der).digest()) + '"'
            elif key == "not_after":
                value = self._time(info.not_after)
            elif key == "not_before":
                value = self._time(info.not_before)
            elif key == "serial_number":
                value = self.serial(info.serial)
            elif key == "signature_algorithm":
                value = self._signature(info)
            else:  # is_ca
                value = "true" if info.is_ca else "false"
            target.append('"' + key + '":' + value)
        head_text = "{" + ",".join(head)
        tail_text = ("," if head and tail else "") + ",".join(tail) + "}"
        return head_text, tail_text

    def whole(self, info: CertInfo, der: bytes) -> str:
        """The complete object (a chain certificate's), ``as_der`` included if in the keys."""
        head, tail = self.parts(info, der, False, None)
        if "as_der" in self.keys:
            return join_as_der(head, b64encode(der), tail)
        return head + tail

    # --- the frames ----------------------------------------------------------------------

    def payloads(  # noqa: PLR0917 - once per entry: positional, no keyword parsing
        self,
        info: CertInfo,
        entry: LogEntry,
        poison: bool,
        domains: list[str] | None,
        link: str,
        seen: str,
        source: str,
        timestamp: str,
        chain: str | None,
        lite: bool,
        full: bool,
    ) -> tuple[bytes | None, bytes | None]:
        """The lite and full ``certificate_update`` payloads (None where not wanted).

        ``link`` is the cert_link text (escaped here); ``seen``, ``source`` and
        ``timestamp`` are finished JSON values; ``chain`` is the JSON array of chain objects
        (needed only for ``full``).
        """
        head, tail = self.parts(info, entry.cert_der, poison, domains)
        frags: dict[str, str] = {
            "cert_index": str(entry.index),
            "cert_link": self._write(link),
            "seen": seen,
            "source": source,
            "update_type": '"PrecertLogEntry"' if entry.is_precert else '"X509LogEntry"',
            "submission_timestamp": timestamp,
        }
        lite_out = full_out = None
        if lite:
            frags["leaf_cert"] = head + tail
            lite_out = self._frame(frags, with_chain=False)
        if full:
            frags["leaf_cert"] = join_as_der(head, b64encode(entry.cert_der), tail)
            frags["chain"] = chain if chain is not None else "[]"
            full_out = self._frame(frags, with_chain=True)
        return lite_out, full_out

    def _frame(self, frags: dict[str, str], *, with_chain: bool) -> bytes:
        keys = self._lite_keys
        if with_chain and (frags["chain"] != "[]" or self.profile.chain_when_empty):
            keys = self._full_keys
        body = ",".join([prefix + frags[key] for prefix, key in keys])
        text = self._cert_open + "{" + body + "}" + self._cert_close
        return text.encode("utf-8", "replace")
