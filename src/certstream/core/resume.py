"""Where a resuming client starts: each record's stamp (its global id, its ``seen``, its
number), the client's resume point as it sends it, and how many records it lost.

Every record a worker gets carries a :class:`Stamp`:

``key``
    the record's global id as an orderable integer (:func:`stamp_key`).  The id is
    ``<ms>-<n>`` as Redis writes stream ids: the Redis stream id with a broker; on one
    machine the ingest's, ``<epoch>-<n>`` (its start time in milliseconds, then its records
    numbered 1, 2, 3, ...), so ids compare the same way in both modes, grow across an
    ingest restart, and are the same on every worker.  It is the SSE ``id:`` and what
    ``Last-Event-ID`` sends back.
``seen``
    the ``seen`` the payloads show, in microseconds (a WebSocket client resumes from it
    with ``?since=<seen>``).  A worker keeps it from going backwards (a clock stepped back),
    so that the ring can be searched by it.
``number``
    the record's number, ``(epoch << 40) | seq``: records of one epoch are numbered without
    holes, so the number of records between two of them is exact; across epochs it is
    unknown (:data:`UNKNOWN`).  With a broker ``epoch``/``seq`` are the broker record's; on
    one machine the ingest's epoch and record count (the same as its id).
``fields``
    the record's filter field (``core.filterfields``), when it came with one: a filter
    first seen with a resuming client is matched against the records still held.

A gap (records lost before the next one) is kept in the rings as a record of its own, whose
key is the previous record's key plus one (ids are even, gaps odd: :attr:`Stamp.gap`), so
clients behind it and clients resuming across it are told in order; its number is the first
lost record's, and ``lost`` says how many.  Other holes in the numbers along a ring are
records published without that stream's payload (nobody wanted it then): a client that
resumes across them is told too (``core.fanout``).

Plain code over values: the parsing of what a client sends (:func:`parse_event_id`,
:func:`parse_since`, ``ResumeError`` with the 400's body) and :class:`SeenIndex`, which
remembers when each run of records was seen, bounded, so that a WebSocket client resuming
from beyond the rings is told exactly how many it lost while the index still reaches back.
"""

from __future__ import annotations

import json
from array import array
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl

from certstream.errors import RemoteProtocolError

__all__ = [
    "EPOCH_SHIFT",
    "UNKNOWN",
    "Resume",
    "ResumeError",
    "SeenIndex",
    "Stamp",
    "event_id_text",
    "feed_number",
    "lost_between",
    "parse_event_id",
    "parse_resume",
    "parse_since",
    "stamp_key",
]

#: A count of lost records that nobody knows.
UNKNOWN = -1
#: ``number = (epoch << EPOCH_SHIFT) | seq``.
EPOCH_SHIFT = 40
_SEQ_MASK = (1 << EPOCH_SHIFT) - 1
_U64 = (1 << 64) - 1
#: The longest resume value read (a stream id is at most 41 characters).
_MAX_CHARS = 64
#: ``since`` past this many seconds is not a time this server could have written.
_MAX_SINCE_SECS = 10**11


def stamp_key(ms: int, n: int) -> int:
    """The orderable key of id ``<ms>-<n>`` (even; a gap after it is the next odd key)."""
    return ((ms << 64) | n) << 1


def event_id_text(key: int) -> bytes:
    """``b"<ms>-<n>"``, the id of ``key`` as Redis and the SSE ``id:`` write it."""
    key >>= 1
    return b"%d-%d" % (key >> 64, key & _U64)


def feed_number(key: int) -> int:
    """The number of the one-machine record with ``key``: its id is ``<epoch>-<seq>``."""
    key >>= 1
    return ((key >> 64) << EPOCH_SHIFT) | (key & _U64 & _SEQ_MASK)


def lost_between(had: int, next_number: int) -> int:
    """Records between record ``had`` and record ``next_number`` (both excluded):
    ``UNKNOWN`` when they are of different epochs."""
    if had >> EPOCH_SHIFT != next_number >> EPOCH_SHIFT:
        return UNKNOWN
    return max(0, next_number - had - 1)


@dataclass(frozen=True, slots=True)
class Stamp:
    """What a worker keeps of each record beside its payloads (see the module doc)."""

    key: int
    seen: int
    number: int
    fields: bytes | None = None
    #: A gap's count of records lost (``UNKNOWN`` allowed); its ``number`` is the first's.
    lost: int = 0

    @property
    def gap(self) -> bool:
        """This slot is a gap notice, not a record."""
        return bool(self.key & 1)

    @property
    def last_number(self) -> int | None:
        """The number of the last record this slot stands for: its own, or a gap's last
        lost record (``None``: a gap of unknown size)."""
        if not self.key & 1:
            return self.number
        return None if self.lost == UNKNOWN else self.number + self.lost - 1

    def event_id(self) -> bytes:
        return event_id_text(self.key)


