"""Our frames equal the peers' golden frames byte for byte, except the documented deviations.

The comparison itself is in ``conformance/compare.py``; these tests hold it to the contract:
every frame of the acceptance sets matches, or differs exactly by a deviation that
``DEVIATIONS.md`` lists for that frame and that reproduces the golden when the peer's bug is
put back.  The comparer is also checked to catch a one-character difference.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import pytest

from conformance import compare

HERE = Path(__file__).resolve().parent
ALLOWED_LABELS = {
    "go": {"go-1", "go-2", "go-3", "go-4"},
    "calidog": {"calidog-1", "calidog-2"},
    "rust": set(),
}
_ROW = re.compile(
    r"^\| (go|calidog|rust) \| ([\w-]+) \| (lite|full|domains) \| (\d+) \| ([\w,-]+) \|$"
)


@cache
def documented() -> dict[tuple[str, str, str, int], tuple[str, ...]]:
    """The frame table at the end of DEVIATIONS.md."""
    rows: dict[tuple[str, str, str, int], tuple[str, ...]] = {}
    for line in (HERE / "DEVIATIONS.md").read_text().splitlines():
        match = _ROW.match(line.strip())
        if match:
            peer, set_name, stream, index, labels = match.groups()
            rows[(peer, set_name, stream, int(index))] = tuple(labels.split(","))
    return rows


@cache
def results(peer: str, set_name: str) -> tuple[compare.StreamResult, ...]:
    return tuple(compare.compare_set(peer, set_name))


SETS = [*compare.ACCEPTANCE, ("go", "synth11-tiled")]


@pytest.mark.parametrize("stream", compare.STREAMS)
@pytest.mark.parametrize(("peer", "set_name"), SETS)
def test_every_frame_matches_or_is_a_documented_deviation(
    peer: str, set_name: str, stream: str
) -> None:
    (result,) = [r for r in results(peer, set_name) if r.stream == stream]
    assert result.frames, "no frames compared"
    problems = []
    for frame in result.frames:
        key = (peer, set_name, stream, frame.index)
        if frame.status == "match":
            assert key not in documented(), f"{key} is listed in DEVIATIONS.md but matches"
            continue
        if frame.status != "deviation":
            problems.append(f"{frame.status} index {frame.index}: {frame.detail}")
            continue
        assert set(frame.deviations) <= ALLOWED_LABELS[peer], frame
        assert documented().get(key) == frame.deviations, (
            f"{key}: differs by {frame.deviations}, DEVIATIONS.md says {documented().get(key)}"
        )
    assert not problems, "\n".join(problems)


def test_every_documented_frame_exists() -> None:
    for peer, set_name, stream, index in documented():
        statuses = [
            f.status
            for r in results(peer, set_name)
            if r.stream == stream
            for f in r.frames
            if f.index == index
        ]
        assert statuses == ["deviation"], (peer, set_name, stream, index, statuses)


def test_each_golden_frame_is_paired_once() -> None:
    for peer, set_name in SETS:
        for result in results(peer, set_name):
            paired = [f for f in result.frames if not f.only_ours]
            assert len(paired) == result.golden_frames
            keys = [(f.log_url, f.index) for f in result.frames]
            assert len(keys) == len(set(keys)), f"{peer}/{set_name}/{result.stream} repeats"


def test_rust_snapshot_file_equals_rust_goldens() -> None:
    fixture = compare.load_golden("rust", "live40-fixture")
    golden = compare.load_golden("rust", "live40")
    assert fixture.frames == golden.frames


def test_comparer_catches_a_one_character_difference() -> None:
    logs = compare.load_set("synth11")
    ours = compare.OurFrames("rust", "synth11", logs)
    key = next(k for k in ours.frames if k[1] == 5)  # a leaf: is_ca is false
    text = ours.frames[key]["lite"]
    assert compare._classify(ours, key, "lite", text).status == "match"
    changed = text.replace('"is_ca":false', '"is_ca":true', 1)
    assert changed != text
    verdict = compare._classify(ours, key, "lite", changed)
    assert verdict.status == "mismatch"
    assert "is_ca" in verdict.detail


def test_go_bug_variant_does_not_excuse_other_differences() -> None:
    logs = compare.load_set("synth11")
    ours = compare.OurFrames("go", "synth11", logs)
    key = next(k for k in ours.frames if k[1] == 5)
    golden_like = ours.variants["go"][key]["full"]
    assert compare._classify(ours, key, "full", golden_like).status == "deviation"
    tampered = golden_like.replace('"is_ca":false', '"is_ca":true', 1)
    assert compare._classify(ours, key, "full", tampered).status == "mismatch"


def test_seen_is_the_only_token_substituted() -> None:
    golden = '{"data":{"cert_index":1,"seen":1700000000.5,"x":"a"},"message_type":"m"}'
    ours = '{"data":{"cert_index":1,"seen":1712345678.901,"x":"a"},"message_type":"m"}'
    assert compare._with_seen_of(ours, golden) == golden
    other = ours.replace('"a"', '"b"')
    assert compare._with_seen_of(other, golden) != golden


def test_table_prints_every_stream() -> None:
    table = compare.format_table(list(results("rust", "live40")))
    assert table.count("rust") == 3
    assert json.dumps("live40")[1:-1] in table
