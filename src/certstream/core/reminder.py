"""When to report a condition that goes on (a log that keeps failing, a list that cannot be
fetched): the first time, then at most once per ``every`` seconds, saying how many times it
happened in between; and once more when it ends.

Offline, dozens of logs fail every few seconds each: a line per failure buried everything
else (~50 warnings per 10 s).  With a ``Reminder`` per log, each failing log is reported
once, then every ``every`` seconds, and its recovery once.  Sans-IO: time is passed in.
"""

from __future__ import annotations

__all__ = ["Reminder"]


class Reminder:
    """See the module docstring."""

    __slots__ = ("every", "failing", "last", "since_report")

    def __init__(self, every: float) -> None:
        self.every = every
        self.failing = 0  # occurrences since the condition began
        self.since_report = 0  # occurrences not reported since the last report
        self.last = 0.0  # when it was last reported

    def occurred(self, now: float) -> int | None:
        """One more occurrence at ``now``: ``None`` when it should not be reported, else how
        many occurrences before it went unreported (0 the first time)."""
        self.failing += 1
        if self.failing > 1 and now - self.last < self.every:
            self.since_report += 1
            return None
        quiet, self.since_report, self.last = self.since_report, 0, now
        return quiet

    def ended(self) -> int:
        """The condition is over: how many occurrences it had (0: it was not going on)."""
        count, self.failing, self.since_report = self.failing, 0, 0
        return count
