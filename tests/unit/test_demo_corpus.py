"""The demo's packaged corpus: exactly what the recorded inputs make, and every entry usable.

``src/certstream/demo/data/corpus.json.gz`` is derived from ``conformance/data/inputs`` and
the Navigli tiles by ``conformance/demo_corpus.py``; if an input changes and the file is not
rebuilt, this fails (``python -m conformance.demo_corpus`` rebuilds it).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json

from conformance.demo_corpus import CORPUS_PATH, MIN_SERIAL, SOURCES, build

from certstream.core.leaves import decode_entry
from certstream.core.messages import STREAM_ALL, MessageBuilder
from certstream.core.model import LogSource
from certstream.demo.corpus import load_corpus
from certstream.demo.ctlog import DEMO_LOGS
from certstream.demo.synth import rewrite_entry, serial_length


def test_the_packaged_corpus_is_the_one_the_inputs_make() -> None:
    packaged = json.loads(gzip.decompress(CORPUS_PATH.read_bytes()))
    assert packaged == build(), "rebuild it: python -m conformance.demo_corpus"


def test_every_source_is_loaded_whole_and_named_by_a_demo_log() -> None:
    corpus = load_corpus()
    assert {name: len(entries) for name, entries in corpus.entries.items()} == {
        name: count for name, (_, _, count) in SOURCES.items()}
    assert {d.source for d in DEMO_LOGS} == set(corpus.entries)
    assert corpus.origins["navigli2025h2"] == "tests/fixtures/ct/static-ct/navigli2025h2"


def test_every_entry_decodes_and_builds_a_message() -> None:
    builder = MessageBuilder("go")
    source = LogSource("Demo", "http://127.0.0.1/demo/")
    built = 0
    for entries in load_corpus().entries.values():
        for i, e in enumerate(entries):
            assert serial_length(e) >= MIN_SERIAL
            entry = decode_entry(i, base64.b64decode(e["leaf_input"]),
                                 base64.b64decode(e["extra_data"]))
            payloads = builder.build(entry, source, 1.0, STREAM_ALL)
            assert payloads.lite is not None and b'"certificate_update"' in payloads.lite
            built += 1
    assert built == sum(count for _, _, count in SOURCES.values())


def test_each_base_makes_distinct_certificates() -> None:
    corpus = load_corpus()
    seen: set[bytes] = set()
    n = 0
    for seed, entries in enumerate(corpus.entries.values()):
        for k in range(600):  # several rounds through every source
            _, cert = rewrite_entry(entries[k % len(entries)], k, seed)
            seen.add(hashlib.sha256(cert).digest())
            n += 1
    assert len(seen) == n
