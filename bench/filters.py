"""Server-side filters: one scan per record for every client's patterns, and what it costs.

In one process, no server: 1,000 filters of 10 patterns each (7 globs of every shape, 3
RE2 regexes; random words, so that a few records match, as in real use, plus 10 filters that
do match live40 names) in one ``FilterIndex``; the 40 live40 records (``MatchFields`` from
the Go server's lite payloads) matched round and round.  Figures: matching per record for
all 10,000 patterns together (target 10 µs), a full compile, and what one more client with
a new filter costs (the young matcher's rebuild).

Also measured, to choose where the record's filter fields come from: decoding the feed's
filter field (``decode_match_fields``) against parsing the lite payload in the worker; and,
when the ``hyperscan`` module is importable (it is not a dependency), the same patterns
compiled and scanned by Hyperscan.
"""

from __future__ import annotations

import importlib
import json
import random
import re
import time
from types import ModuleType

from bench.common import REPO, Figure, Report
from certstream.core.filters import (
    FilterIndex,
    FilterSpec,
    MatchFields,
    decode_match_fields,
    encode_match_fields,
    match_fields_of_message,
)

GOLDEN = REPO / "conformance" / "data" / "golden" / "go" / "live40"
TARGET_US = 10.0
_TLDS = ("com", "net", "org", "io", "dev", "de", "co.uk")


def lite_payloads() -> list[bytes]:
    lines = (GOLDEN / "lite.jsonl").read_text().splitlines()
    return [json.loads(line).encode() for line in lines if line]


def _word(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(n))


def make_filters(n: int, per: int, names: list[str], seed: int = 7) -> list[FilterSpec]:
    """``n`` distinct filters of ``per`` patterns (70 % globs of the five shapes, 30 %
    regexes); in the first 10 a glob and a regex match a live40 name."""
    rng = random.Random(seed)
    specs = []
    for i in range(n):
        globs: set[str] = set()
        regexes: set[str] = set()
        while len(globs) + len(regexes) < per:
            kind = rng.randrange(10)
            tld = rng.choice(_TLDS)
            if kind == 0:
                globs.add(f"*.{_word(rng, 7)}.{tld}")
            elif kind == 1:
                globs.add(f"*{_word(rng, 6)}*")
            elif kind == 2:
                globs.add(f"{_word(rng, 5)}.{_word(rng, 6)}.{tld}")
            elif kind == 3:
                globs.add(f"{_word(rng, 4)}.*")
            elif kind in (4, 5, 6):
                globs.add(f"*{_word(rng, 4)}*{_word(rng, 3)}.{tld}")
            elif kind == 7:
                regexes.add(rf"^{_word(rng, 4)}[0-9]+\.{tld}$")
            elif kind == 8:
                regexes.add(rf"{_word(rng, 4)}-?{_word(rng, 3)}\.")
            else:
                regexes.add(rf"(?:{_word(rng, 3)}|{_word(rng, 3)})\d{{2,}}\.{tld}$")
        if i < 10:
            # A glob and a regex that both match a live40 name (a filter's kinds must all
            # match), in place of a random one of each.
            suffix = rng.choice(names).split(".", 1)[-1]
            if globs:
                globs.pop()
            globs.add("*" + suffix)
            if regexes:
                regexes.pop()
                regexes.add(re.escape(suffix) + "$")
        specs.append(FilterSpec(tuple(sorted(globs)), tuple(sorted(regexes))))
    return specs


def _per_record_us(index: FilterIndex, records: list[MatchFields], rounds: int) -> float:
    match = index.match
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(rounds):
            for rec in records:
                match(rec)
        best = min(best, time.perf_counter() - t0)
    return best / (rounds * len(records)) * 1e6


