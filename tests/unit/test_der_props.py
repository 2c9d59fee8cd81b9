"""Property tests of the DER walker: any bytes give a CertInfo or a DecodeError, never
anything else, and the compiled twin gives exactly what the pure one gives.

Inputs are random bytes, random DER-shaped trees, and the fixture certificates with byte
flips, truncations, insertions and deletions: the mutations reach the deep branches (bad
times, broken extensions, lying lengths) that random bytes never get past the first header.
"""

from __future__ import annotations

import base64
import importlib
import os
import re
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support.data import CT_FIXTURES

from certstream._fast import _der_py
from certstream.core.model import CertInfo
from certstream.errors import DecodeError

CERTS = CT_FIXTURES / "certs"
_PEM = re.compile(rb"-----BEGIN [A-Z0-9 ]*CERTIFICATE-----(.*?)-----END", re.S)


def _load_seeds() -> list[bytes]:
    seeds: list[bytes] = []
    for path in sorted(CERTS.rglob("*")):
        if path.suffix == ".pem":
            seeds += [
                base64.b64decode(b"".join(m.split())) for m in _PEM.findall(path.read_bytes())
            ]
        elif path.suffix == ".der":
            seeds.append(path.read_bytes())
    return seeds


SEEDS = _load_seeds()


def _compiled() -> ModuleType | None:
    if os.environ.get("CERTSTREAM_NO_EXTENSIONS"):
        return None
    # Import failures are errors here: a build that should have _der must have it.
    return importlib.import_module("certstream._fast._der")


COMPILED = _compiled()
SETTINGS = settings(
    deadline=None,
    max_examples=500,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _outcome(mod: ModuleType, func: str, data: bytes) -> CertInfo | str:
    """The CertInfo, or the DecodeError text; anything else propagates and fails the test."""
    try:
        info = getattr(mod, func)(data)
    except DecodeError as exc:
        return f"DecodeError: {exc}"
    assert isinstance(info, CertInfo)
    assert info.der == data
    return info


def _check(data: bytes) -> None:
    for func in ("parse_certificate", "parse_tbs"):
        pure = _outcome(_der_py, func, data)
        if COMPILED is not None:
            fast = _outcome(COMPILED, func, data)
            assert fast == pure, func


def test_seeds_parse_identically() -> None:
    assert len(SEEDS) >= 55
    for seed in SEEDS:
        _check(seed)


@SETTINGS
@given(st.binary(max_size=512))
def test_random_bytes(data: bytes) -> None:
    _check(data)


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes_behind_a_sequence_header(body: bytes) -> None:
    # Past the outer header at once, so that the TBS walk itself sees the random bytes.
    size = len(body)
    header = bytes([0x30, 0x82, size >> 8, size & 0xFF])
    _check(header + body)
    _check(header + header + body)


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


_TAGS = st.sampled_from(
    [
        0x01,
        0x02,
        0x03,
        0x04,
        0x05,
        0x06,
        0x0C,
        0x13,
        0x14,
        0x16,
        0x17,
        0x18,
        0x1E,
        0x1C,
        0x30,
        0x31,
        0x80,
        0x81,
        0x82,
        0x86,
        0x87,
        0xA0,
        0xA3,
        0xA4,
        0x1F,
    ]
)
_TREES = st.recursive(
    st.tuples(_TAGS, st.binary(max_size=24)).map(lambda t: _tlv(*t)),
    lambda kids: st.tuples(
        st.sampled_from([0x30, 0x31, 0xA0, 0xA3, 0x04]), st.lists(kids, max_size=6)
    ).map(lambda t: _tlv(t[0], b"".join(t[1]))),
    max_leaves=40,
)


@SETTINGS
@given(_TREES)
def test_random_der_trees(tree: bytes) -> None:
    _check(tree)
    _check(_tlv(0x30, tree))


@st.composite
def _mutants(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            data[at] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0x81, 0x84, 0xFF, 0x30, 0x17]))
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[at : at + draw(st.integers(1, 8))]
    return bytes(data)


@SETTINGS
@given(_mutants())
def test_mutated_certificates(data: bytes) -> None:
    _check(data)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 100, 1000])
def test_every_prefix_of_a_certificate(size: int) -> None:
    # Exhaustive over one real certificate: all cuts, from a stride of 1 near the header
    # to coarser steps deeper in.
    seed = SEEDS[0]
    for cut in range(0, len(seed), size):
        _check(seed[:cut])
