"""Compare our frames with the peers' golden frames, text for text.

Run ``python -m conformance.compare`` for a table (peer x set x stream), or call
``compare_all()`` for structured results (the pytest file does).

What is compared, following conformance/data/README.md:

1. Each recorded input set is decoded with our own decoders (``certstream.core.leaves`` for
   get-entries, ``certstream.core.tiles`` for the static-ct tiles) and formatted by the
   ``MessageBuilder`` of the peer's profile, with the manifest's log names and URLs under a
   base URL of our own (``OUR_BASE``).
2. In each golden frame the peer's base URL (``meta.json``) is replaced by ours; in each of
   our frames the ``"seen":<number>`` token is replaced by the golden one (wall-clock time).
   ``,"seen":`` cannot occur inside a JSON string (quotes are escaped there), so the token
   replacement cannot touch anything else.
3. Frames are paired by (source.url, cert_index); domains frames by position with the
   golden lite frames, which gives their index.
4. A pair whose texts are identical is a ``match``.  A pair that differs is a ``deviation``
   only if the golden text is reproduced exactly once the documented peer bug is put back
   into our output (see ``DEVIATIONS.md``): for the Go name bugs we rebuild the frame with a
   profile variant whose name rule reads ST from streetAddress and never fills
   email_address; for Go's tiled bugs we drop the chain and, for precerts, ``as_der`` and
   replace the three hashes by those of empty input.  Anything else is a ``mismatch``.
   Frames that exist on one side only are ``missing``/``extra``, or ``deviation`` when the
   peer documents that it loses that entry (CaliDog ``failed_indices``, Go's tiled skip).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from certstream.core import profiles
from certstream.core.leaves import decode_entry, decode_get_entries
from certstream.core.messages import STREAM_ALL, MessageBuilder
from certstream.core.model import LogEntry, LogSource
from certstream.core.oids import OID_STREET
from certstream.core.tiles import parse_data_tile
from conformance.replay import load_tiles_dir

ROOT = Path(__file__).resolve().parent
DATA = ROOT / "data"
INPUTS = DATA / "inputs"
GOLDEN = DATA / "golden"
RUST_FIXTURE = (
    ROOT.parent / "tests" / "fixtures" / "ct" / "rfc6962" / "certstream-server-rust_live_ct.json"
)

#: The base URL our logs are configured under; every golden base URL is replaced by it.
OUR_BASE = "http://127.0.0.1:28080"
#: A fixed ``seen`` for our frames (its token is replaced by the golden one anyway).
SEEN = 1712345678.901234

STREAMS = ("lite", "full", "domains")
#: peer -> the sets it has goldens for; "live40-fixture" is the rust snapshot file itself.
PEER_SETS: dict[str, tuple[str, ...]] = {
    "go": ("live40", "synth11", "synth11-tiled"),
    "calidog": ("live40", "synth11"),
    "rust": ("live40", "live40-fixture"),
}
#: The sets that must match exactly (up to documented deviations).
ACCEPTANCE = (
    ("go", "live40"),
    ("go", "synth11"),
    ("calidog", "live40"),
    ("calidog", "synth11"),
    ("rust", "live40"),
    ("rust", "live40-fixture"),
)

_SEEN_TOKEN = re.compile(r',"seen":(-?[0-9][0-9.eE+-]*)')
_EMPTY_SHA1 = hashlib.sha1(b"").digest().hex(":").upper()
_EMPTY_SHA256 = hashlib.sha256(b"").digest().hex(":").upper()


# --- results -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FrameResult:
    """One frame pair.  ``status``: match, deviation, mismatch, missing, extra.

    ``only_ours`` marks a frame the peer never sent (status extra, or deviation when the
    peer documents losing that entry)."""

    log_url: str
    index: int
    status: str
    deviations: tuple[str, ...] = ()
    detail: str = ""
    only_ours: bool = False


@dataclass(slots=True)
class StreamResult:
    peer: str
    set: str
    stream: str
    golden_frames: int
    frames: list[FrameResult] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for f in self.frames if f.status == status)

    @property
    def ok(self) -> bool:
        return all(f.status in ("match", "deviation") for f in self.frames)


# --- inputs --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InputLog:
    source: LogSource
    entries: tuple[LogEntry, ...]
    path: str  # the manifest's URL path, e.g. "/argon2026h2/"


def manifest(set_name: str, root: Path = DATA) -> dict[str, Any]:
    """``<root>/inputs/<set>/manifest.json``."""
    doc: dict[str, Any] = json.loads((root / "inputs" / set_name / "manifest.json").read_text())
    return doc


def load_set(
    set_name: str, root: Path = DATA, base_url: str = OUR_BASE, *, strict: bool = True
) -> list[InputLog]:
    """Decode every entry of an input set, one ``InputLog`` per log of its manifest, with
    each log's URL under ``base_url``.  ``strict=False`` leaves out entries our decoders
    reject instead of raising (a recording of another server may hold such entries)."""
    if set_name == "live40-fixture":
        return _load_rust_fixture()
    logs: list[InputLog] = []
    folder = root / "inputs" / set_name
    for log in manifest(set_name, root)["logs"]:
        kind = "static" if log["kind"] == "static" else "rfc6962"
        source = LogSource(name=log["name"], url=base_url + log["path"], kind=kind)
        if kind == "rfc6962":
            body = (folder / log["entries"]).read_bytes()
            entries, errors = decode_get_entries(body, log["first_index"])
            if errors and strict:
                raise errors[0]
        else:
            leaves, issuers = load_tiles_dir(folder / log["tiles"])
            entries = [
                leaf.to_entry(issuers)
                for start in range(0, len(leaves), 256)
                for leaf in parse_data_tile(
                    b"".join(leaves[start : start + 256]), start, len(leaves[start : start + 256])
                )
            ]
        logs.append(InputLog(source, tuple(entries), log["path"]))
    return logs


def _load_rust_fixture() -> list[InputLog]:
    paths = {log["real_log_url"]: log["path"] for log in manifest("live40")["logs"]}
    by_url: dict[str, tuple[LogSource, list[LogEntry]]] = {}
    for item in json.loads(RUST_FIXTURE.read_text()):
        path = paths[item["log_url"]]
        src = LogSource(name=item["log_name"], url=OUR_BASE + path)
        entry = decode_entry(
            item["cert_index"],
            base64.b64decode(item["leaf_input"]),
            base64.b64decode(item["extra_data"]),
        )
        by_url.setdefault(path, (src, []))[1].append(entry)
    return [InputLog(src, tuple(entries), path) for path, (src, entries) in by_url.items()]


# --- goldens -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Golden:
    frames: dict[str, list[str]]  # stream -> frame texts, URL-substituted
    meta: dict[str, Any]
    url_map: tuple[tuple[str, str], ...]  # (peer URL, our URL), longest first


def _url_map(peer: str, meta: dict[str, Any], base_url: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    subst = meta.get("source_substitution") or {}
    for loopback, real in subst.items():
        # rust goldens carry the real URL; calidog's carry the loopback one (then the map
        # below replaces its base).  Either way the manifest path gives our URL.
        path = "/" + loopback.split("/", 3)[3]
        if peer == "rust":
            pairs.append((real.rstrip("/"), (base_url + path).rstrip("/")))
    if meta.get("base_url"):
        pairs.append((meta["base_url"], base_url))
    return sorted(pairs, key=lambda p: -len(p[0]))


def load_golden(
    peer: str, set_name: str, root: Path = DATA, base_url: str = OUR_BASE
) -> Golden:
    """``<root>/golden/<peer>/<set>``, with the peer's log URLs replaced by ours."""
    if set_name == "live40-fixture":
        meta = json.loads((root / "golden" / peer / "live40" / "meta.json").read_text())
        items = json.loads(RUST_FIXTURE.read_text())
        raw = {
            "lite": [i["expected_lite"] for i in items],
            "full": [i["expected_full"] for i in items],
            "domains": [i["expected_domains_only"] for i in items],
        }
    else:
        folder = root / "golden" / peer / set_name
        meta = json.loads((folder / "meta.json").read_text())
        raw = {
            s: [json.loads(line) for line in (folder / f"{s}.jsonl").read_text().splitlines()]
            for s in STREAMS
        }
    url_map = _url_map(peer, meta, base_url)

    def subst(text: str) -> str:
        for old, new in url_map:
            text = text.replace(old, new)
        return text

    frames = {s: [subst(t) for t in texts] for s, texts in raw.items()}
    return Golden(frames, meta, tuple(url_map))


