"""Server-side filters: parsing, the meaning of each kind, and the shared index against a
naive reference matcher (fnmatch globs, Python ``re``), with plain values."""

from __future__ import annotations

import fnmatch
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certstream.core.filter_engine import glob_matches, per_name_regex
from certstream.core.filters import (
    FilterIndex,
    FilterSpec,
    MatchFields,
    decode_match_fields,
    encode_match_fields,
    iter_slots,
    match_fields,
    parse_filters,
)
from certstream.errors import FilterError, RemoteProtocolError

ISSUER = "/C=US/CN=WR1/O=Google Trust Services"
LOG = ("Google 'Argon2026h2' log", "https://ct.googleapis.com/logs/us1/argon2026h2/")


def fields(*names: str, issuer: str = ISSUER, log: tuple[str, str] = LOG) -> MatchFields:
    return match_fields(names, issuer, *log)


def matches(query: str, *names: str, issuer: str = ISSUER, log: tuple[str, str] = LOG) -> bool:
    spec = parse_filters(query)
    assert spec is not None
    index = FilterIndex()
    slot = index.add(spec)
    return bool(index.match(fields(*names, issuer=issuer, log=log)) >> slot & 1)


# -- parsing -------------------------------------------------------------------------------


def test_no_filter_parameters_is_no_filter() -> None:
    assert parse_filters("") is None
    assert parse_filters("stream=full&since=12") is None


def test_equal_filters_are_one_canonical_spec() -> None:
    a = parse_filters("domain=*.Example.com&issuer=Google&domain=*paypal*&stream=full")
    b = parse_filters("issuer=google&domain=*PAYPAL*&domain=*.example.com&domain=*paypal*")
    assert a == b and hash(a) == hash(b)
    assert a == FilterSpec(domains=("*.example.com", "*paypal*"), issuers=("google",))
    assert parse_filters(a.query()) == a
    assert parse_filters("domain=a**b") == parse_filters("domain=a*b")


def test_domain_re_keeps_its_case_and_text() -> None:
    spec = parse_filters("domain_re=%5EWww%5C.")
    assert spec is not None and spec.domain_res == ("^Www\\.",)


@pytest.mark.parametrize(
    ("query", "param", "words"),
    [
        ("domain=" + "a" * 254, "domain", "254 characters"),
        ("domain_re=" + "a" * 254, "domain_re", "254 characters"),
        ("issuer=" + "x" * 300, "issuer", "300 characters"),
        ("domain=", "domain", "needs a value"),
        ("domain_re=", "domain_re", "needs a value"),
        ("log=", "log", "needs a value"),
        ("domain=a%0Ab", "domain", "control character"),
        ("domain_re=a(%3F%3Db)", "domain_re", "RE2 refuses"),
        ("domain_re=(a", "domain_re", "RE2 refuses"),
        ("domain_re=(%5Cw)%5C1", "domain_re", "RE2 refuses"),
        ("domain_re=(%3F-m)%5Ea", "domain_re", "multi-line"),
    ],
)
def test_bad_filters_are_400_with_a_json_reason(query: str, param: str, words: str) -> None:
    with pytest.raises(FilterError) as info:
        parse_filters(query)
    err = info.value
    assert err.status_hint == 400
    assert isinstance(err, RemoteProtocolError)
    body = json.loads(err.json_body())
    assert body["error"] == "bad filter" and body["param"] == param
    assert words in body["reason"]


def test_a_253_character_pattern_is_allowed() -> None:
    assert parse_filters("domain=" + "a" * 253) is not None


def test_pattern_count_limit() -> None:
    query = "&".join(f"domain=d{i}.com" for i in range(100))
    assert parse_filters(query) is not None
    with pytest.raises(FilterError, match="more than 100"):
        parse_filters(query + "&issuer=x")
    with pytest.raises(FilterError, match="more than 3"):
        parse_filters("domain=a&domain=b&log=c&issuer=d", max_patterns=3)


