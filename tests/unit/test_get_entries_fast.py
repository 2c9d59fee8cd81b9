"""The compiled reader of plain get-entries bodies (``_leaf.decode_get_entries_fast``).

It must either decline a body (None) or give exactly what the json path gives: the same
entries and the same errors, message for message.  Bodies are built from the recorded live40
entries with random whitespace, key order, and items that are broken in every way the json
path reports (bad base64, wrong types, missing keys) or that only json can read (escapes,
extra or duplicate keys, non-ASCII).  The plain shape itself must be taken, so the
comparison is known to exercise the fast path.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Sequence
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support.data import LIVE40

from certstream._fast import _leaf_py
from certstream.core import leaves
from certstream.errors import DecodeError

BODIES = [p.read_bytes() for p in sorted(LIVE40.glob("*.get-entries.json"))]
ITEMS = [item for body in BODIES for item in json.loads(body)["entries"]]


def _compiled() -> ModuleType | None:
    if os.environ.get("CERTSTREAM_NO_EXTENSIONS"):
        return None
    return importlib.import_module("certstream._fast._leaf")


COMPILED = _compiled()
pytestmark = pytest.mark.skipif(COMPILED is None, reason="CERTSTREAM_NO_EXTENSIONS is set")
SETTINGS = settings(
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _result(
    value: tuple[Sequence[object], list[DecodeError]],
) -> tuple[Sequence[object], list[tuple[str, int | None]]]:
    entries, errors = value
    return entries, [(str(e), e.index) for e in errors]


def _check(body: bytes, start: int = 1000) -> bool:
    """Fast path declined (False) or agreed with the json path (True)."""
    assert COMPILED is not None
    fast = COMPILED.decode_get_entries_fast(body, start)
    if fast is None:
        return False
    # A json error here (DecodeError for the whole body) fails the test: the fast path
    # must never take a body that json refuses.
    assert _result(fast) == _result(leaves._decode_with_json(body, start))
    return True


def test_recorded_bodies_take_the_fast_path() -> None:
    assert len(ITEMS) == 40
    for body in BODIES:
        assert _check(body)
    assert _check(b'{"entries":[]}')
    assert _check(b' { "entries" : [ ] } \n')


def test_pure_twin_declines_everything() -> None:
    assert _leaf_py.decode_get_entries_fast(BODIES[0], 0) is None


_WS = st.sampled_from(["", "", " ", "\n", "\t ", "\r\n  "])
_B64_JUNK = st.text(alphabet="QUJDRA+/=!-_ \u00e9", max_size=12)


@st.composite
def _item(draw: st.DrawFn) -> tuple[str, bool]:
    """JSON text of one entry and whether it is in the plain shape."""
    ws = draw(_WS)
    base = draw(st.sampled_from(ITEMS))
    li, ed = base["leaf_input"], base["extra_data"]
    kind = draw(
        st.sampled_from(
            [
                "plain",
                "swapped",
                "bad_b64",
                "slash_escape",
                "extra_key",
                "duplicate",
                "missing",
                "number",
                "not_object",
                "non_ascii",
                "swap_fields",
            ]
        )
    )
    pairs = [("leaf_input", json.dumps(li)), ("extra_data", json.dumps(ed))]
    plain = True
    if kind == "swapped":
        pairs.reverse()
    elif kind == "bad_b64":
        which = draw(st.integers(0, 1))
        pairs[which] = (pairs[which][0], json.dumps(draw(_B64_JUNK)))
        plain = all("\\u" not in v for _, v in pairs)
    elif kind == "slash_escape":
        pairs[0] = ("leaf_input", json.dumps(li).replace("/", "\\/"))
        plain = "/" not in li
    elif kind == "extra_key":
        pairs.append(("x", "1"))
        plain = False
    elif kind == "duplicate":
        pairs.append(pairs[0])
        plain = False
    elif kind == "missing":
        pairs.pop()
        plain = False
    elif kind == "number":
        pairs[1] = ("extra_data", "12")
        plain = False
    elif kind == "not_object":
        return ws + json.dumps(li) + ws, False
    elif kind == "non_ascii":
        pairs[1] = ("extra_data", '"\u00e9' + ed[1:] + '"')
        plain = False
    elif kind == "swap_fields":
        pairs = [("leaf_input", json.dumps(ed)), ("extra_data", json.dumps(li))]
    fields = [f"{ws}{json.dumps(k)}{ws}:{ws}{v}{ws}" for k, v in pairs]
    return "{" + ",".join(fields) + "}", plain


@SETTINGS
@given(st.lists(_item(), max_size=6), _WS)
def test_built_bodies_agree_with_json(items: list[tuple[str, bool]], ws: str) -> None:
    body = f'{ws}{{{ws}"entries"{ws}:{ws}[{ws}{",".join(t for t, _ in items)}{ws}]{ws}}}{ws}'
    taken = _check(body.encode("utf-8"))
    assert taken == all(plain for _, plain in items)


@SETTINGS
@given(st.data())
def test_mutated_bodies_decline_or_agree(data: st.DataObject) -> None:
    body = bytearray(BODIES[0][:4000] + b'"}]}')
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(body) - 1))
        op = data.draw(st.sampled_from(["flip", "delete", "insert"]))
        if op == "flip":
            body[pos] = data.draw(st.sampled_from(b'{}[]",: \\\x00\xc3AZ=+/9'))
        elif op == "delete":
            del body[pos]
        else:
            body.insert(pos, data.draw(st.sampled_from(b'{}[]",: \\\x00\xc3AZ=+/9')))
    # Where json refuses the whole body (DecodeError), the fast path must have declined it.
    _check(bytes(body))
