"""``certstream_parse_problems`` counts the certificates the ingest's builder formatted with
unreadable fields (it was registered and never incremented)."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from certstream.config import settings_from_dict
from certstream.core import messages
from certstream.core.leaves import decode_get_entries
from certstream.core.model import CertInfo, LogSource
from certstream.core.streams import STREAM_LITE
from certstream.shell.feed import FeedPublisher
from certstream.shell.ingest import Ingest

SYNTH11 = (Path(__file__).resolve().parents[2] / "conformance" / "data" / "inputs" / "synth11"
           / "rfc6962.get-entries.json")
METRIC = "certstream_parse_problems_total"


def test_problems_reach_the_metric_once_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_from_dict({
        "ct_log": {"log_list_urls": [], "state_file": str(tmp_path / "state.json")},
    })
    ingest = Ingest(settings, FeedPublisher(str(tmp_path / "feed.sock")))  # not started: no sockets
    entries, _ = decode_get_entries(SYNTH11.read_bytes(), 0)
    source = LogSource("Test", "https://ct.example.test/")
    before = REGISTRY.get_sample_value(METRIC) or 0.0

    ingest.builder.build(entries[0], source, 1.0, STREAM_LITE)  # a sound certificate
    ingest.publish_state()
    assert (REGISTRY.get_sample_value(METRIC) or 0.0) == before

    partly = CertInfo(der=b"x", problems=("subject: bad length",))
    monkeypatch.setattr(messages, "parse_certificate", lambda _der: partly)
    for entry in entries[1:3]:
        ingest.builder.build(entry, source, 1.0, STREAM_LITE)
    ingest.publish_state()
    ingest.publish_state()  # nothing new since: nothing added
    assert REGISTRY.get_sample_value(METRIC) == before + 2
