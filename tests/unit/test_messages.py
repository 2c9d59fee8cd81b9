"""The JSON text writers and the message builder (core/jsontext.py, core/messages.py).

The byte-exact comparison with the peers' frames is in conformance/test_conformance.py;
these tests pin the writer rules one by one and the builder's contract: only the requested
streams are built, lite is full minus chain and as_der, chain objects are cached by hash,
bad certificates raise DecodeError or are counted, never anything else.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import math
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.support.data import CT_FIXTURES, INPUTS

from certstream.core import jsontext, messages
from certstream.core.leaves import decode_get_entries
from certstream.core.messages import (
    STREAM_ALL,
    STREAM_DOMAINS,
    STREAM_FULL,
    STREAM_LITE,
    MessageBuilder,
)
from certstream.core.model import CertInfo, Extension, LogEntry, LogSource, NameAttr, Policy
from certstream.core.profiles import PROFILES, UnknownProfileError
from certstream.core.resume import parse_since
from certstream.errors import DecodeError, LocalProtocolError

SYNTH11 = INPUTS / "synth11" / "rfc6962.get-entries.json"
SOURCE = LogSource(name="Test <log> & co", url="ct.example.test/log/")

# --- string writers ------------------------------------------------------------------------

STRING_WRITERS = [
    jsontext.go_string,
    jsontext.go_string_html,
    jsontext.jason_string,
    jsontext.serde_string,
]


@pytest.mark.parametrize("write", STRING_WRITERS)
def test_short_escapes_and_quotes(write: jsontext.StringWriter) -> None:
    assert write('a"b\\c') == '"a\\"b\\\\c"'
    assert write("\b\f\n\r\t") == '"\\b\\f\\n\\r\\t"'


def test_other_control_chars_go_and_serde_lowercase_hex() -> None:
    assert jsontext.go_string("\x00\x1f\x7f") == '"\\u0000\\u001f\x7f"'
    assert jsontext.serde_string("\x1b") == '"\\u001b"'


def test_other_control_chars_jason_uppercase_hex() -> None:
    assert jsontext.jason_string("\x1f\x1b\x0b") == '"\\u001F\\u001B\\u000B"'
    # A literal backslash followed by "u00" is not an escape and must not be upper-cased.
    assert jsontext.jason_string("\\u00ab") == '"\\\\u00ab"'


@pytest.mark.parametrize("write", STRING_WRITERS)
def test_non_ascii_is_raw_utf8(write: jsontext.StringWriter) -> None:
    assert write("Münch€n 東京 😀") == '"Münch€n 東京 😀"'


def test_go_escapes_line_separators_others_do_not() -> None:
    assert jsontext.go_string("a\u2028b\u2029") == '"a\\u2028b\\u2029"'
    assert jsontext.serde_string("a\u2028") == '"a\u2028"'
    assert jsontext.jason_string("a\u2028") == '"a\u2028"'


def test_html_escaping_only_in_go_domains_writer() -> None:
    assert jsontext.go_string_html("<a>&b") == '"\\u003ca\\u003e\\u0026b"'
    assert jsontext.go_string("<a>&b") == '"<a>&b"'
    assert jsontext.jason_string("<a>&b") == '"<a>&b"'


def test_invalid_utf8_in_names_becomes_replacement() -> None:
    # The DER parser decodes undecodable bytes to lone surrogates or U+FFFD; neither may
    # reach the wire as invalid UTF-8.
    bad = "ab\udcffc"
    assert jsontext.go_string(bad) == '"ab\\ufffdc"'
    assert jsontext.serde_string(bad) == '"ab\ufffdc"'
    assert jsontext.jason_string(bad) == '"ab\ufffdc"'
    for write in STRING_WRITERS:
        write(bad).encode("utf-8")  # must not raise


@given(st.text())
def test_every_writer_round_trips_through_a_json_parser(text: str) -> None:
    clean = "".join(ch for ch in text if not "\ud800" <= ch <= "\udfff")
    for write in STRING_WRITERS:
        out = write(clean)
        assert json.loads(out) == clean
        assert not any(ord(ch) < 0x20 for ch in out)


def test_string_array() -> None:
    assert jsontext.string_array([], jsontext.go_string) == "[]"
    assert jsontext.string_array(["a", "<b>"], jsontext.go_string_html) == '["a","\\u003cb\\u003e"]'


# --- float writers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1700000000.0, "1700000000"),
        (1795612264.778, "1795612264.778"),
        (1700000005.13, "1700000005.13"),
        (0.1, "0.1"),
        (-2.5, "-2.5"),
        (0.0, "0"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.5e300, "1.5e+300"),
        (0.000001, "0.000001"),
        (1e-7, "1e-7"),
        (1.25e-10, "1.25e-10"),
    ],
)
def test_go_float(value: float, text: str) -> None:
    assert jsontext.go_float(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1700000000.0, "1700000000.0"),
        (1779302893.443, "1779302893.443"),
        (0.0, "0.0"),
        (1e15, "1000000000000000.0"),
        (1e16, "1e16"),
        (1.5e-7, "1.5e-7"),
        (0.0001, "0.0001"),
        (0.00001, "0.00001"),
        (0.000001, "1e-6"),
    ],
)
def test_ryu_float(value: float, text: str) -> None:
    assert jsontext.ryu_float(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1700000000.123456, "1700000000.123456"),
        (1700000000.0, "1.7e9"),
        (100.0, "100.0"),
        (1000.0, "1.0e3"),
        (0.5, "0.5"),
        (0.001, "0.001"),
        (0.0001, "0.0001"),
        (0.00001, "1.0e-5"),
        (123456.0, "123456.0"),
    ],
)
def test_jason_float(value: float, text: str) -> None:
    assert jsontext.jason_float(value) == text


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_round_trip_and_are_shortest(value: float) -> None:
    for write in (jsontext.go_float, jsontext.ryu_float, jsontext.jason_float):
        out = write(value)
        assert float(out) == value or (value == 0 and float(out) == 0)
        assert " " not in out
    go = jsontext.go_float(value)
    if float(value).is_integer() and 1 <= abs(value) < 1e21:
        assert "." not in go and "e" not in go


@given(st.floats(allow_nan=False, allow_infinity=False).filter(lambda v: v != 0))
def test_float_digits_read_from_repr_agree_with_decimal(value: float) -> None:
    # The writers read repr's digits as text (no decimal module in the process); decimal
    # reading the same repr is the reference.
    _sign, digit_tuple, exp = Decimal(repr(abs(value))).as_tuple()
    assert isinstance(exp, int)
    want = ("".join(map(str, digit_tuple)).rstrip("0") or "0", len(digit_tuple) + exp)
    assert jsontext._digits_exponent(value) == want


def test_non_finite_floats_do_not_crash() -> None:
    for write in (jsontext.go_float, jsontext.ryu_float, jsontext.jason_float):
        assert isinstance(write(math.inf), str)
        assert isinstance(write(math.nan), str)


# --- the builder ---------------------------------------------------------------------------


def synth_entries() -> list[LogEntry]:
    entries, errors = decode_get_entries(SYNTH11.read_bytes(), 0)
    assert not errors
    return entries


def test_unknown_profile_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        MessageBuilder("certstream-js")
    with pytest.raises(ValueError, match="allowed are calidog, go, rust"):
        MessageBuilder("nope")
    assert issubclass(UnknownProfileError, LocalProtocolError)
    assert sorted(PROFILES) == ["calidog", "go", "rust"]


def test_only_requested_streams_are_built(monkeypatch: pytest.MonkeyPatch) -> None:
    builder = MessageBuilder("go")
    entry = synth_entries()[5]

    def boom(*_args: object) -> object:
        raise AssertionError("the leaf object was formatted for a domains-only request")

    monkeypatch.setattr(builder, "_certificate_payloads", boom)
    monkeypatch.setattr(builder, "_chain_text", boom)
    out = builder.build(entry, SOURCE, 1.0, STREAM_DOMAINS)
    assert out.lite is None
    assert out.full is None
    assert json.loads(out.domains or b"")["message_type"] == "dns_entries"

    fresh = MessageBuilder("go")
    monkeypatch.setattr(fresh, "_chain_text", boom)
    lite_only = fresh.build(entry, SOURCE, 1.0, STREAM_LITE)
    assert lite_only.lite is not None
    assert lite_only.full is None
    assert lite_only.domains is None
    assert MessageBuilder("go").build(entry, SOURCE, 1.0, 0) == messages.Payloads(
        None, None, None, None, 1_000_000)  # only the seen it would show


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_lite_is_full_without_chain_and_as_der(profile: str) -> None:
    builder = MessageBuilder(profile)
    for entry in synth_entries():
        out = builder.build(entry, SOURCE, 1712345678.25, STREAM_ALL)
        assert out.lite is not None
        assert out.full is not None
        assert out.domains is not None
        full = json.loads(out.full)
        lite = json.loads(out.lite)
        assert full["data"]["leaf_cert"].pop("as_der") == base64.b64encode(entry.cert_der).decode()
        full["data"].pop("chain", None)
        assert full == lite
        assert json.loads(out.domains)["data"] == lite["data"]["leaf_cert"]["all_domains"]


@pytest.mark.parametrize(("profile", "newline"), [("go", b"\n"), ("calidog", b""), ("rust", b"")])
def test_terminators(profile: str, newline: bytes) -> None:
    out = MessageBuilder(profile).build(synth_entries()[0], SOURCE, 1.0, STREAM_ALL)
    assert out.lite is not None
    assert out.full is not None
    assert out.domains is not None
    assert out.lite.endswith(b"}" + newline)
    assert out.full.endswith(b"}" + newline)
    assert out.domains.endswith(b"}")


def test_go_source_url_cert_link_and_seen() -> None:
    out = MessageBuilder("go").build(synth_entries()[3], SOURCE, 1795612264.7789, STREAM_LITE)
    data = json.loads(out.lite or b"")["data"]
    assert data["source"] == {
        "name": "Test <log> & co",
        "url": "https://ct.example.test/log",
        "timestamp": synth_entries()[3].timestamp / 1000,
        "type": "rfc6962",
    }
    assert data["cert_link"] == "https://ct.example.test/log/ct/v1/get-entries?start=3&end=3"
    assert b'"seen":1795612264.778,' in (out.lite or b"")  # Go truncates to milliseconds
    assert b'"name":"Test <log> & co"' in (out.lite or b"")  # no HTML escaping there


def test_static_log_links() -> None:
    static = LogSource(name="t", url="https://tiles.example.test/mon", kind="static")
    entry = dataclasses.replace(synth_entries()[0], index=70000)
    go = json.loads(MessageBuilder("go").build(entry, static, 1.0, STREAM_LITE).lite or b"")
    assert go["data"]["cert_link"] == ""
    assert go["data"]["source"]["type"] == "tiled"
    rust = json.loads(MessageBuilder("rust").build(entry, static, 1.0, STREAM_LITE).lite or b"")
    assert rust["data"]["cert_link"] == "https://tiles.example.test/mon/tile/data/273"


def test_go_domains_frame_escapes_html(monkeypatch: pytest.MonkeyPatch) -> None:
    info = CertInfo(der=b"x", san=((2, "a<b>&c.test"),), subject=(NameAttr("2.5.4.3", "<cn>"),))
    monkeypatch.setattr(messages, "parse_certificate", lambda _der: info)
    entry = synth_entries()[0]
    out = MessageBuilder("go").build(entry, SOURCE, 1.0, STREAM_ALL)
    assert out.domains == (
        b'{"data":["a\\u003cb\\u003e\\u0026c.test","\\u003ccn\\u003e"],'
        b'"message_type":"dns_entries"}'
    )
    assert b'"all_domains":["a<b>&c.test","<cn>"]' in (out.lite or b"")


def test_invalid_utf8_name_gives_valid_utf8_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    info = CertInfo(der=b"x", subject=(NameAttr("2.5.4.10", "Org\udcff"),))
    monkeypatch.setattr(messages, "parse_certificate", lambda _der: info)
    for profile in PROFILES:
        out = MessageBuilder(profile).build(synth_entries()[0], SOURCE, 1.0, STREAM_ALL)
        for payload in (out.lite, out.full, out.domains):
            assert payload is not None
            obj = json.loads(payload.decode("utf-8"))
            assert obj["message_type"]
        assert "Org\ufffd" in (out.lite or b"").decode("utf-8").replace("\\ufffd", "\ufffd")


def test_chain_objects_are_cached_by_hash() -> None:
    entries = [e for e in synth_entries() if e.chain]
    builder = MessageBuilder("go")
    first = [builder.build(e, SOURCE, 1.0, STREAM_FULL).full for e in entries]
    misses = builder.chain_cache_misses
    assert misses == len({der for e in entries for der in e.chain})
    again = [builder.build(e, SOURCE, 1.0, STREAM_FULL).full for e in entries]
    assert again == first
    assert builder.chain_cache_misses == misses
    assert builder.chain_cache_hits >= sum(len(e.chain) for e in entries)


def test_chain_cache_is_bounded() -> None:
    entries = [e for e in synth_entries() if e.chain]
    small = MessageBuilder("calidog", chain_cache_size=1)
    big = MessageBuilder("calidog")
    for e in entries * 2:
        assert small.build(e, SOURCE, 1.0, STREAM_FULL) == big.build(e, SOURCE, 1.0, STREAM_FULL)
        assert small.chain_cache_size <= 1


def test_chain_caches_are_bounded_in_bytes() -> None:
    entries = [e for e in synth_entries() if e.chain]
    ders = {der for e in entries for der in e.chain}
    assert len(ders) >= 2
    # Room for about one chain certificate (DER + its JSON text), whatever their number.
    budget = 3 * max(len(der) for der in ders)
    small = MessageBuilder("go", chain_cache_bytes=budget)
    big = MessageBuilder("go")
    for e in entries * 2:
        assert small.build(e, SOURCE, 1.0, STREAM_FULL) == big.build(e, SOURCE, 1.0, STREAM_FULL)
        assert small._chain_cache.nbytes <= budget and small._chains.nbytes <= budget
    assert small.chain_cache_size < len(ders) == big.chain_cache_size


def test_unparseable_leaf_raises_decode_error_and_is_counted() -> None:
    entry = dataclasses.replace(synth_entries()[0], cert_der=b"\x30\x03\x02\x01")
    for profile in PROFILES:
        builder = MessageBuilder(profile)
        with pytest.raises(DecodeError) as err:
            builder.build(entry, SOURCE, 1.0, STREAM_ALL)
        assert err.value.index == entry.index
        assert builder.decode_error_count == 1


def test_parser_crash_becomes_decode_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(_der: bytes) -> CertInfo:
        raise IndexError("parser bug")

    monkeypatch.setattr(messages, "parse_certificate", crash)
    with pytest.raises(DecodeError, match="parser bug"):
        MessageBuilder("rust").build(synth_entries()[0], SOURCE, 1.0, STREAM_DOMAINS)


def test_unparseable_chain_cert_is_sent_and_counted() -> None:
    entry = dataclasses.replace(synth_entries()[5], chain=(b"garbage",))
    for profile in PROFILES:
        builder = MessageBuilder(profile)
        out = builder.build(entry, SOURCE, 1.0, STREAM_ALL)
        chain = json.loads(out.full or b"")["data"]["chain"]
        assert len(chain) == 1
        assert chain[0]["fingerprint"] == hashlib.sha1(b"garbage").digest().hex(":").upper()
        assert builder.problem_count >= 1


def test_go_precert_fields_from_tbs_hashes_from_precert() -> None:
    precert = next(e for e in synth_entries() if e.is_precert)
    out = json.loads(MessageBuilder("go").build(precert, SOURCE, 1.0, STREAM_FULL).full or b"")
    leaf = out["data"]["leaf_cert"]
    assert out["data"]["update_type"] == "PrecertLogEntry"
    assert leaf["extensions"]["ctlPoisonByte"] is True
    assert leaf["as_der"] == base64.b64encode(precert.cert_der).decode()
    assert leaf["sha256"] == hashlib.sha256(precert.cert_der).digest().hex(":").upper()


def test_seen_scale_per_profile() -> None:
    entry = synth_entries()[0]
    seen = 1700000000.1234567
    texts = {
        p: MessageBuilder(p).build(entry, SOURCE, seen, STREAM_LITE).lite or b"" for p in PROFILES
    }
    assert b'"seen":1700000000.123,' in texts["go"]
    assert b'"seen":1700000000.123456,' in texts["calidog"]
    assert b'"seen":1700000000.123,' in texts["rust"]


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        # Go pads the %X text, sign included; Rust prints the DER bytes; EasySSL never pads.
        ("go", ["0ABC", "80", "0-FF", "-1", "F1E2"]),
        ("rust", ["0ABC", "80", "FF01", "FF", "F1E2"]),
        ("calidog", ["ABC", "80", "-FF", "-1", "F1E2"]),
    ],
)
def test_serial_number_rules(profile: str, expected: list[str]) -> None:
    builder = MessageBuilder(profile)
    serials = [0xABC, 0x80, -255, -1, 0xF1E2]
    assert [json.loads(builder._serial(n)) for n in serials] == expected


def test_name_rules_multi_valued_and_repeated_cn(monkeypatch: pytest.MonkeyPatch) -> None:
    info = CertInfo(
        der=b"x",
        subject=(
            NameAttr("2.5.4.3", "first.test"),
            NameAttr("2.5.4.10", "Org One"),
            NameAttr("2.5.4.10", "Org Two"),
            NameAttr("2.5.4.9", "Street 1"),
            NameAttr("2.5.4.3", "last.test"),
        ),
    )
    monkeypatch.setattr(messages, "parse_certificate", lambda _der: info)
    entry = synth_entries()[0]
    subjects = {
        p: json.loads(MessageBuilder(p).build(entry, SOURCE, 1.0, STREAM_LITE).lite or b"")["data"][
            "leaf_cert"
        ]["subject"]
        for p in PROFILES
    }
    # Go joins repeated attributes but keeps one CommonName (the last), never streetAddress.
    assert subjects["go"]["O"] == "Org One,Org Two"
    assert subjects["go"]["CN"] == "last.test"
    assert subjects["go"]["ST"] is None
    assert subjects["go"]["aggregated"] == "/CN=last.test/O=Org One,Org Two"
    assert subjects["calidog"]["O"] == "Org Two"
    assert subjects["calidog"]["aggregated"] == "/CN=last.test/O=Org Two"
    assert subjects["rust"] == {
        "CN": "last.test",
        "O": "Org Two",
        "aggregated": "/CN=last.test/O=Org Two",
    }


def test_empty_names() -> None:
    builder = MessageBuilder("go")
    assert json.loads(builder._name_object(()))["aggregated"] == "/CN="
    assert json.loads(MessageBuilder("calidog")._name_object(()))["aggregated"] == "/"
    assert json.loads(MessageBuilder("rust")._name_object(())) == {"aggregated": ""}


_OIDS = st.sampled_from(
    [
        "2.5.4.3",
        "2.5.4.6",
        "2.5.4.8",
        "2.5.4.9",
        "2.5.4.10",
        "1.2.840.113549.1.9.1",
        "2.5.29.17",
        "2.5.29.35",
        "1.3.6.1.5.5.7.1.1",
        "1.3.6.1.4.1.11129.2.4.3",
        "1.2.3.4",
    ]
)
_GN_VALUE = st.one_of(st.text(max_size=12), st.binary(max_size=17))
_CERT_INFOS = st.builds(
    CertInfo,
    der=st.binary(max_size=8),
    serial=st.one_of(st.none(), st.integers(min_value=-(2**160), max_value=2**160)),
    signature_oid=st.sampled_from(["", "1.2.840.113549.1.1.10", "1.2.840.10045.4.3.2", "9.9"]),
    issuer=st.lists(st.builds(NameAttr, _OIDS, st.text(max_size=10)), max_size=4).map(tuple),
    subject=st.lists(st.builds(NameAttr, _OIDS, st.text(max_size=10)), max_size=4).map(tuple),
    not_before=st.one_of(st.none(), st.integers(-(2**40), 2**40)),
    not_after=st.one_of(st.none(), st.just(253402300799), st.integers(0, 2**40)),
    extensions=st.lists(
        st.builds(Extension, _OIDS, st.booleans(), st.binary(max_size=8)), max_size=5
    ).map(tuple),
    is_ca=st.one_of(st.none(), st.booleans()),
    key_usage=st.one_of(st.none(), st.integers(0, 511)),
    ext_key_usage=st.lists(st.sampled_from(["1.3.6.1.5.5.7.3.1", "1.2.3"]), max_size=3).map(tuple),
    san=st.lists(st.tuples(st.integers(0, 8), _GN_VALUE), max_size=5).map(tuple),
    aia=st.lists(
        st.tuples(
            st.sampled_from(["1.3.6.1.5.5.7.48.1", "1.3.6.1.5.5.7.48.2", "1.2"]),
            st.text(max_size=8),
        ),
        max_size=3,
    ).map(tuple),
    aki_keyid=st.one_of(st.none(), st.binary(max_size=4)),
    policies=st.lists(
        st.builds(
            Policy,
            st.sampled_from(["2.23.140.1.2.1", "1.2.3"]),
            st.lists(
                st.tuples(
                    st.sampled_from(["1.3.6.1.5.5.7.2.1", "1.3.6.1.5.5.7.2.2"]), st.text(max_size=8)
                ),
                max_size=2,
            ).map(tuple),
        ),
        max_size=3,
    ).map(tuple),
    sct_list=st.one_of(st.none(), st.binary(max_size=6)),
    has_poison=st.booleans(),
)


@given(_CERT_INFOS)
def test_any_certificate_fields_give_valid_frames(info: CertInfo) -> None:
    # Whatever the parser hands over (odd tag/value pairs, lone surrogates, huge serials),
    # every profile writes frames that are strict UTF-8 JSON.
    entry = dataclasses.replace(synth_entries()[6], chain=())
    for profile in sorted(PROFILES):
        builder = MessageBuilder(profile)
        names = ("parse_certificate", "parse_tbs")
        real = [getattr(messages, name) for name in names]
        try:
            # hypothesis runs many examples per test: patch by hand, not with monkeypatch.
            for name in names:
                setattr(messages, name, lambda _der: info)
            out = builder.build(entry, SOURCE, 1.5, STREAM_ALL)
        finally:
            for name, func in zip(names, real, strict=True):
                setattr(messages, name, func)
        for payload in (out.lite, out.full, out.domains):
            assert payload is not None
            json.loads(payload.decode("utf-8"))


def _pem_der(path: Path) -> bytes:
    body = path.read_text().split("-----")[2]
    return base64.b64decode("".join(body.split()))


def test_chain_caches_confirm_the_whole_der() -> None:
    # Two fixture certificates with the same signature bytes (one is the other with a
    # changed name): a cache keyed by the DER's last bytes must still tell them apart,
    # per certificate and per whole chain.
    certs = CT_FIXTURES / "certs" / "pyca-synthetic"
    first = _pem_der(certs / "utf8_common_name.pem")
    second = _pem_der(certs / "invalid_utf8_common_name.pem")
    assert first != second
    assert first[-64:] == second[-64:]
    entry = synth_entries()[0]
    shared = MessageBuilder("go")
    for chain in [(first,), (second,), (first,), (second, first), (first, second)]:
        with_chain = dataclasses.replace(entry, chain=chain)
        expected = MessageBuilder("go").build(with_chain, SOURCE, 1.0, STREAM_FULL).full
        assert shared.build(with_chain, SOURCE, 1.0, STREAM_FULL).full == expected


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_payloads_carry_the_seen_they_show_in_microseconds(profile: str) -> None:
    # What a WebSocket client sends back as ?since=<seen> must compare equal to it.
    entry = synth_entries()[5]
    builder = MessageBuilder(profile)
    for seen in (1795613141.5369, 1795613141.000999, 1712345678.25):
        out = builder.build(entry, SOURCE, seen, STREAM_ALL)
        shown = json.loads(out.lite or b"")["data"]["seen"]
        assert out.seen == parse_since(repr(shown)) == parse_since(str(shown))
        # A domains-only build has no seen to show, and carries the same one.
        assert MessageBuilder(profile).build(entry, SOURCE, seen, STREAM_DOMAINS).seen == out.seen
