"""``_leaf.b64decode``: both twins give exactly what ``binascii.a2b_base64(strict_mode=True)``
gives, bytes or ``binascii.Error``, for canonical base64 (the compiled twin's fast path) and
for everything near it (bad characters, misplaced or missing padding, non-zero unused bits,
non-ASCII), which must reach binascii's own checks."""

from __future__ import annotations

import base64
import binascii
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _expected(text: str) -> bytes | str:
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"


def _got(mod: ModuleType, text: str) -> bytes | str:
    try:
        out = mod.b64decode(text)
    except (binascii.Error, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    assert type(out) is bytes
    return out


# The module fixture holds no state: sharing it between examples is what we want.
_SHARED = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@_SHARED
@given(st.binary(max_size=300))
def test_canonical_base64_round_trips(leaf_mod: ModuleType, data: bytes) -> None:
    assert _got(leaf_mod, base64.b64encode(data).decode("ascii")) == data


# Near-canonical text: alphabet characters with padding, junk and non-ASCII mixed in.
_NEAR = st.text(alphabet=st.sampled_from([*_ALPHABET[:6], "+", "/", "=", " ", "\n", "-", "é"]))


@settings(_SHARED, max_examples=1000)
@given(_NEAR)
def test_any_text_gives_binascii_result_or_error(leaf_mod: ModuleType, text: str) -> None:
    assert _got(leaf_mod, text) == _expected(text)


@pytest.mark.parametrize(
    "text",
    ["", "QQ==", "QR==", "QUI=", "QUJ=", "QUJD", "Q===", "=QUJ", "QU=D", "QUJD====", "QUJDQQ"],
)
def test_padding_and_unused_bits(leaf_mod: ModuleType, text: str) -> None:
    # "QR==" and "QUJ=" have non-zero unused bits: whatever binascii does with them, we do.
    assert _got(leaf_mod, text) == _expected(text)