# -- what each kind means --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("glob", "name", "hit"),
    [
        ("*.example.com", "www.example.com", True),
        ("*.example.com", "a.b.example.com", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "www.example.com.evil.net", False),
        ("example.com", "example.com", True),
        ("example.com", "www.example.com", False),
        ("*paypal*", "secure-paypal.login.xyz", True),
        ("*paypal*", "paypal", True),
        ("*paypal*", "paypa.l", False),
        ("*.org", "wikipedia.org", True),
        ("www.*", "www.a.b", True),
        ("www.*", "awww.a", False),
        ("*.AWS.dev", "x.aws.DEV", True),
        ("a*b*c", "abc", True),
        ("a*b*c", "a.x.b.y.c", True),
        ("a*b*c", "acb", False),
        ("a*b*c", "ab", False),
        ("*a*b*", "xaxbx", True),
        ("*a*b*", "xbxax", False),
        ("ab*ba", "aba", False),
        ("ab*ba", "abba", True),
        ("*", "anything.at.all", True),
    ],
)
def test_domain_globs(glob: str, name: str, hit: bool) -> None:
    assert matches("domain=" + glob, "other.test", name) is hit


def test_a_certificate_without_names_matches_no_domain_pattern() -> None:
    assert not matches("domain=*")
    assert not matches("domain_re=x*")
    assert matches("issuer=google")


@pytest.mark.parametrize(
    ("regex", "names", "hit"),
    [
        (r"^www\.", ["a.com", "www.b.com"], True),
        (r"^www\.", ["a.www.com"], False),
        (r"\.com$", ["a.com.net", "b.com"], True),
        (r"\Aa\z", ["b", "a"], True),
        (r"\Aa\z", ["ba"], False),
        (r"^a[^x]*b$", ["a", "b"], False),  # never across two names
        (r"^a\s*b$", ["a", "b"], False),
        (r"(?s)a.b", ["a", "b"], False),
        (r"^$", ["x", "y"], False),
        (r"PayPal", ["secure-paypal.com"], True),  # case-insensitive, like DNS
        (r"[0-9]{3}-[0-9]+", ["ip-10-0-0-1", "host-123-4.x"], True),
        (r"x*", ["anything"], True),
    ],
)
def test_domain_regexes(regex: str, names: list[str], hit: bool) -> None:
    assert matches("domain_re=" + re.sub(r"[^A-Za-z0-9]", lambda m: f"%{ord(m[0]):02X}", regex),
                   *names) is hit


def test_per_name_regex_rewrites_text_anchors_only_outside_classes() -> None:
    assert per_name_regex(r"\Aa\z") == "(?m)^a$"
    assert per_name_regex(r"\\A") == r"(?m)\\A"
    assert per_name_regex(r"[\A]x") == r"(?m)[\A]x"
    assert per_name_regex(r"[]\z]\z") == r"(?m)[]\z]$"
    assert per_name_regex(r"[[:alpha:]]\z") == r"(?m)[[:alpha:]]$"


def test_issuer_and_log_are_case_insensitive_substrings() -> None:
    assert matches("issuer=trust%20SERVICES", "a.com")
    assert matches("issuer=cn=wr1", "a.com")
    assert not matches("issuer=let's%20encrypt", "a.com")
    assert matches("log=argon2026", "a.com")
    assert matches("log=ct.googleapis.com/logs/us1", "a.com")  # the URL
    assert matches("log='ARGON", "a.com")  # the name
    assert not matches("log=xenon", "a.com")


def test_kinds_combine_with_and_values_with_or() -> None:
    q = "domain=*.a.com&domain=*.b.com&issuer=google&issuer=sectigo&log=argon"
    assert matches(q, "x.b.com")
    assert matches(q, "x.a.com", issuer="/CN=Sectigo")
    assert not matches(q, "x.c.com")
    assert not matches(q, "x.a.com", issuer="/CN=Let's Encrypt")
    assert not matches(q, "x.a.com", log=("Cloudflare Nimbus", "https://ct.cloudflare.com/"))
    # domain= and domain_re= are two kinds: both must match (not necessarily the same name).
    q2 = "domain=*.a.com&domain_re=%5Eb%5C."
    assert matches(q2, "b.a.com") and matches(q2, "q.a.com", "b.x.org")
    assert not matches(q2, "b.x.org") and not matches(q2, "q.a.com")


# -- the record field -----------------------------------------------------------------------


