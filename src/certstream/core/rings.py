"""Rings of pre-built frames: one stream's last records by sequence number, each with its
record's stamp (``core.resume``), framed once for every client that reads them; and the
notices a client gets for what it lost.

A :class:`Ring` keeps, per slot, the payload, its WebSocket frame (built at append time
for the plain WebSocket clients that get it now, else on demand: ``fill_frames``), its SSE
event (built once, lazily, with the record's global id), its compressed frames by window
size (built once each, lazily) and its stamp.  A gap (records that will never come) is a
slot of its own (``append_gap``): its frame is the notice, never compressed.  The ring is
searched by record id (``after_key``) and by ``seen`` (``from_seen``) for clients that
resume.  Who reads what, and when, is ``core.fanout``'s.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Generic, TypeVar

from certstream.core import frames
from certstream.core.deflate import compressed_frame, deflate_key
from certstream.core.resume import UNKNOWN, Stamp

if TYPE_CHECKING:
    from certstream.core.views import View

__all__ = ["Ring", "drop_notice", "notice_payload"]

C = TypeVar("C")

#: The stamp of a payload appended without one (a test's shortcut: no resume from it).
_UNSTAMPED = Stamp(0, 0, 0)


def notice_payload(lost: int) -> bytes:
    """The WebSocket notice of ``lost`` messages lost (``UNKNOWN``: ``"dropped":null``)."""
    count = b"null" if lost == UNKNOWN else b"%d" % lost
    return b'{"message_type":"notice","dropped":%b}' % count


def drop_notice(lost: int, *, ws: bool) -> bytes:
    """What a client is told when it lost ``lost`` frames (``UNKNOWN``: a count nobody
    knows): a WebSocket notice (clients skip unknown message types) or an SSE comment."""
    if ws:
        return frames.ws_frame(notice_payload(lost))
    return frames.sse_comment(b"dropped unknown" if lost == UNKNOWN else b"dropped %d" % lost)


class Ring(Generic[C]):
    """Frames of one stream, by sequence number; the last ``size`` are retained, each with
    its record's stamp (``core.resume``).

    The unfiltered clients read it directly; ``views`` are its filtered views, by filter
    slot (``view_mask`` has their bits).
    """

    __slots__ = ("base", "frames", "latest", "next_seq", "payloads", "sent", "size", "sse",
                 "sse_clients", "stamps", "stream", "view_mask", "views", "ws_clients",
                 "ws_readers", "wsz_clients", "zframes")

    def __init__(self, stream: int, size: int) -> None:
        self.stream = stream
        self.size = size
        self.base = self  # what counts delivered frames: a view's is its ring
        self.payloads: list[bytes] = [b""] * size
        self.frames: list[bytes] = [b""] * size
        self.sse: list[bytes | None] = [None] * size
        # Per slot, its compressed frames by deflate window (``core.deflate.deflate_key``),
        # built on first use.
        self.zframes: list[dict[int, bytes] | None] = [None] * size
        # Per slot, its record's global id, seen and number (one object per record, shared
        # by the rings of its streams).
        self.stamps: list[Stamp | None] = [None] * size
        self.next_seq = 0
        self.latest: bytes | None = None
        self.sent = 0  # frames delivered to this stream's clients (for the metrics)
        self.ws_clients: set[C] = set()
        self.wsz_clients: set[C] = set()  # WebSocket clients that get compressed frames
        self.sse_clients: set[C] = set()
        # Plain WebSocket clients of the ring and of its views: framing is for them.
        self.ws_readers = 0
        self.views: dict[int, View[C]] = {}
        self.view_mask = 0

    @property
    def oldest(self) -> int:
        return max(0, self.next_seq - self.size)

    def append(self, payload: bytes, stamp: Stamp = _UNSTAMPED, frame: bool | None = None,
               ) -> None:
        """Keep ``payload``; frame it now if ``frame`` (by default: if a plain WebSocket
        client reads this ring or one of its views)."""
        slot = self.next_seq % self.size
        self.payloads[slot] = payload
        self.stamps[slot] = stamp
        # A client's cursor starts at the head, so a slot framed for nobody is only needed
        # by a client that resumes from before it (``fill_frames``).
        if frame is None:
            frame = self.ws_readers > 0
        self.frames[slot] = frames.ws_frame(payload) if frame else b""
        self.sse[slot] = None
        self.zframes[slot] = None
        self.next_seq += 1

    def append_gap(self, lost: int, stamp: Stamp) -> None:
        """A slot telling its readers that ``lost`` records are missing here."""
        slot = self.next_seq % self.size
        self.payloads[slot] = payload = notice_payload(lost)
        self.stamps[slot] = stamp
        self.frames[slot] = frames.ws_frame(payload)  # never compressed, as drop notices
        self.sse[slot] = drop_notice(lost, ws=False)
        self.zframes[slot] = None
        self.next_seq += 1

    def fill_frames(self, start: int) -> None:
        """Frame the slots from ``start`` on that were appended while no plain WebSocket
        client read this ring (a resuming client is about to)."""
        size, ring, payloads = self.size, self.frames, self.payloads
        for seq in range(max(start, self.oldest), self.next_seq):
            slot = seq % size
            if not ring[slot]:
                ring[slot] = frames.ws_frame(payloads[slot])

    def stamp(self, seq: int) -> Stamp:
        stamp = self.stamps[seq % self.size]
        assert stamp is not None
        return stamp

    def after_key(self, key: int) -> int | None:
        """The position of the first record held whose id is after ``key``; ``None`` when
        ``key`` is older than every record held (or nothing is held)."""
        lo, hi = self.oldest, self.next_seq
        if lo == hi or self.stamp(lo).key > key:
            return None
        while lo < hi:  # ids grow along the ring
            mid = (lo + hi) // 2
            if self.stamp(mid).key > key:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def from_seen(self, seen: int) -> int | None:
        """The position of the first record held seen at or after ``seen`` (microseconds);
        ``None`` when records seen then may be older than every record held."""
        lo, hi = self.oldest, self.next_seq
        if lo == hi or self.stamp(lo).seen >= seen:
            return None
        while lo < hi:  # seen never goes back along the ring (``Fanout.publish``)
            mid = (lo + hi) // 2
            if self.stamp(mid).seen >= seen:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def ws_range(self, start: int) -> list[bytes]:
        size, ring = self.size, self.frames
        return [ring[seq % size] for seq in range(start, self.next_seq)]

    def sse_range(self, start: int) -> list[bytes]:
        return self.sse_events(range(start, self.next_seq))

    def sse_events(self, seqs: Iterable[int]) -> list[bytes]:
        """The SSE events of records ``seqs``, each built once, on first use, with the
        record's global id."""
        size, built, payloads, stamps = self.size, self.sse, self.payloads, self.stamps
        out = []
        for seq in seqs:
            slot = seq % size
            event = built[slot]
            if event is None:
                stamp = stamps[slot]
                assert stamp is not None
                event = built[slot] = frames.sse_event(payloads[slot], stamp.event_id())
            out.append(event)
        return out

    def z_range(self, start: int, wbits: int) -> list[bytes]:
        return self.z_frames(range(start, self.next_seq), wbits)

    def z_frames(self, seqs: Iterable[int], wbits: int) -> list[bytes]:
        """The compressed frames of records ``seqs`` for a client whose window is ``wbits``:
        each compressed once per window size, on first use, then shared."""
        size, cache, payloads = self.size, self.zframes, self.payloads
        out = []
        for seq in seqs:
            slot = seq % size
            built = cache[slot]
            if built is None:
                built = cache[slot] = {}
            payload = payloads[slot]
            key = deflate_key(len(payload), wbits)
            frame = built.get(key)
            if frame is None:
                stamp = self.stamps[slot]
                frame = built[key] = (self.frames[slot] if stamp is not None and stamp.gap
                                      else compressed_frame(payload, key))
            out.append(frame)
        return out
