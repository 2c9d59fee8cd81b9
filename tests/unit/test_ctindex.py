"""certstream-server-go's ct_index.json: its format byte for byte, what its index means when
a log starts, and the ingest's copy kept current in Go's format (plain values and files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from certstream.core.ctindex import format_index, index_key, index_value, parse_index
from certstream.core.logspec import start_position
from certstream.errors import DecodeError
from certstream.shell.ctindex import CtIndexFile
from certstream.shell.state import LogPosition

# What certstream-server-go v1.9.0's create-index wrote for three logs of a fake log server.
GO_WROTE = (b'{\n "127.0.0.1:18765/argon": 1111014110,\n "127.0.0.1:18765/rfc6962": 11,\n'
            b' "127.0.0.1:18765/tiled": 11\n}')


def test_the_file_is_written_as_go_writes_it() -> None:
    entries = parse_index(GO_WROTE)
    assert entries == {"127.0.0.1:18765/argon": 1111014110, "127.0.0.1:18765/rfc6962": 11,
                       "127.0.0.1:18765/tiled": 11}
    assert format_index(dict(reversed(list(entries.items())))) == GO_WROTE
    assert format_index({}) == b"{}"


@pytest.mark.parametrize(("url", "key"), [
    ("https://ct.googleapis.com/logs/us1/argon2026h2/", "ct.googleapis.com/logs/us1/argon2026h2"),
    ("http://127.0.0.1:18765/tiled", "127.0.0.1:18765/tiled"),
    ("127.0.0.1:18765/tiled/", "127.0.0.1:18765/tiled"),
])
def test_keys_are_gos_normalized_urls(url: str, key: str) -> None:
    assert index_key(url) == key


@pytest.mark.parametrize("data", [b"[1]", b'{"a": -1}', b'{"a": 1.5}', b'{"a": "1"}',
                                  b'{"a": true}', b"{", b"null"])
def test_a_bad_file_is_refused(data: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_index(data)


def test_index_written_is_the_last_one_sent() -> None:
    assert index_value(11) == 10
    assert index_value(0) == 0


@pytest.mark.parametrize(("saved", "resume", "configured", "recovery", "start"), [
    (500, 10, 3, True, 500),     # the state file is the truth once it knows the log
    (None, 10, 3, True, 10),     # then ct_index.json: AT its index, never after it
    (None, 0, None, True, 0),
    (None, None, 3, True, 3),    # then the configured start index
    (None, None, None, True, 0),  # recovery and no entry: 0, as in Go
    (None, None, None, False, 8744),  # else a little before the head
])
def test_start_position_with_a_ct_index(saved: int | None, resume: int | None,
                                        configured: int | None, recovery: bool,
                                        start: int) -> None:
    assert start_position(9000, saved_next=saved, start_index=configured, overlap=256,
                          resume_index=resume, recovery=recovery) == start


def test_the_ingest_keeps_the_file_current(tmp_path: Path) -> None:
    path = tmp_path / "ct_index.json"
    path.write_bytes(GO_WROTE)
    keeper = CtIndexFile(str(path))
    keeper.load()
    assert keeper.resume_index("http://127.0.0.1:18765/rfc6962/") == 11
    assert keeper.resume_index("https://other.example/log/") is None
    # The state file's positions (next index to read, by our log key) over what Go saved;
    # logs the state file does not know keep their entries.
    positions = {"http://127.0.0.1:18765/rfc6962/": LogPosition(20),
                 "https://new.example/log/": LogPosition(1)}
    assert keeper.update(positions)
    assert parse_index(path.read_bytes()) == {
        "127.0.0.1:18765/argon": 1111014110, "127.0.0.1:18765/rfc6962": 19,
        "127.0.0.1:18765/tiled": 11, "new.example/log": 0}
    assert path.read_bytes().startswith(b'{\n "127.0.0.1:18765/argon": ')
    assert not keeper.update(positions)  # unchanged: not written again
    assert [p.name for p in tmp_path.iterdir()] == ["ct_index.json"]  # no temp file left


def test_a_missing_or_unreadable_file_is_no_entries(tmp_path: Path) -> None:
    keeper = CtIndexFile(str(tmp_path / "missing.json"))
    assert keeper.load() == {} and keeper.resume_index("http://a/") is None
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"{oops")
    keeper = CtIndexFile(str(bad))
    assert keeper.load() == {}
    assert bad.read_bytes() == b"{oops"  # left alone until a flush writes a good one
