"""Judge what a server sent against a peer's golden frames, and print the verdict.

The rules are those of ``data/README.md`` and ``data/ALLOWED-DEVIATIONS.md``:

* frames are keyed by (log URL, ``cert_index``); a ``dns_entries`` frame carries no index and
  takes the key of the lite frame at its position on the same transport, as the golden
  domains frames take that of the golden lite frames;
* order counts within a log only (a frame whose index is below one already received from
  its log is *out of order*); a key received again is *repeated*; a key the golden has that
  never came is *missing*; a key the golden lacks is *extra*;
* a paired frame matches when its text equals the golden's once ``seen`` is set aside, or
  differs only by an allowed deviation of that peer (``compare.classify``);
* allowed on the missing side: a repeat of a certificate already sent may be left out (the
  dedup rule of every profile); allowed on the extra side: the entries the peer documents
  losing (CaliDog ``failed_indices``, Go's tiled skip).

A filtered capture (``--filter``) is judged against the golden frames its filter selects
(``select``, on each golden lite frame; the full and domains frames of the same entries go
with it): exactly those, and nothing else.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from conformance import compare
from conformance.harness import Capture
from conformance.serverconfig import PROFILES

__all__ = ["SetVerdict", "StreamVerdict", "format_verdict", "judge", "selected"]

Key = tuple[str, int]


@dataclass(slots=True)
class StreamVerdict:
    transport: str
    stream: str
    expected: int  # golden frames
    received: int
    matched: int = 0  # golden frames paired with an equal frame or an allowed deviation
    deviations: Counter[str] = field(default_factory=Counter)
    missing: list[Key] = field(default_factory=list)
    extra: list[tuple[Key | None, str]] = field(default_factory=list)
    repeated: list[tuple[Key, int]] = field(default_factory=list)  # (key, copies)
    out_of_order: list[tuple[Key, int]] = field(default_factory=list)  # (key, index before it)
    differing: list[tuple[Key, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.missing or self.extra or self.repeated or self.out_of_order or self.differing
        )


@dataclass(slots=True)
class SetVerdict:
    peer: str
    set: str
    base_url: str
    streams: list[StreamVerdict]
    notes: list[str] = field(default_factory=list)
    #: The filter query of a filtered capture ("" for the unfiltered streams).
    query: str = ""

    @property
    def label(self) -> str:
        return f"{self.peer}/{self.set}" + (f"?{self.query}" if self.query else "")

    @property
    def ok(self) -> bool:
        return bool(self.streams) and all(s.ok for s in self.streams)

    @property
    def matched(self) -> int:
        return sum(s.matched for s in self.streams)

    @property
    def expected(self) -> int:
        return sum(s.expected for s in self.streams)


def _norm(key: Key) -> Key:
    return key[0].rstrip("/"), key[1]


def _key(text: str) -> Key | None:
    try:
        data = json.loads(text)["data"]
        return _norm((data["source"]["url"], int(data["cert_index"])))
    except (ValueError, KeyError, TypeError):
        return None


def judge(
    peer: str,
    set_name: str,
    cap: Capture,
    root: Path = compare.DATA,
    *,
    select: Callable[[str], bool] | None = None,
    query: str = "",
) -> SetVerdict:
    """Compare one capture with ``<root>/golden/<peer>/<set>``; with ``select``, with the
    golden frames of the entries whose lite frame it selects (a filtered capture)."""
    golden = compare.load_golden(peer, set_name, root, cap.base_url)
    if select is not None:
        golden = selected(golden, select)
    logs = compare.load_set(set_name, root, cap.base_url, strict=False)
    ours = compare.OurFrames(peer, set_name, logs) if peer in PROFILES else None
    # The certificate each input entry shows, for the dedup rule.
    cert_of = {
        _norm((log.source.url, entry.index)): hashlib.sha256(entry.cert_der).digest()
        for log in logs
        for entry in log.entries
    }
    tiled = {
        _norm((log.source.url, entry.index))
        for log in logs
        if log.source.kind == "static"
        for entry in log.entries
    }
    allowed_extra: dict[Key, str] = {}
    for key in cert_of:
        if peer == "calidog" and key[1] in (golden.meta.get("failed_indices") or ()):
            allowed_extra[key] = "calidog-1"
        elif peer == "go" and key in tiled and key[1] in (golden.meta.get("missing_indices") or ()):
            allowed_extra[key] = "go-3"
    golden_lite = [_key(t) for t in golden.frames["lite"]]
    verdicts = []
    transports = sorted({t for t, _ in cap.frames}, key=("ws", "sse").index)
    for transport in transports:
        lite = [_key(t) for t in cap.frames.get((transport, "lite"), [])]
        for stream in compare.STREAMS:
            if (transport, stream) not in cap.frames:
                continue
            texts = cap.frames[(transport, stream)]
            # Domains frames past the last lite frame have nothing to pair with.
            keys = (lite + [None] * len(texts))[: len(texts)] if stream == "domains" else [
                _key(t) for t in texts
            ]
            gold = golden.frames[stream]
            gold_keys = golden_lite if stream == "domains" else [_key(t) for t in gold]
            verdicts.append(
                _judge_stream(
                    (transport, stream), list(zip(texts, keys, strict=True)),
                    list(zip(gold, gold_keys, strict=True)),
                    ours=ours, cert_of=cert_of, allowed_extra=allowed_extra,
                )
            )
    return SetVerdict(peer, set_name, cap.base_url, verdicts, list(cap.notes), query)


def selected(golden: compare.Golden, select: Callable[[str], bool]) -> compare.Golden:
    """The golden frames of the entries whose lite frame ``select`` takes: lite and full by
    key, domains by position (it has the key of the lite frame at its position)."""
    lite = golden.frames["lite"]
    chosen = [select(text) for text in lite]
    keys = {_key(text) for text, keep in zip(lite, chosen, strict=True) if keep}
    frames = {
        "lite": [t for t, keep in zip(lite, chosen, strict=True) if keep],
        "full": [t for t in golden.frames["full"] if _key(t) in keys],
        "domains": [t for t, keep in zip(golden.frames["domains"], chosen, strict=True) if keep],
    }
    return compare.Golden(frames, golden.meta, golden.url_map)


def _judge_stream(
    where: tuple[str, str],
    received: list[tuple[str, Key | None]],
    goldens: list[tuple[str, Key | None]],
    *,
    ours: compare.OurFrames | None,
    cert_of: dict[Key, bytes],
    allowed_extra: dict[Key, str],
) -> StreamVerdict:
    transport, stream = where
    v = StreamVerdict(transport, stream, len(goldens), len(received))
    first: dict[Key, str] = {}
    copies: Counter[Key] = Counter()
    highest: dict[str, int] = {}
    for frame, key in received:
        if key is None:
            why = "no lite frame at this position to pair it with" if stream == "domains" else (
                "not a certificate_update frame: " + frame[:80]
            )
            v.extra.append((None, why))
            continue
        copies[key] += 1
        if copies[key] > 1:
            continue
        first[key] = frame
        if key[1] < highest.get(key[0], -1):
            v.out_of_order.append((key, highest[key[0]]))
        highest[key[0]] = max(highest.get(key[0], -1), key[1])
    v.repeated = [(key, n) for key, n in copies.items() if n > 1]
    sent_certs = {cert_of[k] for k in first if k in cert_of}
    golden_set = set()
    sse = transport == "sse"
    for raw, key in goldens:
        if key is None:
            continue
        golden_set.add(key)
        gold = raw.rstrip("\n") if sse else raw  # an SSE data line cannot carry it
        text = first.get(key)
        if text is None:
            if key in cert_of and cert_of[key] in sent_certs:
                v.matched += 1
                v.deviations["dedup"] += 1
            else:
                v.missing.append(key)
            continue
        ours_key = _ours_key(ours, key)
        result = compare.classify(ours_key, stream, text, gold, ours, sse=sse)
        if result.status == "match":
            v.matched += 1
        elif result.status == "deviation":
            v.matched += 1
            v.deviations.update(result.deviations)
        else:
            v.differing.append((key, result.detail))
    for key in first:
        if key in golden_set:
            continue
        if key in allowed_extra:
            v.deviations[allowed_extra[key]] += 1
        else:
            v.extra.append((key, ""))
    return v


def _ours_key(ours: compare.OurFrames | None, key: Key) -> Key:
    """Our builder's key for a frame key (its URL may keep the trailing slash)."""
    if ours is not None:
        for candidate in ((key[0], key[1]), (key[0] + "/", key[1])):
            if candidate in ours.frames:
                return candidate
    return key


