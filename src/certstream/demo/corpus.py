"""The recorded CT entries packaged for the offline demo (``data/corpus.json.gz``).

The file holds each source's entries as static-ct-api TileLeafs (chains as SHA-256
fingerprints) and the issuer certificates once; :func:`load_corpus` turns them into RFC 6962
get-entries entries, the form the demo log rewrites.  It is made from the recorded inputs of
the source repository by ``conformance/demo_corpus.py`` (which says where each came from).
"""

from __future__ import annotations

import base64
import gzip
import json
from dataclasses import dataclass
from importlib import resources

from certstream.demo.synth import entries_from_tile_leaves

__all__ = ["CORPUS_FILE", "Corpus", "load_corpus"]

CORPUS_FILE = "corpus.json.gz"


@dataclass(frozen=True, slots=True)
class Corpus:
    """Base entries by source name, and where each source was recorded."""

    entries: dict[str, list[dict[str, str]]]
    origins: dict[str, str]


def load_corpus(data: bytes | None = None) -> Corpus:
    """The packaged corpus (or ``data``, the bytes of such a file)."""
    if data is None:
        data = (resources.files("certstream.demo") / "data" / CORPUS_FILE).read_bytes()
    tree = json.loads(gzip.decompress(data))
    issuers = {bytes.fromhex(fp): base64.b64decode(der) for fp, der in tree["issuers"].items()}
    entries: dict[str, list[dict[str, str]]] = {}
    origins: dict[str, str] = {}
    for name, source in tree["sources"].items():
        leaves = [base64.b64decode(leaf) for leaf in source["leaves"]]
        entries[name] = entries_from_tile_leaves(leaves, issuers)
        origins[name] = source["from"]
    return Corpus(entries, origins)
