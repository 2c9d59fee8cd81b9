"""Frames a running server sent for a recorded set, checked against the peers' goldens by
the rules of ``conformance/``: every entry once, in index order per log; each frame equal
to our builder's (``seen`` aside); and where our builder matches the golden frame byte for
byte, the server's frame equal to the golden one too (the rest must be documented
deviations, ``conformance/DEVIATIONS.md``).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence

from conformance import compare

__all__ = ["check_set", "frame_key", "split_by_log"]

_SEEN = re.compile(r'"seen":-?[0-9][0-9.eE+-]*')


def _norm(text: str) -> str:
    return _SEEN.sub('"seen":0', text)


def frame_key(text: str) -> tuple[str, int]:
    data = json.loads(text)["data"]
    return data["source"]["url"], int(data["cert_index"])


def split_by_log(received: Mapping[str, Sequence[str]], url: str) -> dict[str, list[str]]:
    """The frames of the log at ``url`` only (domains frames go with the lite frame at the
    same position: one broadcast feeds every stream in the same order)."""
    mine = [i for i, text in enumerate(received["lite"]) if frame_key(text)[0] == url]
    return {
        "lite": [received["lite"][i] for i in mine],
        "full": [t for t in received["full"] if frame_key(t)[0] == url],
        "domains": [received["domains"][i] for i in mine],
    }


def check_set(peer: str, set_name: str, received: Mapping[str, Sequence[str]],
              log_base: str) -> int:
    """Check one set's frames per stream (``lite``, ``full``, ``domains``) as the server
    sent them with its logs under ``log_base``; returns how many matched the golden frames
    byte for byte (the callers check it is most of them)."""
    golden = compare.load_golden(peer, set_name)
    offline = compare.OurFrames(peer, set_name, compare.load_set(set_name)).frames
    status = {(r.stream, f.log_url, f.index): f.status
              for r in compare.compare_set(peer, set_name) for f in r.frames}
    golden_pos = {
        stream: {key: i for i, key in enumerate(
            [frame_key(t) for t in golden.frames["lite" if stream == "domains" else stream]])}
        for stream in compare.STREAMS
    }

    def ours(text: str) -> str:
        # The server read the replay's URLs; the comparer's frames carry its own base.
        return text.replace(log_base, compare.OUR_BASE)

    lite_keys = [frame_key(ours(t)) for t in received["lite"]]
    assert sorted(lite_keys) == sorted(offline), "not every entry exactly once"
    by_log: dict[str, list[int]] = defaultdict(list)
    for url, index in lite_keys:
        by_log[url].append(index)
    for url, indices in by_log.items():
        assert indices == sorted(indices), (url, indices)
    exact = 0
    for stream in compare.STREAMS:
        texts = [ours(t) for t in received[stream]]
        keys = lite_keys if stream == "domains" else [frame_key(t) for t in texts]
        assert keys == lite_keys, stream
        for key, text in zip(keys, texts, strict=True):
            assert _norm(text) == _norm(offline[key][stream]), (stream, key)
            verdict = status[(stream, *key)]
            if verdict == "match":
                gold = golden.frames[stream][golden_pos[stream][key]]
                assert _norm(text) == _norm(gold), (stream, key)
                exact += 1
            else:  # a difference DEVIATIONS.md documents (or a frame Go lost)
                assert verdict == "deviation", (stream, key, verdict)
    return exact