def _where(key: Key | None, base_url: str) -> str:
    if key is None:
        return "(no index)"
    log = key[0][len(base_url) :] if key[0].startswith(base_url) else key[0]
    return f"{log or '/'} #{key[1]}"


def format_verdict(v: SetVerdict, *, limit: int = 20) -> str:
    """The report: one line per transport and stream, the differences under it (at most
    ``limit`` of each kind), and last ``<peer>/<set>: M/N frames match``."""
    lines = [v.label]
    lines.extend(f"  note: {note}" for note in v.notes)
    for s in v.streams:
        allowed = ", ".join(f"{label} x{n}" for label, n in sorted(s.deviations.items()))
        lines.append(
            f"  {s.transport:3} {s.stream:7}  {s.matched}/{s.expected} matched, "
            f"{len(s.missing)} missing, {len(s.extra)} extra, {len(s.repeated)} repeated, "
            f"{len(s.out_of_order)} out of order, {len(s.differing)} differing"
            + (f"  (allowed: {allowed})" if allowed else "")
        )
        items: list[str] = []
        items += [f"differs {_where(k, v.base_url)}: {d}" for k, d in s.differing[:limit]]
        items += [f"missing {_where(k, v.base_url)}" for k in s.missing[:limit]]
        items += [
            f"extra {_where(k, v.base_url)}" + (f": {why}" if why else "")
            for k, why in s.extra[:limit]
        ]
        items += [f"repeated {_where(k, v.base_url)}: {n} copies" for k, n in s.repeated[:limit]]
        items += [
            f"out of order {_where(k, v.base_url)}: came after #{after}"
            for k, after in s.out_of_order[:limit]
        ]
        lines.extend("      " + item for item in items)
    # Frames nobody expected (a filtered stream that lets through what its filter does not
    # select) are said on the last line too: "M/N frames match" alone would hide them.
    extra = sum(len(s.extra) for s in v.streams)
    lines.append(f"{v.label}: {v.matched}/{v.expected} frames match"
                 + (f", {extra} extra" if extra else ""))
    return "\n".join(lines)