def _frame_key(text: str) -> tuple[str, int]:
    data = json.loads(text)["data"]
    return data["source"]["url"], int(data["cert_index"])


# --- deviation variants --------------------------------------------------------------------

#: Go's name rule as Go has it: ST from streetAddress, email_address never filled.
GO_BUG_ST = dataclasses.replace(
    profiles.GO_NAMES,
    oids=tuple((k, OID_STREET if k == "ST" else oid) for k, oid in profiles.GO_NAMES.oids),
)
GO_BUG_EMAIL = dataclasses.replace(
    profiles.GO_NAMES,
    oids=tuple((k, oid) for k, oid in profiles.GO_NAMES.oids if k != "email_address"),
)
GO_BUG_BOTH = dataclasses.replace(
    GO_BUG_ST, oids=tuple((k, oid) for k, oid in GO_BUG_ST.oids if k != "email_address")
)


def _go_tiled_bugs(entry: LogEntry, text: str) -> str:
    """Go's tiled output from ours: precerts lose as_der and hash empty input."""
    if not entry.is_precert:
        return text
    der = entry.cert_der
    as_der = base64.b64encode(der).decode("ascii")
    text = text.replace(',"as_der":"' + as_der + '"', "")
    text = text.replace(hashlib.sha1(der).digest().hex(":").upper(), _EMPTY_SHA1)
    return text.replace(hashlib.sha256(der).digest().hex(":").upper(), _EMPTY_SHA256)


