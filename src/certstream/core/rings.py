"""Rings of messages: one stream's last records by sequence number, each with its record's
stamp (``core.resume``), kept once for every client that reads them; and the notices a
client gets for what it lost.

A :class:`Ring` keeps, per slot, one bytes object: the record's payload.  The WebSocket
frame of a run of slots is built where they are joined for a write (``ws_payloads`` then
``frames.join_ws_frames``: a header written in front of each payload while it is copied
into the one buffer the write needs anyway), so no slot holds its payload twice.  The SSE
event of a slot (with the record's global id) and its compressed frames by window size are
built once each, lazily, the first time a client needs them.  A gap (records that will
never come) is a slot of its own (``append_gap``): its payload is the notice, never
compressed.

A ring holds at most ``size`` slots and at most ``max_bytes`` bytes of payloads (always at
least its newest record): ``oldest`` is the later of the two bounds, and a slot behind it
is emptied at once (its payload, SSE event and compressed frames freed).  The ring is
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

__all__ = ["DEFAULT_MAX_BYTES", "Ring", "drop_notice", "notice_payload", "ws_size"]

C = TypeVar("C")

#: A ring's byte bound unless told (``buffer_bytes``): twice the ~8.4 MiB that 1,000 full
#: messages take (~8.6 KB each on average, measured on recorded CT data), so at the default
#: ``buffer_size`` the entry bound is the one that binds and this one only caps bursts of
#: huge certificates and rings configured longer.
DEFAULT_MAX_BYTES = 16 << 20

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


def ws_size(n: int) -> int:
    """The size of the unmasked WebSocket frame of a payload of ``n`` bytes."""
    return n + (2 if n < 126 else 4 if n < 0x10000 else 10)


class Ring(Generic[C]):
    """Payloads of one stream, by sequence number, each with its record's stamp
    (``core.resume``); the last ``size`` are retained, no more than ``max_bytes`` of them.

    The unfiltered clients read it directly; ``views`` are its filtered views, by filter
    slot (``view_mask`` has their bits).
    """

    __slots__ = ("base", "held", "latest", "max_bytes", "next_seq", "oldest", "payloads",
                 "sent", "size", "sse", "sse_clients", "stamps", "stream", "view_mask",
                 "views", "ws_clients", "wsz_clients", "zframes")

    def __init__(self, stream: int, size: int, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.stream = stream
        self.size = size
        self.max_bytes = max_bytes
        self.base = self  # what counts delivered frames: a view's is its ring
        self.payloads: list[bytes] = [b""] * size
        self.sse: list[bytes | None] = [None] * size
        # Per slot, its compressed frames by deflate window (``core.deflate.deflate_key``),
        # built on first use.
        self.zframes: list[dict[int, bytes] | None] = [None] * size
        # Per slot, its record's global id, seen and number (one object per record, shared
        # by the rings of its streams).
        self.stamps: list[Stamp | None] = [None] * size
        self.next_seq = 0
        #: The oldest sequence number held: the later of the entry and the byte bound.
        self.oldest = 0
        self.held = 0  # bytes of the payloads held
        self.latest: bytes | None = None
        self.sent = 0  # frames delivered to this stream's clients (for the metrics)
        self.ws_clients: set[C] = set()
        self.wsz_clients: set[C] = set()  # WebSocket clients that get compressed frames
        self.sse_clients: set[C] = set()
        self.views: dict[int, View[C]] = {}
        self.view_mask = 0

    def append(self, payload: bytes, stamp: Stamp = _UNSTAMPED) -> None:
        """Keep ``payload`` (a client's cursor starts at the head, so nothing is framed
        here: the flusher frames it while it joins the slots a write takes)."""
        seq = self.next_seq
        if seq - self.oldest >= self.size:
            self._evict()  # the slot about to be reused
        slot = seq % self.size
        self.payloads[slot] = payload
        self.stamps[slot] = stamp
        self.next_seq = seq + 1
        self.held += len(payload)
        if self.held > self.max_bytes:
            self._trim()

    def append_gap(self, lost: int, stamp: Stamp) -> None:
        """A slot telling its readers that ``lost`` records are missing here."""
        self.append(notice_payload(lost), stamp)
        self.sse[(self.next_seq - 1) % self.size] = drop_notice(lost, ws=False)

    def _evict(self) -> None:
        """Forget the oldest slot held (and whatever was built from it)."""
        slot = self.oldest % self.size
        self.held -= len(self.payloads[slot])
        self.payloads[slot] = b""
        self.stamps[slot] = None
        self.sse[slot] = None
        self.zframes[slot] = None
        self.oldest += 1

    def _trim(self) -> None:
        """Evict the oldest slots until the payloads held fit in ``max_bytes``, keeping the
        newest record whatever its size."""
        while self.held > self.max_bytes and self.next_seq - self.oldest > 1:
            self._evict()

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

    def ring_seqs(self, start: int) -> range:
        """The sequence numbers from ``start`` to the head (a view's are a list)."""
        return range(start, self.next_seq)

    def payload(self, seq: int) -> bytes:
        return self.payloads[seq % self.size]

    # The readers below take sequence numbers held, in order, and return the first of
    # their forms that fit in ``cap`` bytes (at least one, whatever its size): what one
    # write to a client takes.

    def ws_payloads(self, seqs: Iterable[int], cap: int) -> list[bytes]:
        """Payloads of records ``seqs`` whose WebSocket frames fit in ``cap`` bytes
        (``frames.join_ws_frames`` frames them)."""
        size, payloads = self.size, self.payloads
        out: list[bytes] = []
        total = 0
        for seq in seqs:
            payload = payloads[seq % size]
            n = len(payload)
            total += n + (2 if n < 126 else 4 if n < 0x10000 else 10)
            if total > cap and out:
                break
            out.append(payload)
        return out

    def sse_event(self, seq: int) -> bytes:
        """The SSE event of record ``seq``, built once, on first use, with the record's
        global id."""
        slot = seq % self.size
        event = self.sse[slot]
        if event is None:
            stamp = self.stamps[slot]
            assert stamp is not None
            event = self.sse[slot] = frames.sse_event(self.payloads[slot], stamp.event_id())
        return event

    def sse_events(self, seqs: Iterable[int], cap: int) -> list[bytes]:
        """The SSE events of records ``seqs`` that fit in ``cap`` bytes."""
        out: list[bytes] = []
        total = 0
        for seq in seqs:
            event = self.sse_event(seq)
            total += len(event)
            if total > cap and out:
                break
            out.append(event)
        return out

    def z_frame(self, seq: int, wbits: int) -> bytes:
        """The compressed frame of record ``seq`` for a client whose window is ``wbits``:
        compressed once per window size, on first use, then shared (a gap's notice stays
        a plain frame)."""
        slot = seq % self.size
        built = self.zframes[slot]
        if built is None:
            built = self.zframes[slot] = {}
        payload = self.payloads[slot]
        key = deflate_key(len(payload), wbits)
        frame = built.get(key)
        if frame is None:
            stamp = self.stamps[slot]
            frame = built[key] = (frames.ws_frame(payload) if stamp is not None and stamp.gap
                                  else compressed_frame(payload, key))
        return frame

    def z_frames(self, seqs: Iterable[int], wbits: int, cap: int) -> list[bytes]:
        """The compressed frames of records ``seqs`` that fit in ``cap`` bytes."""
        out: list[bytes] = []
        total = 0
        for seq in seqs:
            frame = self.z_frame(seq, wbits)
            total += len(frame)
            if total > cap and out:
                break
            out.append(frame)
        return out
