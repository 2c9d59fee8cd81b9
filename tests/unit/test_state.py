"""The resume file: round trip, lagged persistence, atomic replace, bad files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from certstream.shell.state import LogPosition, StateStore


def test_missing_file_is_empty(tmp_path: Path) -> None:
    assert StateStore(str(tmp_path / "none.json")).load() == {}


def test_round_trip_and_format(tmp_path: Path) -> None:
    p = tmp_path / "s.json"
    st = StateStore(str(p), grace=0.0)
    st.advance("https://a.example/", 100, 150, now=10.0)
    st.advance("https://b.example/", 7, 7, now=10.0)
    assert st.flush(now=10.0)
    doc = json.loads(p.read_text())
    assert doc["version"] == 1
    assert doc["logs"]["https://a.example/"]["next_index"] == 100
    assert doc["logs"]["https://a.example/"]["tree_size"] == 150
    assert doc["logs"]["https://b.example/"]["updated"] == 10.0
    again = StateStore(str(p)).load()
    assert again["https://a.example/"] == LogPosition(100, 150, 10.0)
    # Nothing new: no write.
    assert not st.flush(now=11.0)


def test_lag_persists_only_positions_older_than_grace(tmp_path: Path) -> None:
    p = tmp_path / "s.json"
    st = StateStore(str(p), grace=1.0)
    st.advance("k", 10, 100, now=100.0)
    st.advance("k", 20, 100, now=100.5)
    st.advance("k", 30, 100, now=101.2)
    # At 101.0 only the mark of 100.0 is a second old.
    assert st.flush(now=101.0)
    assert StateStore(str(p)).load()["k"].next_index == 10
    assert st.get("k") == LogPosition(30, 100)
    assert st.flush(now=101.6)
    assert StateStore(str(p)).load()["k"].next_index == 20
    # A clean shutdown writes the newest one.
    assert st.flush(now=101.7, final=True)
    assert StateStore(str(p)).load()["k"].next_index == 30


def test_no_temp_files_left(tmp_path: Path) -> None:
    st = StateStore(str(tmp_path / "s.json"), grace=0.0)
    for i in range(20):
        st.advance("k", i + 1, 100, now=float(i))
        st.flush(now=float(i))
    assert sorted(os.listdir(tmp_path)) == ["s.json"]


@pytest.mark.parametrize(
    "content",
    [b"", b"{not json", b'{"version": 2, "logs": {}}', b'{"version": 1, "logs": []}',
     b'{"version": 1, "logs": {"k": {"next_index": -1}}}',
     b'{"version": 1, "logs": {"k": {"next_index": "5"}}}', b"\xff\xfe"],
)
def test_bad_file_is_ignored_not_fatal(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "s.json"
    p.write_bytes(content)
    assert StateStore(str(p)).load() == {}


def test_write_error_is_retried(tmp_path: Path) -> None:
    d = tmp_path / "sub"
    d.mkdir()
    p = d / "s.json"
    st = StateStore(str(p), grace=0.0)
    st.advance("k", 5, 5, now=1.0)
    d.rmdir()
    assert not st.flush(now=1.0)  # directory gone: logged, not raised
    d.mkdir()
    assert st.flush(now=2.0)
    assert StateStore(str(p)).load()["k"].next_index == 5