class OurFrames:
    """Our frames of one set in one profile, plus the Go-bug variants, by (url, index)."""

    def __init__(self, peer: str, set_name: str, logs: list[InputLog]) -> None:
        self.peer = peer
        self.set = set_name
        self.logs = logs
        self.frames: dict[tuple[str, int], dict[str, str]] = {}
        self.variants: dict[str, dict[tuple[str, int], dict[str, str]]] = {}
        self.entries: dict[tuple[str, int], LogEntry] = {}
        builder = MessageBuilder(peer)
        self.url_of = {id(log): builder._source_text(log.source).url for log in logs}
        self.tiled_keys = {
            (self.url_of[id(log)], entry.index)
            for log in logs
            if log.source.kind == "static"
            for entry in log.entries
        }
        for log in logs:
            for entry in log.entries:
                key = (self.url_of[id(log)], entry.index)
                self.entries[key] = entry
                self.frames[key] = self._build(builder, entry, log.source)
        if peer == "go":
            variants = (("go-1", GO_BUG_ST), ("go-2", GO_BUG_EMAIL), ("go-names", GO_BUG_BOTH))
            for label, names in variants:
                variant = MessageBuilder(dataclasses.replace(profiles.GO, names=names))
                out: dict[tuple[str, int], dict[str, str]] = {}
                bugged: dict[tuple[str, int], dict[str, str]] = {}
                for log in logs:
                    tiled = log.source.kind == "static"
                    for entry in log.entries:
                        key = (self.url_of[id(log)], entry.index)
                        out[key] = self._build(variant, entry, log.source)
                        if label == "go-names" and tiled:
                            frames = self._build(
                                variant, dataclasses.replace(entry, chain=()), log.source
                            )
                            bugged[key] = {s: _go_tiled_bugs(entry, t) for s, t in frames.items()}
                        elif label == "go-names":
                            bugged[key] = out[key]
                self.variants[label] = out
                if label == "go-names":
                    self.variants["go"] = bugged

    @staticmethod
    def _build(builder: MessageBuilder, entry: LogEntry, source: LogSource) -> dict[str, str]:
        payloads = builder.build(entry, source, SEEN, STREAM_ALL)
        assert payloads.lite is not None
        assert payloads.full is not None
        assert payloads.domains is not None
        return {
            "lite": payloads.lite.decode("utf-8"),
            "full": payloads.full.decode("utf-8"),
            "domains": payloads.domains.decode("utf-8"),
        }


# --- comparison ----------------------------------------------------------------------------


def _with_seen_of(ours: str, golden: str) -> str:
    match = _SEEN_TOKEN.search(golden)
    if match is None:
        return ours
    return _SEEN_TOKEN.sub(lambda _m: match.group(0), ours, count=1)


