"""Server-side filters: the query parameters, what a record offers them, and the shared index.

A client narrows its stream with query parameters on any stream path (WebSocket or SSE):

``domain=GLOB``
    matched, case-insensitively, against every name in the certificate's ``all_domains``;
    ``*`` matches any run of characters, dots included (``*.example.com``, ``*paypal*``,
    ``*.org``); there is no other wildcard.
``domain_re=REGEX``
    an RE2 regular expression (linear time: no backtracking, so no client can stall the
    server), searched in every name, case-insensitively; ``^``/``\\A`` and ``$``/``\\z``
    anchor at the name's ends.
``issuer=TEXT``
    a substring of the issuer's ``aggregated`` text, case-insensitive.
``log=TEXT``
    a substring of the log's name or URL (as in the ``source`` object), case-insensitive.

Each may repeat: any of its values matches.  Different kinds (the four parameters) must all
match: ``domain=*.a.com&domain_re=^api\\.`` asks for a name under ``a.com`` *and* a name
starting with ``api.`` (write both as regular expressions for one or the other).  The frames
a filtered client gets are byte for byte those of the unfiltered stream, only fewer.

``parse_filters`` turns a query string into a canonical, hashable ``FilterSpec`` (or ``None``
without filter parameters) and raises ``FilterError`` (400 with a JSON reason) for a filter
that is too big or that RE2 refuses.  ``FilterIndex`` holds every distinct filter of a worker:
equal specs share one slot, all slots are compiled into one matcher
(``core.filter_engine``), and ``FilterIndex.match`` scans a record once and returns the
slots that match as a bitmask, at a cost that does not grow with the number of clients.

What a record offers the filters (``MatchFields``) is built once in the ingest, where the
names, the issuer and the log are at hand, and travels in the feed beside the payloads
(``encode_match_fields``): a worker neither parses JSON nor depends on the output profile,
and a domains-only stream can still be filtered by issuer and log.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from urllib.parse import parse_qsl

from certstream.core.filter_engine import Matcher, compile_regex
from certstream.core.filterfields import (
    FilterSpec,
    MatchFields,
    decode_match_fields,
    encode_match_fields,
    match_fields,
    match_fields_of_message,
)
from certstream.errors import FilterError

__all__ = [
    "DEFAULT_MAX_PATTERNS",
    "FILTER_PARAMS",
    "MAX_PATTERN_CHARS",
    "FilterIndex",
    "FilterSpec",
    "MatchFields",
    "decode_match_fields",
    "encode_match_fields",
    "iter_slots",
    "match_fields",
    "match_fields_of_message",
    "parse_filters",
]

#: ``filters.max_patterns``: the most filter values one client may send.
DEFAULT_MAX_PATTERNS = 100
#: The longest pattern: a DNS name is at most 253 characters, so no useful glob is longer.
MAX_PATTERN_CHARS = 253
FILTER_PARAMS = ("domain", "domain_re", "issuer", "log")



def _plain_text(param: str, value: str) -> str:
    if not value:
        raise FilterError(f"{param}= needs a value", param=param)
    if len(value) > MAX_PATTERN_CHARS:
        raise FilterError(
            f"{param}= pattern of {len(value)} characters is over {MAX_PATTERN_CHARS}",
            param=param,
        )
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise FilterError(f"{param}= pattern contains a control character", param=param)
    return value.lower()


def _glob(value: str) -> str:
    glob = _plain_text("domain", value)
    while "**" in glob:  # "a**b" is "a*b": one spelling, one slot
        glob = glob.replace("**", "*")
    return glob


def parse_filters(
    query: str, *, max_patterns: int = DEFAULT_MAX_PATTERNS
) -> FilterSpec | None:
    """The filter in a request's query string, or ``None`` when it has none.

    Other parameters (``stream=``, resume points) are left alone.  Raises ``FilterError``
    for more than ``max_patterns`` values, a value over ``MAX_PATTERN_CHARS`` characters,
    an empty value or a control character, and a ``domain_re`` that RE2 refuses.
    """
    kinds: dict[str, set[str]] = {name: set() for name in FILTER_PARAMS}
    count = 0
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in kinds:
            continue
        count += 1
        if count > max_patterns:
            raise FilterError(
                f"more than {max_patterns} filter patterns (filters.max_patterns)", param=key
            )
        if key == "domain":
            kinds[key].add(_glob(value))
        elif key == "domain_re":
            if not value:
                raise FilterError("domain_re= needs a value", param=key)
            if len(value) > MAX_PATTERN_CHARS:
                raise FilterError(
                    f"domain_re= pattern of {len(value)} characters is over "
                    f"{MAX_PATTERN_CHARS}",
                    param=key,
                )
            try:
                compile_regex(value)
            except ValueError as exc:
                raise FilterError(f"domain_re={value!r}: {exc}", param=key) from None
            kinds[key].add(value)
        else:
            kinds[key].add(_plain_text(key, value))
    if not count:
        return None
    return FilterSpec(
        tuple(sorted(kinds["domain"])),
        tuple(sorted(kinds["domain_re"])),
        tuple(sorted(kinds["issuer"])),
        tuple(sorted(kinds["log"])),
    )


# -- the index of every distinct filter ----------------------------------------------------


def iter_slots(mask: int) -> Iterator[int]:
    """The slot numbers set in a ``FilterIndex.match`` result, lowest first."""
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


class _Slot:
    __slots__ = ("refs", "spec")

    def __init__(self, spec: FilterSpec) -> None:
        self.spec = spec
        self.refs = 1


class FilterIndex:
    """Every distinct filter of a worker, compiled into one matcher; see the module doc.

    ``add(spec)`` returns the spec's slot (a small int; clients with equal specs share it,
    counted by reference) and ``remove(slot)`` gives one reference back.  ``match(fields)``
    returns the bitmask of slots whose filter matches the record (``iter_slots`` lists
    them).

    Compiling is lazy and tiered, so that clients coming and going cost little and a record
    never pays for it: filters added since the last full build form a small *young* matcher,
    rebuilt (at the next ``match``) when a filter joined it; the *main* matcher is rebuilt
    from every live filter only when the young one has grown past a quarter of it or enough
    of its filters are gone.  A removed filter stops matching at once (its slot leaves the
    active mask); its slot number is reused only after the matcher that still holds its
    patterns has been rebuilt, so a stale pattern can never match for a newcomer.
    """

    def __init__(self, *, young_min: int = 16) -> None:
        self._young_min = young_min
        self._by_spec: dict[FilterSpec, int] = {}
        self._slots: dict[int, _Slot] = {}
        self._free: list[int] = []
        self._next = 0
        self._main: Matcher | None = None
        self._main_slots: set[int] = set()
        self._young: Matcher | None = None
        self._young_slots: set[int] = set()
        self._retired_main: set[int] = set()
        self._retired_young: set[int] = set()
        self._dirty = False
        # Bitmasks over slots: live filters, and those with a glob / regex / issuer / log part.
        self._active = 0
        self._need_glob = 0
        self._need_regex = 0
        self._need_issuer = 0
        self._need_log = 0
        #: Counters for the metrics.
        self.records = 0
        self.records_matched = 0
        self.builds = 0

    # -- membership ------------------------------------------------------------------------

    def add(self, spec: FilterSpec) -> int:
        """The slot of ``spec``, with one more reference."""
        slot = self._by_spec.get(spec)
        if slot is not None:
            self._slots[slot].refs += 1
            return slot
        if self._free:
            slot = self._free.pop()
        else:
            slot = self._next
            self._next += 1
        self._by_spec[spec] = slot
        self._slots[slot] = _Slot(spec)
        self._young_slots.add(slot)
        bit = 1 << slot
        self._active |= bit
        if spec.domains:
            self._need_glob |= bit
        if spec.domain_res:
            self._need_regex |= bit
        if spec.issuers:
            self._need_issuer |= bit
        if spec.logs:
            self._need_log |= bit
        self._dirty = True
        return slot

    def remove(self, slot: int) -> None:
        """Drop one reference to ``slot``; the filter goes when the last one does."""
        entry = self._slots[slot]
        entry.refs -= 1
        if entry.refs:
            return
        del self._slots[slot]
        del self._by_spec[entry.spec]
        clear = ~(1 << slot)
        self._active &= clear
        self._need_glob &= clear
        self._need_regex &= clear
        self._need_issuer &= clear
        self._need_log &= clear
        if slot in self._young_slots:
            self._young_slots.discard(slot)
            self._retired_young.add(slot)
            self._dirty = True
        else:
            self._main_slots.discard(slot)
            self._retired_main.add(slot)
            if len(self._retired_main) > max(self._young_min, len(self._main_slots) // 2):
                self._dirty = True

    def spec(self, slot: int) -> FilterSpec:
        return self._slots[slot].spec

    def __len__(self) -> int:
        """Distinct filters."""
        return len(self._slots)

    @property
    def subscribers(self) -> int:
        """References held: the filtered clients."""
        return sum(entry.refs for entry in self._slots.values())

    @property
    def patterns(self) -> int:
        return sum(entry.spec.patterns for entry in self._slots.values())

    # -- matching --------------------------------------------------------------------------

    def match(self, fields: MatchFields) -> int:
        """The bitmask of slots whose filter matches ``fields``: one scan for all of them."""
        if self._dirty:
            self._build()
        self.records += 1
        if not self._active:
            return 0
        glob = regex = issuer = log = 0
        for matcher in (self._main, self._young):
            if matcher is not None:
                g, r, i, s = matcher.match(fields)
                glob |= g
                regex |= r
                issuer |= i
                log |= s
        if not (glob or regex or issuer or log):
            return 0  # the usual case: nothing anyone asked for
        hit = (
            self._active
            & (glob | ~self._need_glob)
            & (regex | ~self._need_regex)
            & (issuer | ~self._need_issuer)
            & (log | ~self._need_log)
        )
        if hit:
            self.records_matched += 1
        return hit

    def _build(self) -> None:
        self._dirty = False
        main, young = len(self._main_slots), len(self._young_slots)
        floor = max(self._young_min, main // 4)
        if young > floor or len(self._retired_main) > max(self._young_min, main // 2):
            self._main_slots |= self._young_slots
            self._young_slots = set()
            self._main = self._compile(self._main_slots)
            self._young = None
            self._free.extend(self._retired_main | self._retired_young)
            self._retired_main = set()
        else:
            self._young = self._compile(self._young_slots) if self._young_slots else None
            self._free.extend(self._retired_young)
        self._retired_young = set()

    def _compile(self, slots: Iterable[int]) -> Matcher | None:
        chosen: Sequence[tuple[int, FilterSpec]] = [
            (slot, self._slots[slot].spec) for slot in sorted(slots)
        ]
        if not chosen:
            return None
        self.builds += 1
        return Matcher(chosen)