def _hyperscan(report: Report, specs: list[FilterSpec], records: list[MatchFields]) -> None:
    try:
        import hyperscan  # type: ignore[import-not-found]  # noqa: PLC0415 - optional, for the comparison
    except ImportError:
        report.say("hyperscan not importable: its comparison is skipped")
        return
    exprs: list[bytes] = []
    for spec in specs:
        for glob in spec.domains:
            body = "[^\\n]*".join(re.escape(p) for p in glob.split("*"))
            exprs.append(body.encode())  # unanchored, the cheapest form to compile
        exprs.extend(r.encode() for r in spec.domain_res)
    flags = hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_MULTILINE
    t0 = time.perf_counter()
    db = hyperscan.Database()
    db.compile(expressions=exprs, ids=list(range(len(exprs))), flags=[flags] * len(exprs))
    compile_s = time.perf_counter() - t0
    scratch = hyperscan.Scratch(db)
    texts = [r.names.encode() for r in records]
    hits: list[int] = []

    def on_match(pid: int, _f: int, _t: int, _fl: int, _c: object) -> None:
        hits.append(pid)

    rounds = 200
    t0 = time.perf_counter()
    for _ in range(rounds):
        for text in texts:
            db.scan(text, match_event_handler=on_match, scratch=scratch)
    scan_us = (time.perf_counter() - t0) / (rounds * len(texts)) * 1e6
    report.add(Figure("filters", f"hyperscan compile, {len(exprs):,} patterns", compile_s,
                      "s", note="for comparison; not used"))
    report.add(Figure("filters", "hyperscan scan per record", scan_us, "us",
                      note="domain patterns only, no slot mapping"))


def _fast_json() -> ModuleType:
    """ujson when it is installed (the fastest parser a Python worker could use; not a
    dependency), else the standard library's."""
    try:
        return importlib.import_module("ujson")
    except ImportError:
        return json


def run(report: Report, filters: int = 1000, per: int = 10, rounds: int = 500) -> None:
    report.say(f"## filters: {filters:,} filters x {per} patterns, live40 records")
    payloads = lite_payloads()
    parser = _fast_json()
    messages = [parser.loads(p) for p in payloads]
    records = [match_fields_of_message(m) for m in messages]
    names = [n for r in records for n in r.names.split("\n") if n]
    specs = make_filters(filters, per, names)

    index = FilterIndex()
    for spec in specs:
        index.add(spec)
    t0 = time.perf_counter()
    index.match(records[0])  # the first match compiles
    compile_s = time.perf_counter() - t0
    report.add(Figure("filters", f"compile {index.patterns:,} patterns", compile_s * 1e3, "ms"))
    per_us = _per_record_us(index, records, rounds)
    report.add(Figure("filters", f"match per record, {index.patterns:,} patterns", per_us, "us",
                      "<=", TARGET_US))
    matched = sum(1 for r in records if index.match(r))
    report.add(Figure("filters", "live40 records matched by some filter", matched, "records",
                      note="of 40: the 10 filters with a live40 name"))

    # One more client with a new filter: what its arrival costs the worker, once.
    extra = make_filters(1, per, names, seed=99)[0]
    index.add(extra)
    t0 = time.perf_counter()
    index.match(records[0])
    report.add(Figure("filters", "rebuild for one new filter (young matcher)",
                      (time.perf_counter() - t0) * 1e3, "ms"))
    report.add(Figure("filters", "match per record with a young matcher",
                      _per_record_us(index, records, rounds // 5), "us", "<=", TARGET_US))

    # Where the record's fields come from: the feed's field vs parsing the payload here.
    raw = [encode_match_fields(r.names.split("\n"), r.issuer, *r.log.split("\n", 1))
           for r in records]
    n = rounds * len(raw)
    t0 = time.perf_counter()
    for _ in range(rounds):
        for field in raw:
            decode_match_fields(field)
    report.add(Figure("filters", "record fields from the feed's filter field",
                      (time.perf_counter() - t0) / n * 1e6, "us",
                      note=f"{sum(map(len, raw)) / len(raw):.0f} bytes per record"))
    t0 = time.perf_counter()
    for _ in range(rounds):
        for payload in payloads:
            match_fields_of_message(parser.loads(payload))
    report.add(Figure("filters", f"record fields by parsing the lite payload ({parser.__name__})",
                      (time.perf_counter() - t0) / n * 1e6, "us",
                      note="not possible on a domains-only worker: no issuer or log there"))
    _hyperscan(report, specs, records)