def test_match_fields_round_trip_through_the_feed_field() -> None:
    raw = encode_match_fields(["WWW.Example.com", "bad\nname", "nul\0"], "/O=Iss", "Log", "u/")
    assert decode_match_fields(raw) == MatchFields(
        "www.example.com\nbad\ufffdname\nnul\ufffd", "/o=iss", "log\nu/"
    )
    assert decode_match_fields(encode_match_fields([], "", "", "")) == MatchFields("", "", "\n")
    with pytest.raises(RemoteProtocolError):
        decode_match_fields(b"only\0two")
    with pytest.raises(RemoteProtocolError):
        decode_match_fields(b"\xff\0\0")


# -- the index ---------------------------------------------------------------------------------


def test_equal_filters_share_a_slot_until_the_last_one_leaves() -> None:
    index = FilterIndex()
    spec = parse_filters("domain=*.a.com")
    assert spec is not None
    slot = index.add(spec)
    assert index.add(parse_filters("domain=*.A.com")) == slot  # type: ignore[arg-type]
    assert len(index) == 1 and index.subscribers == 2
    index.remove(slot)
    assert index.match(fields("x.a.com")) == 1 << slot
    index.remove(slot)
    assert len(index) == 0 and index.match(fields("x.a.com")) == 0


def test_a_reused_slot_never_inherits_old_patterns() -> None:
    index = FilterIndex(young_min=2)
    specs = [parse_filters(f"domain=*.s{i}.com") for i in range(40)]
    slots = [index.add(s) for s in specs]  # type: ignore[arg-type]
    index.match(fields("x.com"))  # compiles
    for slot in slots[:30]:
        index.remove(slot)
    for i in range(40, 80):
        new = index.add(parse_filters(f"domain=*.n{i}.com"))  # type: ignore[arg-type]
        got = set(iter_slots(index.match(fields(f"x.s{i - 40}.com", f"y.n{i}.com"))))
        assert new in got
        assert got <= {new} | set(slots[30:])
    assert index.builds >= 3


def test_compiles_only_when_the_set_of_filters_changes() -> None:
    index = FilterIndex()
    index.add(parse_filters("domain=*.a.com"))  # type: ignore[arg-type]
    for _ in range(100):
        index.match(fields("x.a.com"))
    assert index.builds == 1
    index.add(parse_filters("domain=*.a.com"))  # type: ignore[arg-type]  # same filter
    index.match(fields("x.a.com"))
    assert index.builds == 1
    index.add(parse_filters("domain=*.b.com"))  # type: ignore[arg-type]
    index.match(fields("x.a.com"))
    assert index.builds == 2
    assert index.records == 102 and index.records_matched == 102


def test_iter_slots() -> None:
    assert list(iter_slots(0)) == []
    assert list(iter_slots(0b1010_0001 | 1 << 300)) == [0, 5, 7, 300]


def test_glob_matches_is_exact() -> None:
    assert glob_matches(("a", "b", "c"), "abc")
    assert not glob_matches(("ab", "ba"), "aba")


# -- property: the index agrees with a naive matcher ------------------------------------------

_LABEL = st.text(alphabet="abc1-", min_size=1, max_size=4)
_NAME = st.lists(_LABEL, min_size=1, max_size=4).map(".".join)
_GLOB = st.text(alphabet="abc.*", min_size=1, max_size=8)

# Regexes from a grammar that RE2 and Python's re read alike: (re2 text, Python text).
_ATOM = st.sampled_from([
    ("a", "a"), ("b", "b"), ("c", "c"), (r"\.", r"\."), (".", "."), ("[ab]", "[ab]"),
    ("[^a]", "[^a]"), (r"\d", r"\d"), (r"\w", r"\w"), (r"\s", r"\s"), ("-", "-"),
])
_QUANT = st.sampled_from(["", "", "*", "+", "?", "{1,2}"])


@st.composite
def _regex(draw: st.DrawFn) -> tuple[str, str]:
    parts = draw(st.lists(st.tuples(_ATOM, _QUANT), min_size=1, max_size=4))
    r2 = "".join(a[0] + q for a, q in parts)
    py = "".join(a[1] + q for a, q in parts)
    if draw(st.booleans()):
        start = draw(st.sampled_from(["^", r"\A"]))
        r2, py = start + r2, "^" + py
    if draw(st.booleans()):
        end = draw(st.sampled_from(["$", r"\z"]))
        r2, py = r2 + end, py + r"\Z"
    if draw(st.booleans()):
        other = draw(_ATOM)
        r2, py = f"(?:{r2})|{other[0]}", f"(?:{py})|{other[1]}"
    return r2, py


