"""The compiled certificate-object writer (``_fast._json``) against its pure twin.

Every piece of text ``CertWriter`` produces must be the same from both twins, byte for byte,
in every profile: over the real certificates of the fixture corpus (leaf and chain key lists,
with and without the forced precert poison) and over random ``CertInfo`` values whose strings
carry every kind of character the escapers treat differently (short escapes, other control
characters, HTML characters, U+2028, non-ASCII, lone surrogates).  The helpers are checked
against the standard library they replace.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import importlib
import json
import os
import re
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support.data import CT_FIXTURES

from certstream._fast import _json_py
from certstream.core import profiles
from certstream.core.model import (
    PRECERT_ENTRY,
    X509_ENTRY,
    CertInfo,
    Extension,
    LogEntry,
    NameAttr,
    Policy,
)
from certstream.core.profiles import PROFILES, Profile
from certstream.core.x509 import parse_certificate

CERTS = CT_FIXTURES / "certs"
_PEM = re.compile(rb"-----BEGIN [A-Z0-9 ]*CERTIFICATE-----(.*?)-----END", re.S)


def _compiled() -> ModuleType | None:
    if os.environ.get("CERTSTREAM_NO_EXTENSIONS"):
        return None
    # Import failures are errors here: a build that should have _json must have it
    # (tests/e2e/test_fast_loaded.py says the same for every module).
    return importlib.import_module("certstream._fast._json")


COMPILED = _compiled()
pytestmark = pytest.mark.skipif(COMPILED is None, reason="CERTSTREAM_NO_EXTENSIONS is set")


def _corpus() -> list[bytes]:
    out: list[bytes] = []
    for path in sorted(CERTS.rglob("*")):
        if path.suffix == ".pem":
            out += [base64.b64decode(b"".join(m.split())) for m in _PEM.findall(path.read_bytes())]
        elif path.suffix == ".der":
            out.append(path.read_bytes())
    return out


def _infos() -> list[CertInfo]:
    infos = []
    for der in _corpus():
        try:
            infos.append(parse_certificate(der))
        except Exception:  # unparseable fixtures have no fields to format
            continue
    return infos


INFOS = _infos()
# The go profile with formatters that only have Python code (the compiled writer must call
# them), and with every name rule option flipped: a variant is a table entry, as a new
# profile would be.
VARIANT = dataclasses.replace(
    profiles.GO,
    name="variant",
    extensions=(
        ("keyUsage", "key_usage_easyssl"),
        *profiles.GO.extensions,
        ("x", "sct_urlsafe_b64"),
    ),
    names=dataclasses.replace(profiles.CALIDOG_NAMES, single=("O",), multi="join"),
    domains="cn_then_san",
)
# as_der first and alone: the full leaf object's other splice cases.
AS_DER_FIRST = dataclasses.replace(
    profiles.RUST, name="as_der_first", leaf_keys=("as_der", "is_ca")
)
AS_DER_ONLY = dataclasses.replace(profiles.CALIDOG, name="as_der_only", leaf_keys=("as_der",))
ALL_PROFILES = [*PROFILES.values(), VARIANT, AS_DER_FIRST, AS_DER_ONLY]


def _writers(profile: Profile, keys: tuple[str, ...]) -> tuple[object, object]:
    assert COMPILED is not None
    return COMPILED.CertWriter(profile, keys), _json_py.CertWriter(profile, keys)


def _same(profile: Profile, info: CertInfo, der: bytes, *, every_frame: bool = True) -> None:
    for keys in (profile.leaf_keys, profile.chain_keys):
        fast, pure = _writers(profile, keys)
        for poison in (False, True):
            for _ in range(2):  # the second time from the name cache
                got = fast.parts(info, der, poison, None)  # type: ignore[attr-defined]
                assert got == pure.parts(info, der, poison, None)  # type: ignore[attr-defined]
        assert fast.whole(info, der) == pure.whole(info, der)  # type: ignore[attr-defined]
        domains = pure.domains(info)  # type: ignore[attr-defined]
        assert fast.domains(info) == domains  # type: ignore[attr-defined]
        assert fast.domains_array(domains) == pure.domains_array(domains)  # type: ignore[attr-defined]
        assert fast.serial(info.serial) == pure.serial(info.serial)  # type: ignore[attr-defined]
        present = frozenset(ext.oid for ext in info.extensions)
        assert fast.extensions_object(info, present) == pure.extensions_object(info, present)  # type: ignore[attr-defined]
        assert fast.domains_payload(domains) == pure.domains_payload(domains)  # type: ignore[attr-defined]
        if keys is profile.leaf_keys:
            _same_frames(fast, pure, info, der, every_frame=every_frame)


# Frame pieces with every kind of text: escapes in the link, non-ASCII in the source.
_FRAME_ARGS = [
    ("https://ct.example/ct/v1/get-entries?start=7&end=7", "1.5", '{"name":"x"}', "2"),
    ('a"\\\n<é>\u2028', "1712345678.25", '{"name":"é","url":"u","timestamp":3}', "3.001"),
    ("", "0", "{}", "1e+21"),
]
_CHAINS = [None, "[]", '[{"a":1},{"b":"é"}]']


def _same_frames(
    fast: object, pure: object, info: CertInfo, der: bytes, *, every_frame: bool
) -> None:
    # Random fields vary the leaf object; the frame arguments are varied on the corpus.
    frame_args = _FRAME_ARGS if every_frame else _FRAME_ARGS[1:2]
    chains = _CHAINS if every_frame else _CHAINS[2:]
    streams = ((True, True), (True, False), (False, True)) if every_frame else ((True, True),)
    for entry_type in (X509_ENTRY, PRECERT_ENTRY):
        entry = LogEntry(7, 1_700_000_000_123, entry_type, der, None, None, (), b"")
        for link, seen, source, stamp in frame_args:
            for chain in chains:
                for lite, full in streams:
                    args = (info, entry, entry_type == PRECERT_ENTRY, None, link, seen, source)
                    more = (stamp, chain, lite, full)
                    got = fast.payloads(*args, *more)  # type: ignore[attr-defined]
                    assert got == pure.payloads(*args, *more)  # type: ignore[attr-defined]
                    for payload in got:
                        assert payload is None or json.loads(payload)


def test_corpus_is_big_enough() -> None:
    assert len(INFOS) >= 50


@pytest.mark.parametrize("profile", ALL_PROFILES, ids=lambda p: p.name)
def test_corpus_objects_are_identical(profile: Profile) -> None:
    for info in INFOS:
        _same(profile, info, info.der)


def test_objects_are_valid_json_with_the_real_hashes() -> None:
    assert COMPILED is not None
    writer = COMPILED.CertWriter(profiles.GO, profiles.GO.leaf_keys)
    info = INFOS[0]
    head, tail = writer.parts(info, info.der, False, None)
    obj = json.loads(COMPILED.join_as_der(head, COMPILED.b64encode(info.der), tail))
    assert base64.b64decode(obj["as_der"]) == info.der
    assert obj["sha256"] == hashlib.sha256(info.der).digest().hex(":").upper()
    assert obj["fingerprint"] == obj["sha1"] == hashlib.sha1(info.der).digest().hex(":").upper()


@given(
    st.one_of(
        st.integers(min_value=0, max_value=2**64),
        st.integers(min_value=2**41, max_value=2**43),
        st.sampled_from([0, 1, 10, 100, 999, 1000, 1001, 1_700_000_000_000, 1_700_000_000_120]),
    )
)
def test_timestamp_text_is_the_profiles_float(milliseconds: int) -> None:
    assert COMPILED is not None
    for profile in PROFILES.values():
        fast = COMPILED.CertWriter(profile, profile.leaf_keys)
        pure = _json_py.CertWriter(profile, profile.leaf_keys)
        assert fast.timestamp_text(milliseconds) == pure.timestamp_text(milliseconds)


@given(st.binary(max_size=200))
def test_b64encode_and_colon_hex_match_the_stdlib(data: bytes) -> None:
    assert COMPILED is not None
    assert COMPILED.b64encode(data) == base64.b64encode(data).decode("ascii")
    assert COMPILED.colon_hex_upper(data) == data.hex(":").upper()


def test_unknown_key_is_refused_by_both() -> None:
    assert COMPILED is not None
    for mod in (COMPILED, _json_py):
        with pytest.raises(ValueError, match="unknown certificate keys"):
            mod.CertWriter(profiles.GO, ("subject", "nope"))


# Characters each escaper handles differently: short escapes, other C0 controls, DEL, HTML
# characters (Go's domains writer), U+2028 (Go), non-ASCII, a lone surrogate.
_TEXT = st.text(
    alphabet=st.sampled_from(
        [*'az.-*"\\\n\r\t\b\f\x00\x01\x1f\x7f<>&/', "\u2028", "é", "日", "\udcff", "\U0001f600"]
    ),
    max_size=12,
)
_OIDS = st.sampled_from(
    [
        "2.5.4.3",
        "2.5.4.6",
        "2.5.4.8",
        "2.5.4.9",
        "2.5.4.10",
        "2.5.4.11",
        "1.2.840.113549.1.9.1",
        "2.5.29.14",
        "2.5.29.15",
        "2.5.29.17",
        "2.5.29.19",
        "2.5.29.32",
        "2.5.29.35",
        "2.5.29.37",
        "1.3.6.1.5.5.7.1.1",
        "1.3.6.1.4.1.11129.2.4.3",
        "1.2.3.4",
    ]
)
_GN_VALUE = st.one_of(_TEXT, st.binary(max_size=17))
_CERT_INFOS = st.builds(
    CertInfo,
    der=st.binary(max_size=8),
    serial=st.one_of(st.none(), st.integers(min_value=-(2**160), max_value=2**160)),
    signature_oid=st.sampled_from(["", "1.2.840.113549.1.1.10", "1.2.840.10045.4.3.2", "9.9"]),
    signature_hash_oid=st.sampled_from(["", "2.16.840.1.101.3.4.2.1", "1.3.14.3.2.26"]),
    issuer=st.lists(st.builds(NameAttr, _OIDS, _TEXT), max_size=5).map(tuple),
    subject=st.lists(st.builds(NameAttr, _OIDS, _TEXT), max_size=5).map(tuple),
    not_before=st.one_of(st.none(), st.integers(-(2**40), 2**40)),
    not_after=st.one_of(st.none(), st.just(253402300799), st.integers(0, 2**40)),
    extensions=st.lists(
        st.builds(Extension, _OIDS, st.booleans(), st.binary(max_size=8)), max_size=6
    ).map(tuple),
    is_ca=st.one_of(st.none(), st.booleans()),
    key_usage=st.one_of(st.none(), st.integers(0, 2**12)),
    ext_key_usage=st.lists(st.sampled_from(["1.3.6.1.5.5.7.3.1", "1.2.3"]), max_size=3).map(tuple),
    san=st.lists(st.tuples(st.integers(0, 9), _GN_VALUE), max_size=6).map(tuple),
    ian=st.lists(st.tuples(st.integers(0, 9), _GN_VALUE), max_size=2).map(tuple),
    aia=st.lists(
        st.tuples(st.sampled_from(["1.3.6.1.5.5.7.48.1", "1.3.6.1.5.5.7.48.2", "1.2"]), _TEXT),
        max_size=3,
    ).map(tuple),
    aki_keyid=st.one_of(st.none(), st.binary(max_size=4)),
    ski=st.one_of(st.none(), st.binary(max_size=4)),
    policies=st.lists(
        st.builds(
            Policy,
            st.sampled_from(["2.23.140.1.2.1", "1.2.3", "x\ny"]),
            st.lists(
                st.tuples(st.sampled_from(["1.3.6.1.5.5.7.2.1", "1.3.6.1.5.5.7.2.2"]), _TEXT),
                max_size=2,
            ).map(tuple),
        ),
        max_size=3,
    ).map(tuple),
    crl_dps=st.lists(_TEXT, max_size=2).map(tuple),
    sct_list=st.one_of(st.none(), st.binary(max_size=6)),
    has_poison=st.booleans(),
)


@settings(
    deadline=None,
    max_examples=400,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(_CERT_INFOS)
def test_any_fields_give_identical_objects(info: CertInfo) -> None:
    for profile in ALL_PROFILES:
        _same(profile, info, info.der, every_frame=False)


def test_large_objects_grow_the_buffer() -> None:
    # Far past the compiled writer's first buffer: thousands of SAN names (one non-ASCII, so
    # the slow path runs mid-object), a long subject, a long chain text.
    san = (*((2, f"host-{i:05d}.example.test") for i in range(3000)), (2, "é.test"))
    info = CertInfo(
        der=b"\x30" * 5000,
        subject=(NameAttr("2.5.4.3", "x" * 20000), NameAttr("2.5.4.10", "Ö" * 500)),
        extensions=(Extension("2.5.29.17", False, b""),),
        san=san,
    )
    for profile in ALL_PROFILES:
        _same(profile, info, info.der, every_frame=False)
    assert COMPILED is not None
    writer = COMPILED.CertWriter(profiles.GO, profiles.GO.leaf_keys)
    entry = LogEntry(1, 2, X509_ENTRY, info.der, None, None, (), b"")
    chain = "[" + ",".join(['{"x":"' + "y" * 1000 + '"}'] * 50) + "]"
    args = ("link", "1", "{}", "2", chain, True, True)
    lite, full = writer.payloads(info, entry, False, None, *args)
    assert len(full) > 200_000
    assert (lite, full) == _json_py.CertWriter(profiles.GO, profiles.GO.leaf_keys).payloads(
        info, entry, False, None, *args
    )
    assert len(json.loads(full)["data"]["leaf_cert"]["all_domains"]) == len(san) + 1  # + the CN
