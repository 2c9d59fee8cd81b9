"""The compiled multi-pattern matcher behind ``core.filters``: many filters, one scan.

A ``Matcher`` is built from ``(slot, FilterSpec)`` pairs and answers, for one record, the
bitmasks of slots whose glob, regex, issuer and log parts matched.  Its cost per record depends
on the record and on how many patterns *hit*, not on how many filters there are:

* **Globs** go into one Aho-Corasick automaton (``pyahocorasick``) scanned over the names
  joined as ``"\\nname1\\nname2\\n"``.  Each glob is keyed by one literal with the name
  boundaries as anchors: ``example.com`` by ``"\\nexample.com\\n"``, ``*.example.com`` by
  ``".example.com\\n"``, ``www.*`` by ``"\\nwww."``, ``*paypal*`` by ``"paypal"``.  Those four
  shapes (nearly every real filter) are decided by the key alone; any other glob (``a*b``,
  ``*a*b*``) is keyed by its longest literal and checked on the names only when that key
  occurs, piece by piece with ``str.find`` (linear, exact).  ``*`` alone matches any name.
* **Regular expressions** go into one RE2 set (``google-re2``), searched once over the
  names joined by ``"\\n"`` with ``never_nl`` (no match can span two names), multi-line
  anchors and ``\\A``/``\\z`` rewritten to ``^``/``$``: exactly a search in every name.
  A set too big for RE2's memory budget is split in halves until each part compiles.
* **Issuer and log** substrings go into one automaton each; the answer is cached per
  distinct issuer and log text (a few hundred issuers sign nearly everything), so a record
  costs a dict lookup there.

Hyperscan was measured too (``bench/filters.py``): a little faster per record (~1 µs vs
~2 µs for 10,000 patterns) but ~2.7 s to compile 10,000 patterns against ~25 ms here, and
filters change whenever a client with a new one connects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import ahocorasick
import re2

if TYPE_CHECKING:
    from certstream.core.filterfields import FilterSpec, MatchFields

__all__ = ["Matcher", "compile_regex", "per_name_regex"]

# Distinct issuer / log texts remembered per matcher; past this the cache starts over.
_CACHE_LIMIT = 4096


def _options() -> re2.Options:
    opts = re2.Options()
    opts.case_sensitive = False
    opts.never_nl = True  # nothing matches across the "\n" between two names
    opts.log_errors = False
    opts.max_mem = 64 << 20  # the DFA of a set of thousands of expressions needs room
    return opts


_OPTIONS = _options()


def per_name_regex(pattern: str) -> str:
    """``pattern`` as searched over names joined by ``"\\n"``: multi-line, ``\\A`` and
    ``\\z`` (text anchors) turned into ``^`` and ``$`` (line anchors), so a name's ends are
    its anchors.  Raises ``ValueError`` for a flag group that turns multi-line off."""
    out: list[str] = []
    i, n, in_class = 0, len(pattern), False
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            pair = pattern[i : i + 2]
            if not in_class and pair == "\\A":
                out.append("^")
            elif not in_class and pair == "\\z":
                out.append("$")
            else:
                out.append(pair)
            i += 2
            continue
        if in_class:
            if pattern.startswith("[:", i):  # [[:alpha:]]
                end = pattern.find(":]", i + 2)
                if end >= 0:
                    out.append(pattern[i : end + 2])
                    i = end + 2
                    continue
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
            out.append(c)
            i += 1
            if pattern.startswith("^", i):
                out.append("^")
                i += 1
            if pattern.startswith("]", i):  # "[]a]": a leading "]" is a member
                out.append("]")
                i += 1
            continue
        elif c == "(" and pattern.startswith("(?", i):
            j = i + 2
            while j < n and pattern[j] in "imsU-":
                j += 1
            flags = pattern[i + 2 : j]
            if "-" in flags and "m" in flags.split("-", 1)[1]:
                raise ValueError("turning multi-line (m) off is not supported: each name "
                                 "is matched on its own")
        out.append(c)
        i += 1
    return "(?m)" + "".join(out)


def compile_regex(pattern: str) -> re2._Regexp:
    """Check ``pattern`` as ``domain_re`` would use it; ``ValueError`` says why RE2 refuses."""
    rewritten = per_name_regex(pattern)
    try:
        return re2.compile(rewritten, _OPTIONS)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise ValueError(f"RE2 refuses it: {detail}") from None


# -- globs -------------------------------------------------------------------------------


def _glob_key(glob: str) -> tuple[str, tuple[str, ...] | None]:
    """The automaton key of ``glob`` and, when the key alone does not decide, its pieces."""
    if "*" not in glob:
        return "\n" + glob + "\n", None
    pieces = glob.split("*")
    if len(pieces) == 2:
        first, last = pieces
        if not first and last:
            return last + "\n", None  # *suffix
        if first and not last:
            return "\n" + first, None  # prefix*
    if len(pieces) == 3 and not pieces[0] and not pieces[2] and pieces[1]:
        return pieces[1], None  # *infix*
    candidates = ["\n" + pieces[0] if pieces[0] else "", pieces[-1] + "\n" if pieces[-1] else ""]
    candidates += pieces[1:-1]
    return max(candidates, key=len), tuple(pieces)


def glob_matches(pieces: tuple[str, ...], name: str) -> bool:
    """Whether ``name`` matches the glob split at its stars into ``pieces`` (two or more).

    Placing each middle piece at its leftmost occurrence is optimal for ``*``-only globs,
    so this is exact and linear.
    """
    first, last = pieces[0], pieces[-1]
    if len(name) < len(first) + len(last):
        return False
    if not (name.startswith(first) and name.endswith(last)):
        return False
    pos, end = len(first), len(name) - len(last)
    for piece in pieces[1:-1]:
        found = name.find(piece, pos, end)
        if found < 0:
            return False
        pos = found + len(piece)
    return True


def _automaton(keys: dict[str, int]) -> ahocorasick.Automaton | None:
    if not keys:
        return None
    auto = ahocorasick.Automaton()
    for key, index in keys.items():
        auto.add_word(key, index)
    auto.make_automaton()
    return auto


def _regex_sets(patterns: list[str], offset: int = 0) -> list[tuple[re2.Set, int]]:
    """RE2 sets holding ``patterns`` (indices from ``offset``): one if it fits in RE2's
    memory budget, else halves, recursively.  Each pattern compiled on its own when it was
    accepted, so a set of one always compiles."""
    rset = re2.Set.SearchSet(_OPTIONS)
    for pattern in patterns:
        rset.Add(per_name_regex(pattern))
    try:
        rset.Compile()
    except re2.error:
        if len(patterns) == 1:
            raise
        half = len(patterns) // 2
        return (_regex_sets(patterns[:half], offset)
                + _regex_sets(patterns[half:], offset + half))
    return [(rset, offset)]


class _Substrings:
    """Case-folded substrings of one field (issuer or log), answered per distinct text."""

    __slots__ = ("_auto", "_bits", "_cache")

    def __init__(self, patterns: dict[str, int]) -> None:
        keys = {text: i for i, text in enumerate(patterns)}
        self._bits = list(patterns.values())
        self._auto = _automaton(keys)
        self._cache: dict[str, int] = {}

    def match(self, text: str) -> int:
        bits = self._cache.get(text)
        if bits is None:
            bits = 0
            if self._auto is not None:
                table = self._bits
                for _end, index in self._auto.iter(text):
                    bits |= table[index]
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[text] = bits
        return bits


class Matcher:
    """All patterns of a set of filters, compiled once (see the module docstring)."""

    __slots__ = ("_any_name", "_checks", "_glob_auto", "_glob_bits", "_issuer", "_log",
                 "_re_bits", "_re_sets")

    def __init__(self, filters: Sequence[tuple[int, FilterSpec]]) -> None:
        globs: dict[str, int] = {}
        regexes: dict[str, int] = {}
        issuers: dict[str, int] = {}
        logs: dict[str, int] = {}
        for slot, spec in filters:
            bit = 1 << slot
            for table, values in ((globs, spec.domains), (regexes, spec.domain_res),
                                  (issuers, spec.issuers), (logs, spec.logs)):
                for value in values:
                    table[value] = table.get(value, 0) | bit

        self._any_name = 0
        keys: dict[str, int] = {}
        self._glob_bits: list[int] = []
        self._checks: list[list[tuple[tuple[str, ...], int]]] = []
        for glob, bits in globs.items():
            if not glob.strip("*"):
                self._any_name |= bits
                continue
            key, pieces = _glob_key(glob)
            index = keys.get(key)
            if index is None:
                index = keys[key] = len(self._glob_bits)
                self._glob_bits.append(0)
                self._checks.append([])
            if pieces is None:
                self._glob_bits[index] |= bits
            else:
                self._checks[index].append((pieces, bits))
        self._glob_auto = _automaton(keys)

        self._re_bits = list(regexes.values())
        self._re_sets = _regex_sets(list(regexes)) if regexes else []
        self._issuer = _Substrings(issuers)
        self._log = _Substrings(logs)

    def match(self, fields: MatchFields) -> tuple[int, int, int, int]:
        """Slot bitmasks of the glob, regex, issuer and log parts that ``fields`` matches."""
        domain = regex = 0
        names = fields.names
        if names:  # a certificate without names matches no domain pattern
            domain = self._any_name
            auto = self._glob_auto
            if auto is not None:
                table, checks = self._glob_bits, self._checks
                for _end, index in auto.iter("\n" + names + "\n"):
                    domain |= table[index]
                    for pieces, bits in checks[index]:
                        if (domain & bits) != bits and any(
                            glob_matches(pieces, name) for name in names.split("\n")
                        ):
                            domain |= bits
            for rset, offset in self._re_sets:
                found = rset.Match(names)
                if found:
                    re_bits = self._re_bits
                    for index in found:
                        regex |= re_bits[offset + index]
        return domain, regex, self._issuer.match(fields.issuer), self._log.match(fields.log)