_ISSUERS = ["/O=Google/CN=WR1", "/O=Let's Encrypt/CN=R10", "/O=Sectigo"]
_LOGS = [("Argon", "https://a/"), ("Nimbus", "https://n/")]


@st.composite
def _filter(draw: st.DrawFn) -> tuple[FilterSpec, list[str]]:
    globs = draw(st.lists(_GLOB, max_size=3))
    regexes = draw(st.lists(_regex(), max_size=2))
    issuers = draw(st.lists(st.sampled_from(["google", "encrypt", "o=", "zzz"]), max_size=2))
    logs = draw(st.lists(st.sampled_from(["argon", "https://n", "nimbus"]), max_size=1))
    if not (globs or regexes or issuers or logs):
        globs = ["*a*"]
    spec = FilterSpec(
        tuple(sorted({g.replace("**", "*") for g in globs})),
        tuple(sorted({r[0] for r in regexes})),
        tuple(sorted(set(issuers))),
        tuple(sorted(set(logs))),
    )
    return spec, [r[1] for r in regexes]


def _reference(spec: FilterSpec, py_res: list[str], names: list[str], issuer: str,
               log: tuple[str, str]) -> bool:
    ok = True
    if spec.domains:
        ok &= any(fnmatch.fnmatchcase(n.lower(), g) for g in spec.domains for n in names)
    if spec.domain_res:
        ok &= any(re.search(r, n, re.IGNORECASE | re.ASCII) for r in py_res for n in names)
    if spec.issuers:
        ok &= any(i in issuer.lower() for i in spec.issuers)
    if spec.logs:
        ok &= any(x in (log[0] + "\n" + log[1]).lower() for x in spec.logs)
    return ok


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    filters=st.lists(_filter(), min_size=1, max_size=12),
    records=st.lists(
        st.tuples(st.lists(_NAME, max_size=4), st.sampled_from(_ISSUERS),
                  st.sampled_from(_LOGS)),
        min_size=1, max_size=8,
    ),
    drop=st.sets(st.integers(0, 11), max_size=4),
)
def test_index_agrees_with_a_naive_matcher(
    filters: list[tuple[FilterSpec, list[str]]],
    records: list[tuple[list[str], str, tuple[str, str]]],
    drop: set[int],
) -> None:
    index = FilterIndex(young_min=2)
    slots = [index.add(spec) for spec, _ in filters]
    live = dict(enumerate(filters))
    for i in drop:  # take some out again (each added once, or shared with an equal one)
        if i in live:
            index.remove(slots[i])
            del live[i]
    for names, issuer, log in records:
        got = index.match(match_fields(names, issuer, *log))
        for i, (spec, py_res) in live.items():
            want = _reference(spec, py_res, names, issuer, log)
            assert bool(got >> slots[i] & 1) is want, (spec, names, issuer, log)
        alive = {slots[i] for i in live}
        assert set(iter_slots(got)) <= alive


def test_a_regex_set_too_big_for_one_re2_set_is_split(monkeypatch: pytest.MonkeyPatch) -> None:
    import re2  # noqa: PLC0415

    from certstream.core import filter_engine  # noqa: PLC0415

    small = re2.Options()
    small.never_nl = True
    small.case_sensitive = False
    small.log_errors = False
    small.max_mem = 1 << 17
    monkeypatch.setattr(filter_engine, "_OPTIONS", small)
    index = FilterIndex()
    slots = [index.add(FilterSpec(domain_res=(rf"^h{i}[a-z0-9]{{3,9}}x{i}\.com$",)))
             for i in range(60)]
    matcher = index._compile(slots)  # a whole index compiled at once
    assert matcher is not None and len(matcher._re_sets) > 1
    for i in (0, 31, 59):
        assert set(iter_slots(index.match(fields(f"h{i}abcx{i}.com")))) == {slots[i]}