def first_difference(ours: str, golden: str, label: str = "ours") -> str:
    """Where two frames differ: the first key path whose parsed values differ, or why the
    texts differ although the JSON is equal (order, escaping, number format, newline).
    ``label`` names the side that is not the golden (``ours``, or ``server``)."""
    try:
        a = json.loads(ours, object_pairs_hook=list)
        b = json.loads(golden, object_pairs_hook=list)
    except ValueError as exc:
        return f"not JSON: {exc}"
    path = _diff_path(a, b, "", label)
    if path:
        return path
    for i, (x, y) in enumerate(zip(ours, golden, strict=False)):
        if x != y:
            here = f"{label} {ours[i : i + 40]!r} golden {golden[i : i + 40]!r}"
            return f"same JSON, text differs at char {i}: {here}"
    return f"same JSON, lengths {label} {len(ours)} golden {len(golden)} (terminator?)"


def _short(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 120 else text[:117] + "..."


def _diff_path(a: object, b: object, path: str, label: str) -> str:
    if isinstance(a, list) and isinstance(b, list):
        a_pairs = all(isinstance(x, tuple) for x in a) and a and b
        if a_pairs and all(isinstance(x, tuple) for x in b):
            a_keys = [k for k, _ in a]
            b_keys = [k for k, _ in b]
            if a_keys != b_keys:
                return f"{path or '.'}: keys {label} {a_keys} golden {b_keys}"
            for (k, va), (_k, vb) in zip(a, b, strict=True):
                found = _diff_path(va, vb, f"{path}.{k}", label)
                if found:
                    return found
            return ""
        if len(a) != len(b):
            return (
                f"{path}: length {label} {len(a)} golden {len(b)}: {_short(a)} vs {_short(b)}"
            )
        for i, (va, vb) in enumerate(zip(a, b, strict=True)):
            found = _diff_path(va, vb, f"{path}[{i}]", label)
            if found:
                return found
        return ""
    if a != b or type(a) is not type(b):
        return f"{path}: {label} {_short(a)} golden {_short(b)}"
    return ""


def classify(
    key: tuple[str, int],
    stream: str,
    received: str,
    golden: str,
    ours: OurFrames | None,
    *,
    sse: bool = False,
    label: str = "server",
) -> FrameResult:
    """Judge one frame a server sent against its golden frame.

    ``match`` when the texts are equal (``seen`` aside).  ``deviation`` when they differ
    exactly by an allowed deviation: the received frame is the one our builder makes for
    the entry and putting the peer's bug back into it gives the golden (``go-1..3``); or the
    frames differ only in the order of an ``all_domains`` of more than 32 names
    (``calidog-2``).  Otherwise ``mismatch``, with the first differing key path.
    ``ours`` holds our builder's frames (None for a peer that has no profile of ours);
    ``sse`` strips the newline that an SSE data line cannot carry from our frames."""
    text = _with_seen_of(received, golden)
    if text == golden:
        return FrameResult(key[0], key[1], "match")
    built = ours.frames.get(key) if ours is not None else None
    if ours is not None and built is not None and ours.variants:

        def plain(t: str) -> str:
            return _with_seen_of(t.rstrip("\n") if sse else t, golden)

        fixed = plain(built[stream])
        if text == fixed and plain(ours.variants["go"][key][stream]) == golden:
            labels = [
                label for label in ("go-1", "go-2")
                if ours.variants[label][key][stream] != built[stream]
            ]
            if ours.variants["go"][key][stream] != ours.variants["go-names"][key][stream]:
                labels.append("go-3")
            return FrameResult(key[0], key[1], "deviation", tuple(labels))
    if ours is not None and ours.peer == "calidog" and _same_but_domain_order(text, golden):
        return FrameResult(key[0], key[1], "deviation", ("calidog-2",))
    return FrameResult(key[0], key[1], "mismatch", (), first_difference(text, golden, label))


_DOMAIN_LISTS = re.compile(r'"all_domains":|^\{"data":')
_DECODER = json.JSONDecoder()


def _domain_spans(text: str) -> list[tuple[int, int, list[Any]]]:
    """Each ``all_domains`` array of a frame (or a dns_entries frame's ``data``): its span
    in the text and its value."""
    spans = []
    for m in _DOMAIN_LISTS.finditer(text):
        try:
            value, end = _DECODER.raw_decode(text, m.end())
        except ValueError:
            continue
        if isinstance(value, list):
            spans.append((m.end(), end, value))
    return spans


def _same_but_domain_order(text: str, golden: str) -> bool:
    """The two frames are equal once each ``all_domains`` list of more than 32 names is put
    in the golden's order, and at least one such list was out of that order (calidog-2)."""
    ours_spans, gold_spans = _domain_spans(text), _domain_spans(golden)
    if len(ours_spans) != len(gold_spans):
        return False
    out, last, reordered = [], 0, False
    for (start, end, mine), (g_start, g_end, theirs) in zip(ours_spans, gold_spans, strict=True):
        if len(mine) > 32 and mine != theirs and sorted(mine) == sorted(theirs):
            out.append(text[last:start] + golden[g_start:g_end])
            last, reordered = end, True
    return reordered and "".join(out) + text[last:] == golden


def _classify(ours_set: OurFrames, key: tuple[str, int], stream: str, golden: str) -> FrameResult:
    """Our builder's own frame judged against the golden."""
    return classify(key, stream, ours_set.frames[key][stream], golden, ours_set, label="ours")


def compare_set(peer: str, set_name: str) -> list[StreamResult]:
    logs = load_set(set_name)
    ours = OurFrames(peer, set_name, logs)
    golden = load_golden(peer, set_name)
    lite_keys = [_frame_key(t) for t in golden.frames["lite"]]
    failed = set(golden.meta.get("failed_indices") or [])
    missing_by_peer = set(golden.meta.get("missing_indices") or [])
    results: list[StreamResult] = []
    for stream in STREAMS:
        texts = golden.frames[stream]
        result = StreamResult(peer, set_name, stream, len(texts))
        keys = lite_keys if stream == "domains" else [_frame_key(t) for t in texts]
        seen_keys: set[tuple[str, int]] = set()
        for key, text in zip(keys, texts, strict=True):
            seen_keys.add(key)
            if key not in ours.frames:
                result.frames.append(FrameResult(key[0], key[1], "missing"))
                continue
            result.frames.append(_classify(ours, key, stream, text))
        for key in ours.frames:
            if key in seen_keys:
                continue
            if peer == "calidog" and key[1] in failed:
                labels: tuple[str, ...] = ("calidog-1",)
            elif peer == "go" and key in ours.tiled_keys and key[1] in missing_by_peer:
                labels = ("go-3",)
            else:
                result.frames.append(FrameResult(key[0], key[1], "extra", only_ours=True))
                continue
            result.frames.append(FrameResult(key[0], key[1], "deviation", labels, only_ours=True))
        results.append(result)
    return results


def compare_all(peers: Iterable[str] | None = None) -> list[StreamResult]:
    """Every peer x set x stream comparison, in PEER_SETS order."""
    out: list[StreamResult] = []
    for peer in peers or PEER_SETS:
        for set_name in PEER_SETS[peer]:
            out.extend(compare_set(peer, set_name))
    return out


def format_table(results: list[StreamResult], *, details: int = 3) -> str:
    lines = [
        f"{'peer':8} {'set':15} {'stream':8} {'golden':>6} {'match':>6} {'deviat':>6} "
        f"{'mismat':>6} {'missing':>7} {'extra':>5}  deviations",
    ]
    for r in results:
        devs = sorted({d for f in r.frames for d in f.deviations})
        lines.append(
            f"{r.peer:8} {r.set:15} {r.stream:8} {r.golden_frames:6d} {r.count('match'):6d} "
            f"{r.count('deviation'):6d} {r.count('mismatch'):6d} {r.count('missing'):7d} "
            f"{r.count('extra'):5d}  {','.join(devs)}"
        )
        shown = 0
        for f in r.frames:
            if f.status in ("mismatch", "missing", "extra") and shown < details:
                lines.append(f"    {f.status} index {f.index} ({f.log_url}): {f.detail}")
                shown += 1
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    results = compare_all(args or None)
    print(format_table(results))
    required = {(p, s) for p, s in ACCEPTANCE}
    bad = [r for r in results if (r.peer, r.set) in required and not r.ok]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
