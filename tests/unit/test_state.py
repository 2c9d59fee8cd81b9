"""The resume file: round trip, positions saved once delivered, atomic replace, bad files."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import gevent
import pytest

from certstream.shell.state import LogPosition, StateStore


def test_missing_file_is_empty(tmp_path: Path) -> None:
    assert StateStore(str(tmp_path / "none.json")).load() == {}


def test_round_trip_and_format(tmp_path: Path) -> None:
    p = tmp_path / "s.json"
    st = StateStore(str(p))
    st.delivered("https://a.example/", 100, 150, now=10.0)
    st.delivered("https://b.example/", 7, 7, now=10.0)
    assert st.flush()
    doc = json.loads(p.read_text())
    assert doc["version"] == 1
    assert doc["logs"]["https://a.example/"]["next_index"] == 100
    assert doc["logs"]["https://a.example/"]["tree_size"] == 150
    assert doc["logs"]["https://b.example/"]["updated"] == 10.0
    again = StateStore(str(p)).load()
    assert again["https://a.example/"] == LogPosition(100, 150, 10.0)
    # Nothing new: no write.
    assert not st.flush()
    st.stop()


def test_a_batch_in_flight_is_never_saved(tmp_path: Path) -> None:
    p = tmp_path / "s.json"
    st = StateStore(str(p))
    st.sent("k")
    st.delivered("k", 10, 100, now=1.0)
    st.sent("k")  # the next batch is published, its workers have not written it yet
    assert st.flush()
    assert StateStore(str(p)).load()["k"].next_index == 10
    assert st.get("k") == LogPosition(10, 100, 1.0)
    st.delivered("k", 20, 100, now=2.0)
    assert st.flush()
    assert StateStore(str(p)).load()["k"].next_index == 20
    st.stop()


def test_settle_waits_for_the_batch_and_its_write(tmp_path: Path) -> None:
    p = tmp_path / "s.json"
    st = StateStore(str(p), write_interval=0.05)
    assert st.settle("k", timeout=0.1)  # nothing in flight
    st.sent("k")
    # In flight: waited for as long as it takes (here longer than the write timeout).
    start = time.monotonic()
    gevent.spawn_later(0.5, st.delivered, "k", 5, 5)
    assert st.settle("k", timeout=0.1)
    assert time.monotonic() - start >= 0.3  # well past the timeout: it waited for delivery
    assert StateStore(str(p)).load()["k"].next_index == 5  # on disk when settle returns
    st.stop()


def test_settle_gives_up_on_a_disk_that_refuses_writes(tmp_path: Path) -> None:
    d = tmp_path / "gone"
    d.mkdir()
    st = StateStore(str(d / "s.json"))
    d.rmdir()
    st.delivered("k", 5, 5)
    start = time.monotonic()
    assert not st.settle("k", timeout=0.3)  # logged; the log reads on
    assert time.monotonic() - start >= 0.2
    st.stop()


def test_writes_are_coalesced(tmp_path: Path) -> None:
    st = StateStore(str(tmp_path / "s.json"), write_interval=0.2)
    for i in range(50):  # 50 logs each deliver a batch within one interval
        st.delivered(f"log{i}", i + 1, 100)
        gevent.sleep(0.001)
    for i in range(50):
        assert st.settle(f"log{i}", timeout=5)
    assert st.writes <= 3
    assert len(StateStore(str(tmp_path / "s.json")).load()) == 50
    st.stop()


def test_no_temp_files_left(tmp_path: Path) -> None:
    st = StateStore(str(tmp_path / "s.json"))
    for i in range(20):
        st.delivered("k", i + 1, 100, now=float(i))
        st.flush()
    st.stop()
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
    st = StateStore(str(p))
    st.delivered("k", 5, 5, now=1.0)
    st.stop()  # flushed by hand here
    d.rmdir()
    assert not st.flush()  # directory gone: logged, not raised
    d.mkdir()
    assert st.flush()
    assert StateStore(str(p)).load()["k"].next_index == 5


def test_a_frozen_store_saves_nothing_more(tmp_path: Path) -> None:
    p = tmp_path / "s.json"
    st = StateStore(str(p))
    st.delivered("k", 5, 5)
    assert st.flush()
    st.freeze()  # the master died: its workers' acknowledgements no longer vouch for all
    st.delivered("k", 9, 9)
    assert not st.flush()
    assert StateStore(str(p)).load()["k"].next_index == 5
    waiter = gevent.spawn(st.settle, "k")
    gevent.sleep(0.3)
    assert not waiter.dead  # and nothing more is published
    waiter.kill()
    st.stop()
