"""The hub with no client: nothing is framed, each record is kept (a client may come to
resume from it) and the latest payload of each stream (for /example.json). Clients over
socket pairs are tests/integration/test_hub.py."""

from __future__ import annotations

from certstream.core.routes import STREAM_DOMAINS, STREAM_FULL, STREAM_LITE
from certstream.shell.hub import Hub


def test_no_framing_without_clients() -> None:
    hub = Hub(10)
    hub.publish(STREAM_LITE | STREAM_FULL, b"lite", b"full", None)
    assert all(ring.sse == [None] * 10 and ring.zframes == [None] * 10
               for ring in hub.rings.values())
    assert [ring.next_seq for ring in hub.rings.values()] == [1, 1, 0]
    assert hub.latest(STREAM_LITE) == b"lite" and hub.latest(STREAM_FULL) == b"full"
    assert hub.latest(STREAM_DOMAINS) is None
    hub.set_example(b"sample")  # the ingest's periodic sample when nobody follows lite
    assert hub.latest(STREAM_LITE) == b"sample"
