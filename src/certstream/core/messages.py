"""Entry -> the exact bytes of each WebSocket text-frame payload, once per stream type.

``MessageBuilder(profile).build(entry, source, seen, streams)`` returns ``Payloads``: the lite
(``/``), full (``/full-stream``) and domains (``/domains-only``) payloads, each ``None`` unless
its bit is in ``streams``.  Only what is asked for is built: a domains-only request parses the
certificate's names but never formats the leaf object or touches the chain.

Strategy: JSON text is assembled from fragments, never by passing nested dicts through
``json.dumps``.  The certificate objects and the lite/full frames around them come from a
``CertWriter`` (``certstream._fast._json``, compiled when built, else its pure twin), which
takes every per-profile decision once, at construction.  The leaf object is built once as
``head + as_der + tail`` so the lite payload (no ``as_der``) and the full payload share every
other byte.  Chain certificates repeat across thousands of entries (a handful of
intermediates issue most certificates), so each chain certificate's finished JSON object,
and each whole chain's array, is kept in an LRU bounded in entries and bytes, keyed by the
DER's last bytes (a hit is confirmed on the whole DER).  Per-log text (``source`` object,
``cert_link`` prefix) is computed once per ``LogSource``.  ``certstream._fast`` chooses the twin.

Nothing here reads a clock: ``seen`` is passed in.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from certstream._fast import CertWriter
from certstream.core.filterfields import encode_match_fields
from certstream.core.jsontext import FLOAT_WRITERS, STRING_WRITERS
from certstream.core.lru import ENTRY_OVERHEAD, BoundedLRU
from certstream.core.model import PRECERT_ENTRY, CertInfo, LogEntry, LogSource, NameAttr
from certstream.core.names import aggregated, name_values
from certstream.core.profiles import Profile, get_profile
from certstream.core.streams import (
    FILTER_FIELDS,
    STREAM_ALL,
    STREAM_DOMAINS,
    STREAM_FULL,
    STREAM_LITE,
)
from certstream.core.tiles import TILE_WIDTH, data_tile_path
from certstream.core.x509 import parse_certificate, parse_tbs
from certstream.errors import DecodeError

__all__ = [
    "FILTER_FIELDS",
    "STREAM_ALL",
    "STREAM_DOMAINS",
    "STREAM_FULL",
    "STREAM_LITE",
    "MessageBuilder",
    "Payloads",
]

# Chain certificates are cached by their last bytes (the signature, unique per certificate)
# and the hit is confirmed by comparing the whole DER: cheaper than hashing every chain
# certificate of every entry, and exact.
_CHAIN_KEY_BYTES = 64
# Distinct whole chains kept (their text is a few KiB each; a few hundred CA paths are live).
_CHAINS_CACHE_SIZE = 512
# The caches' bounds in bytes (DER + text): a chain certificate is ~3.5 KiB, a whole chain's
# text ~5.6 KiB, but either can be ten times that.  8 MiB keeps ~2,300 typical chain
# certificates, 2 MiB ~360 chains: more than the live CA paths, far less than 4,096 large ones.
CHAIN_CACHE_BYTES = 8 * 1024 * 1024
_CHAINS_CACHE_BYTES = 2 * 1024 * 1024
# Distinct issuer names whose aggregated text is kept for the filter field.
_ISSUERS_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class Payloads:
    """The text-frame payloads of one entry; ``None`` for a stream that was not requested."""

    lite: bytes | None
    full: bytes | None
    domains: bytes | None
    #: What server-side filters match (``core.filterfields.encode_match_fields``), built
    #: only when ``FILTER_FIELDS`` is asked for.
    fields: bytes | None = None
    #: The ``seen`` the payloads show (or would show), in microseconds: where a WebSocket
    #: client resumes from (``?since=<seen>``, ``core.resume``).
    seen: int = 0


@dataclass(frozen=True, slots=True)
class _SourceText:
    """Per-log text, computed once: the source object around its timestamp, link prefix."""

    source_head: str  # '{"name":..,"url":..' up to where the timestamp goes
    source_tail: str  # the rest, closing brace included
    has_timestamp: bool
    link_prefix: str  # cert_link before the index ("" for none)
    tile_links: bool  # static log with tile URLs as cert_link
    url: str


class MessageBuilder:
    """Formats decoded entries in one output profile.  Not thread-safe (one per ingest)."""

    def __init__(self, profile: str | Profile = "go", *, chain_cache_size: int = 4096,
                 chain_cache_bytes: int = CHAIN_CACHE_BYTES) -> None:
        # A Profile object is accepted too: the conformance comparer builds Go's bugs back in
        # as profile variants to check that a difference is exactly a documented deviation.
        self.profile: Profile = profile if isinstance(profile, Profile) else get_profile(profile)
        p = self.profile
        self._write: Callable[[str], str] = STRING_WRITERS[p.string_writer]
        self._float: Callable[[float], str] = FLOAT_WRITERS[p.float_writer]
        # Every per-profile decision about certificate objects is taken once, in the writers.
        self._leaf = CertWriter(p, p.leaf_keys)
        self._chain_writer = CertWriter(p, p.chain_keys)
        self._chain_cache: BoundedLRU[bytes, tuple[bytes, str]] = BoundedLRU(
            chain_cache_size, chain_cache_bytes)
        self._chains: BoundedLRU[tuple[bytes, ...], tuple[tuple[bytes, ...], str]] = BoundedLRU(
            min(chain_cache_size, _CHAINS_CACHE_SIZE),
            min(chain_cache_bytes, _CHAINS_CACHE_BYTES))
        self._sources: dict[LogSource, _SourceText] = {}
        # The issuer's aggregated text by its attributes (a few hundred issuers sign most).
        self._issuers: dict[tuple[NameAttr, ...], str] = {}
        self._seen_last: tuple[float, str] = (math.nan, "")
        self._seen_micros = 0  # the same, in microseconds (``Payloads.seen``)
        self._last_source: tuple[LogSource, _SourceText] | None = None
        self._tbs_for_precerts = p.precert_from_tbs
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
        micros = self.seen_micros(seen)
        if not streams & STREAM_ALL:
            return Payloads(None, None, None, None, micros)
        info = self._leaf_info(entry)
        leaf = self._leaf
        domains = leaf.domains(info)
        domains_payload = leaf.domains_payload(domains) if streams & STREAM_DOMAINS else None
        src = self._source_text(source)
        fields = self._fields(info, domains, source, src) if streams & FILTER_FIELDS else None
        if not streams & (STREAM_LITE | STREAM_FULL):
            return Payloads(None, None, domains_payload, fields, micros)

        timestamp = leaf.timestamp_text(entry.timestamp)
        if src.has_timestamp:
            source_text = src.source_head + timestamp + src.source_tail
        else:
            source_text = src.source_head + src.source_tail
        full = streams & STREAM_FULL
        chain = self._chain_text(entry.chain) if full else None
        lite_payload, full_payload = self._certificate_payloads(
            info, entry, domains, src, source_text, timestamp, chain, streams
        )
        return Payloads(lite_payload, full_payload, domains_payload, fields, micros)

    def seen_micros(self, seen: float) -> int:
        """The ``seen`` the payloads of an entry seen at ``seen`` show, in microseconds
        (``Payloads.seen``), also for an entry nobody wants built."""
        if seen != self._seen_last[0]:
            # One clock reading serves a whole batch: format it once.
            scale = self.profile.seen_scale
            units = math.floor(seen * scale + 1e-3)
            self._seen_last = (seen, self._float(units / scale))
            self._seen_micros = units * (1_000_000 // scale)
        return self._seen_micros

    @property
    def chain_cache_size(self) -> int:
        return len(self._chain_cache)

    # --- the filter field ------------------------------------------------------------------

    def _fields(
        self, info: CertInfo, domains: list[str], source: LogSource, src: _SourceText
    ) -> bytes:
        """What server-side filters match, as the payloads show it: ``all_domains``, the
        issuer's ``aggregated`` and the ``source`` name and URL (``encode_match_fields``)."""
        attrs = self._leaf.name_attrs(info, "issuer")
        issuer = self._issuers.get(attrs)
        if issuer is None:
            rule = self.profile.names
            issuer = aggregated(name_values(attrs, rule), rule)
            if len(self._issuers) >= _ISSUERS_CACHE_SIZE:
                self._issuers.clear()
            self._issuers[attrs] = issuer
        return encode_match_fields(domains, issuer, source.name, src.url)

    # --- certificate fields ----------------------------------------------------------------

    def _leaf_info(self, entry: LogEntry) -> CertInfo:
        tbs = entry.tbs_der
        try:
            if tbs is not None and self._tbs_for_precerts and entry.entry_type == PRECERT_ENTRY:
                info = parse_tbs(tbs)
            else:
                info = parse_certificate(entry.cert_der)
        except DecodeError as exc:
            self.decode_error_count += 1
            if exc.index is None:
                exc.index = entry.index
            raise
        except Exception as exc:  # a parser bug must not take the ingest down: skip the entry
            self.decode_error_count += 1
            msg = f"certificate parser failed: {exc!r}"
            raise DecodeError(msg, index=entry.index) from exc
        if info.problems:
            self.problem_count += 1
        return info

    def _all_domains(self, info: CertInfo) -> list[str]:
        return self._leaf.domains(info)

    def _name_object(self, attrs: tuple[NameAttr, ...]) -> str:
        return self._leaf.name_object(attrs)

    def _serial(self, serial: int | None) -> str:
        return self._leaf.serial(serial)

    def _certificate_payloads(  # noqa: PLR0917 - private, once per entry
        self,
        info: CertInfo,
        entry: LogEntry,
        domains: list[str],
        src: _SourceText,
        source_text: str,
        timestamp: str,
        chain: str | None,
        streams: int,
    ) -> tuple[bytes | None, bytes | None]:
        """The lite and full payloads around the leaf object (see ``CertWriter.payloads``)."""
        return self._leaf.payloads(
            info,
            entry,
            entry.is_precert and self.profile.force_poison,
            domains,
            self._cert_link(src, entry.index),
            self._seen_last[1],
            source_text,
            timestamp,
            chain,
            bool(streams & STREAM_LITE),
            bool(streams & STREAM_FULL),
        )

    def _chain_object(self, der: bytes) -> str:
        key = der[-_CHAIN_KEY_BYTES:]
        cache = self._chain_cache
        cached = cache.get(key)
        if cached is not None and cached[0] == der:
            self.chain_cache_hits += 1
            return cached[1]
        self.chain_cache_misses += 1
        try:
            info = parse_certificate(der)
        except Exception:
            # Go drops the whole entry here; we send it (deviation 4) with what we know.
            info = CertInfo(der=der, problems=("chain certificate unparseable",))
        if info.problems:
            self.problem_count += 1
        text = self._chain_writer.whole(info, der)
        # JSON text is mostly ASCII: about one byte per character.
        cache.put(key, (der, text), len(der) + len(text) + ENTRY_OVERHEAD)
        return text

    def _chain_text(self, chain: tuple[bytes, ...]) -> str:
        # Whole chains repeat too (one per CA hierarchy), so their array text is kept as
        # well: one lookup per entry instead of one per chain certificate.
        key = tuple([der[-_CHAIN_KEY_BYTES:] for der in chain])
        chains = self._chains
        cached = chains.get(key)
        if cached is not None and cached[0] == chain:
            self.chain_cache_hits += len(chain)
            return cached[1]
        text = "[" + ",".join([self._chain_object(der) for der in chain]) + "]"
        # The DER kept is this entry's (the certificate cache keeps the first one seen).
        size = len(text) + sum([len(der) for der in chain]) + ENTRY_OVERHEAD
        chains.put(key, (chain, text), size)
        return text

    # --- per-log text ---------------------------------------------------------------------

    def _source_text(self, source: LogSource) -> _SourceText:
        # A follower passes the same LogSource object with every entry: skip its (Python
        # level, dataclass) hash for that case.
        last = self._last_source
        if last is not None and last[0] is source:
            return last[1]
        cached = self._sources.get(source)
        if cached is not None:
            self._last_source = (source, cached)
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
        self._last_source = (source, text)
        return text

    @staticmethod
    def _cert_link(src: _SourceText, index: int) -> str:
        if src.link_prefix:
            return f"{src.link_prefix}{index}&end={index}"
        if src.tile_links:
            base = src.url if src.url.endswith("/") else src.url + "/"
            return base + data_tile_path(index // TILE_WIDTH)
        return ""
