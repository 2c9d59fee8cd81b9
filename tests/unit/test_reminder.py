"""A persisting condition is reported once, then at a bounded rate, then its end once."""

from __future__ import annotations

from certstream.core.reminder import Reminder


def test_first_then_every_interval_with_the_count_in_between() -> None:
    r = Reminder(every=600)
    assert r.occurred(0.0) == 0  # reported at once
    reported = [t for t in range(1, 1800) if r.occurred(float(t)) is not None]
    assert reported == [600, 1200]  # then at most once per 600 s
    assert r.occurred(1800.0) == 599  # the occurrences since the last report
    assert r.ended() == 1801
    assert r.ended() == 0
    # A new spell is reported at once, however recent the last report.
    assert r.occurred(1801.0) == 0


def test_reports_are_bounded_whatever_the_rate() -> None:
    r = Reminder(every=10)
    reports = sum(r.occurred(i / 1000) is not None for i in range(100_000))  # 100 s, 1/ms
    assert reports == 10  # at 0, 10, 20, ... 90 s
