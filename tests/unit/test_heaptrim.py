"""The ingest's heap trimmer: when it trims (a burst ended, or now and then in a steady flow),
and that malloc_trim really returns freed heap to the system where the libc has it."""

from __future__ import annotations

import platform
from collections.abc import Callable

import pytest

from certstream import _fast
from certstream._fast import _heap_py
from certstream.shell import heaptrim
from certstream.shell.heaptrim import HeapTrimmer


@pytest.fixture
def trims(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []

    def trim() -> bool:
        calls.append(1)
        return True

    monkeypatch.setattr(heaptrim, "malloc_trim", trim)
    return calls


def test_trims_once_when_a_burst_ends(trims: list[int]) -> None:
    work = [0]
    t = HeapTrimmer(lambda: work[0])
    assert not t.tick()  # nothing done yet
    for _ in range(5):  # a burst: the counter moves on every tick
        work[0] += 100
        assert not t.tick()
    assert t.tick()  # quiet now: the burst is over
    assert not t.tick() and not t.tick()  # nothing done since
    assert trims == [1] and t.trims == 1


def test_trims_now_and_then_in_a_steady_flow(trims: list[int]) -> None:
    work = [0]
    t = HeapTrimmer(lambda: work[0], steady_every=4)
    done = []
    for _ in range(12):
        work[0] += 1
        done.append(t.tick())
    assert done.count(True) == 3  # every 4th busy tick


def test_waits_while_the_output_of_a_burst_is_still_queued(trims: list[int]) -> None:
    work, queued = [0], [True]
    t = HeapTrimmer(lambda: work[0], lambda: queued[0])
    work[0] += 100
    assert not t.tick()  # entries handled
    assert not t.tick() and not t.tick()  # their payloads are still on their way
    queued[0] = False
    assert t.tick()  # the workers have them: trim now, not before
    assert not t.tick()


def test_a_libc_without_malloc_trim_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heaptrim, "malloc_trim", lambda: False)
    work = [0]
    t = HeapTrimmer(lambda: work[0])
    work[0] += 10
    assert not t.tick()  # busy
    assert not t.tick()  # the burst ended: it would trim, but there is nothing to call
    assert t.trims == 0


def test_the_pure_twin_without_malloc_trim_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_heap_py, "_libc_trim", lambda: None)
    assert _heap_py.malloc_trim() is False


def _rss() -> int:
    with open("/proc/self/status") as f:
        return int(f.read().split("VmRSS:")[1].split()[0]) * 1024


def _twins() -> list[object]:
    twins: list[object] = [pytest.param(_heap_py.malloc_trim, id="pure")]
    if not _fast.NO_EXTENSIONS:
        compiled = _fast.load("_heap")
        assert _fast.COMPILED["_heap"], "the compiled _heap did not load"
        twins.append(pytest.param(compiled.malloc_trim, id="compiled"))
    return twins


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
@pytest.mark.parametrize("trim", _twins())
def test_malloc_trim_returns_freed_heap(trim: Callable[[], bool]) -> None:
    # Many small objects (in the brk heap, below the mmap threshold), then all but a few
    # freed: the survivors pin the heap's top, so glibc keeps the freed pages between them
    # until it is asked to trim.
    objs = [bytes(1000) for _ in range(60_000)]
    keep = objs[::5000]
    del objs
    before = _rss()
    assert trim()
    assert before - _rss() > 16 * 1024 * 1024  # of ~60 MB freed, most goes back
    assert len(keep) == 12


def test_the_trimmer_calls_the_switch() -> None:
    # heaptrim takes the twin _fast chose, whichever it is.
    want = _fast.load("_heap").malloc_trim
    assert heaptrim.malloc_trim() is want()
