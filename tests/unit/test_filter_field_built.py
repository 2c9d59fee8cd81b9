"""The filter field the message builder makes for the feed holds exactly what the payloads
show (``all_domains``, the issuer's ``aggregated``, the ``source`` name and URL), in every
output profile, and is built only when asked for."""

from __future__ import annotations

import json

import pytest
from tests.support.data import INPUTS

from certstream.core.filterfields import decode_match_fields, match_fields_of_message
from certstream.core.leaves import decode_get_entries
from certstream.core.messages import (
    FILTER_FIELDS,
    STREAM_ALL,
    STREAM_DOMAINS,
    STREAM_LITE,
    MessageBuilder,
)
from certstream.core.model import LogEntry, LogSource
from certstream.core.profiles import PROFILES


def _entries() -> list[tuple[LogSource, LogEntry]]:
    out = []
    for set_name in ("live40", "synth11"):
        manifest = json.loads((INPUTS / set_name / "manifest.json").read_text())
        for log in manifest["logs"]:
            if log["kind"] == "static":
                continue
            source = LogSource(name=log["name"], url="https://ct.example.net" + log["path"])
            body = (INPUTS / set_name / log["entries"]).read_bytes()
            entries, _errors = decode_get_entries(body, log["first_index"])
            out += [(source, e) for e in entries]
    return out


ENTRIES = _entries()


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_the_field_is_what_the_payloads_show(profile: str) -> None:
    builder = MessageBuilder(profile)
    assert len(ENTRIES) > 40
    issuers = set()
    for source, entry in ENTRIES:
        every = builder.build(entry, source, 1.0, STREAM_ALL | FILTER_FIELDS)
        assert every.fields is not None and every.lite is not None and every.full is not None
        fields = decode_match_fields(every.fields)
        assert fields == match_fields_of_message(json.loads(every.lite))
        assert fields == match_fields_of_message(json.loads(every.full))
        names = json.loads(every.lite)["data"]["leaf_cert"]["all_domains"]
        assert fields.names == "\n".join(names).lower()
        issuers.add(fields.issuer)
        # A domains-only build carries the same field (a domains client may filter by
        # issuer and log too).
        domains_only = builder.build(entry, source, 1.0, STREAM_DOMAINS | FILTER_FIELDS)
        assert domains_only.fields == every.fields
        assert (domains_only.lite, domains_only.full) == (None, None)
    assert len(issuers) > 3 and all(issuers)


def test_nothing_is_built_for_the_field_unless_asked() -> None:
    builder = MessageBuilder("go")
    source, entry = ENTRIES[0]
    assert builder.build(entry, source, 1.0, STREAM_LITE).fields is None
    assert builder.build(entry, source, 1.0, STREAM_ALL).fields is None
    # The bit alone asks for no stream: nothing at all is built.
    assert builder.build(entry, source, 1.0, FILTER_FIELDS).fields is None
