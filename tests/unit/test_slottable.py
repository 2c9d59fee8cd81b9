"""The bounded open-addressing table the workers share (over a plain bytearray here)."""

from __future__ import annotations

import pytest

from certstream.core.slottable import KEY_END, SlotTable


def _table(capacity: int = 8, window: int = 4) -> SlotTable:
    record = KEY_END + 8
    return SlotTable(bytearray(SlotTable.size(capacity, record)), 0, capacity, record, window)


def _key(n: int) -> bytes:
    return n.to_bytes(16, "big")


def test_lookup_take_and_find_again() -> None:
    table = _table()
    assert table.lookup(_key(1), 3) == (-1, 3)  # absent: its home is free
    table.take(3, _key(1), b"\x07")
    assert table.lookup(_key(1), 3) == (3, -1)
    assert table.key(3) == _key(1) and table.is_used(3)
    # Another key with the same home goes next to it, and both are found.
    assert table.lookup(_key(2), 3) == (-1, 4)
    table.take(4, _key(2))
    assert table.lookup(_key(2), 3) == (4, -1)
    assert sorted(table.used()) == [3, 4]


def test_windows_wrap_around_and_are_bounded() -> None:
    table = _table(capacity=8, window=4)
    assert list(table.probe(6)) == [6, 7, 0, 1]
    for i, index in enumerate(table.probe(6)):
        table.take(index, _key(10 + i))
    # The window of home 6 is full: a new key finds no room, unless a record is reusable.
    assert table.lookup(_key(99), 6) == (-1, -1)
    assert table.lookup(_key(99), 6, reusable=lambda i: i == 0) == (-1, 0)
    # The least by score is the one to take over.
    assert table.victim(6, score=lambda i: {6: 5.0, 7: 1.0, 0: 3.0, 1: 2.0}[i]) == 7
    # A key already present is found before anything is reused.
    assert table.lookup(_key(12), 6, reusable=lambda i: True) == (0, -1)


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="power of two"):
        SlotTable(bytearray(1000), 0, 6, KEY_END)
    with pytest.raises(ValueError, match="does not fit"):
        SlotTable(bytearray(10), 0, 8, KEY_END)
    with pytest.raises(ValueError, match="keys are 16 bytes"):
        _table().take(0, b"short")
