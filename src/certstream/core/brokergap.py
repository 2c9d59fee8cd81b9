"""What an edge makes of each record it reads from the broker: deliver it, drop it as a
repeat, or first tell its clients how many records they lost.

The ingest numbers the records of an epoch 1, 2, 3, ... (``certstream.core.brokerrecord``).
:class:`SequenceTracker` remembers the last number an edge worker delivered and judges each
record read after it:

* the next number: deliver it;
* a number already delivered (an ingest retried a publish whose answer it lost, or the edge
  re-read a stream that went back after a Redis failover): a repeat, dropped and counted;
* a number further on: a gap of exactly the numbers skipped (records trimmed by ``MAXLEN``
  before this edge read them, or lost with a Redis that restarted without persistence while
  the ingest kept its count); the clients get a notice with that count, then the record;
* another epoch: the numbering started again (Redis lost its counter and the ingest that
  knew it is gone), so the count lost is unknown: the notice says so.

A second guard drops a record whose log index is not above the last one delivered for its
log (an ingest that took over from a stale position repeats entries under new numbers).

:func:`gap_notice` is what the clients get: the slow-client notice of ``core.fanout`` with
the count, or ``"dropped":null`` (SSE ``: dropped unknown``) when the count is unknown.
Plain code over values: no Redis, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from certstream.core.brokerrecord import Record
from certstream.core.fanout import drop_notice
from certstream.core.resume import UNKNOWN

__all__ = ["UNKNOWN", "SequenceTracker", "Verdict", "gap_notice"]



@dataclass(frozen=True, slots=True)
class Verdict:
    """``deliver``: hand the record on; ``lost``: records lost just before it (0 none,
    ``UNKNOWN`` when the count is unknown); ``repeat``: a record already delivered."""

    deliver: bool
    lost: int = 0
    repeat: bool = False


_DELIVER = Verdict(True)
_REPEAT = Verdict(False, repeat=True)


@dataclass(slots=True)
class SequenceTracker:
    """The position of one reader in the numbered records (see the module doc)."""

    epoch: int | None = None
    seq: int | None = None
    last_index: dict[str, int] = field(default_factory=dict)
    #: Totals, for the metrics: records dropped as repeats, gaps seen, records known lost.
    repeats: int = 0
    gaps: int = 0
    lost: int = 0
    unknown_gaps: int = 0

    def start_at(self, epoch: int | None, seq: int | None) -> None:
        """Begin after record ``seq`` of ``epoch`` (the stream's head when a reader starts:
        its clients start there too, so nothing before it counts as lost)."""
        self.epoch, self.seq = epoch, seq

    def judge(self, rec: Record) -> Verdict:
        """What to do with ``rec``, read after everything judged before it."""
        verdict = _DELIVER
        if self.epoch is not None and rec.epoch != self.epoch:
            verdict = Verdict(True, UNKNOWN)
            self.gaps += 1
            self.unknown_gaps += 1
        elif self.seq is not None:
            if rec.seq <= self.seq:
                self.repeats += 1
                return _REPEAT
            lost = rec.seq - self.seq - 1
            if lost:
                verdict = Verdict(True, lost)
                self.gaps += 1
                self.lost += lost
        self.epoch, self.seq = rec.epoch, rec.seq
        last = self.last_index.get(rec.key)
        if last is not None and rec.index <= last:
            # Numbered anew but an entry this reader delivered already: a repeat.  The gap
            # found above is still real: say it with the next record delivered.
            self.repeats += 1
            return _REPEAT if not verdict.lost else Verdict(False, verdict.lost, repeat=True)
        self.last_index[rec.key] = rec.index
        return verdict


def gap_notice(lost: int, *, ws: bool) -> bytes:
    """The notice for ``lost`` records (``UNKNOWN``: a count nobody knows): a WebSocket
    text frame or an SSE comment, as the slow-client notice (the hub keeps it in its rings,
    ``core.fanout.Fanout.gap``)."""
    return drop_notice(lost, ws=ws)
