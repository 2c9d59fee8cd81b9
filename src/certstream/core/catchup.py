"""What a client behind the head gets: where a resuming client starts in a ring, and the
pieces a write to one client takes, at most a cap in bytes each.

Pure functions of a ring (``core.rings``), the group a client reads (the ring or one of its
filtered views, ``core.views``) and plain values; ``core.fanout`` keeps the cursors, shares
each piece between the clients at the same place and writes it.

A piece is the frames from a position on, joined into one buffer: plain WebSocket frames
are built there from the ring's payloads (``frames.join_ws_frames``), SSE events and
compressed frames are the ring's, built once per slot.  It holds at least one frame and
otherwise no more than the cap, notices included.  A client that resumes is also told,
in order, of the holes in the records' numbers along the way (records that came while
nobody wanted its stream): ``resumed_piece`` counts them from the last record it was sent.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from certstream.core import frames
from certstream.core.resume import UNKNOWN, Resume, SeenIndex, Stamp, lost_between
from certstream.core.rings import Ring, drop_notice, notice_payload, ws_size
from certstream.core.views import View

__all__ = ["Group", "form", "needs_number", "piece", "resume_point", "resumed_piece"]

#: What a cursor reads: its stream's ring, or a filtered view of it.
Group: TypeAlias = Ring[Any] | View[Any]


def form(is_ws: bool, wbits: int) -> int:
    """The form of the frames a client gets: 0 plain WebSocket, 1 SSE, else compressed
    for its window (``wbits << 2 | 2``)."""
    if wbits:
        return wbits << 2 | 2
    return 0 if is_ws else 1


def _notice(lost: int, code: int) -> bytes:
    """The notice of ``lost`` records in a piece of form ``code``: a payload for plain
    WebSocket pieces (framed with the rest), else a whole frame or SSE comment."""
    return notice_payload(lost) if code == 0 else drop_notice(lost, ws=code != 1)


def _joined(parts: list[bytes], code: int) -> bytes:
    return frames.join_ws_frames(parts) if code == 0 else b"".join(parts)


def piece(ring: Ring[Any], group: Group, start: int, *, code: int, lost: int, cap: int,
          ) -> tuple[bytes, int]:
    """The frames of ``group`` (``ring`` or a view of it) from position ``start`` in form
    ``code`` that fit in ``cap`` bytes (at least one), after a notice of ``lost`` if not
    0; and the position after them."""
    parts = [_notice(lost, code)] if lost else []
    cap -= ws_size(len(parts[0])) if parts else 0
    seqs = group.ring_seqs(start)
    if code == 0:
        items = ring.ws_payloads(seqs, cap)
    elif code == 1:
        items = ring.sse_events(seqs, cap)
    else:
        items = ring.z_frames(seqs, code >> 2, cap)
    stop = start + len(items)
    if parts:
        parts.extend(items)
        items = parts
    return _joined(items, code), stop


def resumed_piece(ring: Ring[Any], group: Group, start: int, *, lo: int, code: int,
                  lost: int, cap: int, last: Stamp | None) -> tuple[bytes, int, int]:
    """Like :func:`piece` for a client that resumes: with a notice before each record
    after a hole in the numbers, counted from ring position ``lo`` (the last record sent,
    or where it resumed), and at the end if records came after the last one held (``last``
    is the newest record's stamp).  Also returns the new ``lo``: the last record sent, or
    -1 once the piece reaches the head (the client is live)."""
    head = ring.next_seq
    lo = max(lo, ring.oldest)
    parts: list[bytes] = []
    total = 0
    if lost:
        parts.append(_notice(lost, code))
        total = ws_size(len(parts[0]))
    previous = ring.stamp(lo).last_number if lo < head else None
    pending = 0
    x = lo + 1
    for count, seq in enumerate(group.ring_seqs(start)):
        if x <= seq:  # the ring's records up to this one, for holes
            previous, missing = _missing(ring, previous, x, seq + 1)
            pending += missing
            x = seq + 1
        if code == 0:
            item = ring.payload(seq)
            size = ws_size(len(item))
        else:
            item = ring.sse_event(seq) if code == 1 else ring.z_frame(seq, code >> 2)
            size = len(item)
        notice = _notice(pending, code) if pending else b""
        size += ws_size(len(notice)) if notice else 0
        if parts and total + size > cap:
            return _joined(parts, code), start + count, lo
        if notice:
            parts.append(notice)
            pending = 0
        parts.append(item)
        total += size
        lo = seq
    previous, missing = _missing(ring, previous, x, head)  # after its last record
    pending += missing
    if previous is not None and last is not None:
        missing = lost_between(previous, last.number + 1)
        if missing > 0:
            pending += missing
    if pending:
        parts.append(_notice(pending, code))
    return _joined(parts, code), group.next_seq, -1


def _missing(ring: Ring[Any], previous: int | None, begin: int, end: int,
             ) -> tuple[int | None, int]:
    """Walk ``ring``'s records ``begin`` to ``end`` (excluded) after the record whose last
    number is ``previous``: the last number then, and how many numbers were skipped on the
    way (records this stream has no payload of)."""
    skipped = 0
    for x in range(begin, end):
        stamp = ring.stamp(x)
        if previous is not None:
            missing = lost_between(previous, stamp.number)
            if missing > 0:
                skipped += missing
        previous = stamp.last_number
    return previous, skipped


def _current(ring: Ring[Any], key: int, last: Stamp | None) -> bool:
    """Nothing held, and nothing seen after record ``key``."""
    return ring.oldest == ring.next_seq and (last is None or last.key <= key)


def needs_number(ring: Ring[Any], key: int, last: Stamp | None) -> bool:
    """Whether how many records a client resuming after record ``key`` lost takes that
    record's number, and ``ring`` does not hold it (it is older than every record held,
    or not of this stream)."""
    pos = ring.after_key(key)
    if pos is None:
        return not _current(ring, key, last)
    return ring.stamp(pos - 1).key != key


def resume_point(ring: Ring[Any], resume: Resume, last: Stamp | None, seen_index: SeenIndex,
                 ) -> tuple[int, int]:
    """Where in ``ring`` a client resuming at ``resume`` starts, and how many records it
    lost before that (0, a count, or ``UNKNOWN``): records too old to be held still, or
    that came while nobody wanted this stream (published without its payload).  ``last``
    is the newest record's stamp, ``seen_index`` when records were seen.  Holes further
    on are :func:`resumed_piece`'s."""
    if resume.key is not None:
        pos = ring.after_key(resume.key)
        if pos is None and _current(ring, resume.key, last):
            return ring.next_seq, 0
        start = ring.oldest if pos is None else pos
        had: int | None = resume.number
        if pos is not None and ring.stamp(pos - 1).key == resume.key:
            had = ring.stamp(pos - 1).number
    elif resume.seen is not None:
        pos = ring.from_seen(resume.seen)
        if pos is None and ring.oldest == ring.next_seq and (
                last is None or last.seen < resume.seen):
            return ring.next_seq, 0  # nothing seen since
        start = ring.oldest if pos is None else pos
        # The first record seen then; the client had one of them (its last): exact when
        # no other record shares its ``seen``, else at most that many too high.
        had = seen_index.first_from(resume.seen)
    else:
        return ring.next_seq, 0
    if had is None:
        return start, UNKNOWN if pos is None else 0
    if start < ring.next_seq:
        number = ring.stamp(start).number  # the first record it gets
    else:
        assert last is not None  # returned above when nothing was seen
        number = last.number + 1  # none held after it: the next to come
    lost = lost_between(had, number)
    if lost == UNKNOWN and pos is not None:
        lost = 0  # within what is held a new epoch is a gap slot's to tell
    return start, lost
