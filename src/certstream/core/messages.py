"""Entry -> the exact bytes of each WebSocket text-frame payload, once per stream type.

``MessageBuilder(profile).build(entry, source, seen, streams)`` returns ``Payloads``: the lite
(``/``), full (``/full-stream``) and domains (``/domains-only``) payloads, each ``None`` unless
its bit is in ``streams``.  Only what is asked for is built: a domains-only request parses the
certificate's names but never formats the leaf object or touches the chain.

Strategy: JSON text is assembled from fragments by concatenation, never by passing nested
dicts through ``json.dumps``.  The leaf object is built once as ``head + as_der + tail`` so the
lite payload (no ``as_der``) and the full payload share every other byte.  Chain certificates
repeat across thousands of entries (a handful of intermediates issue most certificates), so
each chain certificate's finished JSON object is kept in a bounded LRU keyed by its SHA-256.
Per-log text (``source`` object, ``cert_link`` prefix) is computed once per ``LogSource``.

Nothing here reads a clock: ``seen`` is passed in.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from certstream.core.jsontext import FLOAT_WRITERS, STRING_WRITERS, string_array
from certstream.core.model import CertInfo, LogEntry, LogSource, NameAttr
from certstream.core.profiles import (
    FIELD_FORMATTERS,
    GN_DNS,
    ExtensionValue,
    Formatter,
    Profile,
    aggregated,
    get_profile,
    name_values,
)
from certstream.core.tiles import TILE_WIDTH, data_tile_path
from certstream.core.x509 import parse_certificate, parse_tbs
from certstream.errors import DecodeError

__all__ = [
    "STREAM_ALL",
    "STREAM_DOMAINS",
    "STREAM_FULL",
    "STREAM_LITE",
    "MessageBuilder",
    "Payloads",
]

STREAM_LITE, STREAM_FULL, STREAM_DOMAINS = 1, 2, 4
STREAM_ALL = STREAM_LITE | STREAM_FULL | STREAM_DOMAINS

# EasySSL's sentinel: GeneralizedTime 99991231235959Z, RFC 5280's "no well-defined expiry".
_NO_EXPIRATION = 253402300799
_NAME_CACHE_SIZE = 8192
_CERT_KEYS = (
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
)
_KEY_PREFIX = {key: f'"{key}":' for key in _CERT_KEYS}
_POISON = frozenset(["1.3.6.1.4.1.11129.2.4.3"])
# Above this many names the Elixir MapSet is a hash trie and its order is not sorted.
_MAPSET_SORTED_MAX = 32


@dataclass(frozen=True, slots=True)
class Payloads:
    """The text-frame payloads of one entry; ``None`` for a stream that was not requested."""

    lite: bytes | None
    full: bytes | None
    domains: bytes | None


@dataclass(frozen=True, slots=True)
class _SourceText:
    """Per-log text, computed once: the source object around its timestamp, link prefix."""

    source_head: str  # '{"name":..,"url":..' up to where the timestamp goes
    source_tail: str  # the rest, closing brace included
    has_timestamp: bool
    link_prefix: str  # cert_link before the index ("" for none)
    tile_links: bool  # static log with tile URLs as cert_link
    url: str


def _colon_upper(digest: bytes) -> str:
    return digest.hex(":").upper()


class MessageBuilder:
    """Formats decoded entries in one output profile.  Not thread-safe (one per ingest)."""

    def __init__(self, profile: str | Profile = "go", *, chain_cache_size: int = 4096) -> None:
        # A Profile object is accepted too: the conformance comparer builds Go's bugs back in
        # as profile variants to check that a difference is exactly a documented deviation.
        self.profile: Profile = profile if isinstance(profile, Profile) else get_profile(profile)
        p = self.profile
        self._write: Callable[[str], str] = STRING_WRITERS[p.string_writer]
        self._write_domain: Callable[[str], str] = STRING_WRITERS[p.domains_string_writer]
        self._float: Callable[[float], str] = FLOAT_WRITERS[p.float_writer]
        # Decide the per-key work once, not per entry: (key prefix text, formatter).
        self._extensions: tuple[tuple[str, Formatter], ...] = tuple(
            (self._write(key) + ":", FIELD_FORMATTERS[fmt]) for key, fmt in p.extensions
        )
        self._chain_cache: OrderedDict[bytes, str] = OrderedDict()
        self._chain_cache_size = chain_cache_size
        self._sources: dict[LogSource, _SourceText] = {}
        self._names: dict[tuple[NameAttr, ...], str] = {}
        if p.message_type_first:
            self._cert_open = '{"message_type":"certificate_update","data":'
            self._cert_close = "}" + p.newline
            self._dns_open = '{"message_type":"dns_entries","data":'
            self._dns_close = "}"
        else:
            self._cert_open = '{"data":'
            self._cert_close = ',"message_type":"certificate_update"}' + p.newline
            self._dns_open = '{"data":'
            self._dns_close = ',"message_type":"dns_entries"}'
        #: Certificates whose fields were partly unreadable, and chain certificates that could
        #: not be parsed at all (their objects are written with empty fields).
        self.problem_count = 0
        #: Leaf certificates that could not be parsed at all (``build`` raised DecodeError).
        self.decode_error_count = 0
        self.chain_cache_hits = 0
        self.chain_cache_misses = 0

    # --- public API ------------------------------------------------------------------------

    def build(self, entry: LogEntry, source: LogSource, seen: float, streams: int) -> Payloads:
        """The payloads of ``entry`` for the streams in ``streams`` (STREAM_* bits).

        Raises DecodeError when the leaf certificate cannot be parsed at all; the caller
        counts it and skips the entry.  Partly unreadable certificates are still formatted.
        """
        if not streams & STREAM_ALL:
            return Payloads(None, None, None)
        info = self._leaf_info(entry)
        domains = self._all_domains(info)
        domains_payload = None
        if streams & STREAM_DOMAINS:
            text = self._dns_open + string_array(domains, self._write_domain) + self._dns_close
            domains_payload = text.encode("utf-8", "replace")
        if not streams & (STREAM_LITE | STREAM_FULL):
            return Payloads(None, None, domains_payload)

        write = self._write
        p = self.profile
        present = frozenset([ext.oid for ext in info.extensions])
        if entry.is_precert and p.force_poison:
            present |= _POISON  # Go marks every precert, its TBSCertificate has no poison
        leaf_head, leaf_tail = self._cert_parts(info, present, entry.cert_der, p.leaf_keys, domains)
        src = self._source_text(source)
        frags: dict[str, str] = {
            "cert_index": str(entry.index),
            "cert_link": write(self._cert_link(src, entry.index)),
            "seen": self._float(math.floor(seen * p.seen_scale + 1e-3) / p.seen_scale),
            "update_type": '"PrecertLogEntry"' if entry.is_precert else '"X509LogEntry"',
        }
        timestamp = self._float(entry.timestamp / 1000)
        if src.has_timestamp:
            frags["source"] = src.source_head + timestamp + src.source_tail
        else:
            frags["source"] = src.source_head + src.source_tail
        frags["submission_timestamp"] = timestamp

        lite = full = None
        if streams & STREAM_LITE:
            frags["leaf_cert"] = leaf_head + leaf_tail
            lite = self._certificate_frame(frags, with_chain=False)
        if streams & STREAM_FULL:
            as_der = base64.b64encode(entry.cert_der).decode("ascii")
            frags["leaf_cert"] = self._join_as_der(leaf_head, as_der, leaf_tail)
            frags["chain"] = self._chain_text(entry.chain)
            full = self._certificate_frame(frags, with_chain=True)
        return Payloads(lite, full, domains_payload)

    @property
    def chain_cache_size(self) -> int:
        return len(self._chain_cache)

    # --- certificate fields ----------------------------------------------------------------

    def _parse(self, der: bytes, *, tbs: bool, index: int | None) -> CertInfo:
        try:
            return parse_tbs(der) if tbs else parse_certificate(der)
        except DecodeError as exc:
            if exc.index is None:
                exc.index = index
            raise
        except Exception as exc:  # a parser bug must not take the ingest down: skip the entry
            raise DecodeError(f"certificate parser failed: {exc!r}", index=index) from exc

    def _leaf_info(self, entry: LogEntry) -> CertInfo:
        p = self.profile
        try:
            if entry.is_precert and p.precert_from_tbs and entry.tbs_der is not None:
                info = self._parse(entry.tbs_der, tbs=True, index=entry.index)
            else:
                info = self._parse(entry.cert_der, tbs=False, index=entry.index)
        except DecodeError:
            self.decode_error_count += 1
            raise
        if info.problems:
            self.problem_count += 1
        return info

    def _all_domains(self, info: CertInfo) -> list[str]:
        rule = self.profile.domains
        dns = [v for tag, v in info.san if tag == GN_DNS and isinstance(v, str)]
        cn = None
        for attr in info.subject:
            if attr.oid == "2.5.4.3":
                cn = attr.value  # every peer keeps the last CN
        if rule == "san_then_cn":
            # Go: SAN order, no dedup; the CN goes last unless empty, a CA, or already there.
            if cn and not info.is_ca and cn not in dns:
                dns.append(cn)
            return dns
        if rule == "cn_then_san":
            names = [cn, *dns] if cn and not info.is_ca else dns
            return list(dict.fromkeys(names))
        # sorted_set (EasySSL): MapSet of the CN (whatever it is) and the DNS names.
        names_set = set(dns)
        if cn is not None:
            names_set.add(cn)
        # MapSet.to_list of a small set is in Erlang term order: bytewise for binaries.
        return sorted(names_set, key=lambda s: s.encode("utf-8", "surrogatepass"))

    def _name_object(self, attrs: tuple[NameAttr, ...]) -> str:
        # Issuer names repeat across nearly every entry (a few CAs issue most certificates),
        # so each distinct name's JSON object is kept; the cache is dropped when it fills.
        cached = self._names.get(attrs)
        if cached is not None:
            return cached
        text = self._format_name(attrs)
        if len(self._names) >= _NAME_CACHE_SIZE:
            self._names.clear()
        self._names[attrs] = text
        return text

    def _format_name(self, attrs: tuple[NameAttr, ...]) -> str:
        rule = self.profile.names
        values = name_values(attrs, rule)
        write = self._write
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

    def _extensions_object(self, info: CertInfo, present: frozenset[str]) -> str:
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
            return string_array(value, self._write)
        return self._write(value)

    def _serial(self, serial: int | None) -> str:
        if serial is None:
            return '""'
        rule = self.profile.serial
        if rule == "der" and serial < 0:
            size = (serial.bit_length() + 8) // 8  # two's complement, minimal length
            return '"' + serial.to_bytes(size, "big", signed=True).hex().upper() + '"'
        text = format(serial, "X")
        if rule != "plain" and len(text) % 2:
            text = "0" + text
        return '"' + text + '"'

    def _time(self, value: int | None) -> str:
        if value is None:
            return "0"
        if value == _NO_EXPIRATION and self.profile.no_expiration:
            return '"no_expiration"'
        return str(value)

    def _signature(self, info: CertInfo) -> str:
        p = self.profile
        if info.signature_oid == "1.2.840.113549.1.1.10":
            name = p.pss_signatures.get(info.signature_hash_oid, "unknown")
        else:
            name = p.signatures.get(info.signature_oid, "unknown")
        return self._write(name)

    def _cert_parts(
        self,
        info: CertInfo,
        present: frozenset[str],
        der: bytes,
        keys: tuple[str, ...],
        domains: list[str] | None,
    ) -> tuple[str, str]:
        """The certificate object split around ``as_der``: (text before, text after).

        The head ends with ``{`` or a field and the tail starts with ``,`` or ``}`` so that
        the lite object is ``head + tail`` and the full one puts ``"as_der":..`` between.
        """
        write = self._write
        sha1 = '"' + _colon_upper(hashlib.sha1(der).digest()) + '"'
        head: list[str] = []
        tail: list[str] = []
        target = head
        for key in keys:
            if key == "as_der":
                target = tail
                continue
            if key == "subject":
                value = self._name_object(info.subject)
            elif key == "issuer":
                value = self._name_object(info.issuer)
            elif key == "extensions":
                value = self._extensions_object(info, present)
            elif key == "all_domains":
                names = domains if domains is not None else self._all_domains(info)
                value = string_array(names, write)
            elif key == "fingerprint" or key == "sha1":  # noqa: PLR1714 - hot path, no tuple
                value = sha1
            elif key == "sha256":
                value = '"' + _colon_upper(hashlib.sha256(der).digest()) + '"'
            elif key == "not_after":
                value = self._time(info.not_after)
            elif key == "not_before":
                value = self._time(info.not_before)
            elif key == "serial_number":
                value = self._serial(info.serial)
            elif key == "signature_algorithm":
                value = self._signature(info)
            else:  # is_ca
                value = "true" if info.is_ca else "false"
            target.append(_KEY_PREFIX[key] + value)
        head_text = "{" + ",".join(head)
        tail_text = ("," if head and tail else "") + ",".join(tail) + "}"
        return head_text, tail_text

    @staticmethod
    def _join_as_der(head: str, as_der: str, tail: str) -> str:
        field = '"as_der":"' + as_der + '"'
        if head == "{":
            return head + field + ("}" if tail == "}" else "," + tail)
        return head + "," + field + tail

    def _chain_object(self, der: bytes) -> str:
        key = hashlib.sha256(der).digest()
        cached = self._chain_cache.get(key)
        if cached is not None:
            self._chain_cache.move_to_end(key)
            self.chain_cache_hits += 1
            return cached
        self.chain_cache_misses += 1
        try:
            info = parse_certificate(der)
        except Exception:
            # Go drops the whole entry here; we send it (deviation 4) with what we know.
            info = CertInfo(der=der, problems=("chain certificate unparseable",))
        if info.problems:
            self.problem_count += 1
        keys = self.profile.chain_keys
        present = frozenset([ext.oid for ext in info.extensions])
        head, tail = self._cert_parts(info, present, der, keys, None)
        if "as_der" in keys:
            text = self._join_as_der(head, base64.b64encode(der).decode("ascii"), tail)
        else:
            text = head + tail
        self._chain_cache[key] = text
        if len(self._chain_cache) > self._chain_cache_size:
            self._chain_cache.popitem(last=False)
        return text

    def _chain_text(self, chain: tuple[bytes, ...]) -> str:
        return "[" + ",".join([self._chain_object(der) for der in chain]) + "]"

    # --- frame text ------------------------------------------------------------------------

    def _certificate_frame(self, frags: dict[str, str], *, with_chain: bool) -> bytes:
        parts: list[str] = []
        for key in self.profile.data_keys:
            if key == "chain":
                if not with_chain:
                    continue
                chain = frags["chain"]
                if chain == "[]" and not self.profile.chain_when_empty:
                    continue
                parts.append('"chain":' + chain)
            else:
                parts.append(f'"{key}":' + frags[key])
        text = self._cert_open + "{" + ",".join(parts) + "}" + self._cert_close
        return text.encode("utf-8", "replace")

    def _source_text(self, source: LogSource) -> _SourceText:
        cached = self._sources.get(source)
        if cached is not None:
            return cached
        p = self.profile
        url = source.url.strip()
        if "://" not in url:
            url = "https://" + url
        url = url.rstrip("/")
        if p.url_trailing_slash:
            url += "/"
        static = source.kind != "rfc6962"
        if not static:
            sep = "" if p.url_trailing_slash else "/"
            link_prefix = f"{url}{sep}ct/v1/get-entries?start="
        else:
            link_prefix = ""
        write = self._write
        head_parts: list[str] = []
        tail_parts: list[str] = []
        target = head_parts
        has_timestamp = False
        for key in p.source_keys:
            if key == "timestamp":
                has_timestamp = True
                target = tail_parts
                continue
            if key == "name":
                target.append('"name":' + write(source.name))
            elif key == "url":
                target.append('"url":' + write(url))
            elif key == "type":
                target.append('"type":' + write("tiled" if static else "rfc6962"))
        if has_timestamp:
            head = "{" + ",".join(head_parts) + (',"timestamp":' if head_parts else '"timestamp":')
            tail = ("," if tail_parts else "") + ",".join(tail_parts) + "}"
        else:
            head = "{" + ",".join(head_parts)
            tail = "}"
        text = _SourceText(
            source_head=head,
            source_tail=tail,
            has_timestamp=has_timestamp,
            link_prefix=link_prefix,
            tile_links=static and p.static_cert_link == "tile",
            url=url,
        )
        self._sources[source] = text
        return text

    @staticmethod
    def _cert_link(src: _SourceText, index: int) -> str:
        if src.link_prefix:
            return f"{src.link_prefix}{index}&end={index}"
        if src.tile_links:
            base = src.url if src.url.endswith("/") else src.url + "/"
            return base + data_tile_path(index // TILE_WIDTH)
        return ""