class ResumeError(RemoteProtocolError):
    """A resume value the server cannot read: answered with 400 before any upgrade."""

    def __init__(self, msg: str, *, param: str) -> None:
        super().__init__(msg, status_hint=400, close_code=1008)
        self.param = param

    def json_body(self) -> bytes:
        """``{"error":"bad resume point","param":...,"reason":...}``."""
        return json.dumps(
            {"error": "bad resume point", "param": self.param, "reason": str(self)},
            separators=(",", ":"),
        ).encode()


def parse_event_id(text: str, *, param: str = "Last-Event-ID") -> int:
    """The key of an event id ``<ms>-<n>`` (``<ms>`` alone is ``<ms>-0``, as Redis reads
    it); ``ResumeError`` for anything else."""
    value = text.strip()
    ms, sep, n = value.partition("-")
    if (len(value) > _MAX_CHARS or not ms.isascii() or not ms.isdigit()
            or (sep and (not n.isascii() or not n.isdigit()))):
        raise ResumeError(f"{param} {text[:_MAX_CHARS]!r} is not an event id "
                          "(<milliseconds>-<number>, as this server sends in id:)", param=param)
    ms_i, n_i = int(ms), int(n) if sep else 0
    if ms_i > _U64 or n_i > _U64:
        raise ResumeError(f"{param} {value!r} is out of range", param=param)
    return stamp_key(ms_i, n_i)


def parse_since(text: str, *, param: str = "since") -> int:
    """``since=<seen>`` (seconds, as the ``seen`` of a message) in microseconds, rounded
    down; ``ResumeError`` for anything but a non-negative number of seconds."""
    # Exact decimal arithmetic (a float would round 1700000000.000001 wrongly), imported here:
    # decimal is ~0.4 MiB that a worker whose clients never send ``since`` does not need.
    from decimal import ROUND_FLOOR, Decimal, InvalidOperation  # noqa: PLC0415

    value = text.strip()
    try:
        if len(value) > _MAX_CHARS or not value:
            raise InvalidOperation
        seconds = Decimal(value)
        if not seconds.is_finite() or seconds < 0 or seconds > _MAX_SINCE_SECS:
            raise InvalidOperation
    except InvalidOperation:
        raise ResumeError(f"{param}={text[:_MAX_CHARS]!r} is not a time in seconds (the "
                          "\"seen\" of the last message read)", param=param) from None
    return int((seconds * 1_000_000).to_integral_value(ROUND_FLOOR))


@dataclass(frozen=True, slots=True)
class Resume:
    """Where a client asks to resume: after the record with ``key`` (an SSE event id; its
    ``number`` when the worker had to look it up), or from the records seen at or after
    ``seen`` (microseconds)."""

    key: int | None = None
    seen: int | None = None
    number: int | None = None


def parse_resume(query: str, headers: Iterable[tuple[bytes, bytes]]) -> Resume | None:
    """Where a streaming request asks to resume, or ``None``: the ``Last-Event-ID`` header
    (what ``EventSource`` sends when it reconnects), else ``?last_event_id=`` (for clients
    that cannot set a header), else ``?since=<seen>``.  The header wins because a browser
    reconnecting sends the newest id there while its URL keeps the first one.  A value that
    is not an id or a time is a ``ResumeError``."""
    for name, value in headers:
        if name.lower() == b"last-event-id":
            header = value.decode("latin-1").strip()
            if header:
                return Resume(key=parse_event_id(header))
    event_id: str | None = None
    since: str | None = None
    if "last_event_id=" in query or "since=" in query:
        for param, text in parse_qsl(query, keep_blank_values=True):
            if param == "last_event_id":
                event_id = text
            elif param == "since":
                since = text
    if event_id is not None:
        return Resume(key=parse_event_id(event_id, param="last_event_id"))
    if since is not None:
        return Resume(seen=parse_since(since))
    return None


class SeenIndex:
    """When each run of records was seen: ``(seen, the first record's number)`` each time
    ``seen`` changes, the last ``capacity`` runs (records of one batch share a ``seen``).

    ``first_from(seen)`` is the number of the first record seen at or after ``seen``, so a
    client resuming from a ``seen`` older than the rings learns how many it lost.
    """

    __slots__ = ("capacity", "dropped", "epochs", "seens", "seqs")

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self.seens = array("q")
        self.epochs = array("q")
        self.seqs = array("q")
        self.dropped = False  # runs were forgotten: the index no longer starts at the first

    def add(self, seen: int, number: int) -> None:
        seens = self.seens
        if seens and seens[-1] >= seen:
            return  # the same run (seen never goes back: see Stamp)
        seens.append(seen)
        self.epochs.append(number >> EPOCH_SHIFT)
        self.seqs.append(number & _SEQ_MASK)
        if len(seens) > 2 * self.capacity:  # forget the older half: amortized O(1)
            cut = len(seens) - self.capacity
            del seens[:cut], self.epochs[:cut], self.seqs[:cut]
            self.dropped = True

    def first_from(self, seen: int) -> int | None:
        """The number of the first record seen at or after ``seen``; ``None`` when the index
        does not reach back that far, or no record was seen since."""
        seens = self.seens
        i = bisect_left(seens, seen)
        if i == len(seens) or (i == 0 and seens[0] > seen):
            return None
        return (self.epochs[i] << EPOCH_SHIFT) | self.seqs[i]
