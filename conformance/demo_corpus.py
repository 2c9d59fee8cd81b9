"""Build the offline demo's corpus from the recorded CT inputs of this repository.

``certstream --demo`` must run from an installed wheel, where neither ``conformance/`` nor
``tests/`` exists, so the entries it serves travel inside the package as
``src/certstream/demo/data/corpus.json.gz``.  That file is derived, never edited: this module
makes it from the recorded inputs, and ``tests/unit/test_demo_corpus.py`` fails when the two
differ.  Rebuild after changing an input::

    python -m conformance.demo_corpus

Sources (see ``conformance/data/README.md`` and ``tests/fixtures/ct/SOURCES.md``):

* ``argon2026h2``, ``nimbus2026``: the live40 set, 40 real entries of two RFC 6962 logs;
* ``synth11``: the synth11 set (5 real roots and generated certificates) as get-entries;
* ``synth11-tiled``: the same set as recorded tiles of a static-ct-api log;
* ``navigli2025h2``: the first 256 of the 1,024 real precert entries of Geomys
  Navigli2025h2, from its tiles.

Every source is stored in the compact form of static-ct-api tiles (TileLeafs whose chains are
fingerprints, and the issuers once); the demo log turns them into RFC 6962 entries or tiles.
An entry whose serial number is shorter than ``MIN_SERIAL`` bytes gets a longer one
(``widen_serial``), so that the demo can make it unique again and again.
"""

from __future__ import annotations

import base64
import gzip
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from certstream.demo.synth import (
    entries_from_tile_leaves,
    serial_length,
    tile_leaves_from_entries,
    widen_serial,
)
from conformance.replay import load_tiles_dir

__all__ = ["CORPUS_PATH", "MIN_SERIAL", "build", "corpus_bytes", "main"]

ROOT = Path(__file__).resolve().parent.parent
INPUTS = ROOT / "conformance" / "data" / "inputs"
CORPUS_PATH = ROOT / "src" / "certstream" / "demo" / "data" / "corpus.json.gz"
#: Serial bytes a base entry needs to be rewritten into distinct certificates for ever.
MIN_SERIAL = 8

#: name -> (kind of recording, path relative to the repository root, entries taken)
SOURCES: dict[str, tuple[str, str, int]] = {
    "argon2026h2": (
        "get-entries", "conformance/data/inputs/live40/argon2026h2.get-entries.json", 20),
    "nimbus2026": (
        "get-entries", "conformance/data/inputs/live40/nimbus2026.get-entries.json", 20),
    "synth11": ("get-entries", "conformance/data/inputs/synth11/rfc6962.get-entries.json", 11),
    "synth11-tiled": ("tiles", "conformance/data/inputs/synth11-tiled/tiles", 11),
    # The first full tile: 256 names are variety enough, and the wheel stays small.
    "navigli2025h2": ("tiles", "tests/fixtures/ct/static-ct/navigli2025h2", 256),
}


def _entries(kind: str, path: Path) -> list[dict[str, str]]:
    if kind == "tiles":
        leaves, issuers = load_tiles_dir(path)
        return entries_from_tile_leaves(leaves, issuers)
    return [
        {"leaf_input": e["leaf_input"], "extra_data": e["extra_data"]}
        for e in json.loads(path.read_text())["entries"]
    ]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def build(root: Path = ROOT) -> dict[str, Any]:
    """The corpus as a JSON-ready object: per source its entries as TileLeafs (chains as
    fingerprints, the compact form), and the issuer certificates they name."""
    sources: dict[str, Any] = {}
    issuers: dict[str, str] = {}
    for seed, (name, (kind, rel, count)) in enumerate(SOURCES.items()):
        entries = [
            e if serial_length(e) >= MIN_SERIAL
            else widen_serial(e, MIN_SERIAL, 1000 + seed * 100 + i)
            for i, e in enumerate(_entries(kind, root / rel)[:count])
        ]
        leaves, chain = tile_leaves_from_entries(entries)
        issuers.update({fp.hex(): _b64(der) for fp, der in chain.items()})
        sources[name] = {"from": rel, "leaves": [_b64(leaf) for leaf in leaves]}
    return {
        "about": "Recorded CT entries for certstream --demo; made by conformance/demo_corpus.py",
        "issuers": issuers,
        "sources": sources,
    }


def corpus_bytes(corpus: dict[str, Any]) -> bytes:
    text = json.dumps(corpus, sort_keys=True, separators=(",", ":")).encode()
    return gzip.compress(text, compresslevel=9, mtime=0)


def main(argv: Sequence[str] | None = None) -> int:
    del argv
    data = corpus_bytes(build())
    CORPUS_PATH.parent.mkdir(parents=True, exist_ok=True)
    CORPUS_PATH.write_bytes(data)
    print(f"wrote {CORPUS_PATH.relative_to(ROOT)} ({len(data):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
