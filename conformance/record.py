"""Record a server's frames for a set in the golden layout, so a new peer's goldens can be
made the way the shipped ones were.

``<out>/golden/<peer>/<set>/{lite,full,domains}.jsonl`` get one ``json.dumps(frame text)``
line per WebSocket frame in arrival order, and ``meta.json`` says which server, which base
URL the frames carry, when, and which input indices were missing or came twice.  When
``<out>`` is not the input root, the set's inputs are copied to ``<out>/inputs/<set>`` so that
``<out>`` is a complete root for ``python -m conformance run --root <out>``.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from conformance import compare
from conformance.harness import RunOptions, capture
from conformance.replay import load_tiles_dir

__all__ = ["entry_count", "record"]


def entry_count(root: Path, set_name: str) -> int:
    """How many entries the set's logs serve in all."""
    folder = root / "inputs" / set_name
    total = 0
    for log in compare.manifest(set_name, root)["logs"]:
        if log["kind"] == "static":
            total += len(load_tiles_dir(folder / log["tiles"])[0])
        else:
            total += len(json.loads((folder / log["entries"]).read_text())["entries"])
    return total


def _indices(root: Path, set_name: str, lite: list[str], base_url: str) -> dict[str, Any]:
    got: Counter[tuple[str, int]] = Counter()
    for text in lite:
        data = json.loads(text)["data"]
        got[(data["source"]["url"].rstrip("/"), int(data["cert_index"]))] += 1
    missing: list[int] = []
    for log in compare.load_set(set_name, root, base_url, strict=False):
        url = log.source.url.rstrip("/")
        missing += [e.index for e in log.entries if (url, e.index) not in got]
    return {
        "missing_indices": sorted(missing),
        "duplicate_indices": sorted({index for (_, index), n in got.items() if n > 1}),
    }


def record(options: RunOptions, set_name: str, peer: str, out: Path) -> Path:
    """Run the server against the set over WebSocket and write its goldens; returns the
    golden folder."""
    expected = entry_count(options.root, set_name)
    options = dataclasses.replace(options, transports=("ws",))
    cap = capture(options, set_name, expected, peer)
    folder = out / "golden" / peer / set_name
    folder.mkdir(parents=True, exist_ok=True)
    for stream in compare.STREAMS:
        lines = [json.dumps(text) + "\n" for text in cap.frames[("ws", stream)]]
        (folder / f"{stream}.jsonl").write_text("".join(lines))
    inputs = out / "inputs" / set_name
    if not inputs.exists():
        shutil.copytree(options.root / "inputs" / set_name, inputs)
    meta = {
        "server": options.server_cmd,
        "config_style": (
            "template" if options.config_template is not None else options.config_style
        ),
        "recorded_with": "python -m conformance record",
        "captured": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "base_url": cap.base_url,
        "transport": "ws",
        "entries": expected,
        "frames": {s: len(cap.frames[("ws", s)]) for s in compare.STREAMS},
        **_indices(options.root, set_name, cap.frames[("ws", "lite")], cap.base_url),
        "notes": cap.notes,
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return folder
